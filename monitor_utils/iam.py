"""Least-privilege IAM policy from one table of the AWS operations the suite calls, and a recorder of those calls."""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

from . import alerting, capture, workflow
from .aws import Aws, partition, split_s3_uri  # noqa: F401 - partition is part of this module's API
from .config import Params, ParamsError


class Row(NamedTuple):
    """One IAM permission an AWS operation needs.

    ``resource`` and ``context`` values are templates: ``{Param}`` is the call's parameter (dotted for
    nested ones, a list yields one ARN per item), ``{partition}``, ``{region}`` and ``{account}`` the
    caller's; ``|lower`` lower-cases the value (SageMaker ARNs hold lower-case names). The policy fills
    the same templates with the configured names (see :func:`_scopes`).
    """

    operation: str  # botocore service name and operation, e.g. "s3:GetObject"
    action: str  # the IAM action it needs
    resource: str  # ARN template, "*" when the action has no resource-level permissions
    sid: str  # the statement that grants it
    context: dict | None = None  # condition keys of the request, as templates


_S3_BUCKET = "arn:{partition}:s3:::{Bucket}"
_S3_OBJECT = "arn:{partition}:s3:::{Bucket}/{Key}"
_ALARM = "arn:{partition}:cloudwatch:{region}:{account}:alarm:{%s}"
_SM = "arn:{partition}:sagemaker:{region}:{account}:%s/{%s|lower}"
_TOPIC = "arn:{partition}:sns:{region}:{account}:{Name}"
_QUEUE = "arn:{partition}:sqs:{region}:{account}:{QueueName}"
_SCHEDULE = "arn:{partition}:scheduler:{region}:{account}:schedule/default/{Name}"
_STREAM = "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}:log-stream:{logStreamName}"
_PREFIX = {"s3:prefix": "{Prefix}"}

