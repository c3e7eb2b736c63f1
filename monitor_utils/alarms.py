"""CloudWatch alarm specs for the endpoint: validation, a local evaluator, metric math and a backtest."""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

__all__ = [
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "ACCEPTED_FIELDS",
    "STATIC_OPERATORS",
    "ANOMALY_BAND_OPERATORS",
    "COMPARISON_OPERATORS",
    "STATISTICS",
    "TREAT_MISSING_DATA",
    "SAGEMAKER_ENDPOINT_METRICS",
    "SAGEMAKER_METRICS",
    "MAX_METRICS_IN_MATH_ALARM",
    "AlarmSpecError",
    "ExpressionError",
    "BacktestResult",
    "validate_alarm_spec",
    "error_rate_alarm",
    "evaluate",
    "points_to_fill",
    "evaluate_expression",
    "alarm_datapoints",
    "alarm_period",
    "backtest",
]

# --------------------------------------------------------------------------- constants

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

# PutMetricAlarm fields this module understands, in the order of the API reference.
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

_ID_RE = re.compile(r"[a-z][A-Za-z0-9_]*\Z")
_NUM = r"\d+(?:\.\d+)?"
_EXTENDED_STAT_RE = re.compile(
    r"(?:p|tm|tc|ts|wm)(?:100|\d{1,2}(?:\.\d{1,2})?)\Z"  # p99, p99.9, tm90, wm99.5
    r"|IQM\Z"
    rf"|(?:TM|TC|TS|WM|tm|tc|ts|wm)\({_NUM}%:{_NUM}%\)\Z"  # TM(10%:90%)
    rf"|PR\((?:-?{_NUM})?:(?:-?{_NUM})?\)\Z"  # PR(100:2000), PR(:300)
)


class AlarmSpecError(ValueError):
    """An alarm spec (or an evaluation request) that CloudWatch would reject or this module cannot evaluate."""


class ExpressionError(ValueError):
    """A metric math expression that cannot be parsed or evaluated."""


# --------------------------------------------------------------------------- validation


def _name(spec: Mapping[str, Any]) -> str:
    return str(spec.get("AlarmName") or "<unnamed>")


def _fail(spec: Mapping[str, Any], where: str, problem: str, fix: str) -> AlarmSpecError:
    return AlarmSpecError(f"alarm {_name(spec)!r}: {where}: {problem}. Fix: {fix}")


