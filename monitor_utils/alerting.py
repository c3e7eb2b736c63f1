"""Alarms and paging on AWS: specs from params, idempotent PutMetricAlarm and SNS, metric history, local alarm evaluation and test-fire."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Callable

import pandas as pd

from . import alarms
from .alarms.constants import OVERRIDABLE_FIELDS
from .aws import Aws, ensure_subscription, ensure_topic, partition
from .config import Params

DAY, HOUR = 86_400, 3_600


def _dims(cfg: Params) -> list[dict]:
    return [{"Name": "EndpointName", "Value": cfg.endpoint_name}, {"Name": "VariantName", "Value": cfg.variant_name}]


def alarm_specs(cfg: Params, topic_arn: str, reports: str | None = None) -> list[dict]:
    """Every alarm of the suite as validated PutMetricAlarm requests, thresholds from the ``thresholds`` params.

    Quality alarms look back over the label wait plus two windows (labels arrive days late, and
    their metrics are stamped at the window end), so late data still reaches the evaluation range.
    ``reports`` (default: the newest run's index in S3 when the run's records go there,
    :func:`records.latest_index_uri`) is named at the end of every description, so each page says where to look.
    """
    if reports is None:
        from .records import latest_index_uri

        reports = latest_index_uri()
    t = cfg.thresholds
    period = DAY if cfg.window == "daily" else HOUR
    quality_periods = min(7, cfg.label_wait_days + 2) if period == DAY else min(168, 24 * cfg.label_wait_days + 2)
    actions = {"AlarmActions": [topic_arn], "OKActions": [topic_arn]}
    name = cfg.endpoint_name

    def suite_metric(alarm: str, metric: str, stat: str, op: str, threshold: float, n: int, m: int, missing: str,
                     description: str, dims: list[dict] | None = None) -> dict:
        return {"AlarmName": f"{name}-{alarm}", "AlarmDescription": description, "Namespace": cfg.namespace,
                "MetricName": metric, "Dimensions": _dims(cfg) if dims is None else dims, "Statistic": stat,
                "Period": period, "EvaluationPeriods": n, "DatapointsToAlarm": m, "Threshold": float(threshold),
                "ComparisonOperator": op, "TreatMissingData": missing, **actions}

    specs = [
        suite_metric("rmse", "RMSE", "Maximum", "GreaterThanThreshold", t["rmse_max"], quality_periods, 2, "missing",
                     f"Model RMSE (years) above {t['rmse_max']:g} in 2 of the last {quality_periods} labelled windows"),
        suite_metric("r2", "R2", "Minimum", "LessThanThreshold", t["r2_min"], quality_periods, 2, "missing",
                     f"Model R2 below {t['r2_min']:g} in 2 of the last {quality_periods} labelled windows"),
        suite_metric("estimated-rmse", "EstimatedRMSE", "Maximum", "GreaterThanThreshold", cfg.estimated_rmse_max,
                     2, 1, "missing", f"Label-free estimated RMSE (years) above {cfg.estimated_rmse_max:g} in a window "
                     "that just closed: quality has probably dropped, days before labels confirm it"),
        suite_metric("data-drift", "DataDrift", "Maximum", "GreaterThanOrEqualToThreshold", 1, 2, 1, "missing",
                     "Input drift against the training baseline (BH-corrected KS and an effect-size gate)"),
        suite_metric("heartbeat", "SuiteHeartbeat", "Maximum", "LessThanThreshold", 1, 2, 2, "breaching",
                     "The monitoring suite has not run for two periods: someone should look",
                     dims=[{"Name": "EndpointName", "Value": name}]),
        alarms.error_rate_alarm(f"{name}-error-rate", cfg.endpoint_name, cfg.variant_name, t["error_rate_max"],
                                period=HOUR, evaluation_periods=3, datapoints_to_alarm=2, actions=[topic_arn]),
        {"AlarmName": f"{name}-latency-p99", "AlarmDescription": f"ModelLatency p99 above {t['latency_p99_ms_max']:g} ms",
         "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": _dims(cfg), "ExtendedStatistic": "p99",
         "Period": HOUR, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": t["latency_p99_ms_max"] * 1000.0,
         "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching", "Unit": "Microseconds", **actions},
    ]
    if cfg.alarms["data_quality"]:  # opt-in: Model Monitor's constraint violations page only when asked to
        specs.append(suite_metric("data-quality", "DataQualityViolations", "Maximum", "GreaterThanOrEqualToThreshold",
                                  1, 2, 1, "missing", "Data-quality violations (Model Monitor's constraint checks: "
                                  "completeness, data types, value domains, columns, drift) in a checked window; "
                                  "the window's constraint_violations.json names them"))
    if reports:
        for spec in specs:
            spec["AlarmDescription"] = f"{spec['AlarmDescription']}. Reports: {reports}"[:1024]
    return [alarms.validate_alarm_spec(s) for s in apply_overrides(specs, cfg.alarm_overrides, name)]


LABEL_BASED_METRICS = frozenset({"RMSE", "R2", "MSE", "MAE", "MedianAE", "Bias", "Count", "LabelCoverage", "SegmentRMSE",
                                 "SegmentCount", "TargetDrift"})


def known_at(spec: dict, datapoint_time: dt.datetime, label_wait_days: int) -> dt.datetime:
    """When a datapoint of ``spec``'s metric could first exist: its window's end for label-free metrics, the end
    plus ``label_wait_days`` for label-based ones, the end of its period for AWS service metrics."""
    metrics = [q["MetricStat"]["Metric"] for q in spec.get("Metrics", []) if "MetricStat" in q] or [spec]
    namespaces = {m.get("Namespace", "") for m in metrics}
    if any(n.startswith("AWS/") for n in namespaces):
        return datapoint_time + dt.timedelta(seconds=alarms.alarm_period(spec))
    if any(m.get("MetricName") in LABEL_BASED_METRICS for m in metrics):
        return datapoint_time + dt.timedelta(days=label_wait_days)
    return datapoint_time


OVERRIDABLE = OVERRIDABLE_FIELDS


def apply_overrides(specs: list[dict], overrides: dict, endpoint_name: str) -> list[dict]:
    """Apply ``alarm_overrides`` from params; unknown alarms or fields fail naming them and what is accepted."""
    keys = {s["AlarmName"].removeprefix(f"{endpoint_name}-"): s for s in specs}
    for key, fields in (overrides or {}).items():
        if key not in keys:
            raise alarms.AlarmSpecError(f"alarm_overrides: unknown alarm {key!r}; alarms are {', '.join(keys)}")
        if not isinstance(fields, dict):
            raise alarms.AlarmSpecError(f"alarm_overrides.{key} must map PutMetricAlarm fields to values")
        for field_name, value in fields.items():
            if field_name not in OVERRIDABLE:
                raise alarms.AlarmSpecError(f"alarm_overrides.{key}: field {field_name!r} cannot be overridden; "
                                            f"accepted: {', '.join(OVERRIDABLE)}")
            spec = keys[key]
            if field_name == "Period" and "Metrics" in spec:
                for q in spec["Metrics"]:
                    if "MetricStat" in q:
                        q["MetricStat"]["Period"] = value
            else:
                spec[field_name] = value
    return specs


COMPOSITE_CHILDREN = ("rmse", "r2", "estimated-rmse", "error-rate")


def composite_spec(cfg: Params, topic_arn: str) -> dict:
    """The ModelUnhealthy composite alarm (aws mode): quality or endpoint errors, one page instead of three."""
    from .records import latest_index_uri

    rule = " OR ".join(f'ALARM("{cfg.endpoint_name}-{k}")' for k in COMPOSITE_CHILDREN)
    reports = latest_index_uri()
    return {"AlarmName": f"{cfg.endpoint_name}-ModelUnhealthy", "AlarmRule": rule,
            "AlarmDescription": "Model quality or endpoint errors are in ALARM" + (f". Reports: {reports}" if reports else ""),
            "ActionsEnabled": True,
            "AlarmActions": [topic_arn], "OKActions": [topic_arn]}


def composite_state(cfg: Params, states: dict[str, str]) -> str:
    """What CloudWatch would make of the composite rule given its children's states (used on the emulator)."""
    children = [states.get(f"{cfg.endpoint_name}-{k}", alarms.INSUFFICIENT_DATA) for k in COMPOSITE_CHILDREN]
    return alarms.ALARM if alarms.ALARM in children else alarms.OK


