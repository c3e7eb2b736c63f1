"""Dashboard stage: the CloudWatch dashboard body from the alarm specs, checked, put idempotently."""

from __future__ import annotations

import datetime as dt

from .. import alerting, dashboard
from ..aws import Aws, ensure_topic
from ..config import Params
from ..results import StageResult, Verdict


def run(cfg: Params, aws: Aws, now: dt.datetime) -> StageResult:
    """Build, validate and put the dashboard; return its body and the alarm states it shows."""
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    specs = alerting.alarm_specs(cfg, topic_arn)
    described = alerting.describe(aws, [s["AlarmName"] for s in specs])
    arns = [described[s["AlarmName"]]["AlarmArn"] for s in specs if s["AlarmName"] in described]
    missing = [s["AlarmName"] for s in specs if s["AlarmName"] not in described]
    body = dashboard.build_body(cfg, specs, arns, f"s3://{cfg.bucket}/{cfg.key('reports')}/")
    dashboard.validate_body(body, cfg.region)
    changed = dashboard.put_dashboard(aws, cfg.dashboard_name, body)
    record = {"dashboard_name": cfg.dashboard_name, "put": changed, "body": body,
              "alarm_states": {n: a["StateValue"] for n, a in described.items()},
              "alarms_missing": missing, "widgets": len(body["widgets"])}
    in_alarm = sorted(n for n, st in record["alarm_states"].items() if st == "ALARM")
    text = (f"Dashboard {cfg.dashboard_name}: {record['widgets']} widgets, "
            + ("updated." if changed else "unchanged.")
            + (f" It shows {len(in_alarm)} alarm(s) in ALARM: {', '.join(in_alarm)}." if in_alarm else " No alarm is in ALARM.")
            + (f" Alarms not found (run the alerting stage): {', '.join(missing)}." if missing else ""))
    return StageResult(record, headline={"widgets": record["widgets"], "put": changed},
                       verdict=Verdict(text, bool(in_alarm or missing)))