def _require_int(spec: Mapping[str, Any], value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(spec, where, f"expected an integer, got {value!r}", f"set {where} to a whole number")
    return value


def _check_fields(spec: Mapping[str, Any]) -> None:
    unknown = sorted(set(spec) - set(ACCEPTED_FIELDS))
    if unknown:
        raise _fail(
            spec,
            ", ".join(unknown),
            "unknown field(s)",
            f"remove them; accepted PutMetricAlarm fields are: {', '.join(ACCEPTED_FIELDS)}",
        )
    if not spec.get("AlarmName"):
        raise _fail(spec, "AlarmName", "missing required field", "give the alarm a non-empty AlarmName")


def _check_required(spec: Mapping[str, Any], required: Iterable[str], kind: str) -> None:
    missing = [f for f in required if f not in spec]
    if missing:
        raise _fail(
            spec, ", ".join(missing), f"missing required field(s) for a {kind} alarm", f"add {', '.join(missing)}"
        )


def _check_period(spec: Mapping[str, Any], period: Any, where: str) -> int:
    period = _require_int(spec, period, where)
    if period in (10, 20, 30) or (period > 0 and period % 60 == 0):
        return period
    raise _fail(spec, where, f"{period} s is not a valid alarm period", "use 10, 20, 30 or a multiple of 60 seconds")


def _check_statistic(spec: Mapping[str, Any], stat: Any, where: str) -> None:
    if stat in STATISTICS or (isinstance(stat, str) and _EXTENDED_STAT_RE.match(stat)):
        return
    raise _fail(
        spec,
        where,
        f"{stat!r} is not a CloudWatch statistic",
        f"use one of {', '.join(STATISTICS)} or an extended statistic such as p99, p99.9, tm90, IQM, TM(10%:90%)",
    )


def _check_single_metric_stat(spec: Mapping[str, Any]) -> None:
    has_stat, has_ext = "Statistic" in spec, "ExtendedStatistic" in spec
    if has_stat and has_ext:
        raise _fail(spec, "Statistic/ExtendedStatistic", "both are set", "keep exactly one of them")
    if not (has_stat or has_ext):
        raise _fail(
            spec,
            "Statistic/ExtendedStatistic",
            "neither is set",
            "set Statistic (e.g. 'Sum') or ExtendedStatistic (e.g. 'p99')",
        )
    if has_stat and spec["Statistic"] not in STATISTICS:
        raise _fail(
            spec,
            "Statistic",
            f"{spec['Statistic']!r} is not valid",
            f"use one of {', '.join(STATISTICS)} (percentiles go in ExtendedStatistic)",
        )
    if has_ext and not (
        isinstance(spec["ExtendedStatistic"], str) and _EXTENDED_STAT_RE.match(spec["ExtendedStatistic"])
    ):
        raise _fail(
            spec,
            "ExtendedStatistic",
            f"{spec['ExtendedStatistic']!r} is not a valid extended statistic",
            "use pNN or pNN.NN (e.g. p99, p99.9), tmNN/wmNN/tcNN/tsNN, IQM, TM(X%:Y%) or PR(n:m)",
        )


def _check_metric_name(
    spec: Mapping[str, Any], namespace: Any, metric: Any, where: str, known_metrics: set[tuple[str, str]] | None
) -> None:
    if not isinstance(namespace, str) or not isinstance(metric, str):
        raise _fail(
            spec, where, f"namespace {namespace!r} and metric name {metric!r} must be strings", "set both as strings"
        )
    if namespace == SAGEMAKER_NAMESPACE:
        extra = {m for ns, m in (known_metrics or ()) if ns == SAGEMAKER_NAMESPACE}
        if metric not in SAGEMAKER_METRICS | extra:
            raise _fail(
                spec,
                where,
                f"AWS/SageMaker publishes no metric {metric!r}",
                "use a documented endpoint metric ("
                + ", ".join(sorted(SAGEMAKER_ENDPOINT_METRICS))
                + "); for an error rate use metric math over the counts, e.g. error_rate_alarm() which alarms on "
                "(Invocation4XXErrors + Invocation5XXErrors) / Invocations",
            )
    if known_metrics is not None and (namespace, metric) not in known_metrics:
        same_ns = sorted(m for ns, m in known_metrics if ns == namespace)
        raise _fail(
            spec,
            where,
            f"unknown metric {metric!r} in namespace {namespace!r}",
            f"use one of the known metrics for that namespace: {', '.join(same_ns) or '(none known)'}",
        )


def _check_evaluation(spec: Mapping[str, Any], period: int) -> None:
    n = _require_int(spec, spec["EvaluationPeriods"], "EvaluationPeriods")
    if n < 1:
        raise _fail(spec, "EvaluationPeriods", f"{n} is below 1", "use at least 1 evaluation period")
    limit = ONE_DAY_S if period < ONE_HOUR_S else SEVEN_DAYS_S
    if n * period > limit:
        raise _fail(
            spec,
            "EvaluationPeriods*Period",
            f"{n} x {period} s = {n * period} s exceeds {limit} s; {EVALUATION_RANGE_RULE}",
            f"use at most {limit // period} evaluation periods of {period} s, or a longer period",
        )
    m = _require_int(spec, spec.get("DatapointsToAlarm", n), "DatapointsToAlarm")
    if not 1 <= m <= n:
        raise _fail(
            spec,
            "DatapointsToAlarm",
            f"{m} is outside 1..EvaluationPeriods ({n})",
            "set DatapointsToAlarm (the M of 'M out of N') between 1 and EvaluationPeriods",
        )
    treat = spec.get("TreatMissingData", MISSING)
    if treat not in TREAT_MISSING_DATA:
        raise _fail(spec, "TreatMissingData", f"{treat!r} is not valid", f"use one of {', '.join(TREAT_MISSING_DATA)}")


def _check_threshold(spec: Mapping[str, Any]) -> None:
    op = spec["ComparisonOperator"]
    if op not in COMPARISON_OPERATORS:
        raise _fail(spec, "ComparisonOperator", f"{op!r} is not valid", f"use one of {', '.join(COMPARISON_OPERATORS)}")
    if op in ANOMALY_BAND_OPERATORS:
        if "ThresholdMetricId" not in spec or "Metrics" not in spec:
            raise _fail(
                spec,
                "ThresholdMetricId",
                f"{op} compares against an anomaly detection band",
                "add a Metrics query with ANOMALY_DETECTION_BAND(...) and set ThresholdMetricId to its Id",
            )
        if "Threshold" in spec:
            raise _fail(spec, "Threshold", f"{op} takes its threshold from ThresholdMetricId", "remove Threshold")
        return
    if "ThresholdMetricId" in spec:
        raise _fail(
            spec,
            "ThresholdMetricId",
            f"only anomaly-band operators use it, not {op}",
            "remove ThresholdMetricId or use an anomaly-band operator",
        )
    if "Threshold" not in spec:
        raise _fail(spec, "Threshold", f"missing for static operator {op}", "set a numeric Threshold")


_STRING_RE = re.compile(r'"[^"]*"|\'[^\']*\'')
_IDENT_RE = re.compile(r"(?<![\w.])[a-z][A-Za-z0-9_]*")


def _referenced_ids(expression: str) -> list[str]:
    """Lowercase-initial identifiers of a metric math expression (functions are uppercase; strings are skipped)."""
    return _IDENT_RE.findall(_STRING_RE.sub(" ", expression))


def _check_query_ids(spec: Mapping[str, Any], queries: list[Any]) -> list[str]:
    ids: list[str] = []
    for i, query in enumerate(queries):
        where = f"Metrics[{i}]"
        if not isinstance(query, Mapping):
            raise _fail(
                spec,
                where,
                f"expected a MetricDataQuery dict, got {type(query).__name__}",
                "pass dicts with Id and Expression or MetricStat",
            )
        qid = query.get("Id")
        if not isinstance(qid, str) or not _ID_RE.match(qid):
            raise _fail(
                spec,
                f"{where}.Id",
                f"{qid!r} is not a valid Id",
                "start with a lowercase letter and use only letters, digits and '_'",
            )
        if qid in ids:
            raise _fail(spec, f"{where}.Id", f"duplicate Id {qid!r}", "give every query a unique Id")
        ids.append(qid)
    return ids


def _check_query(
    spec: Mapping[str, Any],
    i: int,
    query: Mapping[str, Any],
    ids: list[str],
    known_metrics: set[tuple[str, str]] | None,
) -> None:
    where = f"Metrics[{i}] ({query['Id']})"
    has_expr, has_stat = "Expression" in query, "MetricStat" in query
    if has_expr == has_stat:
        raise _fail(
            spec,
            where,
            "needs exactly one of Expression or MetricStat",
            "set Expression for math or MetricStat to fetch a metric",
        )
    if "Period" in query:
        _check_period(spec, query["Period"], f"{where}.Period")
    if has_stat:
        stat = query["MetricStat"]
        if not isinstance(stat, Mapping) or not isinstance(stat.get("Metric"), Mapping):
            raise _fail(
                spec,
                f"{where}.MetricStat",
                "needs Metric, Period and Stat",
                "set MetricStat={'Metric': {...}, 'Period': 300, 'Stat': 'Sum'}",
            )
        for key in ("Period", "Stat"):
            if key not in stat:
                raise _fail(spec, f"{where}.MetricStat.{key}", "missing", f"set MetricStat.{key}")
        _check_period(spec, stat["Period"], f"{where}.MetricStat.Period")
        _check_statistic(spec, stat["Stat"], f"{where}.MetricStat.Stat")
        metric = stat["Metric"]
        _check_metric_name(
            spec,
            metric.get("Namespace"),
            metric.get("MetricName"),
            f"{where}.MetricStat.Metric.MetricName",
            known_metrics,
        )
        return
    expression = query["Expression"]
    if not isinstance(expression, str) or not expression.strip():
        raise _fail(spec, f"{where}.Expression", "empty", "write a metric math expression such as 'm1 / m2'")
    if expression.lstrip().upper().startswith("SELECT"):
        return  # Metrics Insights query: no Id references to check
    for ref in _referenced_ids(expression):
        if ref == query["Id"]:
            raise _fail(
                spec, f"{where}.Expression", "the expression refers to its own Id", "refer only to other queries"
            )
        if ref not in ids:
            raise _fail(
                spec,
                f"{where}.Expression",
                f"refers to undefined Id {ref!r}",
                f"use one of the defined Ids: {', '.join(ids)}",
            )


def _check_metrics(spec: Mapping[str, Any], known_metrics: set[tuple[str, str]] | None) -> int:
    """Validate a metric-math alarm's Metrics list; return the alarm period (largest query period)."""
    forbidden = [f for f in SINGLE_METRIC_ONLY_FIELDS if f in spec]
    if forbidden:
        raise _fail(
            spec,
            ", ".join(forbidden),
            "not allowed together with Metrics",
            "move them into MetricStat entries of Metrics",
        )
    queries = spec["Metrics"]
    if not isinstance(queries, list) or not queries:
        raise _fail(spec, "Metrics", "must be a non-empty list of MetricDataQuery dicts", "pass a list of queries")
    ids = _check_query_ids(spec, queries)
    n_metrics = sum("MetricStat" in q for q in queries)
    if n_metrics > MAX_METRICS_IN_MATH_ALARM:
        raise _fail(
            spec, "Metrics", f"{n_metrics} metrics (MetricStat queries)", f"use at most {MAX_METRICS_IN_MATH_ALARM}"
        )
    returning = [q["Id"] for q in queries if q.get("ReturnData", True)]
    # an anomaly-detection alarm returns the watched metric and its band (ThresholdMetricId)
    allowed = 2 if spec.get("ThresholdMetricId") in returning else 1
    if len(returning) != allowed:
        raise _fail(
            spec,
            "Metrics[].ReturnData",
            f"{len(returning)} queries return data ({', '.join(returning) or 'none'}; "
            "an omitted ReturnData means true)",
            "set ReturnData true on exactly the one query the alarm watches and false on all others",
        )
    for i, query in enumerate(queries):
        _check_query(spec, i, query, ids, known_metrics)
    if "ThresholdMetricId" in spec and spec["ThresholdMetricId"] not in ids:
        raise _fail(
            spec,
            "ThresholdMetricId",
            f"{spec['ThresholdMetricId']!r} is not a query Id",
            f"use one of {', '.join(ids)}",
        )
    return alarm_period(spec)


@functools.lru_cache(maxsize=1)
def _put_metric_alarm_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("cloudwatch")
    return model.operation_model("PutMetricAlarm").input_shape


def _botocore_errors(spec: Mapping[str, Any]) -> str:
    """Return botocore's PutMetricAlarm request-validation report ('' when the request shape is valid)."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(dict(spec), _put_metric_alarm_shape())
    return report.generate_report() if report.has_errors() else ""


def validate_alarm_spec(spec: dict, known_metrics: set[tuple[str, str]] | None = None) -> dict:
    """Validate a PutMetricAlarm request locally and return a copy with defaults filled.

    Parameters
    ----------
    spec
        PutMetricAlarm keyword arguments: a single-metric alarm (MetricName, Namespace, Statistic or
        ExtendedStatistic, Period, ...) or a metric-math alarm (``Metrics``).
    known_metrics
        Optional allow-list of ``(namespace, metric name)`` pairs; any metric outside it is rejected.
        AWS/SageMaker metric names are always checked against :data:`SAGEMAKER_METRICS` (pairs for that
        namespace given here are accepted too).

    Returns
    -------
    dict
        A deep copy of ``spec`` with ``DatapointsToAlarm`` (= EvaluationPeriods), ``TreatMissingData``
        ("missing") and ``ActionsEnabled`` (True) filled in. It is exactly a valid PutMetricAlarm request.

    Raises
    ------
    AlarmSpecError
        Naming the alarm, the field and the fix.
    """
    if not isinstance(spec, Mapping):
        raise AlarmSpecError(f"alarm spec must be a dict of PutMetricAlarm fields, got {type(spec).__name__}")
    _check_fields(spec)
    if "Metrics" in spec:
        _check_required(spec, ("EvaluationPeriods", "ComparisonOperator"), "metric-math")
        period = _check_metrics(spec, known_metrics)
    else:
        _check_required(
            spec, ("MetricName", "Namespace", "Period", "EvaluationPeriods", "ComparisonOperator"), "single-metric"
        )
        _check_single_metric_stat(spec)
        period = _check_period(spec, spec["Period"], "Period")
        _check_metric_name(spec, spec["Namespace"], spec["MetricName"], "MetricName", known_metrics)
    _check_threshold(spec)
    _check_evaluation(spec, period)
    filled = copy.deepcopy(dict(spec))
    filled.setdefault("DatapointsToAlarm", filled["EvaluationPeriods"])
    filled.setdefault("TreatMissingData", MISSING)
    filled.setdefault("ActionsEnabled", True)
    report = _botocore_errors(filled)
    if report:
        raise _fail(
            spec,
            "request shape",
            f"botocore rejects the PutMetricAlarm request: {report}",
            "fix the types and shapes botocore names",
        )
    return filled


def alarm_period(alarm: Mapping[str, Any]) -> int:
    """Return the alarm's period in seconds: ``Period``, or for metric math the largest query period."""
    if "Metrics" not in alarm:
        if "Period" not in alarm:
            raise _fail(alarm, "Period", "missing", "set Period (seconds)")
        return int(alarm["Period"])
    periods = [q["Period"] for q in alarm["Metrics"] if "Period" in q]
    periods += [
        q["MetricStat"]["Period"]
        for q in alarm["Metrics"]
        if isinstance(q.get("MetricStat"), Mapping) and "Period" in q["MetricStat"]
    ]
    if not periods:
        raise _fail(
            alarm,
            "Metrics[].MetricStat.Period",
            "no query sets a period",
            "set MetricStat.Period on the fetched metrics",
        )
    return int(max(periods))


# --------------------------------------------------------------------------- error-rate alarm

ERROR_RATE_EXPRESSION = "IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)"


def _sagemaker_query(qid: str, metric: str, endpoint_name: str, variant_name: str, period: int) -> dict:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": SAGEMAKER_NAMESPACE,
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint_name},
                    {"Name": "VariantName", "Value": variant_name},
                ],
            },
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