TABLE: tuple[Row, ...] = (
    # S3: the suite's prefix (read/write); capture, labels, training data and live artifacts (read)
    Row("s3:HeadBucket", "s3:ListBucket", _S3_BUCKET, "S3ListSuiteBucketUnderItsPrefixes"),
    Row("s3:ListObjectsV2", "s3:ListBucket", _S3_BUCKET, "S3ListSuiteBucketUnderItsPrefixes", _PREFIX),
    Row("s3:ListObjectsV2", "s3:ListBucket", _S3_BUCKET, "S3ListCaptureAndLabelPrefixes", _PREFIX),
    # setup creates a missing bucket only with create_bucket (local mode: the simulated world makes it), secured at once
    Row("s3:CreateBucket", "s3:CreateBucket", _S3_BUCKET, "S3CreateSuiteBucketWhenMissing"),
    Row("s3:PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", _S3_BUCKET, "S3CreateSuiteBucketWhenMissing"),
    Row("s3:PutBucketEncryption", "s3:PutEncryptionConfiguration", _S3_BUCKET, "S3CreateSuiteBucketWhenMissing"),
    Row("s3:PutBucketPolicy", "s3:PutBucketPolicy", _S3_BUCKET, "S3CreateSuiteBucketWhenMissing"),
    Row("s3:PutBucketVersioning", "s3:PutBucketVersioning", _S3_BUCKET, "S3CreateSuiteBucketWhenMissing"),
    Row("s3:GetObject", "s3:GetObject", _S3_OBJECT, "S3ReadWriteSuitePrefix"),
    Row("s3:PutObject", "s3:PutObject", _S3_OBJECT, "S3ReadWriteSuitePrefix"),
    Row("s3:GetObject", "s3:GetObject", _S3_OBJECT, "S3ReadCaptureLabelsDataAndLiveModel"),
    # HeadObject needs s3:GetObject (local mode asks a data set's ETag before reading it again)
    Row("s3:HeadObject", "s3:GetObject", _S3_OBJECT, "S3ReadWriteSuitePrefix"),
    Row("s3:HeadObject", "s3:GetObject", _S3_OBJECT, "S3ReadCaptureLabelsDataAndLiveModel"),
    Row("s3:DeleteObject", "s3:DeleteObject", _S3_OBJECT, "S3DeleteDeliveredOutboxItems"),
    Row("s3:DeleteObject", "s3:DeleteObject", _S3_OBJECT, "S3ReleaseRunLease"),
    # CloudWatch metrics: no resource-level permissions; writes limited to the suite's namespace
    Row("cloudwatch:PutMetricData", "cloudwatch:PutMetricData", "*", "CloudWatchPutMetricDataInSuiteNamespace",
        {"cloudwatch:namespace": "{Namespace}"}),
    Row("cloudwatch:GetMetricData", "cloudwatch:GetMetricData", "*", "CloudWatchReadMetricsHasNoResourceLevel"),
    Row("cloudwatch:GetMetricStatistics", "cloudwatch:GetMetricStatistics", "*",
        "CloudWatchReadMetricsHasNoResourceLevel"),
    # CloudWatch alarms and dashboard
    Row("cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarms", _ALARM % "AlarmNames", "CloudWatchReadSuiteAlarms"),
    Row("cloudwatch:PutMetricAlarm", "cloudwatch:PutMetricAlarm", _ALARM % "AlarmName",
        "CloudWatchPutAlarmsNotifyingAlertTopic",
        {"cloudwatch:AlarmActions": "{AlarmActions}"}),
    Row("cloudwatch:PutCompositeAlarm", "cloudwatch:PutCompositeAlarm", _ALARM % "AlarmName",
        "CloudWatchPutAlarmsNotifyingAlertTopic", {"cloudwatch:AlarmActions": "{AlarmActions}"}),
    Row("cloudwatch:PutAnomalyDetector", "cloudwatch:PutAnomalyDetector", "*",
        "CloudWatchPutAnomalyDetectorHasNoResourceLevel"),
    Row("cloudwatch:SetAlarmState", "cloudwatch:SetAlarmState", _ALARM % "AlarmName", "CloudWatchSetSuiteAlarmStates"),
    Row("cloudwatch:GetDashboard", "cloudwatch:GetDashboard",
        "arn:{partition}:cloudwatch::{account}:dashboard/{DashboardName}", "CloudWatchSuiteDashboard"),
    Row("cloudwatch:PutDashboard", "cloudwatch:PutDashboard",
        "arn:{partition}:cloudwatch::{account}:dashboard/{DashboardName}", "CloudWatchSuiteDashboard"),
    # CloudWatch Logs
    Row("logs:CreateLogGroup", "logs:CreateLogGroup",
        "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}", "LogsSuiteLogGroup"),
    Row("logs:PutRetentionPolicy", "logs:PutRetentionPolicy",
        "arn:{partition}:logs:{region}:{account}:log-group:{logGroupName}", "LogsSuiteLogGroup"),
    Row("logs:CreateLogStream", "logs:CreateLogStream", _STREAM, "LogsWriteEmfMetricsToSuiteLogGroup"),
    Row("logs:PutLogEvents", "logs:PutLogEvents", _STREAM, "LogsWriteEmfMetricsToSuiteLogGroup"),
    # SNS
    Row("sns:CreateTopic", "sns:CreateTopic", _TOPIC, "SnsAlertTopic"),
    Row("sns:GetTopicAttributes", "sns:GetTopicAttributes", "{TopicArn}", "SnsAlertTopic"),
    Row("sns:SetTopicAttributes", "sns:SetTopicAttributes", "{TopicArn}", "SnsAlertTopic"),
    Row("sns:Publish", "sns:Publish", "{TopicArn}", "SnsAlertTopic"),
    Row("sns:ListSubscriptionsByTopic", "sns:ListSubscriptionsByTopic", "{TopicArn}", "SnsAlertTopic"),
    Row("sns:Subscribe", "sns:Subscribe", "{TopicArn}", "SnsSubscribeOnlyKnownEndpoints",
        {"sns:Protocol": "{Protocol}", "sns:Endpoint": "{Endpoint}"}),
    Row("sns:Unsubscribe", "sns:Unsubscribe", "*", "SnsUnsubscribeHasNoResourceLevel"),
    # SQS: the test-fire's temporary subscriber queue
    Row("sqs:CreateQueue", "sqs:CreateQueue", _QUEUE, "SqsTestFireQueue"),
    Row("sqs:GetQueueAttributes", "sqs:GetQueueAttributes", _QUEUE, "SqsTestFireQueue"),
    Row("sqs:SetQueueAttributes", "sqs:SetQueueAttributes", _QUEUE, "SqsTestFireQueue"),
    Row("sqs:ReceiveMessage", "sqs:ReceiveMessage", _QUEUE, "SqsTestFireQueue"),
    Row("sqs:DeleteQueue", "sqs:DeleteQueue", _QUEUE, "SqsTestFireQueue"),
    # SageMaker: read what the endpoint serves; create versions and deploy them blue/green
    Row("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpoint", _SM % ("endpoint", "EndpointName"),
        "SageMakerReadLiveEndpoint"),
    Row("sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpointConfig",
        _SM % ("endpoint-config", "EndpointConfigName"), "SageMakerReadLiveEndpoint"),
    Row("sagemaker:DescribeModel", "sagemaker:DescribeModel", _SM % ("model", "ModelName"),
        "SageMakerReadLiveEndpoint"),
    Row("sagemaker:CreateModel", "sagemaker:CreateModel", _SM % ("model", "ModelName"), "SageMakerCreateSuiteVersions"),
    Row("sagemaker:CreateModel", "iam:PassRole", "{ExecutionRoleArn}", "PassSageMakerExecutionRole",
        {"iam:PassedToService": "sagemaker.amazonaws.com"}),
    Row("sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpointConfig",
        _SM % ("endpoint-config", "EndpointConfigName"), "SageMakerCreateSuiteVersions"),
    Row("sagemaker:UpdateEndpoint", "sagemaker:UpdateEndpoint", _SM % ("endpoint", "EndpointName"),
        "SageMakerDeploySuiteVersionsToEndpoint"),
    Row("sagemaker:UpdateEndpoint", "sagemaker:UpdateEndpoint", _SM % ("endpoint-config", "EndpointConfigName"),
        "SageMakerDeploySuiteVersionsToEndpoint"),
    # SageMaker Model Monitor: the baseline of a data-quality schedule (model_monitor.schedule_name)
    Row("sagemaker:DescribeMonitoringSchedule", "sagemaker:DescribeMonitoringSchedule",
        _SM % ("monitoring-schedule", "MonitoringScheduleName"), "SageMakerReadModelMonitorSchedule"),
    Row("sagemaker:DescribeDataQualityJobDefinition", "sagemaker:DescribeDataQualityJobDefinition",
        _SM % ("data-quality-job-definition", "JobDefinitionName"), "SageMakerReadModelMonitorSchedule"),
    # Step Functions: the retraining state machine
    Row("stepfunctions:ListStateMachines", "states:ListStateMachines", "*",
        "StatesListStateMachinesHasNoResourceLevel"),
    Row("stepfunctions:DescribeStateMachine", "states:DescribeStateMachine", "{stateMachineArn}",
        "StatesRetrainingStateMachine"),
    Row("stepfunctions:UpdateStateMachine", "states:UpdateStateMachine", "{stateMachineArn}",
        "StatesRetrainingStateMachine"),
    Row("stepfunctions:CreateStateMachine", "states:CreateStateMachine",
        "arn:{partition}:states:{region}:{account}:stateMachine:{name}", "StatesRetrainingStateMachine"),
    Row("stepfunctions:CreateStateMachine", "iam:PassRole", "{roleArn}", "PassStateMachineRole",
        {"iam:PassedToService": "states.amazonaws.com"}),
    Row("stepfunctions:UpdateStateMachine", "iam:PassRole", "{roleArn}", "PassStateMachineRole",
        {"iam:PassedToService": "states.amazonaws.com"}),
    # the local workflow runner (local mode): starts an execution and serves its job steps from a queue
    Row("stepfunctions:StartExecution", "states:StartExecution", "{stateMachineArn}", "StatesRunWorkflowLocally"),
    Row("stepfunctions:DescribeExecution", "states:DescribeExecution", "{executionArn}", "StatesRunWorkflowLocally"),
    Row("stepfunctions:GetExecutionHistory", "states:GetExecutionHistory", "{executionArn}",
        "StatesRunWorkflowLocally"),
    Row("stepfunctions:StopExecution", "states:StopExecution", "{executionArn}", "StatesRunWorkflowLocally"),
    Row("stepfunctions:SendTaskSuccess", "states:SendTaskSuccess", "*", "StatesTaskTokensHaveNoResourceLevel"),
    Row("stepfunctions:SendTaskFailure", "states:SendTaskFailure", "*", "StatesTaskTokensHaveNoResourceLevel"),
    Row("sqs:CreateQueue", "sqs:CreateQueue", _QUEUE, "SqsWorkflowStepQueue"),
    Row("sqs:ReceiveMessage", "sqs:ReceiveMessage", _QUEUE, "SqsWorkflowStepQueue"),
    Row("sqs:DeleteMessage", "sqs:DeleteMessage", _QUEUE, "SqsWorkflowStepQueue"),
    Row("sqs:SendMessage", "sqs:SendMessage", _QUEUE, "SqsWorkflowStepQueue"),
    # EventBridge Scheduler (aws mode only)
    Row("scheduler:GetSchedule", "scheduler:GetSchedule", _SCHEDULE, "SchedulerRetrainingSchedule"),
    Row("scheduler:CreateSchedule", "scheduler:CreateSchedule", _SCHEDULE, "SchedulerRetrainingSchedule"),
    Row("scheduler:UpdateSchedule", "scheduler:UpdateSchedule", _SCHEDULE, "SchedulerRetrainingSchedule"),
    Row("scheduler:CreateSchedule", "iam:PassRole", "{Target.RoleArn}", "PassSchedulerRole",
        {"iam:PassedToService": "scheduler.amazonaws.com"}),
    Row("scheduler:UpdateSchedule", "iam:PassRole", "{Target.RoleArn}", "PassSchedulerRole",
        {"iam:PassedToService": "scheduler.amazonaws.com"}),
    # KMS: a kms_key_id given as an alias is resolved to the key's ARN (CloudWatch Logs takes only ARNs)
    Row("kms:DescribeKey", "kms:DescribeKey", "arn:{partition}:kms:{region}:{account}:key/*",
        "KmsResolveConfiguredKeyAlias", {"kms:RequestAlias": "{KeyId}"}),
    # STS
    Row("sts:GetCallerIdentity", "sts:GetCallerIdentity", "*", "StsGetCallerIdentityNeedsNoPermission"),
    Row("sts:AssumeRole", "sts:AssumeRole", "{RoleArn}", "ForTheCallerNotThisRoleAssumeMonitoringRole"),
)


