"""Local mode only: the AWS operations the suite calls that moto lacks, added to moto's server, and writes into its stores."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request

log = logging.getLogger(__name__)

_INSTALLED = False
_SERVED_HERE: set[str] = set()  # URLs of the emulators this process's own threads serve


def serving_here(url: str, serving: bool = True) -> None:
    """Record that this process's moto server answers at ``url`` (or, ``serving=False``, no longer does)."""
    (_SERVED_HERE.add if serving else _SERVED_HERE.discard)(url)


def put_objects_here(url: str | None, account_id: str, objects, content_type: str, kms_key_id: str = "") -> bool:
    """Write (bucket, key, body) objects straight into the S3 store of the emulator this process serves at ``url``,
    as a service writes its own output (Data Capture, a labelling job), without an HTTP round trip per object.

    Returns False, having written nothing, when ``url`` is not served by this process or a bucket is missing
    there; the caller then PUTs through the API. Listing and reading them back goes through the API as usual.
    """
    if url not in _SERVED_HERE:
        return False
    from moto.s3.models import s3_backends

    backend = s3_backends[account_id]["aws"]
    if any(bucket not in backend.buckets for bucket in {o[0] for o in objects}):
        return False
    sse = {"encryption": "aws:kms", "kms_key_id": kms_key_id} if kms_key_id else {}
    for bucket, key, body in objects:
        backend.put_object(bucket, key, body, **sse).set_metadata({"content-type": content_type})
    return True


def put_metric_data_here(url: str | None, account_id: str, region: str, namespace: str, datums: list[dict]) -> bool:
    """Write PutMetricData datums straight into the CloudWatch store of the emulator this process serves at ``url``
    (as a service emits its own metrics), stored exactly as moto stores them from the API (timestamps naive UTC).

    Returns False, having written nothing, when ``url`` is not served by this process; the caller then calls
    PutMetricData. Reading them back goes through the API as usual.
    """
    if url not in _SERVED_HERE:
        return False
    import datetime as dt

    from moto.cloudwatch.models import cloudwatch_backends

    def as_api_stores(datum: dict) -> dict:
        ts = datum.get("Timestamp")
        if isinstance(ts, dt.datetime) and ts.tzinfo is not None:
            ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return {**datum, "Timestamp": ts}

    cloudwatch_backends[account_id][region].put_metric_data(namespace, [as_api_stores(d) for d in datums])
    return True


def publish_aws_namespace(aws, namespace: str, datums: list[dict]) -> PublishStats:
    """Local mode only: write the metrics an AWS service would emit (e.g. AWS/SageMaker) into the emulator: straight
    into its store when this process serves it, else by PutMetricData. ``calls`` counts the PutMetricData batches
    (written directly or not)."""
    from ..publish import MetricDataError, PublishStats, batches, validate_datum

    if aws.mode != "local":
        raise MetricDataError("only AWS services publish to AWS/ namespaces; this is for the local simulation")
    stats = PublishStats()
    for d in datums:
        validate_datum(d)
    for batch in batches(datums):
        if not put_metric_data_here(aws.endpoint_url, aws.account_id, aws.region, namespace, batch):
            aws.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=batch)
        stats.calls += 1
        stats.datums += len(batch)
    return stats