def error_rate_alarm(
    name: str,
    endpoint_name: str,
    variant_name: str,
    threshold: float,
    period: int = 300,
    evaluation_periods: int = 3,
    datapoints_to_alarm: int = 2,
    actions: Sequence[str] = (),
    treat_missing_data: str = NOT_BREACHING,
) -> dict:
    """Build a validated metric-math alarm on the endpoint's invocation error rate.

    The watched series is ``IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)``: the fraction (0..1) of
    invocations answered with a 4XX or 5XX code, using the Sum of Invocation4XXErrors, Invocation5XXErrors
    and Invocations over AWS/SageMaker with EndpointName/VariantName dimensions. ``IF`` keeps a period with
    zero invocations at rate 0 instead of dividing by zero (CloudWatch drops such a point); a period with no
    Invocations datapoint at all stays missing and ``treat_missing_data`` (default notBreaching: no traffic
    is no error) decides.

    Parameters
    ----------
    name
        AlarmName.
    endpoint_name, variant_name
        The EndpointName and VariantName dimension values.
    threshold
        Error-rate fraction; the alarm breaches when the rate is greater than it.
    period, evaluation_periods, datapoints_to_alarm
        Seconds per datapoint, N and M of the "M out of N" rule.
    actions
        SNS topic (or other action) ARNs used for AlarmActions and OKActions.
    treat_missing_data
        TreatMissingData value.

    Returns
    -------
    dict
        PutMetricAlarm keyword arguments, already passed through :func:`validate_alarm_spec`.
    """
    spec = {
        "AlarmName": name,
        "AlarmDescription": (
            f"Invocation error rate (4XX+5XX)/Invocations of {endpoint_name}/{variant_name} above {threshold:g} "
            f"in {datapoints_to_alarm} of {evaluation_periods} periods of {period} s"
        ),
        "Metrics": [
            _sagemaker_query("inv", "Invocations", endpoint_name, variant_name, period),
            _sagemaker_query("m4xx", "Invocation4XXErrors", endpoint_name, variant_name, period),
            _sagemaker_query("m5xx", "Invocation5XXErrors", endpoint_name, variant_name, period),
            {
                "Id": "error_rate",
                "Expression": ERROR_RATE_EXPRESSION,
                "Label": "Invocation error rate",
                "ReturnData": True,
            },
        ],
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": datapoints_to_alarm,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": treat_missing_data,
    }
    if actions:
        spec["AlarmActions"] = list(actions)
        spec["OKActions"] = list(actions)
    return validate_alarm_spec(spec)