@dataclass(frozen=True)
class Scope:
    """What one statement is narrowed to: template values (one dict per resource), a condition, when it applies."""

    fills: tuple[dict, ...]
    condition: dict | None = None
    when: str = "always"


# --- values from params -------------------------------------------------------------------------

_IAM_SPECIAL = re.compile(r"[*?$]")  # IAM wildcards and policy variables: a param must never widen a policy


_LITERAL_PARAMS = ("bucket", "prefix", "endpoint_name", "variant_name", "namespace", "capture_prefix",
                   "ground_truth_prefix", "data_path", "sns_topic_name", "alert_emails", "log_group", "dashboard_name",
                   "role_arn", "retraining.state_machine_role_arn", "retraining.scheduler_role_arn", "kms_key_id",
                   "model_monitor.statistics_uri", "model_monitor.constraints_uri", "model_monitor.schedule_name",
                   "model_monitor.model_quality_constraints_uri")


def check_literal(values: dict[str, Any]) -> None:
    """Reject IAM wildcards and policy variables in values that go into the policy (a parameter must never widen it).

    Raises
    ------
    ParamsError
        Naming the parameter.
    """
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and _IAM_SPECIAL.search(item):
                raise ParamsError(f"parameter '{name}' is {item!r}: '*', '?' and '$' would widen the IAM policy; "
                                  "use literal names")


