"""From SageMaker Model Monitor to the suite: read monitoring schedules and print the params block that carries them over."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from . import config
from .model_monitor.reference import schedule_baseline_uris

PUBLISH_ENV = "publish_cloudwatch_metrics"  # the analyzer's switch in the job's Environment: Enabled / Disabled
SUPPORTED_TYPES = ("DataQuality", "ModelQuality")
_EXPRESSION = config.SCHEMA["suite_schedule"].params["expression"].pattern


class MigrationError(ValueError):
    """A schedule cannot be carried over as it is (its type, its input, or schedules that disagree)."""


@dataclass
class ScheduleFacts:
    """What one monitoring schedule says, read from DescribeMonitoringSchedule and its job definition."""

    name: str
    monitoring_type: str
    status: str
    expression: str
    endpoint_name: str
    job_definition_name: str = ""  # empty for an inline MonitoringJobDefinition
    statistics_uri: str = ""
    constraints_uri: str = ""
    baseline_note: str = ""  # why a data-quality schedule has no baseline to reuse
    publish_metrics: bool = True
    publish_setting: str = ""  # the Environment's publish_cloudwatch_metrics as written ('' when absent)
    ground_truth_uri: str = ""
    problem_type: str = ""
    report_uri: str = ""  # where the monitor wrote its reports (MonitoringOutputs' S3Uri)

    @property
    def source(self) -> str:
        """Where the job settings come from, for the printed notes."""
        if not self.job_definition_name:
            return f"schedule {self.name}'s inline MonitoringJobDefinition"
        kind = "data-quality" if self.monitoring_type == "DataQuality" else "model-quality"
        return f"{kind} job definition {self.job_definition_name}"


@dataclass
class Migration:
    """The params block (nested like a params file), where each value came from, and the schedules it replaces."""

    params: dict[str, Any]
    sources: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schedules: list[ScheduleFacts] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- reading
def read_schedule(sagemaker: Any, name: str) -> ScheduleFacts:
    """Read one monitoring schedule: DescribeMonitoringSchedule, then its job definition (DescribeDataQuality- or
    DescribeModelQualityJobDefinition), or the inline ``MonitoringJobDefinition`` of older schedules.

    Parameters
    ----------
    sagemaker : botocore client
        A SageMaker client.
    name : str
        ``MonitoringScheduleName``.

    Raises
    ------
    MigrationError
        The schedule is a bias or explainability monitor, or monitors a batch transform instead of an endpoint.
    """
    schedule = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
    cfg = schedule.get("MonitoringScheduleConfig", {})
    kind = cfg.get("MonitoringType") or schedule.get("MonitoringType") or "DataQuality"
    if kind not in SUPPORTED_TYPES:
        hint = (" (the suite's FeatureAttributionDrift replaces a Clarify explainability monitor: "
                "see README 'Coming from SageMaker Model Monitor')" if kind == "ModelExplainability" else "")
        raise MigrationError(f"monitoring schedule {name!r} is a {kind} monitor; migrate carries over DataQuality "
                             f"and ModelQuality schedules{hint}")
    expression = (cfg.get("ScheduleConfig") or {}).get("ScheduleExpression", "")
    facts = ScheduleFacts(name=name, monitoring_type=kind, status=schedule.get("MonitoringScheduleStatus", ""),
                          expression=expression, endpoint_name=schedule.get("EndpointName", ""))
    if "MonitoringJobDefinition" in cfg:
        job = cfg["MonitoringJobDefinition"]
        job_input = (job.get("MonitoringInputs") or [{}])[0]
        environment = job.get("Environment") or {}
    elif cfg.get("MonitoringJobDefinitionName"):
        facts.job_definition_name = cfg["MonitoringJobDefinitionName"]
        if kind == "DataQuality":
            job = sagemaker.describe_data_quality_job_definition(JobDefinitionName=facts.job_definition_name)
            job_input = job.get("DataQualityJobInput") or {}
            environment = (job.get("DataQualityAppSpecification") or {}).get("Environment") or {}
        else:
            job = sagemaker.describe_model_quality_job_definition(JobDefinitionName=facts.job_definition_name)
            job_input = job.get("ModelQualityJobInput") or {}
            environment = (job.get("ModelQualityAppSpecification") or {}).get("Environment") or {}
            facts.constraints_uri = ((job.get("ModelQualityBaselineConfig") or {}).get("ConstraintsResource")
                                     or {}).get("S3Uri", "")
            facts.ground_truth_uri = (job_input.get("GroundTruthS3Input") or {}).get("S3Uri", "")
            facts.problem_type = (job.get("ModelQualityAppSpecification") or {}).get("ProblemType", "")
    else:
        raise MigrationError(f"monitoring schedule {name!r} has neither MonitoringJobDefinition nor "
                             "MonitoringJobDefinitionName")
    outputs = (job.get("MonitoringOutputConfig") or job.get("DataQualityJobOutputConfig")
               or job.get("ModelQualityJobOutputConfig") or {}).get("MonitoringOutputs") or [{}]
    facts.report_uri = (outputs[0].get("S3Output") or {}).get("S3Uri", "")
    if "EndpointInput" not in job_input:
        raise MigrationError(f"monitoring schedule {name!r} monitors a batch transform's capture "
                             "(BatchTransformInput); the suite monitors an endpoint's Data Capture")
    facts.endpoint_name = job_input["EndpointInput"].get("EndpointName") or facts.endpoint_name
    facts.publish_setting = str(environment.get(PUBLISH_ENV, ""))
    facts.publish_metrics = facts.publish_setting.lower() != "disabled"
    if kind == "DataQuality":
        try:
            facts.statistics_uri, facts.constraints_uri = schedule_baseline_uris(sagemaker, name)
        except ValueError as exc:  # a schedule without a baseline only computes statistics
            facts.baseline_note = str(exc)
    return facts


def read_capture(sagemaker: Any, endpoint_name: str) -> tuple[str, list[str], str]:
    """The endpoint's Data Capture destination, its variant names and its endpoint config's name.

    DescribeEndpoint gives the config serving now; DescribeEndpointConfig its ``DataCaptureConfig`` (the capture
    prefix is ``DestinationS3Uri``; '' when capture is off).
    """
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    variants = [v["VariantName"] for v in endpoint.get("ProductionVariants") or []]
    config_name = endpoint["EndpointConfigName"]
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=config_name).get("DataCaptureConfig") or {}
    destination = capture.get("DestinationS3Uri", "") if capture.get("EnableCapture", True) else ""
    return destination, variants, config_name


# ---------------------------------------------------------------------------------------------- the block
def plan(sagemaker: Any, schedule_names: Iterable[str]) -> Migration:
    """The params block reusing the schedules' endpoint, capture, baseline, constraints, ground truth, metric
    publishing and cadence (at most one DataQuality and one ModelQuality schedule, of the same endpoint).

    Parameters
    ----------
    sagemaker : botocore client
        A SageMaker client (read-only calls: DescribeMonitoringSchedule, DescribeDataQualityJobDefinition,
        DescribeModelQualityJobDefinition, DescribeEndpoint, DescribeEndpointConfig).
    schedule_names : Iterable[str]
        ``MonitoringScheduleName`` of each schedule to carry over.

    Returns
    -------
    Migration
    """
    names = list(dict.fromkeys(schedule_names))
    if not names:
        raise MigrationError("name a monitoring schedule: --schedule NAME (aws sagemaker list-monitoring-schedules "
                             "lists them)")
    facts = [read_schedule(sagemaker, n) for n in names]
    by_type: dict[str, ScheduleFacts] = {}
    for f in facts:
        if f.monitoring_type in by_type:
            raise MigrationError(f"schedules {by_type[f.monitoring_type].name!r} and {f.name!r} are both "
                                 f"{f.monitoring_type} monitors; migrate one endpoint's schedules at a time")
        by_type[f.monitoring_type] = f
    endpoints = {f.endpoint_name for f in facts}
    if len(endpoints) != 1:
        raise MigrationError(f"the schedules monitor different endpoints ({', '.join(sorted(endpoints))}); "
                             "migrate one endpoint's schedules at a time")
    endpoint = endpoints.pop()
    dq, mq = by_type.get("DataQuality"), by_type.get("ModelQuality")
    params: dict[str, Any] = {"endpoint_name": endpoint}
    out = Migration(params, schedules=facts)
    out.sources.append(("endpoint_name", "the schedules' EndpointInput.EndpointName"))
    capture, variants, config_name = read_capture(sagemaker, endpoint)
    if len(variants) == 1:
        params["variant_name"] = variants[0]
        out.sources.append(("variant_name", f"DescribeEndpoint {endpoint}: its one production variant"))
    elif variants:
        out.notes.append(f"endpoint {endpoint} has variants {', '.join(variants)}: set variant_name to the one to "
                         "monitor")
    if capture:
        params["capture_prefix"] = capture
        out.sources.append(("capture_prefix", f"DescribeEndpointConfig {config_name}: "
                                              "DataCaptureConfig.DestinationS3Uri"))
    else:
        out.notes.append(f"endpoint config {config_name} captures no data (no DataCaptureConfig, or EnableCapture "
                         "false): turn Data Capture on; the suite reads what it captures")
    if mq and mq.ground_truth_uri:
        params["ground_truth_prefix"] = mq.ground_truth_uri
        out.sources.append(("ground_truth_prefix", f"{mq.source}: ModelQualityJobInput.GroundTruthS3Input.S3Uri"))
    mm: dict[str, Any] = {}
    if dq and dq.statistics_uri:
        mm["schedule_name"] = dq.name
        out.sources.append(("model_monitor.schedule_name", f"schedule {dq.name}: the MonitoringSchedule dimension "
                                                           "of the metrics it published"))
        mm["statistics_uri"], mm["constraints_uri"] = dq.statistics_uri, dq.constraints_uri
        out.sources.append(("model_monitor.statistics_uri, constraints_uri",
                            f"{dq.source}: its baseline (written out, so the suite needs no schedule once it is "
                            "deleted)"))
    elif dq:  # schedule_name alone would send the suite to a schedule without a baseline
        out.notes.append(f"{dq.baseline_note}; without a Model Monitor baseline the suite's own (setup's) is the "
                         "reference, and model_monitor.schedule_name stays empty")
    if mq:
        if mq.problem_type and mq.problem_type != "Regression":
            out.notes.append(f"schedule {mq.name} monitors a {mq.problem_type} model; the suite's model-quality "
                             "constraints are regression_constraints: its constraints are not carried over")
        elif mq.constraints_uri:
            mm["model_quality_constraints_uri"] = mq.constraints_uri
            out.sources.append(("model_monitor.model_quality_constraints_uri",
                                f"{mq.source}: ModelQualityBaselineConfig.ConstraintsResource"))
        else:
            out.notes.append(f"{mq.source} has no baseline constraints: setup writes model-quality constraints "
                             "from the test split")
    if any(f.publish_metrics for f in facts):
        mm["publish_metrics"] = True
        said = "; ".join(f"{f.name}: {PUBLISH_ENV}={f.publish_setting}" if f.publish_setting
                         else f"{f.name}: {PUBLISH_ENV} not set (the analyzer's default is Enabled)" for f in facts)
        out.sources.append(("model_monitor.publish_metrics", f"the job's Environment ({said}): alarms and "
                                                             "dashboards on Model Monitor's metrics keep their data"))
        out.notes.append("while the old schedule still runs, it and the suite both publish Model Monitor's metrics: "
                         "stop it once the suite's first run has published (steps below)")
        if not mm.get("schedule_name"):
            out.notes.append("model_monitor.schedule_name stays empty (it names a DataQuality schedule with a "
                             "baseline): the published metrics' MonitoringSchedule dimension then matches no old "
                             "alarm; migrate the endpoint's data-quality schedule with this one")
        if dq and mq and mq.publish_metrics:
            out.notes.append(f"the suite publishes model-metrics with MonitoringSchedule={dq.name} "
                             f"(model_monitor.schedule_name); alarms and dashboards on {mq.name}'s rmse, r2, ... "
                             f"use MonitoringSchedule={mq.name}: change that dimension in them")
    if mm:
        params["model_monitor"] = mm
    reports = [f"{f.name} to {f.report_uri}" for f in facts if f.report_uri]
    if reports:
        out.notes.append(f"Model Monitor wrote its reports ({'; '.join(reports)}); the suite writes statistics.json "
                         "and constraint_violations.json per window under s3://BUCKET/PREFIX/monitoring/<endpoint>/"
                         "<schedule>/<yyyy>/<mm>/<dd>/<hh>/: point whatever reads them there")
    cadence = (dq or mq).expression  # type: ignore[union-attr]
    if re.match(_EXPRESSION, cadence or ""):
        params["suite_schedule"] = {"expression": cadence}
        out.sources.append(("suite_schedule.expression", f"schedule {(dq or mq).name}'s "  # type: ignore[union-attr]
                                                         "ScheduleConfig.ScheduleExpression (EventBridge syntax)"))
        hours = cadence[len("cron("):-1].split()[1:2] if cadence.startswith("cron(") else []
        if hours and (hours[0] == "*" or "/" in hours[0]):
            out.notes.append(f"{cadence} runs hourly, as Model Monitor's hourly jobs do (each analyses the hour "
                             "before); what one suite window holds is `window` (daily unless set): set window: "
                             "hourly to compare hour by hour")
        if dq and mq and dq.expression != mq.expression:
            out.notes.append(f"schedule {mq.name} runs {mq.expression}, {dq.name} {dq.expression}: the suite runs "
                             "every stage at the one expression printed")
    else:
        out.notes.append(f"schedule {(dq or mq).name}'s expression {cadence!r} is not a recurring "  # type: ignore[union-attr]
                         "cron(...): set suite_schedule.expression yourself")
    return out


def unknown_keys(block: dict[str, Any]) -> list[str]:
    """Dotted keys of ``block`` that this version's params schema does not know (printed all the same)."""
    out = []
    for key, value in block.items():
        spec = config.SCHEMA.get(key)
        if spec is None:
            out.append(key)
        elif isinstance(spec, config.Section) and isinstance(value, dict):
            out += [f"{key}.{sub}" for sub in value if sub not in spec.params]
    return out