def enable_step_functions_execution(url: str) -> None:
    """Make the emulator execute state machines for real (must happen before any is created)."""
    req = urllib.request.Request(
        f"{url}/moto-api/config", data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def install() -> None:
    """Add UpdateEndpoint to moto's SageMaker (and LastDeploymentConfig, FailureReason in DescribeEndpoint), and Model
    Monitor's monitoring schedules (:func:`_install_monitoring_schedules`). Idempotent.

    Follows the API's documented behaviour: the endpoint and config must exist and the endpoint be InService;
    rollback alarms must exist; when one of them is in ALARM during the blue/green shift the deployment rolls
    back (the endpoint keeps serving the old config and FailureReason says why); otherwise the new config
    serves at once (no real baking time locally).
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.core.responses import ActionResult
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError

    def backend_update_endpoint(self, endpoint_name: str, endpoint_config_name: str,
                                deployment_config: dict | None) -> models.FakeEndpoint:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = models.FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
        try:
            config = self.describe_endpoint_config(endpoint_config_name)
        except (KeyError, ValidationError):
            arn = models.FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.") from None
        alarms = ((deployment_config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        firing = []
        if alarms:
            from moto.cloudwatch.models import cloudwatch_backends

            known = cloudwatch_backends[self.account_id][self.region_name].alarms
            missing = [a["AlarmName"] for a in alarms if a["AlarmName"] not in known]
            if missing:
                raise ValidationError(message=f"Rollback alarm(s) {missing} do not exist in CloudWatch.")
            firing = [a["AlarmName"] for a in alarms if known[a["AlarmName"]].state_value == "ALARM"]
        endpoint.last_deployment_config = deployment_config
        endpoint.last_modified_time = models.utcnow()
        if firing:  # a rollback alarm is in ALARM while the new fleet bakes: traffic returns to the old fleet
            endpoint.failure_reason = f"Deployment rolled back: alarm(s) {firing} in ALARM during the traffic shift."
            return endpoint
        endpoint.failure_reason = None
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        endpoint.data_capture_config = config.get("DataCaptureConfig")
        endpoint.endpoint_status = "InService"  # the blue/green shift completes at once locally
        return endpoint

    def response_update_endpoint(self) -> ActionResult:
        endpoint = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            deployment_config=self._get_param("DeploymentConfig"),
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    original = models.FakeEndpoint.response_object.fget

    def response_object(self) -> dict:
        out = original(self)
        if getattr(self, "last_deployment_config", None):
            out["LastDeploymentConfig"] = self.last_deployment_config
        if getattr(self, "failure_reason", None):
            out["FailureReason"] = self.failure_reason
        return out

    _install_sdk_body_reading()
    _share_service_models()
    models.SageMakerModelBackend.update_endpoint = backend_update_endpoint
    responses.SageMakerResponse.update_endpoint = response_update_endpoint
    models.FakeEndpoint.response_object = property(response_object)
    _install_monitoring_schedules()
    from .cloudwatch import install as install_cloudwatch

    install_cloudwatch()
    _atomic_conditional_writes()
    _INSTALLED = True


MONITORING_TYPES = ("DataQuality", "ModelQuality", "ModelBias", "ModelExplainability")


def _install_monitoring_schedules() -> None:
    """Model Monitor's schedules, which moto lacks (it has the job definitions): CreateMonitoringSchedule,
    DescribeMonitoringSchedule, ListMonitoringSchedules, StopMonitoringSchedule, StartMonitoringSchedule and
    DeleteMonitoringSchedule, answering in the API's output shapes.

    As the API documents: a schedule names either an inline ``MonitoringJobDefinition`` (older schedules; a
    DataQuality monitor) or a ``MonitoringJobDefinitionName`` of its ``MonitoringType`` that must exist; names are
    unique; the schedule's ``EndpointName`` is its job's endpoint input. A new schedule is ``Scheduled`` at once
    and never runs locally (no monitoring executions). ListMonitoringSchedules filters by endpoint, name, status,
    type and job definition, sorts and pages; its time filters are not implemented.
    """
    from moto.core.responses import ActionResult, EmptyResult
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError

    def schedules(backend) -> dict:
        return backend.__dict__.setdefault("monitoring_schedules", {})

    def find(backend, name: str) -> dict:
        found = schedules(backend).get(name)
        if found is None:
            arn = models.arn_formatter("monitoring-schedule", name.lower(), backend.account_id, backend.region_name)
            raise ResourceNotFound(message=f"Monitoring Schedule '{arn}' does not exist.")
        return found

    def endpoint_of(backend, config: dict) -> str | None:
        inline = config.get("MonitoringJobDefinition")
        if inline is not None:
            inputs = inline.get("MonitoringInputs") or [{}]
            return (inputs[0].get("EndpointInput") or {}).get("EndpointName")
        kind = config.get("MonitoringType") or "DataQuality"
        name = config["MonitoringJobDefinitionName"]
        store = {"DataQuality": backend.data_quality_job_definitions,
                 "ModelQuality": backend.model_quality_job_definitions,
                 "ModelBias": backend.model_bias_job_definitions,
                 "ModelExplainability": backend.model_explainability_job_definitions}[kind]
        if name not in store:
            raise ResourceNotFound(message=f"Could not find {kind} job definition '{name}'.")
        job = store[name]
        job_input = next((v for k, v in vars(job).items() if k.endswith("job_input") and v), {}) or {}
        return (job_input.get("EndpointInput") or {}).get("EndpointName")

    def create_monitoring_schedule(self, name: str, config: dict, tags: list | None) -> str:
        if name in schedules(self):
            raise ResourceInUseException(message=f"Monitoring Schedule '{name}' already exists.")
        inline, named = "MonitoringJobDefinition" in config, bool(config.get("MonitoringJobDefinitionName"))
        if inline == named:
            raise ValidationError(message="MonitoringScheduleConfig must have exactly one of MonitoringJobDefinition "
                                          "and MonitoringJobDefinitionName.")
        kind = config.get("MonitoringType") or "DataQuality"
        if kind not in MONITORING_TYPES:
            raise ValidationError(message=f"Value '{kind}' at 'monitoringScheduleConfig.monitoringType' failed to "
                                          f"satisfy constraint: Member must satisfy enum value set: {list(MONITORING_TYPES)}")
        now = models.utcnow()
        schedule = {"MonitoringScheduleArn": models.arn_formatter("monitoring-schedule", name.lower(), self.account_id,
                                                                  self.region_name),
                    "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Scheduled", "MonitoringType": kind,
                    "CreationTime": now, "LastModifiedTime": now, "MonitoringScheduleConfig": config,
                    "EndpointName": endpoint_of(self, config), "Tags": list(tags or [])}
        schedules(self)[name] = {k: v for k, v in schedule.items() if v is not None}
        return schedule["MonitoringScheduleArn"]

    def describe_monitoring_schedule(self, name: str) -> dict:
        return {k: v for k, v in find(self, name).items() if k != "Tags"}

    def set_status(self, name: str, status: str) -> None:
        schedule = find(self, name)
        schedule["MonitoringScheduleStatus"], schedule["LastModifiedTime"] = status, models.utcnow()

    def delete_monitoring_schedule(self, name: str) -> None:
        find(self, name)
        del schedules(self)[name]

    def list_monitoring_schedules(self, endpoint_name=None, name_contains=None, status=None, kind=None,
                                  job_definition=None, sort_by=None, sort_order=None) -> list[dict]:
        out = []
        for s in schedules(self).values():
            config = s["MonitoringScheduleConfig"]
            if ((endpoint_name and s.get("EndpointName") != endpoint_name)
                    or (name_contains and name_contains not in s["MonitoringScheduleName"])
                    or (status and s["MonitoringScheduleStatus"] != status) or (kind and s["MonitoringType"] != kind)
                    or (job_definition and config.get("MonitoringJobDefinitionName") != job_definition)):
                continue
            summary = {k: s[k] for k in ("MonitoringScheduleName", "MonitoringScheduleArn", "CreationTime",
                                         "LastModifiedTime", "MonitoringScheduleStatus", "EndpointName",
                                         "MonitoringType") if k in s}
            if config.get("MonitoringJobDefinitionName"):
                summary["MonitoringJobDefinitionName"] = config["MonitoringJobDefinitionName"]
            out.append(summary)
        key = {"Name": "MonitoringScheduleName", "Status": "MonitoringScheduleStatus"}.get(sort_by or "", "CreationTime")
        return sorted(out, key=lambda s: s[key], reverse=sort_order != "Ascending")

    def response_create(self) -> ActionResult:
        return ActionResult({"MonitoringScheduleArn": self.sagemaker_backend.create_monitoring_schedule(
            self._get_param("MonitoringScheduleName"), self._get_param("MonitoringScheduleConfig"),
            self._get_param("Tags"))})

    def response_describe(self) -> ActionResult:
        return ActionResult(self.sagemaker_backend.describe_monitoring_schedule(self._get_param("MonitoringScheduleName")))

    def response_list(self) -> ActionResult:
        found = self.sagemaker_backend.list_monitoring_schedules(
            self._get_param("EndpointName"), self._get_param("NameContains"), self._get_param("StatusEquals"),
            self._get_param("MonitoringTypeEquals"), self._get_param("MonitoringJobDefinitionName"),
            self._get_param("SortBy"), self._get_param("SortOrder"))
        start = int(self._get_param("NextToken") or 0)
        size = int(self._get_param("MaxResults") or 100)
        page = {"MonitoringScheduleSummaries": found[start:start + size]}
        if start + size < len(found):
            page["NextToken"] = str(start + size)
        return ActionResult(page)

    def response_status(status: str):
        def respond(self) -> EmptyResult:
            self.sagemaker_backend.set_monitoring_schedule_status(self._get_param("MonitoringScheduleName"), status)
            return EmptyResult()
        return respond

    def response_delete(self) -> EmptyResult:
        self.sagemaker_backend.delete_monitoring_schedule(self._get_param("MonitoringScheduleName"))
        return EmptyResult()

    backend = models.SageMakerModelBackend
    backend.create_monitoring_schedule = create_monitoring_schedule
    backend.describe_monitoring_schedule = describe_monitoring_schedule
    backend.set_monitoring_schedule_status = set_status
    backend.delete_monitoring_schedule = delete_monitoring_schedule
    backend.list_monitoring_schedules = list_monitoring_schedules
    r = responses.SageMakerResponse
    r.create_monitoring_schedule = response_create
    r.describe_monitoring_schedule = response_describe
    r.list_monitoring_schedules = response_list
    r.stop_monitoring_schedule = response_status("Stopped")
    r.start_monitoring_schedule = response_status("Scheduled")
    r.delete_monitoring_schedule = response_delete


def _share_service_models() -> None:
    """Speed, not behaviour: moto's Step Functions makes a boto3 client per SDK task from boto3's default session,
    and moto lists each service's regions from a session of its own; give both this process's shared service
    models, so neither parses a service's model again."""
    from functools import lru_cache

    import boto3
    from moto.core.base_backend import AccountSpecificBackend

    from ..aws import new_session

    if boto3.DEFAULT_SESSION is None:
        boto3.DEFAULT_SESSION = new_session()
    AccountSpecificBackend.get_session = classmethod(lru_cache(lambda cls: new_session()))


def preload(account_id: str, services: tuple[str, ...] | None = None) -> None:
    """Speed, not behaviour: do now what moto's server does on a service's first request (import its backend and
    the Step Functions interpreter, parse its service model, list its regions), so no stage waits for it. The
    runner calls this in a background thread while it builds the world."""
    from moto.backends import get_backend
    from moto.core.utils import get_service_model
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    from ..aws import SERVICES

    for service in services or SERVICES:
        get_service_model(service)
        get_backend(service)[account_id]  # noqa: B018 - creates the account's backend table (its regions)
    stepfunctions_parser_backends[account_id]  # noqa: B018


def preload_in_background(account_id: str) -> threading.Thread:
    """:func:`preload` in a daemon thread (a failure is logged: moto then does the same on the first request)."""

    def work() -> None:
        try:
            preload(account_id)
        except Exception as exc:  # noqa: BLE001 - speed only
            log.warning("preloading the emulator's services failed (%s); they load on first use", exc)

    thread = threading.Thread(target=work, name="emulator-preload", daemon=True)
    thread.start()
    return thread


def _install_sdk_body_reading() -> None:
    """Step Functions' AWS SDK integrations return a streamed body (e.g. ``s3:getObject``'s ``Body``) as a string;
    moto's executor hands the stream object on, which no later state can read. Read it as AWS does."""
    from botocore.response import StreamingBody
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk

    cls = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    original = cls._eval_service_task

    def eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        response = env.stack[-1] if env.stack else None
        if isinstance(response, dict):
            for key, value in list(response.items()):
                if isinstance(value, StreamingBody):
                    response[key] = value.read().decode("utf-8")

    cls._eval_service_task = eval_service_task


def _atomic_conditional_writes() -> None:
    """S3 decides a conditional write (``If-None-Match: *``, ``If-Match: <etag>``) atomically: of two writers that
    read the same ETag, one wins and the other gets 412 PreconditionFailed. moto checks the condition, then
    writes; its threaded server could let two requests both pass the check. Conditional PutObject and DeleteObject
    requests now check and write under one lock (unconditional ones are unaffected)."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()

    def guarded(original):
        def method(self, *args, **kwargs):
            if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
                with lock:
                    return original(self, *args, **kwargs)
            return original(self, *args, **kwargs)

        method.__name__ = original.__name__
        return method

    S3Response.put_object = guarded(S3Response.put_object)
    S3Response.delete_object = guarded(S3Response.delete_object)