def _features(cfg: Params) -> set[str]:
    """Which parts of the suite run with these params (mirrors the stages' own conditions)."""
    local = cfg.aws_mode == "local"
    r = cfg.retraining
    test_fire = cfg.test_fire == "always" or (cfg.test_fire == "local" and local)
    on = {"always", "local"} if local else {"always", "aws"}
    on |= {"emf"} if cfg.metrics_transport == "emf" else {"api"}
    on |= {"deploy"} if not r["dry_run"] else set()
    on |= {"test_fire", "set_alarm_state", "subscribe"} if test_fire else set()
    on |= {"set_alarm_state"} if local else set()
    on |= {"subscribe"} if cfg.alert_emails else set()
    state_machine = bool(r["state_machine_role_arn"]) or local
    on |= {"state_machine"} if state_machine else set()
    on |= {"schedule"} if not local and state_machine and r["schedule"] and r["scheduler_role_arn"] else set()
    on |= {"assume_role"} if not local and cfg.role_arn else set()
    on |= {"lease"} if not local and cfg.run_lease else set()
    on |= {"model_monitor_schedule"} if cfg.model_monitor["schedule_name"] and not cfg.model_monitor["statistics_uri"] \
        else set()
    on |= {"create_bucket"} if cfg.create_bucket else set()  # local mode's bucket is made by the simulated world
    on |= {"kms_alias"} if kms_alias(cfg.kms_key_id) else set()
    return on