def known_part(block: dict[str, Any]) -> dict[str, Any]:
    """``block`` without the keys of :func:`unknown_keys`."""
    unknown = set(unknown_keys(block))
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key in unknown:
            continue
        if isinstance(value, dict) and isinstance(config.SCHEMA[key], config.Section):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in unknown}
        out[key] = value
    return out


def check(cfg: config.Params, block: dict[str, Any]) -> config.Params:
    """Validate ``cfg`` with ``block`` merged over it (its keys the schema knows).

    Raises
    ------
    config.ParamsError
        A value of the block does not pass the suite's checks.
    """
    return config.validate(config.merge(cfg.to_dict(), known_part(block)), source="the migrated params")


# ---------------------------------------------------------------------------------------------- printing
def delete_commands(facts: ScheduleFacts, region: str) -> list[str]:
    """The calls that stop and delete a schedule (and then its job definition), CLI and boto3."""
    n = facts.name
    lines = [f"aws sagemaker stop-monitoring-schedule --monitoring-schedule-name {n} --region {region}",
             f"aws sagemaker delete-monitoring-schedule --monitoring-schedule-name {n} --region {region}",
             f'boto3.client("sagemaker", region_name="{region}").delete_monitoring_schedule('
             f'MonitoringScheduleName="{n}")']
    if facts.job_definition_name:
        kind = "data-quality" if facts.monitoring_type == "DataQuality" else "model-quality"
        lines.append(f"then, unused: aws sagemaker delete-{kind}-job-definition --job-definition-name "
                     f"{facts.job_definition_name} --region {region}")
    return lines


