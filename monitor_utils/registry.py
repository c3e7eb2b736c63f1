"""Model versions in S3 with lineage, and their SageMaker model, endpoint config and blue/green deployment."""

from __future__ import annotations

import datetime as dt
import re
import subprocess

from botocore.validate import ParamValidator

from .aws import Aws, get_json, list_keys, put_bytes, put_json, service_model
from .config import Params


def names(cfg: Params, version: int) -> dict[str, str]:
    """SageMaker names and artifact key of one model version."""
    tag = f"v{version:04d}"
    return {"model": f"{cfg.endpoint_name}-{tag}", "config": f"{cfg.endpoint_name}-config-{tag}",
            "artifact_key": cfg.key("models", tag, "model.tar.gz"), "record_key": cfg.key("models", tag, "record.json"),
            "version": tag}


def next_version(aws: Aws, cfg: Params) -> int:
    """One more than the highest stored version."""
    found = [int(m.group(1)) for k in list_keys(aws, cfg.bucket, cfg.key("models") + "/")
             if (m := re.search(r"/models/v(\d+)/", k))]
    return max(found, default=0) + 1


def code_revision() -> str | None:
    """The git commit of the suite, when it runs from a checkout."""
    from .assets import checkout_root

    root = checkout_root()
    if root is None:  # installed from a wheel: no commit to name (not that of a repo the venv lives in)
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=root)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None


def register(aws: Aws, cfg: Params, version: int, artifact: bytes, lineage: dict) -> dict:
    """Store the artifact and its JSON record (data windows, params, metrics, parent, code revision)."""
    n = names(cfg, version)
    put_bytes(aws, cfg.bucket, n["artifact_key"], artifact, "application/gzip")
    record = {"version": n["version"], "model_data_url": f"s3://{cfg.bucket}/{n['artifact_key']}",
              "registered": dt.datetime.now(dt.timezone.utc).isoformat(), "code_revision": code_revision(), **lineage}
    put_json(aws, cfg.bucket, n["record_key"], record)
    return record


def record(aws: Aws, cfg: Params, version_tag: str) -> dict | None:
    """A version's record."""
    return get_json(aws, cfg.bucket, cfg.key("models", version_tag, "record.json"))


def create_model_and_config(aws: Aws, cfg: Params, version: int, image: str, role_arn: str,
                            template_config: dict | None = None) -> dict:
    """Create the SageMaker model and an endpoint config for a registered version.

    The endpoint config copies the template (the live config: its DataCaptureConfig and instance settings)
    with the new model; without a template a single-instance variant with Data Capture to ``capture_uri``.
    """
    n = names(cfg, version)
    sm = aws.client("sagemaker")
    sm.create_model(ModelName=n["model"], ExecutionRoleArn=role_arn,
                    PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://{cfg.bucket}/{n['artifact_key']}"})
    if template_config:
        variants = [{k: v for k, v in pv.items() if k in ("VariantName", "InitialInstanceCount", "InstanceType",
                                                         "InitialVariantWeight", "ServerlessConfig")}
                    | {"ModelName": n["model"]} for pv in template_config["ProductionVariants"]]
        capture = template_config.get("DataCaptureConfig")
    else:
        variants = [{"VariantName": cfg.variant_name, "ModelName": n["model"], "InitialInstanceCount": 1,
                     "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}]
        capture = None
    capture = capture or {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": cfg.capture_uri,
                          "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                          "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                                       "JsonContentTypes": ["application/json"]}}
    sm.create_endpoint_config(EndpointConfigName=n["config"], ProductionVariants=variants, DataCaptureConfig=capture)
    return n


def live_container(aws: Aws, cfg: Params) -> tuple[str, str, dict]:
    """Image, execution role and endpoint config of what the endpoint serves now (reused by the next version)."""
    sm = aws.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=cfg.endpoint_name)[
        "EndpointConfigName"])
    variant = next(v for v in config["ProductionVariants"] if v["VariantName"] == cfg.variant_name)
    model = sm.describe_model(ModelName=variant["ModelName"])
    return model["PrimaryContainer"]["Image"], model["ExecutionRoleArn"], config


def deploy(aws: Aws, cfg: Params, config_name: str, deployment_config: dict, wait_s: int = 3600) -> dict:
    """UpdateEndpoint to ``config_name`` with blue/green traffic shifting and auto-rollback; wait for InService.

    Returns
    -------
    dict
        ``deployed`` (the endpoint serves the new config), ``status``, ``rolled_back`` and ``failure_reason``.
    """
    sm = aws.client("sagemaker")
    sm.update_endpoint(EndpointName=cfg.endpoint_name, EndpointConfigName=config_name,
                       DeploymentConfig=deployment_config)
    waiter = sm.get_waiter("endpoint_in_service")
    delay = 1 if aws.mode == "local" else 30
    error = None
    try:
        waiter.wait(EndpointName=cfg.endpoint_name, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, wait_s // delay)})
    except Exception as exc:  # noqa: BLE001 - reported, not raised: a failed deploy leaves the champion serving
        error = str(exc)
    return deploy_state(aws, cfg, config_name, error)


def deploy_state(aws: Aws, cfg: Params, config_name: str, error: str | None = None) -> dict:
    """Where a deployment of ``config_name`` stands, from DescribeEndpoint: ``deployed`` (the endpoint serves it,
    InService), ``status``, ``serving_config``, ``rolled_back`` and ``failure_reason`` (else ``error``)."""
    desc = aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)
    serving = desc["EndpointConfigName"]
    return {"deployed": serving == config_name and desc["EndpointStatus"] == "InService",
            "status": desc["EndpointStatus"], "serving_config": serving,
            "rolled_back": serving != config_name and "rolled back" in (desc.get("FailureReason") or ""),
            "failure_reason": desc.get("FailureReason") or error}


def rollback_alarm_names(cfg: Params) -> list[str]:
    """The endpoint-health alarms a deployment rolls back on (created by the alerting stage)."""
    return [f"{cfg.endpoint_name}-error-rate", f"{cfg.endpoint_name}-latency-p99"]


def deployment_config(cfg: Params) -> dict:
    """UpdateEndpoint's DeploymentConfig: blue/green traffic shifting per params, auto-rollback on the endpoint's alarms."""
    r = cfg.retraining
    routing: dict = {"Type": r["traffic_shifting"].upper(), "WaitIntervalInSeconds": r["shift_wait_seconds"]}
    size = {"Type": "CAPACITY_PERCENT", "Value": r["shift_percent"]}
    if r["traffic_shifting"] == "canary":
        routing["CanarySize"] = size
    elif r["traffic_shifting"] == "linear":
        routing["LinearStepSize"] = size
    return {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing,
                                  "TerminationWaitInSeconds": r["shift_wait_seconds"],
                                  "MaximumExecutionTimeoutInSeconds": 3600 + 10 * r["shift_wait_seconds"]},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in rollback_alarm_names(cfg)]},
    }


def validate_update_endpoint(request: dict) -> None:
    """Check an UpdateEndpoint request against botocore's own model of the API (raises on any shape error)."""
    model = service_model("sagemaker")
    report = ParamValidator().validate(request, model.operation_model("UpdateEndpoint").input_shape)
    if report.has_errors():
        raise ValueError(f"UpdateEndpoint request is invalid: {report.generate_report()}")
