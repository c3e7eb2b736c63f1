"""Stage package code on the local emulator: idempotency, exactly-once publishing, alarms, retraining."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from conftest import MECHANICS
from monitor_utils import alerting, config, dashboard, stages, watermark, windows
from monitor_utils.aws import connect


def _samples_per_window(aws, cfg, metric: str, now: dt.datetime) -> pd.Series:
    """SampleCount of a published metric per day, read back from CloudWatch."""
    got = aws.client("cloudwatch").get_metric_statistics(
        Namespace=cfg.namespace, MetricName=metric, StartTime=now - dt.timedelta(days=cfg.days + 8), EndTime=now + dt.timedelta(days=1),
        Period=86400, Statistics=["SampleCount"],
        Dimensions=[{"Name": "EndpointName", "Value": cfg.endpoint_name}, {"Name": "VariantName", "Value": cfg.variant_name}])
    return pd.Series({p["Timestamp"]: p["SampleCount"] for p in got["Datapoints"]}).sort_index()


def _complete_windows(cfg, now):
    return windows.windows_between(windows.floor(now - dt.timedelta(days=cfg.days), "daily"),
                                   now - dt.timedelta(days=cfg.label_wait_days), "daily")


def test_setup_is_idempotent(stable_world):
    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    first = stable_world.results["00_setup"]
    again = stages.run("00_setup", cfg, aws, now)
    assert first["changes"] and again["changes"] == []
    assert again["baseline"] == first["baseline"]
    assert first["baseline"]["model_version"] == "v0001"


def test_metrics_publish_every_complete_window_exactly_once(stable_world):
    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    first = stable_world.results["10_metrics"]
    expected = [w.label for w in _complete_windows(cfg, now)]
    assert first["windows_published"] == expected
    again = stages.run("10_metrics", cfg, aws, now)
    assert again["windows_published"] == [] and again["put_metric_data_calls"] == 0
    counts = _samples_per_window(aws, cfg, "RMSE", now)
    assert len(counts) == len(expected) and (counts == 1).all()
    # datums per window: 7 metrics + coverage + captured, plus 2 per decade segment, read back from CloudWatch
    per_window = sum(_samples_per_window(aws, cfg, m, now).sum() for m in
                     ("Count", "MSE", "RMSE", "MAE", "R2", "MedianAE", "Bias", "LabelCoverage", "CapturedInvocations"))
    per_segment = sum(_samples_per_window(aws, cfg, m, now).sum() for m in ("SegmentRMSE", "SegmentCount"))
    assert per_window == 9 * len(expected)
    assert per_segment == 2 * len(first["segments"]) > 0
    # label-free estimates: 5 datums for every closed window, including those still waiting for labels
    estimated = [w.label for w in windows.windows_between(windows.floor(now - dt.timedelta(days=cfg.days), "daily"),
                                                          now, "daily")]
    assert first["windows_estimated"] == estimated and len(estimated) == len(expected) + cfg.label_wait_days
    per_estimate = sum(_samples_per_window(aws, cfg, m, now).sum() for m in
                       ("EstimatedRMSE", "EstimatedRMSELow", "EstimatedRMSEHigh", "EstimatedMAE", "OutsideSupport"))
    assert per_estimate == 5 * len(estimated)
    assert (_samples_per_window(aws, cfg, "EstimatedRMSE", now) == 1).all()
    assert first["datums_published"] == per_window + per_segment + per_estimate
    assert first["put_metric_data_calls"] == 2  # the metrics, then the estimates
    assert again["windows_estimated"] == [] and again["estimates"] == first["estimates"]


def test_metrics_catch_up_after_skipped_days_publishes_each_window_once(make_world):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)
    early = config.validate({**cfg.to_dict(), "now": (now - dt.timedelta(days=4)).isoformat()})
    first = stages.run("10_metrics", early, aws, now - dt.timedelta(days=4))
    later = stages.run("10_metrics", cfg, aws, now)  # four daily runs were skipped
    assert len(later["windows_published"]) == 4
    assert set(first["windows_published"]).isdisjoint(later["windows_published"])
    # the first run backfilled `days` before its clock; together the runs cover every window once, in order
    expected = windows.windows_between(windows.floor(now - dt.timedelta(days=4 + cfg.days), "daily"),
                                       now - dt.timedelta(days=cfg.label_wait_days), "daily")
    assert first["windows_published"] + later["windows_published"] == [w.label for w in expected]
    counts = _samples_per_window(aws, cfg, "CapturedInvocations", now)
    assert (counts == 1).all() and len(counts) == len(expected)


def test_metrics_crash_between_publish_and_commit_does_not_duplicate(make_world, monkeypatch):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)

    def crash(*args, **kwargs):
        raise RuntimeError("killed after publishing")

    monkeypatch.setattr(watermark.Watermark, "commit", crash)
    with pytest.raises(RuntimeError):
        stages.run("10_metrics", cfg, aws, now)
    monkeypatch.undo()
    assert watermark.load(aws, cfg, "metrics").pending  # the in-flight windows are known
    rerun = stages.run("10_metrics", cfg, aws, now)
    assert rerun["windows_published"] == []  # all were already in CloudWatch
    counts = _samples_per_window(aws, cfg, "RMSE", now)
    assert (counts == 1).all() and len(counts) == len(_complete_windows(cfg, now))


def test_estimates_sit_beside_the_realized_rmse_once_labels_land(drift_world):
    """Every closed window is estimated without labels; realized_rmse is the published RMSE, null while labels wait."""
    cfg = drift_world.cfg
    assert drift_world.results["00_setup"]["loss_estimator"]["reference_rows"] == cfg.world["test_rows"]
    result = drift_world.results["10_metrics"]
    rows = {e["window"]: e for e in result["estimates"]}
    rmse = result["history"].set_index("window")["rmse"]
    waiting = set(result["windows_pending_labels"])
    assert set(rows) == set(rmse.index) | waiting and waiting
    for label, e in rows.items():
        assert set(e) >= {"window", "estimated_rmse", "estimated_rmse_low", "estimated_rmse_high", "estimated_mae",
                          "realized_rmse"}
        assert e["estimated_rmse_low"] <= e["estimated_rmse"] <= e["estimated_rmse_high"]
        assert e["realized_rmse"] is None if label in waiting else e["realized_rmse"] == pytest.approx(rmse[label])
    # the estimate follows the quality drop the labels show, days before they land
    broken = windows.from_label(sorted(rows)[int(round(cfg.world["drift_start_fraction"] * cfg.days)) + 1], "daily")
    before = [e for w, e in rows.items() if windows.from_label(w, "daily").end < broken.start]
    after = [e for w, e in rows.items() if windows.from_label(w, "daily").start >= broken.start]
    assert max(e["estimated_rmse"] for e in before) < cfg.estimated_rmse_max < min(e["estimated_rmse"] for e in after)
    acc = result["estimate_accuracy"]
    assert acc["windows"] == len(rmse) and acc["mean_relative_error"] < 0.15 and acc["worst_relative_error"] < 0.35


def test_an_estimate_publish_interrupted_before_its_commit_is_not_repeated(make_world, monkeypatch):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, aws, now)
    real_commit = watermark.Watermark.commit

    def crash_estimates(self, *args, **kwargs):
        if self.stage == "estimates":
            raise RuntimeError("killed after publishing the estimates")
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(watermark.Watermark, "commit", crash_estimates)
    with pytest.raises(RuntimeError):
        stages.run("10_metrics", cfg, aws, now)
    monkeypatch.undo()
    assert watermark.load(aws, cfg, "estimates").pending
    rerun = stages.run("10_metrics", cfg, aws, now)
    assert rerun["windows_estimated"] == [] and rerun["windows_published"] == []
    counts = _samples_per_window(aws, cfg, "EstimatedRMSE", now)
    assert (counts == 1).all() and len(counts) == cfg.days


def test_metrics_match_an_independent_recomputation(stable_world):
    """RMSE of a published window equals scikit-learn on the labels joined by hand from the world's own files."""
    from sklearn.metrics import mean_squared_error

    from monitor_utils import capture

    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    result = stable_world.results["10_metrics"]
    w = _complete_windows(cfg, now)[2]
    batch = capture.read_capture(aws, capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name), w)
    labels, _ = capture.read_ground_truth(aws, cfg.ground_truth_uri, w.start, now + dt.timedelta(hours=1))
    joined = batch.records.merge(labels, on=["join_key", "record_index"])  # a record is (request, position)
    row = result["history"].set_index("window").loc[w.label]
    assert row["count"] == len(joined)
    assert row["rmse"] == pytest.approx(mean_squared_error(joined["year"], joined["prediction"]) ** 0.5, rel=1e-9)