# --------------------------------------------------------------------------- evaluator


@dataclass(frozen=True)
class _Rule:
    n: int
    m: int
    treat: str
    operator: str
    threshold: float

    def breaches(self, value: float) -> bool:
        t = self.threshold
        return {
            "GreaterThanOrEqualToThreshold": value >= t,
            "GreaterThanThreshold": value > t,
            "LessThanThreshold": value < t,
            "LessThanOrEqualToThreshold": value <= t,
        }[self.operator]


def _rule(alarm: Mapping[str, Any]) -> _Rule:
    """Extract and check the fields the evaluator needs (static-threshold alarms only)."""
    if "EvaluationPeriods" not in alarm:
        raise _fail(alarm, "EvaluationPeriods", "missing", "set EvaluationPeriods (N)")
    n = _require_int(alarm, alarm["EvaluationPeriods"], "EvaluationPeriods")
    m = _require_int(alarm, alarm.get("DatapointsToAlarm", n), "DatapointsToAlarm")
    if n < 1 or not 1 <= m <= n:
        raise _fail(
            alarm,
            "DatapointsToAlarm/EvaluationPeriods",
            f"M={m}, N={n}",
            "use 1 <= DatapointsToAlarm <= EvaluationPeriods",
        )
    treat = alarm.get("TreatMissingData", MISSING)
    if treat not in TREAT_MISSING_DATA:
        raise _fail(alarm, "TreatMissingData", f"{treat!r} is not valid", f"use one of {', '.join(TREAT_MISSING_DATA)}")
    op = alarm.get("ComparisonOperator")
    if op not in STATIC_OPERATORS:
        raise _fail(
            alarm,
            "ComparisonOperator",
            f"{op!r} cannot be evaluated locally",
            f"use one of {', '.join(STATIC_OPERATORS)} (anomaly bands are not evaluated)",
        )
    threshold = alarm.get("Threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise _fail(alarm, "Threshold", f"expected a number, got {threshold!r}", "set a numeric Threshold")
    return _Rule(n, m, treat, op, float(threshold))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _normalise(datapoints: Iterable[float | None], n: int) -> list[float | None]:
    points = [None if _is_missing(v) else float(v) for v in datapoints]
    return [None] * max(0, n - len(points)) + points


def points_to_fill(alarm: Mapping[str, Any], datapoints: Sequence[float | None]) -> int:
    """Return how many of the N needed datapoints must be filled by the TreatMissingData setting.

    This is column 2 of the worked-example tables: ``max(0, EvaluationPeriods - real points in the range)``.
    """
    rule = _rule(alarm)
    real = sum(v is not None for v in _normalise(datapoints, rule.n))
    return max(0, rule.n - real)


def _premature_alarm(real: list[tuple[int, bool]], m: int) -> bool:
    """The "Avoiding premature transitions to alarm state" rule for too few real points.

    ``real`` holds ``(age, breaching)`` of every real point in the range, oldest first, age 1 being the most
    recent period. With all real points breaching (the rest missing), the alarm goes to ALARM once the oldest
    breaching point is at least M periods old. A non-breaching real point anywhere in the range blocks the rule:
    the 2-of-3 table row ``0 - X - -`` stays OK with "missing".
    """
    return bool(real) and all(b for _, b in real) and real[0][0] >= m


def evaluate(alarm: Mapping[str, Any], datapoints: Sequence[float | None], current_state: str = OK) -> str:
    """Evaluate a static-threshold alarm the way CloudWatch documents it.

    Parameters
    ----------
    alarm
        Alarm spec (EvaluationPeriods, DatapointsToAlarm, Threshold, ComparisonOperator, TreatMissingData).
    datapoints
        The evaluation range, oldest first, one value per period; ``None`` (or NaN) is a missing period.
        It may be longer than N = EvaluationPeriods: CloudWatch retrieves more points than N (5 for N = 3 in the
        docs' examples) and uses the extra older ones when recent ones are missing. A shorter list is padded
        with missing points on the old side up to N.
    current_state
        The alarm state before this evaluation; returned when "ignore" (or premature-alarm) keeps it.

    Returns
    -------
    str
        "OK", "ALARM" or "INSUFFICIENT_DATA", following "Configuring how CloudWatch alarms treat missing data":

        * at least N real points in the range: the most recent N real points decide (ALARM when at least
          M breach); TreatMissingData is not used;
        * no real point: missing -> INSUFFICIENT_DATA, ignore -> current state, breaching -> ALARM,
          notBreaching -> OK;
        * 1..N-1 real points: all of them are used and N - real points are filled with the treatment
          (breaching counts them as breaching; the others as not breaching); ALARM when at least M breach;
          otherwise, for missing/ignore, the premature-alarm rule gives ALARM (missing) or keeps the current
          state (ignore) when every real point breaches and the oldest is at least M periods old; else OK.
    """
    if current_state not in STATES:
        raise AlarmSpecError(
            f"alarm {_name(alarm)!r}: current_state: {current_state!r} is not a state. "
            f"Fix: use one of {', '.join(STATES)}"
        )
    rule = _rule(alarm)
    points = _normalise(datapoints, rule.n)
    real = [(len(points) - i, rule.breaches(v)) for i, v in enumerate(points) if v is not None]
    if len(real) >= rule.n:
        return ALARM if sum(b for _, b in real[-rule.n :]) >= rule.m else OK
    if not real:
        return {MISSING: INSUFFICIENT_DATA, IGNORE: current_state, BREACHING: ALARM, NOT_BREACHING: OK}[rule.treat]
    breaching = sum(b for _, b in real) + (rule.n - len(real) if rule.treat == BREACHING else 0)
    if breaching >= rule.m:
        return ALARM
    if rule.treat in (MISSING, IGNORE) and _premature_alarm(real, rule.m):
        return ALARM if rule.treat == MISSING else current_state
    return OK


# --------------------------------------------------------------------------- metric math

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/^(),<>]))"
)
_FUNCTIONS = ("IF", "FILL", "ABS", "CEIL", "FLOOR")
_FILL_KEYWORDS = ("REPEAT", "LINEAR")