def anomaly_spec(cfg: Params, topic_arn: str) -> dict:
    """An anomaly-detection alarm on Invocations (aws mode; CloudWatch trains the band on two weeks of history)."""
    metric = {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": _dims(cfg)}
    return alarms.validate_alarm_spec({
        "AlarmName": f"{cfg.endpoint_name}-invocations-anomaly",
        "AlarmDescription": "Traffic outside its expected band (anomaly detection, 2 standard deviations)",
        "Metrics": [{"Id": "m1", "MetricStat": {"Metric": metric, "Period": HOUR, "Stat": "Sum"}, "ReturnData": True},
                    {"Id": "ad1", "Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "ReturnData": True}],
        "ThresholdMetricId": "ad1", "ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold",
        "EvaluationPeriods": 3, "DatapointsToAlarm": 3, "TreatMissingData": "breaching",
        "AlarmActions": [topic_arn], "OKActions": [topic_arn]})


def put_aws_only_alarms(aws: Aws, cfg: Params, topic_arn: str) -> list[str]:
    """Composite and anomaly-detection alarms, which only real CloudWatch evaluates; put only when changed."""
    cw = aws.client("cloudwatch")
    put = []
    composite = composite_spec(cfg, topic_arn)
    current = cw.describe_alarms(AlarmNames=[composite["AlarmName"]], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
    if not current or current[0].get("AlarmRule") != composite["AlarmRule"]:
        cw.put_composite_alarm(**composite)
        put.append(composite["AlarmName"])
    anomaly = anomaly_spec(cfg, topic_arn)
    existing = describe(aws, [anomaly["AlarmName"]])
    if anomaly["AlarmName"] not in existing or not _same(existing[anomaly["AlarmName"]], anomaly):
        cw.put_anomaly_detector(SingleMetricAnomalyDetector={
            "Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": _dims(cfg), "Stat": "Sum"})
        cw.put_metric_alarm(**anomaly)
        put.append(anomaly["AlarmName"])
    return put


_COMPARED = ("AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions", "MetricName",
             "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods",
             "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "Metrics")


def _same(existing: dict, spec: dict) -> bool:
    def norm(d: dict) -> dict:
        out = {k: d.get(k) for k in _COMPARED if d.get(k) not in (None, [], "")}
        out.pop("ActionsEnabled", None)
        if "Metrics" in out:
            out["Metrics"] = [{k: v for k, v in q.items() if k != "Label"} for q in out["Metrics"]]
        return json.loads(json.dumps(out, sort_keys=True, default=str))

    return norm(existing) == norm(spec)


def describe(aws: Aws, names: list[str]) -> dict[str, dict]:
    """Current alarm descriptions by name."""
    cw = aws.client("cloudwatch")
    out = {}
    for page in cw.get_paginator("describe_alarms").paginate(AlarmNames=names, AlarmTypes=["MetricAlarm"]):
        for a in page["MetricAlarms"]:
            out[a["AlarmName"]] = a
    return out


def put_alarms(aws: Aws, specs: list[dict]) -> list[str]:
    """PutMetricAlarm for each spec that is new or changed; return the names actually put (empty on a rerun)."""
    existing = describe(aws, [s["AlarmName"] for s in specs])
    changed = []
    for spec in specs:
        if spec["AlarmName"] in existing and _same(existing[spec["AlarmName"]], spec):
            continue
        aws.client("cloudwatch").put_metric_alarm(**spec)
        changed.append(spec["AlarmName"])
    return changed


def alarm_arns(cfg: Params, topic_arn: str, region: str, account: str) -> list[str]:
    """ARNs of every alarm the suite puts (those only real CloudWatch evaluates included)."""
    names = [s["AlarmName"] for s in alarm_specs(cfg, topic_arn)]
    names += [composite_spec(cfg, topic_arn)["AlarmName"], anomaly_spec(cfg, topic_arn)["AlarmName"]]
    return [f"arn:{partition(region)}:cloudwatch:{region}:{account}:alarm:{n}" for n in names]


def topic_policy(cfg: Params, topic_arn: str, region: str, account: str) -> dict:
    """The alert topic's policy: CloudWatch may publish to it only for the suite's own alarms in this account
    (``aws:SourceAccount`` and ``aws:SourceArn``: no other account's alarm can page through it)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowCloudWatchAlarmsOfThisSuite", "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish", "Resource": topic_arn,
        "Condition": {"StringEquals": {"aws:SourceAccount": account},
                      "ArnLike": {"aws:SourceArn": alarm_arns(cfg, topic_arn, region, account)}}}]}


def ensure_topic_policy(aws: Aws, cfg: Params, topic_arn: str) -> bool:
    """Set :func:`topic_policy` on the topic unless it is already there; return True when it was set."""
    sns = aws.client("sns")
    policy = topic_policy(cfg, topic_arn, aws.region, aws.account_id)
    current = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("Policy")
    if current and json.loads(current) == policy:
        return False
    sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    return True


def ensure_paging(aws: Aws, cfg: Params) -> tuple[str, list[str]]:
    """The alert topic with a policy letting CloudWatch publish (:func:`topic_policy`), and its e-mail
    subscriptions (none duplicated)."""
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    ensure_topic_policy(aws, cfg, topic_arn)
    subs = [ensure_subscription(aws, topic_arn, "email", e) for e in cfg.alert_emails]
    return topic_arn, subs


# --- metric history -----------------------------------------------------------------------------


def metric_series(aws: Aws, metric_stat: dict, start: dt.datetime, end: dt.datetime) -> pd.Series:
    """One metric's values on the period grid [start, end), indexed by each period's aligned timestamp (NaN = missing)."""
    period = int(metric_stat["Period"])
    grid = period_grid(period, start, end)
    if not len(grid):
        return pd.Series([], index=grid, dtype=float)
    query = {"Id": "q", "MetricStat": {"Metric": metric_stat["Metric"], "Period": period, "Stat": metric_stat["Stat"]},
             "ReturnData": True}
    first = grid[0].to_pydatetime()
    kwargs = {"MetricDataQueries": [query], "StartTime": first, "EndTime": end}
    values: dict = {}
    while True:
        resp = aws.client("cloudwatch").get_metric_data(**kwargs)
        for r in resp["MetricDataResults"]:
            for ts, v in zip(r["Timestamps"], r["Values"]):
                t = pd.Timestamp(ts).tz_convert("UTC").floor(f"{period}s")
                if first <= t < end:
                    values[t] = v
        if not resp.get("NextToken"):
            break
        kwargs["NextToken"] = resp["NextToken"]
    return pd.Series([values.get(t, float("nan")) for t in grid], index=grid, dtype=float)


def period_grid(period: int, start: dt.datetime, end: dt.datetime) -> pd.DatetimeIndex:
    """The aligned period starts in [start, end): the first is ``start`` floored to the period."""
    return pd.date_range(pd.Timestamp(start).floor(f"{period}s"), end, freq=f"{period}s", inclusive="left")


def history_of(alarm: dict, series: Callable[[dict], pd.Series]) -> pd.Series:
    """The series an alarm watches, from ``series(metric_stat)`` of each metric it reads (metric math evaluated here)."""
    grid = None

    def fetch(metric_stat: dict) -> list:
        nonlocal grid
        s = series(metric_stat)
        grid = s.index
        return [None if pd.isna(v) else float(v) for v in s]

    values = alarms.alarm_datapoints(alarm, fetch)
    return pd.Series([float("nan") if v is None else v for v in values], index=grid, dtype=float)


def alarm_history(aws: Aws, alarm: dict, start: dt.datetime, end: dt.datetime) -> pd.Series:
    """The series an alarm watches over [start, end) (metric math evaluated locally from its inputs)."""
    return history_of(alarm, lambda metric_stat: metric_series(aws, metric_stat, start, end))


def evaluated(alarm: dict, history: pd.Series) -> tuple[alarms.BacktestResult | None, str]:
    """The alarm replayed over ``history`` from its first datapoint (CloudWatch's M-of-N evaluation, period by
    period) and its state at the end: INSUFFICIENT_DATA when the history holds no datapoint."""
    history = history.iloc[history.notna().to_numpy().argmax():] if history.notna().any() else history
    result = alarms.backtest(alarm, history) if len(history) else None
    return result, (result.timeline["state"].iloc[-1] if result is not None else alarms.INSUFFICIENT_DATA)


def drive_local_alarm(aws: Aws, alarm: dict, new_state: str, reason: str, when: dt.datetime,
                      cfg_for_outbox: Params | None = None) -> bool:
    """Local mode: do what CloudWatch would on a state change (set the state, notify the state's actions)."""
    cw = aws.client("cloudwatch")
    current = cw.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["StateValue"]
    if current == new_state:
        return False
    cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=new_state, StateReason=reason[:1023])
    actions = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}[new_state]
    message = {"AlarmName": alarm["AlarmName"], "AlarmDescription": alarm.get("AlarmDescription"),
               "NewStateValue": new_state, "OldStateValue": current, "NewStateReason": reason,
               "StateChangeTime": when.isoformat(), "Region": aws.region}
    for arn in alarm.get(actions, []):
        if ":sns:" in arn:
            notify(aws, cfg_for_outbox, {"TopicArn": arn, "Subject": f"{new_state}: \"{alarm['AlarmName']}\""[:99],
                                         "Message": json.dumps(message)})
    return True


def notify(aws: Aws, cfg: Params | None, request: dict) -> bool:
    """SNS Publish; when it still fails after retries the message waits in the outbox (True when sent now)."""
    from . import outbox

    try:
        aws.client("sns").publish(**request)
        return True
    except outbox.DELIVERY_ERRORS as exc:
        if cfg is None:
            raise
        outbox.store(aws, cfg, "sns", request, f"{type(exc).__name__}: {exc}")
        return False


def test_fire(aws: Aws, alarm_name: str, topic_arn: str, timeout_s: float = 10.0) -> dict:
    """Set an alarm to ALARM, confirm its notification reaches a subscriber, restore the state.

    In local mode a temporary SQS queue subscribed to the topic is the subscriber and the local
    driver publishes the notification; in aws mode CloudWatch publishes it itself.
    """
    cw, sqs, sns = aws.client("cloudwatch"), aws.client("sqs"), aws.client("sns")
    alarm = describe(aws, [alarm_name])[alarm_name]
    before = alarm["StateValue"]
    queue_url = sqs.create_queue(QueueName=f"{alarm_name}-testfire"[:80])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                                                "Action": "sqs:SendMessage", "Resource": queue_arn,
                                                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]})})
    sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    received = None
    try:
        reason = "test-fire by the monitoring suite (state restored afterwards)"
        if aws.mode == "local":
            drive_local_alarm(aws, alarm, "ALARM", reason, dt.datetime.now(dt.timezone.utc))
        else:
            cw.set_alarm_state(AlarmName=alarm_name, StateValue="ALARM", StateReason=reason)
        deadline = time.monotonic() + timeout_s
        while received is None and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", []):
                body = json.loads(m["Body"])
                inner = json.loads(body.get("Message", "{}")) if isinstance(body.get("Message"), str) else {}
                if inner.get("AlarmName") == alarm_name and inner.get("NewStateValue") == "ALARM":
                    received = inner
    finally:
        cw.set_alarm_state(AlarmName=alarm_name, StateValue=before, StateReason="restored after test-fire")
        sns.unsubscribe(SubscriptionArn=sub)
        sqs.delete_queue(QueueUrl=queue_url)
    return {"alarm": alarm_name, "delivered": received is not None, "restored_state": before,
            "message": received}