def _namespaces(cfg: Params) -> str | list[str]:
    """The namespaces the suite writes metrics to: its own, and Model Monitor's two with
    ``model_monitor.publish_metrics``."""
    if not cfg.model_monitor["publish_metrics"]:
        return cfg.namespace
    from .model_monitor.metrics import DATA_METRICS_NAMESPACE, MODEL_METRICS_NAMESPACE

    return [cfg.namespace, DATA_METRICS_NAMESPACE, MODEL_METRICS_NAMESPACE]


def kms_alias(key_id: str) -> str:
    """The alias name (``alias/...``) of a ``kms_key_id`` given as an alias or alias ARN, else ''."""
    return key_id[key_id.index("alias/"):] if key_id.startswith("alias/") or ":alias/" in key_id else ""


def _s3_locations(cfg: Params, model_data_urls: tuple[str, ...]) -> tuple[list, list]:
    """(bucket, key pattern) the suite reads and writes, and those it only reads (outside the former)."""
    rw = [(cfg.bucket, cfg.prefix.strip("/") + "/*")]
    prefixes = [capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name), cfg.ground_truth_uri]
    read = [(b, k.rstrip("/") + "/*" if k.strip("/") else "*") for b, k in map(split_s3_uri, prefixes)]
    objects = [cfg.data_path] * cfg.data_path.startswith("s3://") + list(model_data_urls)
    objects += [u for u in (cfg.model_monitor["statistics_uri"], cfg.model_monitor["constraints_uri"],
                            cfg.model_monitor["model_quality_constraints_uri"]) if u]
    read += [split_s3_uri(u) for u in objects]
    covered = lambda b, k: any(b == rb and fnmatch.fnmatchcase(k, rk) for rb, rk in rw)  # noqa: E731
    return rw, sorted({(b, k) for b, k in read if not covered(b, k)})


