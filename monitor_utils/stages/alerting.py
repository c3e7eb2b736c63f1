"""Alerting stage: paging topic, alarms put idempotently, their states from metric history, a backtest and a test-fire."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .. import alarms, alerting
from .. import history as history_store
from ..aws import Aws
from ..config import Params
from ..results import Series, StageResult, Verdict


def run(cfg: Params, aws: Aws, now: dt.datetime) -> StageResult:
    """Put alarms, evaluate them over history (driving states in local mode), backtest, and test-fire one."""
    topic_arn, subscriptions = alerting.ensure_paging(aws, cfg)
    specs = alerting.alarm_specs(cfg, topic_arn)
    changed = alerting.put_alarms(aws, specs)
    start = now - dt.timedelta(days=cfg.days)
    rows, backtests, transitions, pages = [], {}, [], []
    states = alerting.describe(aws, [s["AlarmName"] for s in specs])
    moved = most_changed_features(aws, cfg)
    quality_alarms = {f"{cfg.endpoint_name}-{q}" for q in QUALITY_ALARMS}
    for spec in specs:
        name = spec["AlarmName"]
        history = alerting.alarm_history(aws, spec, start, now + dt.timedelta(seconds=1))
        result, state = alerting.evaluated(spec, history)
        backtests[name] = result
        note = ""
        if aws.mode == "local":
            alerting.drive_local_alarm(aws, spec, state, page_reason(spec, result, now, moved if name in quality_alarms
                                                                    else ()), now, cfg)
        else:
            state = states.get(name, {}).get("StateValue", state)  # CloudWatch evaluates real alarms itself
        for t in (result.transitions if result is not None else []):
            transitions.append({"alarm": name, **t})
            if t["to"] == alarms.ALARM:
                when = pd.Timestamp(t["timestamp"]).to_pydatetime()
                pages.append({"alarm": name, "datapoint_time": when,
                              "known_at": alerting.known_at(spec, when, cfg.label_wait_days)})
        rows.append({"alarm": name, "state": state, "times_fired": result.times_fired if result else 0,
                     "threshold": spec["Threshold"], "operator": spec["ComparisonOperator"],
                     "period_s": alarms.alarm_period(spec), "evaluation_periods": spec["EvaluationPeriods"],
                     "datapoints_to_alarm": spec.get("DatapointsToAlarm"), "missing_data": spec["TreatMissingData"],
                     "note": note})
    state_by_name = {r["alarm"]: r["state"] for r in rows}
    composite = alerting.composite_spec(cfg, topic_arn)
    if aws.mode == "aws":
        changed += alerting.put_aws_only_alarms(aws, cfg, topic_arn)
        comp = aws.client("cloudwatch").describe_alarms(AlarmNames=[composite["AlarmName"]],
                                                        AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
        comp_state, comp_note = (comp[0]["StateValue"] if comp else "INSUFFICIENT_DATA"), ""
    else:
        comp_state = alerting.composite_state(cfg, state_by_name)
        comp_note = "local: composite and anomaly-detection alarms exist only in aws mode; this state is the suite's reading of the rule"
    rows.append({"alarm": composite["AlarmName"], "state": comp_state, "times_fired": None, "threshold": None,
                 "operator": composite["AlarmRule"], "period_s": None, "evaluation_periods": None,
                 "datapoints_to_alarm": None, "missing_data": None, "note": comp_note})
    wanted = cfg.test_fire == "always" or (cfg.test_fire == "local" and aws.mode == "local")
    fire = alerting.test_fire(aws, f"{cfg.endpoint_name}-heartbeat", topic_arn) if wanted else {"skipped": cfg.test_fire}
    record = {"topic_arn": topic_arn, "subscriptions": subscriptions, "alarms_put": changed,
              "alarms": pd.DataFrame(rows), "transitions": pd.DataFrame(transitions), "test_fire": fire,
              "specs": specs, "pages": sorted(pages, key=lambda p: p["known_at"])}
    in_alarm = [r["alarm"] for r in rows if r["state"] == alarms.ALARM]
    headline = {"in ALARM": in_alarm, "test-fire delivered": fire.get("delivered")}
    quality = next((s["AlarmName"] for s in specs if s["AlarmName"].endswith("-rmse")), None)
    series = None
    if quality and backtests.get(quality) is not None:
        tl = backtests[quality].timeline
        series = Series(f"{quality} datapoints", [f"{t:%Y-%m-%d}" for t in tl["timestamp"]],
                        [None if pd.isna(v) else float(v) for v in tl["value"]],
                        next(s["Threshold"] for s in specs if s["AlarmName"] == quality))
    record["most_changed_features"] = moved
    return StageResult(record, {"backtests": backtests}, headline=headline,
                       verdict=verdict(rows, backtests, fire, moved, cfg.endpoint_name), series=series)


QUALITY_ALARMS = ("rmse", "r2", "estimated-rmse")  # the pages about model quality: they name the features that moved


def page_reason(spec: dict, result: alarms.BacktestResult | None, now: dt.datetime, most_changed=()) -> str:
    """The state reason a local-mode page carries: the latest value against the threshold and, for a page about
    model quality, the features whose attribution moved most ("latest value 11.3 over 9; most changed: ...")."""
    text = f"evaluated by the suite at {now.isoformat()}"
    latest = result.timeline["value"].dropna() if result is not None and len(result.timeline) else pd.Series(dtype=float)
    if len(latest):
        text += f": latest value {latest.iloc[-1]:.3g} against threshold {spec['Threshold']:g}"
    return text + (f"; most changed: {', '.join(most_changed)}" if most_changed else "")


def most_changed_features(aws: Aws, cfg: Params, top: int = 3) -> list[str]:
    """The features whose attribution moved most in the newest window the drift stage checked (empty before the
    drift stage has checked one with attributions)."""
    history, _ = history_store.load_drift(aws, cfg)
    if not len(history) or "attribution_most_changed" not in history:
        return []
    moved = history["attribution_most_changed"].dropna()
    return [str(f) for f in list(moved.iloc[-1])[:top]] if len(moved) else []


def verdict(rows: list[dict], backtests: dict, fire: dict, most_changed: list[str] = (),
            endpoint_name: str = "") -> Verdict:
    """Which alarms are in ALARM, since when and at what value (a quality alarm also names the features whose
    attribution moved most: ``most_changed``); whether the test page arrived."""
    quality = {f"{endpoint_name}-{name}" for name in QUALITY_ALARMS}
    moved = f"; most changed: {', '.join(most_changed)}" if most_changed else ""
    parts = []
    for r in rows:
        if r["state"] != alarms.ALARM:
            continue
        bt = backtests.get(r["alarm"])
        if bt is None or not len(bt.timeline):
            parts.append(f"{r['alarm']} is in ALARM" + (moved if r["alarm"] in quality else "") + ".")
            continue
        tl = bt.timeline
        since = next((t["timestamp"] for t in reversed(bt.transitions) if t["to"] == alarms.ALARM), None)
        latest = tl["value"].dropna()
        value = f", latest value {latest.iloc[-1]:.3g} (threshold {r['threshold']:g})" if len(latest) and r["threshold"] is not None else ""
        parts.append(f"{r['alarm']} is in ALARM" + (f" since {pd.Timestamp(since):%Y-%m-%d %H:%M} UTC" if since is not None else "")
                     + value + (moved if r["alarm"] in quality else "") + ".")
    if not parts:
        parts.append("No alarm is in ALARM.")
    if fire.get("delivered") is False:
        parts.append("The test page did NOT reach its subscriber: check the SNS topic and subscriptions.")
    elif fire.get("delivered"):
        parts.append("The test page reached its subscriber.")
    attention = any(r["state"] == alarms.ALARM for r in rows) or fire.get("delivered") is False
    return Verdict(" ".join(parts), attention)
