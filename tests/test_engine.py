"""Tests for monitor_utils.engine: the Dask engine gives what the local engine gives, window by window and per stage."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitor_utils import capture, config, engine, stages, windows
from monitor_utils.local import caches
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
    # ``then`` sees each window's result in the order of the windows, on both engines, and its value is kept
    fn, shared = jobs[0]
    want = [(w.label, r["row"]["rmse"]) for w, r in zip(todo, engine.run_windows(with_engine(cfg, "local"), aws, fn,
                                                                               todo, **shared))]
    for c in (with_engine(cfg, "local"), with_engine(cfg, "dask", cluster)):
        assert engine.run_windows(c, aws, fn, todo, progress=False, then=lambda w, r: (w.label, r["row"]["rmse"]),
                                  **shared) == want
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

    from monitor_utils.local import world
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


# --------------------------------------------------------------------------- window results kept in local mode

CACHE_BUCKET = "unit-test-engine-cache"
UTC = dt.timezone.utc
DAYS = [windows.Window(dt.datetime(2026, 11, d, tzinfo=UTC), dt.datetime(2026, 11, d + 1, tzinfo=UTC))
        for d in (25, 26, 27)]
CALLS: list[str] = []  # labels of the windows count_window computed


def count_window(aws, w, *, capture_uri, features, scale=1.0, labels=None):
    """A per-window function that says when it runs: the window's rows and a sum over its first feature."""
    CALLS.append(w.label)
    batch = capture.read_capture(aws, capture_uri, w, features)
    out = {"window": w.label, "rows": int(len(batch.records)),
           "total": scale * float(batch.records[features[0]].sum()) if len(batch.records) else 0.0}
    if labels is not None:
        out["labelled"] = int(batch.records["event_id"].isin(labels["join_key"]).sum())
    return out


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    CALLS.clear()
    return tmp_path / "xdg" / "monitor_utils"


@pytest.fixture
def days_of_capture(emulator, request):
    """(session, cfg, capture uri, features): 30 captured requests a day over DAYS, under a base of the test's own."""
    from monitor_utils import aws as A, data

    cfg = config.validate({})
    session = A.connect(cfg, emulator.url, faults=False)
    A.ensure_bucket(session, CACHE_BUCKET)
    name = request.node.name.replace("[", "-").replace(" ", "-").rstrip("]")
    uri = capture.capture_uri_for(f"s3://{CACHE_BUCKET}/{name}", "ep", "AllTraffic")
    rng = np.random.default_rng(5)
    frame = data.generate(90, seed=5)
    offsets = pd.to_timedelta(np.sort(rng.uniform(0, 3 * 86400 - 1, 90)), unit="s")
    times = pd.Series(DAYS[0].start + offsets).dt.floor("us")
    lines = [capture.capture_line(frame[data.FEATURES].to_numpy()[i], 2000.0, f"e-{i}", None,
                                  windows.iso(times[i].to_pydatetime()), "csv") for i in range(90)]
    capture.write_hourly(session, uri, times, lines, "cap")
    return session, cfg, uri, list(data.FEATURES)


def run(session, cfg, uri, features, **shared) -> list:
    return engine.run_windows(cfg, session, count_window, DAYS, capture_uri=uri, features=features, **shared)


def test_a_second_run_over_the_same_windows_computes_nothing(days_of_capture, cache_home):
    session, cfg, uri, features = days_of_capture
    first = run(session, cfg, uri, features)
    assert CALLS == [w.label for w in DAYS]
    assert len(list((cache_home / "parsed" / "window").glob("*/*"))) == len(DAYS)
    CALLS.clear()
    assert run(session, cfg, uri, features) == first and CALLS == []
    direct = [count_window(session, w, capture_uri=uri, features=features) for w in DAYS]  # no engine, no keeping
    assert first == direct and sum(r["rows"] for r in first) == 90