def _scopes(cfg: Params, account: str, sagemaker_role_arn: str, model_data_urls: tuple[str, ...]) -> dict[str, Scope]:
    """Per statement (Sid), the configured names its resources and condition are narrowed to, and when it applies."""
    p, region, ep, r = partition(cfg.region), cfg.region, cfg.endpoint_name, cfg.retraining
    features = _features(cfg)
    rw, read = _s3_locations(cfg, model_data_urls)
    listed = [(b, k) for b, k in rw + read if k.endswith("*")]  # prefixes, not single objects
    topic = f"arn:{p}:sns:{region}:{account}:{cfg.sns_topic_name}"
    alarms = [s["AlarmName"] for s in alerting.alarm_specs(cfg, topic)]
    if "aws" in features:  # only real CloudWatch evaluates these two
        alarms += [alerting.composite_spec(cfg, topic)["AlarmName"], alerting.anomaly_spec(cfg, topic)["AlarmName"]]
    queue = f"{ep}-heartbeat-testfire"[:80]  # alerting.test_fire's queue for the heartbeat alarm
    sqs_subscriber = [f"arn:{p}:sqs:{region}:{account}:{queue}"] if "test_fire" in features else []
    sm_name = workflow.state_machine_name(cfg)
    # without a configured role, local mode uses the retraining stage's placeholder role
    sm_role = r["state_machine_role_arn"] or f"arn:{p}:iam::{account}:role/msd-monitoring-states"
    versions = {"ModelName": f"{ep}-v*", "EndpointConfigName": f"{ep}-config-v*"}  # registry.names
    return {
        # HeadBucket carries no prefix, and S3 answers a missing key with 404 (not 403) only to ListBucket
        # holders: IfExists keeps both working while a listing with a prefix stays under the suite's prefixes.
        "S3ListSuiteBucketUnderItsPrefixes": Scope(
            ({"Bucket": cfg.bucket},),
            {"StringLikeIfExists": {"s3:prefix": sorted({k for b, k in listed if b == cfg.bucket})}}),
        # capture and labels kept in other buckets (one statement for all of them)
        "S3ListCaptureAndLabelPrefixes": Scope(
            tuple({"Bucket": b} for b in sorted({b for b, _ in listed if b != cfg.bucket})),
            {"StringLike": {"s3:prefix": sorted({k for b, k in listed if b != cfg.bucket})}}),
        "S3CreateSuiteBucketWhenMissing": Scope(({"Bucket": cfg.bucket},), when="create_bucket"),
        "S3ReadWriteSuitePrefix": Scope(tuple({"Bucket": b, "Key": k} for b, k in rw)),
        "S3ReadCaptureLabelsDataAndLiveModel": Scope(tuple({"Bucket": b, "Key": k} for b, k in read)),
        "S3DeleteDeliveredOutboxItems": Scope(({"Bucket": cfg.bucket, "Key": cfg.key("outbox", "*")},)),
        # the run's lease (state/lease.json) is deleted when the run ends (aws mode, run_lease)
        "S3ReleaseRunLease": Scope(({"Bucket": cfg.bucket, "Key": cfg.key("state", "lease.json")},), when="lease"),
        "CloudWatchPutMetricDataInSuiteNamespace": Scope(
            ({},), {"StringEquals": {"cloudwatch:namespace": _namespaces(cfg)}}, when="api"),
        "CloudWatchReadMetricsHasNoResourceLevel": Scope(({},)),
        "CloudWatchReadSuiteAlarms": Scope(({"AlarmNames": alarms},)),
        "CloudWatchPutAlarmsNotifyingAlertTopic": Scope(
            ({"AlarmName": alarms},), {"ForAllValues:StringLike": {"cloudwatch:AlarmActions": [topic]}}),
        "CloudWatchPutAnomalyDetectorHasNoResourceLevel": Scope(({},), when="aws"),
        # local mode drives every alarm's state itself; aws mode only test-fires the heartbeat
        "CloudWatchSetSuiteAlarmStates": Scope(
            ({"AlarmName": alarms if "local" in features else f"{ep}-heartbeat"},), when="set_alarm_state"),
        "CloudWatchSuiteDashboard": Scope(({"DashboardName": cfg.dashboard_name},)),
        # the log group's ARN, and the form ending in ':*' that CloudWatch Logs also evaluates
        "LogsSuiteLogGroup": Scope(tuple({"logGroupName": cfg.log_group + end} for end in ("", ":*"))),
        "LogsWriteEmfMetricsToSuiteLogGroup": Scope(
            ({"logGroupName": cfg.log_group, "logStreamName": "*"},), when="emf"),
        "SnsAlertTopic": Scope(({"Name": cfg.sns_topic_name, "TopicArn": topic},)),
        "SnsSubscribeOnlyKnownEndpoints": Scope(
            ({"TopicArn": topic},),
            {"StringEquals": {"sns:Protocol": ["email"] * bool(cfg.alert_emails) + ["sqs"] * bool(sqs_subscriber)},
             "StringLike": {"sns:Endpoint": list(cfg.alert_emails) + sqs_subscriber}}, when="subscribe"),
        "SnsUnsubscribeHasNoResourceLevel": Scope(({},), when="test_fire"),
        "SqsTestFireQueue": Scope(({"QueueName": queue},), when="test_fire"),
        # the live endpoint's config and model can have any name (the suite's own are <endpoint>-config-vNNNN)
        "SageMakerReadLiveEndpoint": Scope(({"EndpointName": ep, "EndpointConfigName": "*", "ModelName": "*"},)),
        "SageMakerCreateSuiteVersions": Scope((versions,), when="deploy"),
        "PassSageMakerExecutionRole": Scope(
            ({"ExecutionRoleArn": sagemaker_role_arn or f"arn:{p}:iam::{account}:role/*"},),
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}, when="deploy"),
        "SageMakerDeploySuiteVersionsToEndpoint": Scope(({**versions, "EndpointName": ep},), when="deploy"),
        # the schedule's job definition can have any name; its baseline files are read by S3ReadCapture... only
        # when model_monitor.statistics_uri/constraints_uri name them
        "SageMakerReadModelMonitorSchedule": Scope(
            ({"MonitoringScheduleName": cfg.model_monitor["schedule_name"] or "-", "JobDefinitionName": "*"},),
            when="model_monitor_schedule"),
        "StatesListStateMachinesHasNoResourceLevel": Scope(({},), when="state_machine"),
        "StatesRetrainingStateMachine": Scope(
            ({"name": sm_name, "stateMachineArn": f"arn:{p}:states:{region}:{account}:stateMachine:{sm_name}"},),
            when="state_machine"),
        "PassStateMachineRole": Scope(
            ({"roleArn": sm_role},), {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}},
            when="state_machine"),
        "StatesRunWorkflowLocally": Scope(
            ({"stateMachineArn": f"arn:{p}:states:{region}:{account}:stateMachine:{sm_name}",
              "executionArn": f"arn:{p}:states:{region}:{account}:execution:{sm_name}:*"},), when="local"),
        "StatesTaskTokensHaveNoResourceLevel": Scope(({},), when="local"),
        "SqsWorkflowStepQueue": Scope(({"QueueName": workflow.worker_queue_name(cfg)},), when="local"),
        "SchedulerRetrainingSchedule": Scope(({"Name": f"{sm_name}-schedule"},), when="schedule"),
        "PassSchedulerRole": Scope(
            ({"Target.RoleArn": r["scheduler_role_arn"]},),
            {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}, when="schedule"),
        "KmsResolveConfiguredKeyAlias": Scope(
            ({},), {"StringEquals": {"kms:RequestAlias": kms_alias(cfg.kms_key_id)}}, when="kms_alias"),
        # GetCallerIdentity needs no permission; listed because the suite calls it (account id for ARNs)
        "StsGetCallerIdentityNeedsNoPermission": Scope(({},)),
        # belongs in the policy of the identity that starts the suite and assumes role_arn, not in the role's own
        "ForTheCallerNotThisRoleAssumeMonitoringRole": Scope(({"RoleArn": cfg.role_arn},), when="assume_role"),
    }


