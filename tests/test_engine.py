"""Tests for monitor_utils.engine: the Dask engine gives what the local engine gives, window by window and per stage."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitor_utils import capture, config, engine, stages, windows
from monitor_utils.baseline import PREDICTION, load_baseline, load_target_baseline
from monitor_utils.stages import drift as drift_stage

WORLD = {"days": 4, "world": {"requests_per_day": 240, "train_rows": 3000, "test_rows": 800}}


@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster of two worker processes for the module (started as an empty dask_address does)."""
    with engine.dask_client("", workers=2) as client:
        yield client.scheduler.address


def with_engine(cfg: config.Params, name: str, address: str = "") -> config.Params:
    return config.validate({**cfg.to_dict(), "engine": name, "dask_address": address})


def assert_same_results(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], pd.DataFrame):
                pd.testing.assert_frame_equal(x[key], y[key])
            elif hasattr(x[key], "table"):  # a DriftReport
                pd.testing.assert_frame_equal(x[key].table, y[key].table)
                assert x[key].drift_detected == y[key].drift_detected
            elif isinstance(x[key], dict):
                assert x[key].keys() == y[key].keys()
                for k in x[key]:
                    assert x[key][k] == y[key][k] or (pd.isna(x[key][k]) and pd.isna(y[key][k])), (key, k)
            else:
                assert x[key] == y[key], key


def test_per_window_results_agree(make_world, cluster):
    cfg, aws, now = make_world(**WORLD)
    stages.run("00_setup", cfg, aws, now)
    todo = windows.windows_between(now - dt.timedelta(days=cfg.days), now, cfg.window)
    uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
    labels, _ = capture.read_ground_truth(aws, cfg.ground_truth_uri, todo[0].start, now)
    baseline, _ = load_baseline(aws, cfg)
    features = [f for f in baseline.feature_names if f != PREDICTION]
    jobs = [(engine.metrics_window, {"capture_uri": uri, "features": features, "labels": labels,
                                     "label_faults": {todo[0].label: 2}, "segment_columns": []}),
            (engine.drift_window, {"capture_uri": uri, "features": features, "labels": labels, "baseline": baseline,
                                   "opts": drift_stage.detector_options(cfg),
                                   "target_baseline": load_target_baseline(aws, cfg)})]
    for fn, shared in jobs:
        local = engine.run_windows(with_engine(cfg, "local"), aws, fn, todo, **shared)
        remote = engine.run_windows(with_engine(cfg, "dask", cluster), aws, fn, todo, progress=False, **shared)
        assert_same_results(local, remote)
        assert len(local) == cfg.days and all(r["quarantined"] in (0, []) for r in local)
    # an independent check of one window: the records the task read are the ones read here
    rows = capture.join_ground_truth(capture.read_capture(aws, uri, todo[1], features).records, labels).dropna(
        subset=["year", "prediction"])
    rmse = float(np.sqrt(np.mean((rows["year"] - rows["prediction"]) ** 2)))
    assert local_rmse(cfg, aws, todo, uri, features, labels) == pytest.approx(rmse, rel=1e-12)


def local_rmse(cfg, aws, todo, uri, features, labels) -> float:
    res = engine.metrics_window(aws, todo[1], capture_uri=uri, features=features, labels=labels)
    return res["row"]["rmse"]


def test_a_stage_on_dask_matches_the_stage_on_the_local_engine(make_world, cluster):
    histories = []
    for name in ("local", "dask"):
        cfg, aws, now = make_world(**WORLD, engine=name, dask_address=cluster if name == "dask" else "")
        stages.run("00_setup", cfg, aws, now)
        result = stages.run("10_metrics", cfg, aws, now)
        histories.append((result.history, result.segments, result.estimates))
    (h_local, s_local, e_local), (h_dask, s_dask, e_dask) = histories
    assert len(h_local) == WORLD["days"] - 3  # windows closed after label_wait_days
    pd.testing.assert_frame_equal(h_local, h_dask)
    pd.testing.assert_frame_equal(s_local, s_dask)
    assert len(e_local) == WORLD["days"] and e_local == e_dask  # label-free estimates of every closed window


def test_engine_params_are_validated():
    assert config.validate({}).engine == "local" and config.validate({}).dask_address == ""
    with pytest.raises(config.ParamsError, match="accepted values: local, dask"):
        config.validate({"engine": "spark"})
    with pytest.raises(config.ParamsError, match="dask_address"):
        config.validate({"dask_address": "scheduler:8786"})
    assert config.validate({"engine": "dask", "dask_address": "tcp://10.0.0.5:8786"}).dask_address.startswith("tcp://")


@pytest.fixture(scope="module")
def emulator_elsewhere():
    """A local AWS emulator in a process of its own, so tracemalloc here sees only the stage's allocations."""
    import subprocess
    import sys

    code = ("import logging, sys, time\nfrom monitor_utils import local\nlogging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
            "server = local.start()\nprint(server.url, flush=True)\nsys.stdin.read()\nserver.stop()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()  # the server stops when its input closes
        proc.wait(timeout=30)


def test_a_stage_holds_one_window_at_a_time(emulator_elsewhere):
    """tracemalloc's peak over the metrics stage is the same for a backlog of 2 and of 6 windows of one size."""
    import tracemalloc

    from monitor_utils import world
    from monitor_utils.aws import connect
    from monitor_utils.context import run_clock

    peaks = {}
    for backlog in (2, 6):
        cfg = config.validate({"now": "2026-11-28T00:00:00Z", "bucket": f"test-memory-{backlog}", "days": backlog + 3,
                               "world": {"requests_per_day": 1200, "train_rows": 2000, "test_rows": 600,
                                         "capture_formats": ["csv", "json_instances"]}})
        aws = connect(cfg, emulator_elsewhere)
        world.build(aws, cfg, progress=lambda m: None)
        now = run_clock(cfg, aws)
        stages.run("00_setup", cfg, aws, now)
        tracemalloc.start()
        try:
            result = stages.run("10_metrics", cfg, aws, now)
            peaks[backlog] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(result.windows_published) == backlog
    assert peaks[6] < 1.25 * peaks[2], peaks  # a backlog held whole would need about 3x
