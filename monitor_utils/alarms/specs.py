"""PutMetricAlarm specs: local validation against CloudWatch's documented rules and botocore's model, and the alarm period."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .constants import (
    ACCEPTED_FIELDS,
    ANOMALY_BAND_OPERATORS,
    COMPARISON_OPERATORS,
    EVALUATION_RANGE_RULE,
    MAX_METRICS_IN_MATH_ALARM,
    MISSING,
    ONE_DAY_S,
    ONE_HOUR_S,
    SAGEMAKER_ENDPOINT_METRICS,
    SAGEMAKER_METRICS,
    SAGEMAKER_NAMESPACE,
    SEVEN_DAYS_S,
    SINGLE_METRIC_ONLY_FIELDS,
    STATISTICS,
    TREAT_MISSING_DATA,
)
from .errors import AlarmSpecError, require_int, spec_error
from .metric_math import referenced_ids


_ID_RE = re.compile(r"[a-z][A-Za-z0-9_]*\Z")
_NUM = r"\d+(?:\.\d+)?"
_EXTENDED_STAT_RE = re.compile(
    r"(?:p|tm|tc|ts|wm)(?:100|\d{1,2}(?:\.\d{1,2})?)\Z"  # p99, p99.9, tm90, wm99.5
    r"|IQM\Z"
    rf"|(?:TM|TC|TS|WM|tm|tc|ts|wm)\({_NUM}%:{_NUM}%\)\Z"  # TM(10%:90%)
    rf"|PR\((?:-?{_NUM})?:(?:-?{_NUM})?\)\Z"  # PR(100:2000), PR(:300)
)


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
        raise spec_error(
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
            raise spec_error(alarm, "Period", "missing", "set Period (seconds)")
        return int(alarm["Period"])
    periods = [q["Period"] for q in alarm["Metrics"] if "Period" in q]
    periods += [
        q["MetricStat"]["Period"]
        for q in alarm["Metrics"]
        if isinstance(q.get("MetricStat"), Mapping) and "Period" in q["MetricStat"]
    ]
    if not periods:
        raise spec_error(
            alarm,
            "Metrics[].MetricStat.Period",
            "no query sets a period",
            "set MetricStat.Period on the fetched metrics",
        )
    return int(max(periods))


def _check_fields(spec: Mapping[str, Any]) -> None:
    unknown = sorted(set(spec) - set(ACCEPTED_FIELDS))
    if unknown:
        raise spec_error(
            spec,
            ", ".join(unknown),
            "unknown field(s)",
            f"remove them; accepted PutMetricAlarm fields are: {', '.join(ACCEPTED_FIELDS)}",
        )
    if not spec.get("AlarmName"):
        raise spec_error(spec, "AlarmName", "missing required field", "give the alarm a non-empty AlarmName")


def _check_required(spec: Mapping[str, Any], required: Iterable[str], kind: str) -> None:
    missing = [f for f in required if f not in spec]
    if missing:
        raise spec_error(
            spec, ", ".join(missing), f"missing required field(s) for a {kind} alarm", f"add {', '.join(missing)}"
        )


def _check_period(spec: Mapping[str, Any], period: Any, where: str) -> int:
    period = require_int(spec, period, where)
    if period in (10, 20, 30) or (period > 0 and period % 60 == 0):
        return period
    raise spec_error(spec, where, f"{period} s is not a valid alarm period", "use 10, 20, 30 or a multiple of 60 seconds")


def _check_statistic(spec: Mapping[str, Any], stat: Any, where: str) -> None:
    if stat in STATISTICS or (isinstance(stat, str) and _EXTENDED_STAT_RE.match(stat)):
        return
    raise spec_error(
        spec,
        where,
        f"{stat!r} is not a CloudWatch statistic",
        f"use one of {', '.join(STATISTICS)} or an extended statistic such as p99, p99.9, tm90, IQM, TM(10%:90%)",
    )


def _check_single_metric_stat(spec: Mapping[str, Any]) -> None:
    has_stat, has_ext = "Statistic" in spec, "ExtendedStatistic" in spec
    if has_stat and has_ext:
        raise spec_error(spec, "Statistic/ExtendedStatistic", "both are set", "keep exactly one of them")
    if not (has_stat or has_ext):
        raise spec_error(
            spec,
            "Statistic/ExtendedStatistic",
            "neither is set",
            "set Statistic (e.g. 'Sum') or ExtendedStatistic (e.g. 'p99')",
        )
    if has_stat and spec["Statistic"] not in STATISTICS:
        raise spec_error(
            spec,
            "Statistic",
            f"{spec['Statistic']!r} is not valid",
            f"use one of {', '.join(STATISTICS)} (percentiles go in ExtendedStatistic)",
        )
    if has_ext and not (
        isinstance(spec["ExtendedStatistic"], str) and _EXTENDED_STAT_RE.match(spec["ExtendedStatistic"])
    ):
        raise spec_error(
            spec,
            "ExtendedStatistic",
            f"{spec['ExtendedStatistic']!r} is not a valid extended statistic",
            "use pNN or pNN.NN (e.g. p99, p99.9), tmNN/wmNN/tcNN/tsNN, IQM, TM(X%:Y%) or PR(n:m)",
        )


def _check_metric_name(
    spec: Mapping[str, Any], namespace: Any, metric: Any, where: str, known_metrics: set[tuple[str, str]] | None
) -> None:
    if not isinstance(namespace, str) or not isinstance(metric, str):
        raise spec_error(
            spec, where, f"namespace {namespace!r} and metric name {metric!r} must be strings", "set both as strings"
        )
    if namespace == SAGEMAKER_NAMESPACE:
        extra = {m for ns, m in (known_metrics or ()) if ns == SAGEMAKER_NAMESPACE}
        if metric not in SAGEMAKER_METRICS | extra:
            raise spec_error(
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
        raise spec_error(
            spec,
            where,
            f"unknown metric {metric!r} in namespace {namespace!r}",
            f"use one of the known metrics for that namespace: {', '.join(same_ns) or '(none known)'}",
        )


def _check_evaluation(spec: Mapping[str, Any], period: int) -> None:
    n = require_int(spec, spec["EvaluationPeriods"], "EvaluationPeriods")
    if n < 1:
        raise spec_error(spec, "EvaluationPeriods", f"{n} is below 1", "use at least 1 evaluation period")
    limit = ONE_DAY_S if period < ONE_HOUR_S else SEVEN_DAYS_S
    if n * period > limit:
        raise spec_error(
            spec,
            "EvaluationPeriods*Period",
            f"{n} x {period} s = {n * period} s exceeds {limit} s; {EVALUATION_RANGE_RULE}",
            f"use at most {limit // period} evaluation periods of {period} s, or a longer period",
        )
    m = require_int(spec, spec.get("DatapointsToAlarm", n), "DatapointsToAlarm")
    if not 1 <= m <= n:
        raise spec_error(
            spec,
            "DatapointsToAlarm",
            f"{m} is outside 1..EvaluationPeriods ({n})",
            "set DatapointsToAlarm (the M of 'M out of N') between 1 and EvaluationPeriods",
        )
    treat = spec.get("TreatMissingData", MISSING)
    if treat not in TREAT_MISSING_DATA:
        raise spec_error(spec, "TreatMissingData", f"{treat!r} is not valid", f"use one of {', '.join(TREAT_MISSING_DATA)}")


def _check_threshold(spec: Mapping[str, Any]) -> None:
    op = spec["ComparisonOperator"]
    if op not in COMPARISON_OPERATORS:
        raise spec_error(spec, "ComparisonOperator", f"{op!r} is not valid", f"use one of {', '.join(COMPARISON_OPERATORS)}")
    if op in ANOMALY_BAND_OPERATORS:
        if "ThresholdMetricId" not in spec or "Metrics" not in spec:
            raise spec_error(
                spec,
                "ThresholdMetricId",
                f"{op} compares against an anomaly detection band",
                "add a Metrics query with ANOMALY_DETECTION_BAND(...) and set ThresholdMetricId to its Id",
            )
        if "Threshold" in spec:
            raise spec_error(spec, "Threshold", f"{op} takes its threshold from ThresholdMetricId", "remove Threshold")
        return
    if "ThresholdMetricId" in spec:
        raise spec_error(
            spec,
            "ThresholdMetricId",
            f"only anomaly-band operators use it, not {op}",
            "remove ThresholdMetricId or use an anomaly-band operator",
        )
    if "Threshold" not in spec:
        raise spec_error(spec, "Threshold", f"missing for static operator {op}", "set a numeric Threshold")


def _check_query_ids(spec: Mapping[str, Any], queries: list[Any]) -> list[str]:
    ids: list[str] = []
    for i, query in enumerate(queries):
        where = f"Metrics[{i}]"
        if not isinstance(query, Mapping):
            raise spec_error(
                spec,
                where,
                f"expected a MetricDataQuery dict, got {type(query).__name__}",
                "pass dicts with Id and Expression or MetricStat",
            )
        qid = query.get("Id")
        if not isinstance(qid, str) or not _ID_RE.match(qid):
            raise spec_error(
                spec,
                f"{where}.Id",
                f"{qid!r} is not a valid Id",
                "start with a lowercase letter and use only letters, digits and '_'",
            )
        if qid in ids:
            raise spec_error(spec, f"{where}.Id", f"duplicate Id {qid!r}", "give every query a unique Id")
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
        raise spec_error(
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
            raise spec_error(
                spec,
                f"{where}.MetricStat",
                "needs Metric, Period and Stat",
                "set MetricStat={'Metric': {...}, 'Period': 300, 'Stat': 'Sum'}",
            )
        for key in ("Period", "Stat"):
            if key not in stat:
                raise spec_error(spec, f"{where}.MetricStat.{key}", "missing", f"set MetricStat.{key}")
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
        raise spec_error(spec, f"{where}.Expression", "empty", "write a metric math expression such as 'm1 / m2'")
    if expression.lstrip().upper().startswith("SELECT"):
        return  # Metrics Insights query: no Id references to check
    for ref in referenced_ids(expression):
        if ref == query["Id"]:
            raise spec_error(
                spec, f"{where}.Expression", "the expression refers to its own Id", "refer only to other queries"
            )
        if ref not in ids:
            raise spec_error(
                spec,
                f"{where}.Expression",
                f"refers to undefined Id {ref!r}",
                f"use one of the defined Ids: {', '.join(ids)}",
            )


def _check_metrics(spec: Mapping[str, Any], known_metrics: set[tuple[str, str]] | None) -> int:
    """Validate a metric-math alarm's Metrics list; return the alarm period (largest query period)."""
    forbidden = [f for f in SINGLE_METRIC_ONLY_FIELDS if f in spec]
    if forbidden:
        raise spec_error(
            spec,
            ", ".join(forbidden),
            "not allowed together with Metrics",
            "move them into MetricStat entries of Metrics",
        )
    queries = spec["Metrics"]
    if not isinstance(queries, list) or not queries:
        raise spec_error(spec, "Metrics", "must be a non-empty list of MetricDataQuery dicts", "pass a list of queries")
    ids = _check_query_ids(spec, queries)
    n_metrics = sum("MetricStat" in q for q in queries)
    if n_metrics > MAX_METRICS_IN_MATH_ALARM:
        raise spec_error(
            spec, "Metrics", f"{n_metrics} metrics (MetricStat queries)", f"use at most {MAX_METRICS_IN_MATH_ALARM}"
        )
    returning = [q["Id"] for q in queries if q.get("ReturnData", True)]
    # an anomaly-detection alarm returns the watched metric and its band (ThresholdMetricId)
    allowed = 2 if spec.get("ThresholdMetricId") in returning else 1
    if len(returning) != allowed:
        raise spec_error(
            spec,
            "Metrics[].ReturnData",
            f"{len(returning)} queries return data ({', '.join(returning) or 'none'}; "
            "an omitted ReturnData means true)",
            "set ReturnData true on exactly the one query the alarm watches and false on all others",
        )
    for i, query in enumerate(queries):
        _check_query(spec, i, query, ids, known_metrics)
    if "ThresholdMetricId" in spec and spec["ThresholdMetricId"] not in ids:
        raise spec_error(
            spec,
            "ThresholdMetricId",
            f"{spec['ThresholdMetricId']!r} is not a query Id",
            f"use one of {', '.join(ids)}",
        )
    return alarm_period(spec)


@functools.lru_cache(maxsize=1)
def _put_metric_alarm_shape() -> Any:
    from ..aws import service_model

    return service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape


def _botocore_errors(spec: Mapping[str, Any]) -> str:
    """Return botocore's PutMetricAlarm request-validation report ('' when the request shape is valid)."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(dict(spec), _put_metric_alarm_shape())
    return report.generate_report() if report.has_errors() else ""