# --- templates ----------------------------------------------------------------------------------

_FIELD = re.compile(r"\{([A-Za-z0-9_.]+)(\|lower)?\}")


def _lookup(values: dict, dotted: str) -> Any:
    if dotted in values:
        return values[dotted]
    value: Any = values
    for part in dotted.split("."):
        value = value[part]
    return value


def _render(template: str, values: dict, lower: bool = True) -> list[str]:
    """Fill ``template`` from ``values``; a list value yields one string per item (KeyError when one is missing)."""
    fields = _FIELD.findall(template)
    options = []
    for name, _ in fields:
        v = _lookup(values, name)
        options.append([str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)])
    out = []
    for combo in itertools.product(*options):
        it = iter(combo)
        out.append(_FIELD.sub(lambda m: (lambda v: v.lower() if lower and m.group(2) else v)(next(it)), template))
    return out


# --- the policy ---------------------------------------------------------------------------------

def policy(cfg: Params, account: str = "*", sagemaker_role_arn: str = "",
           model_data_urls: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """The IAM policy document the suite needs with ``cfg``, and notes for the person attaching it.

    Parameters
    ----------
    cfg : Params
        Validated parameters; names, region and roles are taken as literal values (IAM wildcards in them are
        rejected so a parameter can never widen the policy).
    account : str
        Account id in resource ARNs; ``"*"`` (IAM allows a wildcard in the account field) when unknown.
    sagemaker_role_arn : str
        Execution role of the live model, passed to SageMaker when a retrained version is created; empty
        allows passing any role of the account, but only to SageMaker.
    model_data_urls : tuple of str
        S3 URIs of live model artifacts outside the suite's prefix (read for the baseline and the comparison).

    Returns
    -------
    tuple[dict, list[str]]
        The policy document (no wildcard actions; ``"*"`` resources only where the action has no
        resource-level permissions) and notes.

    Raises
    ------
    ParamsError
        A parameter holds an IAM wildcard or policy variable.
    """
    if account != "*" and not re.fullmatch(r"\d{12}", account):
        raise ParamsError(f"account id {account!r} must be 12 digits")
    literal = {name: _lookup(cfg, name) for name in _LITERAL_PARAMS}
    literal["data_path"] = cfg.data_path if cfg.data_path.startswith("s3://") else ""  # a local path stays local
    check_literal({**literal, "--sagemaker-role-arn": sagemaker_role_arn, "--model-data-url": list(model_data_urls)})
    features, scopes = _features(cfg), _scopes(cfg, account, sagemaker_role_arn, model_data_urls)
    base = {"partition": partition(cfg.region), "region": cfg.region, "account": account}
    statements = []
    for sid, scope in scopes.items():
        rows = [row for row in TABLE if row.sid == sid]
        if scope.when not in features or not scope.fills or not rows:
            continue
        resources = sorted({arn for row in rows for fill in scope.fills for lower in (True, False)
                            for arn in _render(row.resource, {**base, **fill}, lower)})
        statement = {"Sid": sid, "Effect": "Allow", "Action": sorted({row.action for row in rows}),
                     "Resource": "*" if resources == ["*"] else resources}
        if scope.condition:
            statement["Condition"] = scope.condition
        statements.append(statement)
    notes = []
    if "deploy" in features and not sagemaker_role_arn:
        notes.append("iam:PassRole allows any role of the account to be passed to SageMaker; "
                     "narrow it with --sagemaker-role-arn (the live model's ExecutionRoleArn)")
    if "assume_role" in features:
        notes.append("statement ForTheCallerNotThisRoleAssumeMonitoringRole belongs in the policy of the identity "
                     f"that runs the suite, which assumes {cfg.role_arn}; attach the rest to that role")
    if cfg.kms_key_id:
        notes.append(f"kms_key_id {cfg.kms_key_id}: its key policy must let this role use it (kms:GenerateDataKey, "
                     f"kms:Decrypt), CloudWatch Logs (logs.{cfg.region}.amazonaws.com) encrypt the log group, and "
                     "CloudWatch (cloudwatch.amazonaws.com) publish to the encrypted topic")
    if account == "*":
        notes.append("resource ARNs match any account ('*'); pass --account-id or --resolve-account to pin it")
    if "model_monitor_schedule" in _features(cfg):
        notes.append("model_monitor.schedule_name: the policy cannot name the schedule's baseline files; grant "
                     "s3:GetObject on them, or set model_monitor.statistics_uri and constraints_uri instead")
    return {"Version": "2012-10-17", "Statement": statements}, notes


# --- recording and checking calls ---------------------------------------------------------------

class Call(NamedTuple):
    """One AWS API call: botocore service name, operation name and its parameters (bodies left out)."""

    service: str
    operation: str
    params: dict


class Need(NamedTuple):
    """One permission a call needs: IAM action, resource ARN and the request's condition keys."""

    action: str
    resource: str
    context: dict


@contextlib.contextmanager
def record_calls(aws: Aws) -> Iterator[list[Call]]:
    """Record every API call made through ``aws``'s clients (existing and new) while the block runs.

    Registers botocore ``before-parameter-build`` (to keep the call's parameters) and ``before-call``
    handlers on each client; ``Aws.client`` is wrapped on this instance only and restored afterwards.

    Yields
    ------
    list[Call]
        Filled as calls are made (in order; thread-safe appends).
    """
    calls: list[Call] = []
    hooked: list = []

    def keep(params, context, **_):
        context["monitor_utils_iam_params"] = {k: v for k, v in params.items() if k != "Body"}

    def record(model, context, **_):
        calls.append(Call(model.service_model.service_name, model.name, context.get("monitor_utils_iam_params", {})))

    def hook(client):
        if not any(c is client for c in hooked):
            client.meta.events.register("before-parameter-build", keep, unique_id="monitor_utils.iam.keep")
            client.meta.events.register("before-call", record, unique_id="monitor_utils.iam.record")
            hooked.append(client)
        return client

    had_own = "client" in vars(aws)
    original = aws.client
    for client in list(aws._clients.values()):
        hook(client)
    aws.client = lambda service: hook(original(service))
    try:
        yield calls
    finally:
        if had_own:
            aws.client = original
        else:
            del aws.client
        for client in hooked:
            client.meta.events.unregister("before-parameter-build", unique_id="monitor_utils.iam.keep")
            client.meta.events.unregister("before-call", unique_id="monitor_utils.iam.record")


def needs(call: Call, region: str, account: str) -> list[Need]:
    """The permissions ``call`` needs, from :data:`TABLE` (resource ARNs from the call's own parameters).

    Raises
    ------
    KeyError
        The operation is not in the table (the suite calls something the policy does not cover).
    """
    op = f"{call.service}:{call.operation}"
    rows = {(r.action, r.resource, tuple(sorted((r.context or {}).items()))) for r in TABLE if r.operation == op}
    if not rows:
        raise KeyError(f"{op} is not in monitor_utils.iam.TABLE: add its IAM action and resource")
    values = {**call.params, "partition": partition(region), "region": region, "account": account}
    if "QueueUrl" in values:
        values.setdefault("QueueName", values["QueueUrl"].rstrip("/").rsplit("/", 1)[-1])
    out = []
    for action, resource, context in sorted(rows):
        ctx = {}
        for key, template in context:
            try:
                whole = _FIELD.fullmatch(template)
                ctx[key] = _lookup(values, whole.group(1)) if whole else _render(template, values)[0]
            except (KeyError, TypeError):
                pass  # the request does not carry this key
        out += [Need(action, arn, ctx) for arn in _render(resource, values)]
    return out