def test_drift_stage_flags_the_drift_and_not_the_stable_world(drift_world, stable_world):
    cfg = drift_world.cfg
    table = drift_world.results["20_drift"]["history"].set_index("window")
    hist = table["drift_detected"]
    drift_day = int(round(cfg.world["drift_start_fraction"] * cfg.days))
    assert hist.iloc[:drift_day].sum() <= 1  # same-distribution windows: a rare false alarm at most
    assert hist.iloc[drift_day + 1:].all()
    # target drift (newer songs) where labels have arrived; the newest window has none yet
    target = table["target_drift"]
    # a rare false alarm at most before the drift (a KS test at alpha 0.01 per window), as for the features
    assert target.iloc[:drift_day].astype(bool).sum() <= 1 and target.iloc[drift_day + 1:-2].astype(bool).all()
    assert pd.isna(target.iloc[-1]) and table["labelled_rows"].iloc[-1] == 0
    assert not stable_world.results["20_drift"]["history"]["drift_detected"].any()


def _drain(aws, url: str) -> list[dict]:
    out = []
    while True:
        msgs = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(json.loads(m["Body"])["Message"]))
            aws.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_alarms_fire_in_the_drift_world_when_the_data_says_and_notify(drift_world):
    cfg, aws, now, queue = drift_world.cfg, drift_world.aws, drift_world.now, drift_world.queue
    result = drift_world.results["30_alerting"]
    states = result["alarms"].set_index("alarm")["state"]
    for key in ("rmse", "r2", "data-drift"):
        assert states[f"{cfg.endpoint_name}-{key}"] == "ALARM"
    # the RMSE alarm (2 of the last N windows above the threshold) turns ALARM on the second breaching window
    hist = drift_world.results["10_metrics"]["history"]
    breaching = pd.to_datetime(hist.loc[hist["rmse"] > cfg.thresholds["rmse_max"], "end"], utc=True).sort_values()
    tr = result["transitions"]
    fired = tr[(tr["alarm"] == f"{cfg.endpoint_name}-rmse") & (tr["to"] == "ALARM")]["timestamp"]
    assert pd.Timestamp(fired.iloc[0]) == breaching.iloc[1]
    described = alerting.describe(aws, [f"{cfg.endpoint_name}-rmse"])[f"{cfg.endpoint_name}-rmse"]
    assert described["StateValue"] == "ALARM"
    # the label-free alarm pages the day the broken window closes; the labelled one days later
    pages = {}
    for p in result["pages"]:
        pages.setdefault(p["alarm"].removeprefix(f"{cfg.endpoint_name}-"), pd.Timestamp(p["known_at"]))
    first_day = pd.Timestamp(windows.floor(now - dt.timedelta(days=cfg.days), "daily"))
    onset = first_day + pd.Timedelta(days=int(round(cfg.world["drift_start_fraction"] * cfg.days)) + 1)
    assert states[f"{cfg.endpoint_name}-estimated-rmse"] == "ALARM"
    assert pages["estimated-rmse"] == onset + pd.Timedelta(days=1) < pages["rmse"]
    notes = _drain(aws, queue)
    alarmed = {n["AlarmName"] for n in notes if n["NewStateValue"] == "ALARM"}
    assert {f"{cfg.endpoint_name}-{k}" for k in ("rmse", "r2", "data-drift", "estimated-rmse")} <= alarmed
    # a page about quality names the features whose attribution moved most; another page does not
    reasons = {n["AlarmName"]: n["NewStateReason"] for n in notes if n["NewStateValue"] == "ALARM"}
    moved = result["most_changed_features"]
    assert moved and reasons[f"{cfg.endpoint_name}-estimated-rmse"].endswith("most changed: " + ", ".join(moved))
    assert "latest value" in reasons[f"{cfg.endpoint_name}-estimated-rmse"]
    assert "most changed" not in reasons[f"{cfg.endpoint_name}-data-drift"]
    rerun = stages.run("30_alerting", cfg, aws, now)
    assert rerun["alarms_put"] == [] and _drain(aws, queue) == []


