"""Local mode only: the emulator's CloudWatch as CloudWatch documents it (percentiles, composite alarms, evaluation)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
from typing import Any

import pandas as pd

from .. import alarms, alerting

PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_RULE_CALL = re.compile(r'(ALARM|OK|INSUFFICIENT_DATA)\(\s*"?([^")]+?)"?\s*\)')
_RULE_WORDS = re.compile(r"\b(AND|OR|NOT|TRUE|FALSE)\b")
_CLOCK: dict[str, Any] = {}  # "now" (aware UTC) and "lookback" (timedelta) once evaluate_alarms_at was called
_LOCK = threading.Lock()
_EVALUATED: dict[tuple, tuple] = {}  # (account, region) -> what the last evaluation saw
MOTO_GET_METRIC_DATA = None  # moto's own GetMetricData, once install() replaced it (tests compare with it)


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile of raw values by nearest rank: the smallest value with at least p% of the values at or
    below it (an observed value, as CloudWatch returns for raw data); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def percentile_of(stats, stat: str) -> float | None:
    """A percentile statistic (``p99``, ``p99.9``) of the datums of a moto ``Statistics``: raw values, and statistic
    sets only where CloudWatch can take percentiles of them (SampleCount 1, or Minimum equal to Maximum)."""
    m = PERCENTILE.match(stat)
    if not m:
        return None
    values = list(stats.metric_single_values_list)
    for s in stats.metric_aggregated_list:
        if s.sample_count == 1 or s.min == s.max:
            values += [float(s.min)] * int(s.sample_count)
    return percentile(values, float(m.group(1)))


def evaluate_alarms_at(now: dt.datetime | None, lookback: dt.timedelta = dt.timedelta(days=30)) -> None:
    """Evaluate alarms whenever they are described, as CloudWatch would at ``now`` (None: stop evaluating, as in
    local mode, where the suite drives alarm states itself), over the metric history since ``now - lookback``."""
    with _LOCK:
        _CLOCK.clear()
        _EVALUATED.clear()
        if now is not None:
            _CLOCK.update(now=now.astimezone(dt.timezone.utc), lookback=lookback)


def spec_of(alarm) -> dict:
    """A moto alarm as the PutMetricAlarm request that made it (the shape the suite's evaluator reads)."""
    spec: dict[str, Any] = {"AlarmName": alarm.name, "ComparisonOperator": alarm.comparison_operator,
                            "EvaluationPeriods": int(alarm.evaluation_periods),
                            "TreatMissingData": alarm.treat_missing_data or alarms.MISSING}
    if alarm.threshold is not None:
        spec["Threshold"] = float(alarm.threshold)
    if alarm.datapoints_to_alarm:
        spec["DatapointsToAlarm"] = int(alarm.datapoints_to_alarm)
    if alarm.threshold_metric_id:
        spec["ThresholdMetricId"] = alarm.threshold_metric_id
    if alarm.metric_data_queries:
        spec["Metrics"] = []
        for q in alarm.metric_data_queries:
            query: dict[str, Any] = {"Id": q.id, "ReturnData": str(q.return_data).lower() != "false"}
            if q.expression:
                query["Expression"] = q.expression
            if q.period:
                query["Period"] = int(q.period)
            if q.metric_stat is not None:
                metric = q.metric_stat.metric
                query["MetricStat"] = {"Metric": {"Namespace": metric.namespace, "MetricName": metric.metric_name,
                                                  "Dimensions": [{"Name": d.name, "Value": d.value}
                                                                 for d in metric.dimensions]},
                                       "Period": int(q.metric_stat.period), "Stat": q.metric_stat.stat}
            spec["Metrics"].append(query)
        return spec
    spec.update(Namespace=alarm.namespace, MetricName=alarm.metric_name, Period=int(alarm.period),
                Dimensions=[{"Name": d.name, "Value": d.value} for d in alarm.dimensions])
    spec["ExtendedStatistic" if alarm.extended_statistic else "Statistic"] = alarm.extended_statistic or alarm.statistic
    return spec


def _naive(t: pd.Timestamp) -> dt.datetime:
    return t.tz_convert("UTC").tz_localize(None).to_pydatetime() if t.tzinfo else t.to_pydatetime()


def metric_series(backend, metric_stat: dict, start: dt.datetime, end: dt.datetime) -> pd.Series:
    """What GetMetricData answers for one MetricStat over [start, end) on the period grid, read from the store in one
    pass (NaN where a period has no datum); the values come from moto's own statistics (with percentiles added)."""
    from moto.cloudwatch.models import Dimension, Statistics

    period = int(metric_stat["Period"])
    grid = alerting.period_grid(period, start, end)
    if not len(grid):
        return pd.Series([], index=grid, dtype=float)
    metric = metric_stat["Metric"]
    dims = sorted(Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
    first, stop = _naive(grid[0]), _naive(pd.Timestamp(end))
    buckets: dict[int, list] = {}
    for md in backend.get_all_metrics():
        if (md.namespace == metric["Namespace"] and md.name == metric["MetricName"] and first <= md.timestamp < stop
                and sorted(md.dimensions) == dims):
            buckets.setdefault(int((md.timestamp - first).total_seconds()) // period, []).append(md)
    values = []
    for i, t in enumerate(grid):
        stats = Statistics([metric_stat["Stat"]], _naive(t))
        stats.metric_data = buckets.get(i, [])
        v = stats.get_statistics_for_type(metric_stat["Stat"]) if stats.metric_data else None
        values.append(float("nan") if v is None else float(v))
    return pd.Series(values, index=grid, dtype=float)


def one_metric_stat(backend, query: dict, start_time: dt.datetime, end_time: dt.datetime, scan_by: str) -> list[dict]:
    """Speed, not behaviour: moto's GetMetricData for one MetricStat query, its datums put in their periods in one pass
    (moto scans every datum of the range once per period) and the values from moto's own statistics. The answer is
    moto's: periods from ``start_time``, datums in [start, end), a dimension filter that skips the namespace."""
    from moto.cloudwatch.exceptions import ValidationError
    from moto.cloudwatch.models import Dimension, Statistics

    start_time, end_time = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise ValidationError("The parameter EndTime must be greater than StartTime." if start_time > end_time
                              else "The parameter StartTime must not equal parameter EndTime.")
    metric_stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
    period = int(metric_stat["Period"])
    dims = [Dimension(name=d["Name"], value=d["Value"]) for d in metric.get("Dimensions", [])]
    unit, stat = metric_stat.get("Unit"), metric_stat["Stat"]
    buckets: dict[int, list] = {}
    for md in backend.get_all_metrics():
        if md.name != metric["MetricName"] or not start_time <= md.timestamp < end_time:
            continue
        if (sorted(md.dimensions) != sorted(dims)) if dims else md.namespace != metric["Namespace"]:
            continue
        if unit and md.unit != unit:
            continue
        buckets.setdefault(int((md.timestamp - start_time).total_seconds()) // period, []).append(md)
    values, timestamps = [], []
    for i in sorted(buckets):
        stats = Statistics([stat], start_time + dt.timedelta(seconds=i * period))
        stats.metric_data = buckets[i]
        values.append(stats.get_statistics_for_type(stat))
        timestamps.append(stats.timestamp)
    if scan_by == "TimestampDescending":
        values.reverse()
        timestamps.reverse()
    label = query.get("Label") or f"{metric['MetricName']} {stat}"
    result = {"id": query["Id"], "label": label, "values": values, "timestamps": timestamps, "status_code": "Complete"}
    return [result] if query.get("ReturnData", True) else []


def rule_state(rule: str, states: dict[str, str]) -> str:
    """A composite alarm's state from its rule (``ALARM("a") OR NOT OK(b)``, TRUE, FALSE, AND, OR, NOT, brackets)
    and its children's states: ALARM when the rule holds, else OK."""

    def call(m: re.Match) -> str:
        return f" {states.get(m.group(2).strip(), alarms.INSUFFICIENT_DATA) == m.group(1)} "

    text = _RULE_WORDS.sub(lambda m: {"AND": " and ", "OR": " or ", "NOT": " not ", "TRUE": " True ",
                                      "FALSE": " False "}[m.group(1)], _RULE_CALL.sub(call, rule))
    if re.sub(r"\b(True|False|and|or|not)\b|[()\s]", "", text):
        raise ValueError(f"AlarmRule {rule!r}: only ALARM/OK/INSUFFICIENT_DATA(name), TRUE, FALSE, AND, OR, NOT")
    return alarms.ALARM if eval(text, {"__builtins__": {}}) else alarms.OK  # noqa: S307 - only booleans remain


def evaluate_all(backend) -> None:
    """Evaluate every alarm of ``backend`` at the emulator's clock (metric alarms first, then composite rules), record
    state changes and notify their SNS actions as CloudWatch does; nothing when the clock is not set or nothing
    changed since last time."""
    if not _CLOCK:
        return
    with _LOCK:
        seen = (len(backend.metric_data), tuple(sorted((a.name, str(a.configuration_updated_timestamp))
                                                       for a in backend.alarms.values())))
        key = (backend.account_id, backend.region_name)
        if _EVALUATED.get(key) == seen:
            return
        now, lookback = _CLOCK["now"], _CLOCK["lookback"]
        when = f"evaluated by the emulator at {now.isoformat()}"
        end, start = now + dt.timedelta(seconds=1), now - lookback
        for alarm in [a for a in backend.alarms.values() if a.rule is None]:
            spec = spec_of(alarm)
            if any("Expression" in q and "ANOMALY_DETECTION_BAND" in q["Expression"] for q in spec.get("Metrics", [])):
                continue  # bands are trained by CloudWatch over weeks; the emulator leaves such alarms as they are
            history = alerting.history_of(spec, lambda ms: metric_series(backend, ms, start, end))
            _, state = alerting.evaluated(spec, history)
            _change(backend, alarm, state, when, now)
        states = {a.name: a.state_value for a in backend.alarms.values()}
        for alarm in [a for a in backend.alarms.values() if a.rule is not None]:
            _change(backend, alarm, rule_state(alarm.rule, states), when, now)
        _EVALUATED[key] = seen


def _change(backend, alarm, state: str, reason: str, now: dt.datetime) -> None:
    """Move ``alarm`` to ``state`` as CloudWatch does: the state recorded, and the state's SNS actions notified."""
    if state == alarm.state_value:
        return
    old = alarm.state_value
    alarm.update_state(reason, "{}", state)
    _notify(backend, alarm, old, reason, now)


def _notify(backend, alarm, old: str, reason: str, now: dt.datetime) -> None:
    """Publish an alarm's state change to the SNS topics among the actions of its new state (when actions are on)."""
    state = alarm.state_value
    actions = {alarms.ALARM: alarm.alarm_actions, alarms.OK: alarm.ok_actions,
               alarms.INSUFFICIENT_DATA: alarm.insufficient_data_actions}[state] if alarm.actions_enabled else []
    topics = [arn for arn in actions or [] if ":sns:" in arn]
    if not topics:
        return
    from moto.sns.models import sns_backends

    message = json.dumps({"AlarmName": alarm.name, "AlarmDescription": alarm.description, "NewStateValue": state,
                          "OldStateValue": old, "NewStateReason": reason, "StateChangeTime": now.isoformat(),
                          "Region": backend.region_name, "AlarmArn": alarm.alarm_arn})
    for arn in topics:
        try:
            sns_backends[backend.account_id][backend.region_name].publish(
                message, arn=arn, subject=f'{state}: "{alarm.name}"'[:99])
        except Exception:  # noqa: BLE001 - a topic that is gone: CloudWatch records the failed action and goes on
            continue


def install() -> None:
    """Patch moto's CloudWatch: percentile statistics (GetMetricData, GetMetricStatistics' ExtendedStatistics), a
    one-pass GetMetricData for one MetricStat query,
    PutCompositeAlarm, Put/DescribeAnomalyDetector(s) (stored, never trained), DescribeAlarms' AlarmTypes, and, once
    :func:`evaluate_alarms_at` set a clock, alarm evaluation when alarms are described and SNS notifications of state
    changes (SetAlarmState's too), as CloudWatch sends them."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.cloudwatch import models, responses

    original_stat = models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self, stat: str):
        return percentile_of(self, stat) if PERCENTILE.match(stat) else original_stat(self, stat)

    models.Statistics.get_statistics_for_type = get_statistics_for_type
    global MOTO_GET_METRIC_DATA
    MOTO_GET_METRIC_DATA = original_get_metric_data = models.CloudWatchBackend.get_metric_data

    def get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
        if len(queries) == 1 and "MetricStat" in queries[0]:  # all the suite sends
            results = one_metric_stat(self, queries[0], start_time, end_time, scan_by)
        else:
            results = original_get_metric_data(self, queries, start_time, end_time, scan_by)
        for r in results:  # a period whose datums have no such statistic (a percentile of a set) is left out
            kept = [(t, v) for t, v in zip(r["timestamps"], r["values"]) if v is not None]
            r["timestamps"], r["values"] = [t for t, _ in kept], [v for _, v in kept]
        return results

    models.CloudWatchBackend.get_metric_data = get_metric_data

    def extended_statistics(self) -> dict | None:
        wanted = getattr(self, "extended", None)
        return {p: percentile_of(self, p) for p in wanted} if wanted else None

    models.Statistics.extended_statistics = property(extended_statistics)

    def get_metric_statistics(self) -> ActionResult:
        result = original_get_metric_statistics(self)
        extended = self._get_param("ExtendedStatistics") or []
        for bad in [p for p in extended if not PERCENTILE.match(p)]:
            from moto.cloudwatch.exceptions import InvalidParameterValue

            raise InvalidParameterValue(f"The value {bad} for parameter ExtendedStatistics is not supported.")
        for point in result.result["Datapoints"] if hasattr(result, "result") else []:
            point.extended = extended
        return result

    original_get_metric_statistics = responses.CloudWatchResponse.get_metric_statistics
    responses.CloudWatchResponse.get_metric_statistics = get_metric_statistics

    def put_composite_alarm(self) -> EmptyResult:
        rule = self._get_param("AlarmRule")
        try:
            rule_state(rule, {})  # a rule the emulator cannot read is refused now, not at evaluation
        except ValueError as exc:
            from moto.cloudwatch.exceptions import ValidationError

            raise ValidationError(str(exc)) from None
        self.cloudwatch_backend.put_metric_alarm(
            name=self._get_param("AlarmName"), namespace=None, metric_name=None, metric_data_queries=None,
            comparison_operator=None, evaluation_periods=None, datapoints_to_alarm=None, period=None,
            threshold=None, statistic=None, extended_statistic=None,
            description=self._get_param("AlarmDescription"), dimensions=[],
            alarm_actions=self._get_param("AlarmActions", []), ok_actions=self._get_param("OKActions", []),
            insufficient_data_actions=self._get_param("InsufficientDataActions", []), unit=None,
            actions_enabled=self._get_param("ActionsEnabled"), treat_missing_data=None,
            evaluate_low_sample_count_percentile=None, threshold_metric_id=None, rule=rule,
            tags=self._get_param("Tags", []))
        return EmptyResult()

    responses.CloudWatchResponse.put_composite_alarm = put_composite_alarm

    def detectors(backend) -> dict:
        if not hasattr(backend, "anomaly_detectors"):
            backend.anomaly_detectors = {}
        return backend.anomaly_detectors

    def put_anomaly_detector(self) -> EmptyResult:
        single = self._get_param("SingleMetricAnomalyDetector") or {
            k: self._get_param(k) for k in ("Namespace", "MetricName", "Dimensions", "Stat") if self._get_param(k)}
        if not single.get("MetricName") or not single.get("Namespace") or not single.get("Stat"):
            from moto.cloudwatch.exceptions import InvalidParameterValue

            raise InvalidParameterValue("SingleMetricAnomalyDetector needs Namespace, MetricName and Stat")
        dims = sorted((d["Name"], d["Value"]) for d in single.get("Dimensions") or [])
        key = (single["Namespace"], single["MetricName"], tuple(dims), single["Stat"])
        detectors(self.cloudwatch_backend)[key] = {
            "SingleMetricAnomalyDetector": {**single, "Dimensions": single.get("Dimensions") or []},
            "Configuration": self._get_param("Configuration") or {"ExcludedTimeRanges": []},
            "StateValue": "PENDING_TRAINING"}  # the emulator never trains a band
        return EmptyResult()

    def describe_anomaly_detectors(self) -> ActionResult:
        name, namespace = self._get_param("MetricName"), self._get_param("Namespace")
        found = [d for d in detectors(self.cloudwatch_backend).values()
                 if (not name or d["SingleMetricAnomalyDetector"]["MetricName"] == name)
                 and (not namespace or d["SingleMetricAnomalyDetector"]["Namespace"] == namespace)]
        return ActionResult({"AnomalyDetectors": found})

    responses.CloudWatchResponse.put_anomaly_detector = put_anomaly_detector
    responses.CloudWatchResponse.describe_anomaly_detectors = describe_anomaly_detectors

    original_describe = responses.CloudWatchResponse.describe_alarms

    def describe_alarms(self) -> ActionResult:
        evaluate_all(self.cloudwatch_backend)
        result = original_describe(self)
        types = self._get_param("AlarmTypes") or ["MetricAlarm"]  # CloudWatch's default: metric alarms only
        if hasattr(result, "result"):
            if "MetricAlarm" not in types:
                result.result["MetricAlarms"] = []
            if "CompositeAlarm" not in types:
                result.result["CompositeAlarms"] = []
        return result

    responses.CloudWatchResponse.describe_alarms = describe_alarms

    original_set_state = responses.CloudWatchResponse.set_alarm_state

    def set_alarm_state(self) -> EmptyResult:
        alarm = self.cloudwatch_backend.alarms.get(self._get_param("AlarmName"))
        old = alarm.state_value if alarm is not None else None
        result = original_set_state(self)
        if _CLOCK and alarm is not None and alarm.state_value != old:  # served for aws mode: CloudWatch notifies
            _notify(self.cloudwatch_backend, alarm, old, alarm.state_reason, _CLOCK["now"])
        return result

    responses.CloudWatchResponse.set_alarm_state = set_alarm_state