_TS = list  # list[float | None]: one value per period
Value = Any  # float (scalar) | _TS | str (FILL keyword)


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    expression = expression.rstrip()
    while pos < len(expression):
        match = _TOKEN_RE.match(expression, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"unexpected character {expression[pos:].lstrip()[:1]!r} at {pos} in {expression!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _arith(op: str, x: float, y: float) -> float | None:
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return None if y == 0 else x / y  # CloudWatch drops a point that divides by zero
        if op == "^":
            result = x**y
            return None if isinstance(result, complex) else float(result)
    except (OverflowError, ZeroDivisionError):
        return None
    if op in ("AND", "&&"):
        return float(bool(x) and bool(y))
    if op in ("OR", "||"):
        return float(bool(x) or bool(y))
    return float({"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op])


def _binary(op: str, a: Value, b: Value) -> Value:
    """Apply a binary operator with CloudWatch's missing-value rules."""
    if isinstance(a, str) or isinstance(b, str):
        raise ExpressionError(f"{a if isinstance(a, str) else b} is only valid as the second argument of FILL")
    if not isinstance(a, list) and not isinstance(b, list):
        result = _arith(op, a, b)
        if result is None:
            raise ExpressionError(f"scalar operation {a} {op} {b} is undefined")
        return result
    if isinstance(a, list) and isinstance(b, list):
        # Between two series a value missing on one side only is treated as 0 (arithmetic and comparisons).
        return [
            None if x is None and y is None else _arith(op, 0.0 if x is None else x, 0.0 if y is None else y)
            for x, y in zip(a, b)
        ]
    if isinstance(a, list):
        return [None if x is None else _arith(op, x, b) for x in a]
    return [None if y is None else _arith(op, a, y) for y in b]


def _if(cond: Value, when_true: Value, when_false: Value | None, n: int) -> _TS:
    """IF(condition, trueValue[, falseValue]) as in "Using IF expressions"."""
    if not isinstance(cond, list):
        chosen = when_true if cond else when_false
        if chosen is None:
            return [None] * n
        return list(chosen) if isinstance(chosen, list) else [float(chosen)] * n
    out: _TS = []
    for i, c in enumerate(cond):
        if c is None:
            out.append(None)  # no condition point: dropped
        elif c:
            v = when_true[i] if isinstance(when_true, list) else when_true
            out.append(0.0 if v is None else v)  # TRUE with no trueValue point: 0
        elif when_false is None:
            out.append(None)  # FALSE with falseValue omitted: dropped
        else:
            out.append(when_false[i] if isinstance(when_false, list) else when_false)
    return out


def _fill(series: Value, filler: Value) -> _TS:
    """FILL(ts, S | TS | REPEAT | LINEAR)."""
    if not isinstance(series, list):
        raise ExpressionError("FILL needs a time series as its first argument")
    if filler == "REPEAT":
        out, last = [], None
        for v in series:
            last = v if v is not None else last
            out.append(last)
        return out
    if filler == "LINEAR":
        known = [i for i, v in enumerate(series) if v is not None]
        out = list(series)
        for lo, hi in zip(known, known[1:]):
            for i in range(lo + 1, hi):
                out[i] = series[lo] + (series[hi] - series[lo]) * (i - lo) / (hi - lo)
        return out
    if isinstance(filler, list):
        return [f if v is None else v for v, f in zip(series, filler)]
    return [float(filler) if v is None else v for v in series]


def _unary_fn(name: str, x: Value) -> Value:
    fn = {"ABS": abs, "CEIL": math.ceil, "FLOOR": math.floor}[name]
    if isinstance(x, list):
        return [None if v is None else float(fn(v)) for v in x]
    return float(fn(x))


class _Parser:
    """Recursive-descent evaluator for the metric math subset used by alarms."""

    def __init__(self, expression: str, series: Mapping[str, Sequence[float | None]]):
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.pos = 0
        self.series = {k: [None if _is_missing(v) else float(v) for v in vals] for k, vals in series.items()}
        lengths = {len(v) for v in self.series.values()}
        if len(lengths) > 1:
            raise ExpressionError(f"series have different lengths {sorted(lengths)}; align them on the same periods")
        self.n = lengths.pop() if lengths else 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExpressionError(
                f"unexpected end of {self.expression!r}" + (f"; expected {expected!r}" if expected else "")
            )
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r} but found {token[1]!r} in {self.expression!r}")
        self.pos += 1
        return token

    def parse(self) -> _TS:
        value = self.logical()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.peek()!r} in {self.expression!r}")
        if not isinstance(value, list):
            raise ExpressionError(
                f"{self.expression!r} evaluates to a scalar; an alarm expression must give a time series"
            )
        return value

    def _left_assoc(self, sub: Callable[[], Value], ops: tuple[str, ...]) -> Value:
        value = sub()
        while self.peek() in ops:
            op = self.take()[1]
            value = _binary(op, value, sub())
        return value

    def logical(self) -> Value:
        value = self._left_assoc(self.comparison, ("AND", "&&"))
        while self.peek() in ("OR", "||"):
            op = self.take()[1]
            value = _binary(op, value, self._left_assoc(self.comparison, ("AND", "&&")))
        return value

    def comparison(self) -> Value:
        return self._left_assoc(self.additive, ("==", "!=", "<=", ">=", "<", ">"))

    def additive(self) -> Value:
        return self._left_assoc(self.multiplicative, ("+", "-"))

    def multiplicative(self) -> Value:
        return self._left_assoc(self.unary, ("*", "/"))

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _binary("*", -1.0, self.unary())
        return self.power()

    def power(self) -> Value:
        base = self.primary()
        if self.peek() == "^":
            self.take()
            return _binary("^", base, self.unary())
        return base

    def primary(self) -> Value:
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if text == "(":
            value = self.logical()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.expression!r}")
        if self.peek() == "(":
            return self.call(text)
        if text in _FILL_KEYWORDS:
            return text
        if text not in self.series:
            raise ExpressionError(
                f"unknown Id {text!r} in {self.expression!r}; defined: {', '.join(self.series) or '(none)'}"
            )
        return list(self.series[text])

    def call(self, name: str) -> Value:
        if name not in _FUNCTIONS:
            raise ExpressionError(f"function {name}() is not supported here; supported: {', '.join(_FUNCTIONS)}")
        self.take("(")
        args = [self.logical()]
        while self.peek() == ",":
            self.take()
            args.append(self.logical())
        self.take(")")
        if name == "IF":
            if len(args) not in (2, 3):
                raise ExpressionError("IF takes (condition, trueValue[, falseValue])")
            return _if(args[0], args[1], args[2] if len(args) == 3 else None, self.n)
        if name == "FILL":
            if len(args) != 2:
                raise ExpressionError("FILL takes (series, value | series | REPEAT | LINEAR)")
            return _fill(args[0], args[1])
        if len(args) != 1:
            raise ExpressionError(f"{name} takes one argument")
        return _unary_fn(name, args[0])