def test_alarms_stay_ok_in_the_stable_world_and_test_fire_is_delivered(stable_world):
    cfg, aws = stable_world.cfg, stable_world.aws
    result = stable_world.results["30_alerting"]
    assert set(result["alarms"]["state"]) == {"OK"}
    assert result["test_fire"]["delivered"] is True
    assert alerting.describe(aws, [f"{cfg.endpoint_name}-heartbeat"])[f"{cfg.endpoint_name}-heartbeat"]["StateValue"] == "OK"


def test_dashboard_is_valid_and_rerun_changes_nothing(stable_world):
    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    first = stages.run("40_dashboard", cfg, aws, now)
    assert first["put"] is True and first["alarms_missing"] == []
    stored = json.loads(aws.client("cloudwatch").get_dashboard(DashboardName=cfg.dashboard_name)["DashboardBody"])
    assert stored == first["body"]
    assert stages.run("40_dashboard", cfg, aws, now)["put"] is False


def test_every_suite_widget_shows_what_the_stages_published(stable_world):
    """Each line of the dashboard's own metric widgets names a metric the stages published: drawn from the emulator's
    GetMetricData over the world's range, none is empty (a misspelt name or dimension would draw nothing)."""
    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    body = stages.run("40_dashboard", cfg, aws, now)["body"]
    start = now - dt.timedelta(days=cfg.days)
    drawn = {}
    for w in body["widgets"]:
        if w["type"] == "metric" and w["properties"]["metrics"][0][0] == cfg.namespace:
            drawn[w["properties"]["title"]] = {label: int(s.notna().sum())
                                               for label, s in dashboard.widget_data(aws, w, start, now).items()}
    assert any("Data quality" in t for t in drawn) and any("attribution" in t for t in drawn)
    assert all(n > 0 for lines in drawn.values() for n in lines.values()), drawn