def test_a_changed_shared_argument_computes_every_window_again(days_of_capture, cache_home):
    session, cfg, uri, features = days_of_capture
    first = run(session, cfg, uri, features)
    CALLS.clear()
    doubled = run(session, cfg, uri, features, scale=2.0)
    assert CALLS == [w.label for w in DAYS]
    assert [r["total"] for r in doubled] == [2.0 * r["total"] for r in first]
    labels = pd.DataFrame({"join_key": [f"e-{i}" for i in range(0, 90, 2)], "year": 1999.0})
    CALLS.clear()
    run(session, cfg, uri, features, labels=labels)
    assert len(CALLS) == len(DAYS)
    fewer = labels.copy()
    fewer.loc[0, "join_key"] = "e-none"  # one cell
    CALLS.clear()
    changed = run(session, cfg, uri, features, labels=fewer)
    assert len(CALLS) == len(DAYS)
    assert sum(r["labelled"] for r in changed) == 44
    CALLS.clear()
    assert run(session, cfg, uri, features) == first and run(session, cfg, uri, features, labels=fewer) == changed
    assert CALLS == []  # what was computed before is kept beside what is computed now


def test_a_rewritten_capture_object_computes_only_the_windows_that_read_it(days_of_capture, cache_home):
    from monitor_utils import aws as A, data

    session, cfg, uri, features = days_of_capture
    first = run(session, cfg, uri, features)
    bucket, base_key = A.split_s3_uri(uri)
    row = data.generate(1, seed=9)[data.FEATURES].to_numpy()[0]

    def line(event_id: str, at: dt.datetime) -> bytes:
        return (capture.capture_line(row, 2000.0, event_id, None, windows.iso(at), "csv") + "\n").encode()

    noon = capture.objects_between(session, uri, DAYS[1].start + dt.timedelta(hours=10), DAYS[1].end)[0]
    body = A.get_bytes(session, bucket, noon.key)
    hour = dt.datetime.strptime(noon.key[len(base_key) + 1:].rsplit("/", 1)[0], "%Y/%m/%d/%H").replace(tzinfo=UTC)
    A.put_bytes(session, bucket, noon.key, body + line("e-added", hour + dt.timedelta(minutes=59)), "application/jsonl")
    CALLS.clear()
    again = run(session, cfg, uri, features)
    assert CALLS == [DAYS[1].label]  # the other windows' results came from the disk
    assert again[0] == first[0] and again[2] == first[2]
    assert again[1]["rows"] == first[1]["rows"] + 1
    assert again[1] == count_window(session, DAYS[1], capture_uri=uri, features=features)
    # a new object in the first day's last hour: read by the first window and by the second (the hour before it)
    late = DAYS[0].end - dt.timedelta(minutes=30)
    A.put_bytes(session, bucket, windows.partition_prefix(base_key, late) + "30-00-000-late.jsonl",
                line("e-late", late), "application/jsonl")
    CALLS.clear()
    last = run(session, cfg, uri, features)
    assert CALLS == [DAYS[0].label, DAYS[1].label]
    assert last[0]["rows"] == first[0]["rows"] + 1 and last[1:] == again[1:]


@pytest.mark.parametrize("how", ["faults injected", "aws mode"])
def test_nothing_is_kept_with_faults_injected_or_in_aws_mode(days_of_capture, cache_home, monkeypatch, how):
    session, cfg, uri, features = days_of_capture
    if how == "faults injected":
        monkeypatch.setattr(session, "faults_injected", {"throttled": 0})
    else:
        monkeypatch.setattr(session, "mode", "aws")
    first = run(session, cfg, uri, features)
    second = run(session, cfg, uri, features)
    assert first == second and CALLS == [w.label for w in DAYS] * 2
    assert not (cache_home / "parsed" / "window").exists()


def test_the_local_engine_lists_each_day_once_for_the_backlog(days_of_capture, cache_home, monkeypatch):
    session, cfg, uri, features = days_of_capture
    prefixes: list[str] = []
    session.client("s3").meta.events.register("provide-client-params.s3.ListObjectsV2",
                                              lambda params, **_: prefixes.append(params["Prefix"]))
    for keep in (True, False):
        monkeypatch.setattr(caches, "enabled", lambda aws, keep=keep: keep and aws.mode == "local")
        prefixes.clear()
        run(session, cfg, uri, features)
        # the three windows and the hour either side touch five days; a window alone lists three
        assert sorted(p.rsplit("/", 4)[-4:-1] for p in prefixes) == [["2026", "11", d] for d in ("24", "25", "26",
                                                                                                   "27", "28")]


def test_no_window_gives_no_result(emulator, cache_home):
    from monitor_utils import aws as A

    cfg = config.validate({})
    assert engine.run_windows(cfg, A.connect(cfg, emulator.url, faults=False), count_window, [],
                              capture_uri="s3://unit-test-engine-cache/none", features=[]) == []