def evaluate_expression(expression: str, series: dict[str, list[float | None]]) -> list[float | None]:
    """Evaluate a CloudWatch metric math expression over aligned series.

    Supports numbers, Ids, ``+ - * / ^``, unary minus, parentheses, comparisons (``== != < > <= >=``),
    ``AND``/``&&``/``OR``/``||``, ``IF(cond, a[, b])``, ``FILL(ts, value | ts | REPEAT | LINEAR)``, ``ABS``,
    ``CEIL`` and ``FLOOR``, with the documented missing-value rules: between two series a value missing on
    one side is 0 (both missing stays missing); a missing value against a scalar stays missing; a division
    by zero drops the point; IF drops a point whose condition is missing, gives 0 for TRUE with no trueValue
    point, and drops FALSE points when falseValue is omitted.

    Parameters
    ----------
    expression
        The expression, e.g. ``"IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)"``.
    series
        Values per Id, all the same length (one per period); ``None`` or NaN is missing.

    Returns
    -------
    list[float | None]
        One value per period, ``None`` where the result has no point.
    """
    return _Parser(expression, series).parse()


def alarm_datapoints(alarm: Mapping[str, Any], fetch: Callable[[dict], Sequence[float | None]]) -> list[float | None]:
    """Compute the series an alarm watches from fetched metric data.

    Parameters
    ----------
    alarm
        Single-metric or metric-math alarm spec.
    fetch
        Called with a MetricStat dict (``{"Metric": {...}, "Period": ..., "Stat": ...}``) and returning that
        metric's values, one per period (``None`` for missing).

    Returns
    -------
    list[float | None]
        The single metric's values, or the ReturnData query's result for metric math.
    """
    if "Metrics" not in alarm:
        metric = {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions") if k in alarm}
        stat = alarm.get("Statistic", alarm.get("ExtendedStatistic"))
        return list(fetch({"Metric": metric, "Period": alarm["Period"], "Stat": stat}))
    values: dict[str, list[float | None]] = {
        q["Id"]: list(fetch(q["MetricStat"])) for q in alarm["Metrics"] if "MetricStat" in q
    }
    pending = [q for q in alarm["Metrics"] if "Expression" in q]
    while pending:
        ready = [q for q in pending if set(_referenced_ids(q["Expression"])) <= set(values)]
        if not ready:
            raise _fail(
                alarm,
                "Metrics",
                f"expressions {', '.join(q['Id'] for q in pending)} depend on each other or on undefined Ids",
                "remove the cycle",
            )
        for q in ready:
            values[q["Id"]] = evaluate_expression(q["Expression"], values)
        pending = [q for q in pending if q not in ready]
    (returned,) = [q["Id"] for q in alarm["Metrics"] if q.get("ReturnData", True)]
    return values[returned]


# --------------------------------------------------------------------------- backtest


@dataclass
class BacktestResult:
    """State timeline of an alarm replayed over a metric history."""

    timeline: pd.DataFrame
    transitions: list[dict] = field(default_factory=list)
    times_fired: int = 0
    threshold: float | None = None
    period: int = 60
    alarm_name: str = ""

    def alarm_spans(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Return ``(start, end)`` of each contiguous ALARM run; a period ending at ``t`` covers ``(t - period, t]``."""
        spans, start, prev = [], None, None
        for ts, state in zip(self.timeline["timestamp"], self.timeline["state"]):
            if state == ALARM and start is None:
                start = ts - pd.Timedelta(seconds=self.period)
            if state != ALARM and start is not None:
                spans.append((start, prev))
                start = None
            prev = ts
        if start is not None:
            spans.append((start, prev))
        return spans

    def plot(self, ax: Any = None) -> Any:
        """Draw the metric, the threshold line and shaded ALARM periods; return the matplotlib Axes.

        Without ``ax`` a standalone ``matplotlib.figure.Figure`` is created (no pyplot, no GUI backend).
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(10, 3.5)).add_subplot()
        ts = self.timeline["timestamp"]
        ax.plot(ts, self.timeline["value"], marker="o", linewidth=1, label="metric")
        if self.threshold is not None:
            ax.axhline(
                self.threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {self.threshold:g}"
            )
        for i, (start, end) in enumerate(self.alarm_spans()):
            ax.axvspan(start, end, color="tab:red", alpha=0.15, label="ALARM" if i == 0 else None)
        ax.set_title(f"{self.alarm_name}: fired {self.times_fired} time(s)")
        ax.set_xlabel("period end")
        ax.legend(loc="upper left")
        return ax


def _history_series(history: pd.Series | Sequence[tuple[datetime, float | None]]) -> pd.Series:
    if isinstance(history, pd.Series):
        series = history.copy()
    else:
        rows = list(history)
        series = pd.Series([v for _, v in rows], index=[t for t, _ in rows], dtype="object")
    series.index = pd.DatetimeIndex(series.index)
    if series.empty:
        raise ValueError("backtest history is empty; pass at least one (timestamp, value) period")
    if series.index.has_duplicates:
        raise ValueError(
            f"backtest history has duplicate timestamps, e.g. {series.index[series.index.duplicated()][0]}; "
            "keep one value per period"
        )
    try:
        values = [math.nan if pd.isna(v) else float(v) for v in series.to_numpy(dtype=object)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"backtest history values must be numbers or None/NaN: {exc}") from None
    return pd.Series(values, index=series.index, dtype="float64").sort_index()


def _on_grid(series: pd.Series, period: int) -> pd.Series:
    """Reindex onto one row per period; absent timestamps become missing (NaN)."""
    grid = pd.date_range(series.index[0], series.index[-1], freq=pd.Timedelta(seconds=period))
    off_grid = series.index.difference(grid)
    if len(off_grid):
        raise ValueError(
            f"timestamp {off_grid[0]} is not a whole number of {period} s periods after {series.index[0]}; "
            "give one timestamp per period end of the alarm's period"
        )
    return series.reindex(grid)


def backtest(
    alarm: Mapping[str, Any],
    history: pd.Series | Sequence[tuple[datetime, float | None]],
    start_state: str = INSUFFICIENT_DATA,
    evaluation_range: int | None = None,
) -> BacktestResult:
    """Replay an alarm over a metric history into a state timeline.

    Parameters
    ----------
    alarm
        Static-threshold alarm spec; its period (``Period``, or the metric-math query period) sets the grid.
    history
        The watched series, one value per period: a Series indexed by period-end timestamps or a list of
        ``(timestamp, value)``. ``None``/NaN values and timestamps absent from the regular grid are missing.
    start_state
        State before the first period.
    evaluation_range
        Periods CloudWatch looks back over at each evaluation (see :func:`evaluate`). CloudWatch does not
        publish the exact number; the default ``EvaluationPeriods + 2`` matches the docs' examples (5 for 3).

    Returns
    -------
    BacktestResult
        ``timeline`` (timestamp, value, state), ``transitions`` (timestamp, from, to) and ``times_fired``
        (transitions into ALARM). Each period's state is ``evaluate`` over the range ending at that period,
        carrying the previous state forward.
    """
    if start_state not in STATES:
        raise ValueError(f"start_state {start_state!r} is not one of {', '.join(STATES)}")
    rule = _rule(alarm)
    span = rule.n + 2 if evaluation_range is None else int(evaluation_range)
    if span < rule.n:
        raise ValueError(f"evaluation_range {span} is shorter than EvaluationPeriods {rule.n}; use at least {rule.n}")
    period = alarm_period(alarm)
    series = _on_grid(_history_series(history), period)
    values = [None if math.isnan(v) else float(v) for v in series.to_numpy()]
    state, states, transitions = start_state, [], []
    for i, ts in enumerate(series.index):
        new = evaluate(alarm, values[max(0, i - span + 1) : i + 1], state)
        if new != state:
            transitions.append({"timestamp": ts, "from": state, "to": new})
        state = new
        states.append(state)
    timeline = pd.DataFrame({"timestamp": series.index, "value": series.to_numpy(), "state": states})
    return BacktestResult(
        timeline=timeline,
        transitions=transitions,
        times_fired=sum(t["to"] == ALARM for t in transitions),
        threshold=rule.threshold,
        period=period,
        alarm_name=_name(alarm),
    )