def _serving_config(aws, cfg) -> str:
    return aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)["EndpointConfigName"]


def test_retraining_does_nothing_in_the_stable_world(stable_world):
    cfg, aws, now = stable_world.cfg, stable_world.aws, stable_world.now
    before = _serving_config(aws, cfg)
    result = stages.run("50_retraining", cfg, aws, now)
    assert result["retrain"] is False and result["deployed"] is False
    assert result["reasons"] and "no retraining needed" in result["reasons"][0]
    flow = result["workflow_execution"]
    assert flow["states"][-1] == "NotNeeded" and "TrainChallenger" not in flow["states"] and not flow["deployed"]
    assert _serving_config(aws, cfg) == before


def test_segment_columns_from_params_break_metrics_down(make_world):
    cfg, aws, now = make_world(scenario="stable", segment_columns=["timbre_avg_01"], **MECHANICS)
    result = stages.run("10_metrics", cfg, aws, now)
    segs = set(result["segments"]["segment"])
    assert {"timbre_avg_01:q1", "timbre_avg_01:q4"} <= segs and any(s.endswith("0s") for s in segs)
    from monitor_utils.stages.metrics import segment_labels

    with pytest.raises(ValueError, match="no_such_column.*available"):
        segment_labels(result["history"], "no_such_column")


def _emulator_today() -> dt.datetime:
    """Today's midnight UTC by the wall clock, which the emulator's CloudWatch Logs uses to reject events
    older than 14 days (the tests that write log events date their worlds from it)."""
    return windows.floor(dt.datetime.now(dt.timezone.utc), "daily")


