"""CloudWatch alarm vocabulary: states, missing-data treatments, operators, statistics, PutMetricAlarm fields and limits, SageMaker metrics."""

from __future__ import annotations

ALARM = "ALARM"
OK = "OK"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

BREACHING = "breaching"
NOT_BREACHING = "notBreaching"
IGNORE = "ignore"
MISSING = "missing"
TREAT_MISSING_DATA = (BREACHING, NOT_BREACHING, IGNORE, MISSING)

STATIC_OPERATORS = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
ANOMALY_BAND_OPERATORS = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
COMPARISON_OPERATORS = STATIC_OPERATORS + ANOMALY_BAND_OPERATORS

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")

# PutMetricAlarm fields this package understands, in the order of the API reference.
ACCEPTED_FIELDS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "Tags",
    "ThresholdMetricId",
)
# With Metrics, PutMetricAlarm forbids these top-level fields (API reference, `Metrics`).
SINGLE_METRIC_ONLY_FIELDS = (
    "Namespace",
    "MetricName",
    "Dimensions",
    "Period",
    "Unit",
    "Statistic",
    "ExtendedStatistic",
)

# "SageMaker AI endpoint invocation metrics" table of the SageMaker developer guide (AWS/SageMaker namespace).
SAGEMAKER_ENDPOINT_METRICS = frozenset(
    {
        "ConcurrentRequestsPerCopy",
        "ConcurrentRequestsPerModel",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "InvocationModelErrors",
        "Invocations",
        "InvocationsPerCopy",
        "InvocationsPerInstance",
        "ModelLatency",
        "ModelSetupTime",
        "OverheadLatency",
    }
)
# Everything else the guide documents under AWS/SageMaker for endpoints: multi-model loading metrics and
# asynchronous-inference metrics. Validation accepts these plus SAGEMAKER_ENDPOINT_METRICS.
SAGEMAKER_METRICS = SAGEMAKER_ENDPOINT_METRICS | frozenset(
    {
        "ModelLoadingWaitTime",
        "ModelUnloadingTime",
        "ModelDownloadingTime",
        "ModelLoadingTime",
        "ModelCacheHit",
        "ApproximateBacklogSize",
        "ApproximateBacklogSizePerInstance",
        "ApproximateAgeOfOldestRequest",
        "HasBacklogWithoutCapacity",
        "RequestDownloadFailures",
        "ResponseUploadFailures",
        "NotificationFailures",
        "RequestDownloadLatency",
        "ResponseUploadLatency",
        "ExpiredRequests",
        "InvocationFailures",
        "InvocationsProcessed",
        "TimeInBacklog",
        "TotalProcessingTime",
    }
)
SAGEMAKER_NAMESPACE = "AWS/SageMaker"

MAX_METRICS_IN_MATH_ALARM = 10
ONE_DAY_S = 86_400
SEVEN_DAYS_S = 604_800
ONE_HOUR_S = 3_600
EVALUATION_RANGE_RULE = (
    "PutMetricAlarm: \"An alarm's total current evaluation period can be no longer than seven days, so Period "
    "multiplied by EvaluationPeriods can't be more than 604,800 seconds. For alarms with a period of less than "
    "one hour (3,600 seconds), the total evaluation period can't be longer than one day (86,400 seconds).\""
)


SUITE_ALARMS = ("rmse", "r2", "estimated-rmse", "data-drift", "heartbeat", "error-rate", "latency-p99")
"""The suite's alarms by the key ``alarm_overrides`` names them with (each alarm is ``<endpoint_name>-<key>``)."""
OPTIONAL_ALARMS = ("data-quality",)
"""Alarms the suite puts only when the params turn them on (``alarms.data_quality``)."""
OVERRIDABLE_FIELDS = ("Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "TreatMissingData",
                      "ActionsEnabled")
"""PutMetricAlarm fields ``alarm_overrides`` may change."""
