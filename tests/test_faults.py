"""Fault injection in local mode: throttling is survived with identical results; corrupt capture is counted exactly."""

from __future__ import annotations

import pandas as pd

from conftest import MECHANICS, small_world_params
from monitor_utils import config, stages
from monitor_utils.local import world
from monitor_utils.aws import connect
from monitor_utils.context import run_clock


def _world(emulator, name, **overrides):
    cfg = config.validate(small_world_params(name, **overrides))
    world.build(connect(cfg, emulator.url, faults=False), cfg, progress=lambda m: None)
    aws = connect(cfg, emulator.url)
    return cfg, aws, run_clock(cfg, aws)


COLUMNS = ["window", "captured", "labelled", "count", "mse", "rmse", "mae", "r2", "median_ae", "bias", "rmse_low", "rmse_high"]


def test_throttled_run_completes_with_results_identical_to_a_clean_run(emulator, drift_world):
    results = {("clean", s): drift_world.results[s] for s in ("10_metrics", "20_drift")}  # the same world, no faults
    cfg, aws, now = _world(emulator, "faults-throttled", scenario="drift", faults={"throttle_fraction": 0.3})
    for s in ("00_setup", "10_metrics", "20_drift"):
        results[("throttled", s)] = stages.run(s, cfg, aws, now)
    assert aws.faults_injected["throttled"] > 100 and drift_world.aws.faults_injected == {}
    pd.testing.assert_frame_equal(results[("clean", "10_metrics")]["history"][COLUMNS],
                                  results[("throttled", "10_metrics")]["history"][COLUMNS])
    assert results[("clean", "20_drift")]["history"]["drift_detected"].tolist() == \
        results[("throttled", "20_drift")]["history"]["drift_detected"].tolist()


def test_quarantine_count_equals_the_corrupt_lines_injected(emulator):
    # 6% of the capture lines of a few days torn: some thirty, spread over the windows
    cfg, aws, now = _world(emulator, "faults-corrupt", scenario="stable", faults={"malformed_capture_fraction": 0.06},
                           **MECHANICS)
    manifest = world.read_manifest(aws, cfg)
    assert manifest["malformed_lines"] > 20
    stages.run("00_setup", cfg, aws, now)
    drift = stages.run("20_drift", cfg, aws, now)  # reads every window of the world once
    assert drift["quarantined"] == manifest["malformed_lines"]
    metrics = stages.run("10_metrics", cfg, aws, now)  # the complete windows only, each line counted once
    assert 0 < metrics["quarantined"] <= manifest["malformed_lines"]
    assert metrics["history"]["quarantined"].sum() == metrics["quarantined"]


def test_cloudwatch_unreachable_for_a_run_then_the_backlog_is_published_once(emulator, tmp_path, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    from monitor_utils import outbox

    cfg, aws, now = _world(emulator, "faults-outage", scenario="stable", outbox_dir=str(tmp_path / "outbox"),
                           **MECHANICS)
    cw = aws.client("cloudwatch")

    def unreachable(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com")

    monkeypatch.setattr(cw, "put_metric_data", unreachable)
    down = stages.run("10_metrics", cfg, aws, now)
    assert down["windows_published"] and down["datums_published"] == 0 and down["datums_outboxed"] > 0
    assert len(outbox.pending(aws, cfg)) == 2  # the windows' batch and the heartbeat
    assert list((tmp_path / "outbox").rglob("*.json"))  # a local copy as well
    monkeypatch.undo()
    back = stages.run("10_metrics", cfg, aws, now)
    assert back["outbox_delivered"] == 2 and back["windows_published"] == []
    again = stages.run("10_metrics", cfg, aws, now)
    assert again["outbox_delivered"] == 0 and outbox.pending(aws, cfg) == []
    got = cw.get_metric_statistics(Namespace=cfg.namespace, MetricName="RMSE", Period=86400, Statistics=["SampleCount"],
                                   StartTime=now - pd.Timedelta(days=30), EndTime=now,
                                   Dimensions=[{"Name": "EndpointName", "Value": cfg.endpoint_name},
                                               {"Name": "VariantName", "Value": cfg.variant_name}])["Datapoints"]
    assert len(got) == len(down["windows_published"]) and all(p["SampleCount"] == 1 for p in got)