def test_emf_transport_writes_each_window_once_as_log_events(make_world):
    # 6 days: the oldest window ends 5 days before today's midnight, well inside the 14 days even past midnight
    cfg, aws, now = make_world(scenario="stable", metrics_transport="emf", now=_emulator_today().isoformat(),
                               **MECHANICS)
    stages.run("00_setup", cfg, aws, now)  # creates the log group
    first = stages.run("10_metrics", cfg, aws, now)
    again = stages.run("10_metrics", cfg, aws, now)
    assert first["datums_dropped_too_old"] == 0 and first["datums_published"] > 0
    assert again["datums_published"] == 0 and again["datums_dropped_too_old"] == 0
    events = aws.client("logs").get_log_events(logGroupName=cfg.log_group, logStreamName="metrics",
                                               startFromHead=True)["events"]
    docs = [json.loads(e["message"]) for e in events]
    overall = [d for d in docs if "Segment" not in d and "RMSE" in d]
    assert len(overall) == len(first["windows_published"])  # one document per window, none twice
    assert overall[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == cfg.namespace
    assert overall[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["EndpointName", "VariantName"]]
    assert _samples_per_window(aws, cfg, "RMSE", now).empty  # nothing went through PutMetricData


def test_emf_windows_older_than_the_log_services_14_days_are_counted_dropped(make_world):
    today = _emulator_today()
    cfg, aws, now = make_world(scenario="stable", metrics_transport="emf", now=today.isoformat(), days=18,
                               world={"requests_per_day": 200})
    stages.run("00_setup", cfg, aws, now)
    limit_before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=14)   # the emulator's limit moves with
    result = stages.run("10_metrics", cfg, aws, now)                          # the wall clock while it runs
    limit_after = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=14)
    events = aws.client("logs").get_log_events(logGroupName=cfg.log_group, logStreamName="metrics",
                                               startFromHead=True)["events"]
    docs = [json.loads(e["message"]) for e in events]
    estimate_events = aws.client("logs").get_log_events(logGroupName=cfg.log_group, logStreamName="estimates",
                                                        startFromHead=True)["events"]
    assert estimate_events  # the label-free estimates go the same way, in their own stream
    stored = sum(len(json.loads(e["message"])["_aws"]["CloudWatchMetrics"][0]["Metrics"])
                 for e in events + estimate_events)
    ends = [windows.from_label(label, "daily").end for label in result["windows_published"]]
    surely_kept = [e for e in ends if e >= limit_after]
    surely_rejected = [e for e in ends if e < limit_before]
    assert len(surely_rejected) >= 3 and len(surely_kept) >= 10
    kept = sorted(pd.Timestamp(d["_aws"]["Timestamp"], unit="ms", tz="UTC") for d in docs
                  if "Segment" not in d and "RMSE" in d)
    assert set(surely_kept) <= set(kept) and not set(surely_rejected) & set(kept)
    assert result["datums_published"] == stored     # counted published = what the log service holds
    assert result["datums_dropped_too_old"] > 0


def test_kms_key_encrypts_the_topic_and_the_objects_written(make_world, emulator):
    kms = connect(config.validate({}), emulator.url).client("kms")  # setup resolves the alias: it must exist
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    alias = f"alias/msd-monitoring-{key_id[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    cfg, aws, now = make_world(scenario="stable", kms_key_id=alias, **MECHANICS)
    setup = stages.run("00_setup", cfg, aws, now)
    attrs = aws.client("sns").get_topic_attributes(TopicArn=setup["topic_arn"])["Attributes"]
    assert attrs.get("KmsMasterKeyId") == alias
    key = setup["baseline"]["uri"].split(f"s3://{cfg.bucket}/")[1] + "info.json"
    head = aws.client("s3").head_object(Bucket=cfg.bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"


def test_params_are_values_only(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("region: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(config.ParamsError, match="not valid YAML"):
        config.load([evil])


def test_email_subscriptions_are_not_duplicated_and_the_topic_lets_cloudwatch_publish(make_world):
    cfg, aws, now = make_world(scenario="stable", alert_emails=["oncall@example.com"], test_fire="never", **MECHANICS)
    for _ in range(2):
        topic, _ = alerting.ensure_paging(aws, cfg)
    subs = aws.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "oncall@example.com")]
    policy = json.loads(aws.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
