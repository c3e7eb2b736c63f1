"""A misconfiguration never closes a window: capture or labels in the wrong place hold windows open (and say where
they looked); only a window without traffic, or without labels past max_label_wait_days, closes without them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from conftest import MECHANICS
from monitor_utils import config, retraining, stages, traffic, watermark, windows

DIMS = ("EndpointName", "VariantName")


def _samples(aws, cfg, metric: str, now: dt.datetime) -> dict[str, float]:
    """SampleCount of a suite metric per daily window (label of the window ending at the datapoint), from CloudWatch."""
    got = aws.client("cloudwatch").get_metric_statistics(
        Namespace=cfg.namespace, MetricName=metric, Statistics=["SampleCount"], Period=86400,
        StartTime=now - dt.timedelta(days=cfg.days + 5), EndTime=now + dt.timedelta(days=1),
        Dimensions=[{"Name": k, "Value": v} for k, v in zip(DIMS, (cfg.endpoint_name, cfg.variant_name))])
    return {windows.containing(p["Timestamp"] - dt.timedelta(seconds=1), "daily").label: p["SampleCount"]
            for p in got["Datapoints"]}


def _with(cfg, **changes):
    return config.validate({**cfg.to_dict(), **changes})


def _complete(cfg, now, wait_days):
    return [w.label for w in windows.windows_between(windows.floor(now - dt.timedelta(days=cfg.days), "daily"),
                                                     now - dt.timedelta(days=wait_days), "daily")]


def test_a_wrong_capture_prefix_fails_and_closes_nothing_then_the_right_one_publishes_every_window_once(make_world):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, aws, now)
    wrong = _with(cfg, capture_prefix=f"s3://{cfg.bucket}/not-the-capture")
    expected = _complete(cfg, now, cfg.label_wait_days)
    with pytest.raises(traffic.CaptureMissing) as failed:
        stages.run("10_metrics", wrong, aws, now)
    message = str(failed.value)
    assert "capture_prefix" in message
    assert f"s3://{cfg.bucket}/not-the-capture/{cfg.endpoint_name}/{cfg.variant_name}/" in message  # the place listed
    assert "yyyy/mm/dd/hh/*.jsonl" in message and "invocation" in message  # what it expected there, and why
    with pytest.raises(traffic.CaptureMissing):
        stages.run("20_drift", wrong, aws, now)
    for stage in ("metrics", "estimates", "drift"):
        mark = watermark.load(aws, cfg, stage)
        assert mark.published == [] and mark.pending == [], stage  # no window marked done
        assert mark.held and all("capture_prefix" in why for why in mark.held.values()), stage
    assert set(watermark.load(aws, cfg, "metrics").held) == set(expected)
    assert _samples(aws, cfg, "LabelCoverage", now) == {}  # nothing published for the misread windows

    fixed = stages.run("10_metrics", cfg, aws, now)
    drift = stages.run("20_drift", cfg, aws, now)
    assert fixed["windows_published"] == expected and fixed["windows_held_open"] == {}
    assert fixed["latest"]["rmse"] is not None
    assert drift["windows_checked"] and drift["windows_held_open"] == {}
    for metric in ("RMSE", "LabelCoverage", "Count", "EstimatedRMSE", "DriftShare"):
        counts = _samples(aws, cfg, metric, now)
        assert set(counts.values()) == {1.0}, metric  # one datapoint per window
        assert set(expected) <= set(counts), metric
    again = stages.run("10_metrics", cfg, aws, now)
    assert again["windows_published"] == [] and again["put_metric_data_calls"] == 0


def test_a_window_without_traffic_closes_as_no_traffic(make_world):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, aws, now)
    longer = _with(cfg, days=cfg.days + 2)  # two days before the endpoint served anything
    quiet = [w.label for w in windows.windows_between(now - dt.timedelta(days=longer.days),
                                                      now - dt.timedelta(days=cfg.days), "daily")]
    result = stages.run("10_metrics", longer, aws, now)
    assert result["windows_no_traffic"] == quiet and len(quiet) == 2
    assert set(quiet) < set(result["windows_published"]) and result["windows_held_open"] == {}
    closed = result["history"].set_index("window")["closed_as"]
    assert set(closed[quiet]) == {"no traffic"} and set(closed.drop(quiet)) == {"published"}
    assert "no traffic" in result.verdict.text
    assert all(_samples(aws, longer, "LabelCoverage", now)[label] == 1 for label in quiet)
    drift = stages.run("20_drift", longer, aws, now)
    assert drift["windows_no_traffic"] == quiet and drift["windows_held_open"] == {}


def test_label_less_windows_stay_open_until_max_label_wait_days_then_close_as_unlabelled(make_world):
    cfg, aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, aws, now)
    nowhere = _with(cfg, ground_truth_prefix=f"s3://{cfg.bucket}/no-labels-here", max_label_wait_days=4)
    complete = _complete(cfg, now, cfg.label_wait_days)
    past_max = _complete(cfg, now, 4)
    assert 0 < len(past_max) < len(complete)
    first = stages.run("10_metrics", nowhere, aws, now)
    assert first["windows_unlabelled"] == past_max == first["windows_published"]
    waiting = sorted(set(complete) - set(past_max))
    assert sorted(first["windows_held_open"]) == waiting
    assert all("ground_truth_prefix" in why and "no-labels-here" in why for why in first["windows_held_open"].values())
    assert "ground_truth_prefix" in first.verdict.text and first.verdict.attention
    # labels found (the right prefix): the held window is published with them; the closed ones are not redone
    fixed = stages.run("10_metrics", _with(cfg, max_label_wait_days=4), aws, now)
    assert fixed["windows_published"] == waiting and fixed["windows_held_open"] == {}
    history = fixed["history"].set_index("window")
    assert (history.loc[waiting, "count"] > 0).all() and list(history.index) == sorted(history.index)
    assert set(_samples(aws, cfg, "LabelCoverage", now).values()) == {1.0}


def test_max_label_wait_days_below_label_wait_days_is_refused():
    with pytest.raises(config.ParamsError, match="max_label_wait_days.*label_wait_days"):
        config.validate({"label_wait_days": 5, "max_label_wait_days": 3})
    assert config.validate({})["max_label_wait_days"] == 14


def test_retraining_without_labelled_history_says_what_is_missing():
    cfg = config.validate({"ground_truth_prefix": "s3://somewhere/labels"})
    now = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
    unlabelled = pd.DataFrame({"window": ["2026-11-01", "2026-11-02"], "rmse": [None, None], "count": [0, 0]})
    drifting = pd.DataFrame({"window": ["a", "b", "c"], "drift_detected": [True, True, True], "top_features": [[]] * 3})
    alarms = {f"{cfg.endpoint_name}-rmse": "ALARM"}
    for metrics_history in (unlabelled, pd.DataFrame()):
        decision = retraining.decide(cfg, retraining.Evidence(alarms, metrics_history, drifting), now)
        assert not decision.retrain
        assert decision.reasons[0].startswith("not enough labelled history: ")
    assert "s3://somewhere/labels" in retraining.decide(
        cfg, retraining.Evidence(alarms, unlabelled, drifting), now).reasons[0]