def render(migration: Migration, region: str, unknown: Iterable[str] = ()) -> str:
    """The params block as YAML, with where each value came from and the steps that retire the old schedules as
    comments (so the output saved to a file is a params file).

    Parameters
    ----------
    migration : Migration
    region : str
        The schedules' region (in the delete commands).
    unknown : Iterable[str]
        Dotted keys this version does not validate yet, named in a comment.
    """
    names = ", ".join(f"{f.name} ({f.monitoring_type}, {f.status or 'status unknown'})" for f in migration.schedules)
    lines = [f"# Params carrying over SageMaker Model Monitor schedule(s) {names}.",
             "# Save as e.g. params/migrated.yaml and run with it after your params: -f PARAMS -f params/migrated.yaml",
             "# Where each value comes from:"]
    lines += [f"#   {key}: {source}" for key, source in migration.sources]
    unknown = list(unknown)
    if unknown:
        lines.append(f"# Not known to this version's params yet (it will reject them): {', '.join(unknown)}")
    lines += [f"# NOTE: {note}" for note in migration.notes]
    lines.append(yaml.safe_dump(migration.params, sort_keys=False, default_flow_style=False).rstrip("\n"))
    lines += ["#",
              "# Retiring the old schedule(s), once the suite has run:",
              "#   1. run the suite with these params (python -m monitor_utils run, or schedule) and check its first",
              "#      run: index.html's verdict, the drift report's Model Monitor baseline_drift_check and",
              "#      constraint_violations.json under monitoring/, the metrics in CloudWatch;",
              "#   2. stop the old schedule(s) (a stopped schedule can be started again) and watch the suite's next",
              "#      runs;",
              "#   3. then delete them (keep the baseline's statistics.json and constraints.json: the suite reads them).",
              "#      Printed here, never run by migrate:"]
    for facts in migration.schedules:
        lines.append(f"#   {facts.name} ({facts.monitoring_type}):")
        lines += [f"#      {line}" for line in delete_commands(facts, region)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- its IAM policy
def policy(cfg: config.Params, account: str = "*") -> tuple[dict, list[str]]:
    """The read-only policy ``migrate`` needs: the Describe calls on the region's monitoring schedules and their
    job definitions (their names are what migrate finds out), and on ``endpoint_name`` and its configs.

    Returns
    -------
    tuple[dict, list[str]]
        The policy document and notes for the person attaching it.
    """
    if account != "*" and not (account.isdigit() and len(account) == 12):
        raise config.ParamsError(f"account id {account!r} must be 12 digits")
    from .aws import partition

    arn = f"arn:{partition(cfg.region)}:sagemaker:{cfg.region}:{account}"
    document = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadModelMonitorSchedules", "Effect": "Allow",
         "Action": ["sagemaker:DescribeMonitoringSchedule", "sagemaker:DescribeDataQualityJobDefinition",
                    "sagemaker:DescribeModelQualityJobDefinition"],
         "Resource": [f"{arn}:monitoring-schedule/*", f"{arn}:data-quality-job-definition/*",
                      f"{arn}:model-quality-job-definition/*"]},
        {"Sid": "ReadMonitoredEndpoint", "Effect": "Allow",
         "Action": ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
         "Resource": [f"{arn}:endpoint/{cfg.endpoint_name.lower()}", f"{arn}:endpoint-config/*"]},
    ]}
    notes = ["migrate only reads; deleting the old schedule afterwards needs sagemaker:StopMonitoringSchedule and "
             "sagemaker:DeleteMonitoringSchedule, granted to whoever retires it",
             f"DescribeEndpoint is scoped to endpoint_name {cfg.endpoint_name}: a schedule of another endpoint needs "
             "endpoint_name set to it"]
    return document, notes
