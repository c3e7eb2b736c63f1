"""Tests for monitor_utils.local.world: the generated world kept on disk by its params, and written straight into the
in-process emulator exactly as the PUT fallback writes it."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import small_world_params

from monitor_utils import aws as A, config
from monitor_utils.local import emulator as E, world

TINY = {"days": 2, "world": {"requests_per_day": 100, "train_rows": 2000, "test_rows": 500}}
GENERATE = world.generate  # the real simulation, whatever a test puts in its place


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "monitor_utils"


@pytest.fixture
def generations(monkeypatch):
    """Every call of ``world.generate`` from now on, by (seed, days, endpoint, bucket)."""
    calls: list[tuple] = []

    def counted(aws, cfg, now):
        calls.append((cfg.seed, cfg.days, cfg.endpoint_name, cfg.bucket))
        return GENERATE(aws, cfg, now)

    monkeypatch.setattr(world, "generate", counted)
    return calls


def tiny(name: str, **overrides) -> config.Params:
    return config.validate(small_world_params(name, **{**TINY, **overrides}))


def assert_same_world(a: world.Generated, b: world.Generated) -> None:
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert a.data_files == b.data_files
    assert a.capture_files == b.capture_files and a.ground_truth_files == b.ground_truth_files
    assert a.endpoint_datums == b.endpoint_datums and a.counts == b.counts


def test_the_generated_world_is_kept_by_its_params(emulator, cache_home, generations):
    cfg = tiny("gen-kept")
    session = A.connect(cfg, emulator.url)
    now = world.world_clock(cfg)
    first = world.generated(session, cfg, now)
    assert len(generations) == 1 and first.capture_files and first.ground_truth_files
    assert list((cache_home / "parsed" / "world").glob("*/*"))  # on disk, where object_cache keeps it
    again = world.generated(session, cfg, now)
    assert len(generations) == 1  # taken from the disk
    assert_same_world(again, first)
    assert again is not first
    # what is not part of the world (alerting, dashboard names) does not simulate it again
    assert_same_world(world.generated(session, tiny("gen-kept", sns_topic_name="other-topic"), now), first)
    assert len(generations) == 1
    # a fresh simulation of the same params is what the disk gave back
    assert_same_world(GENERATE(session, cfg, now), first)


@pytest.mark.parametrize("change", [{"seed": 8}, {"days": 3}, {"world": {"requests_per_day": 120}},
                                    {"now": "2026-11-29T00:00:00Z"}])
def test_a_changed_world_param_simulates_again(emulator, cache_home, generations, change):
    cfg = tiny("gen-changed")
    session = A.connect(cfg, emulator.url)
    first = world.generated(session, cfg, world.world_clock(cfg))
    other = tiny("gen-changed", **change)
    changed = world.generated(session, other, world.world_clock(other))
    assert len(generations) == 2
    assert changed.capture_files != first.capture_files
    world.generated(session, cfg, world.world_clock(cfg))  # both are kept
    world.generated(session, other, world.world_clock(other))
    assert len(generations) == 2


def test_nothing_is_kept_while_faults_are_injected(emulator, cache_home, generations):
    cfg = tiny("gen-faults")
    session = A.connect(cfg, emulator.url)
    session.faults_injected = {"throttled": 0}
    now = world.world_clock(cfg)
    assert_same_world(world.generated(session, cfg, now), world.generated(session, cfg, now))
    assert len(generations) == 2 and not cache_home.exists()


def test_a_world_in_another_bucket_gets_its_own_data_files(emulator, cache_home):
    shared = {"capture_prefix": "s3://unit-test-world-shared/capture",
              "ground_truth_prefix": "s3://unit-test-world-shared/labels"}
    one, two = tiny("gen-bucket-1", **shared), tiny("gen-bucket-2", endpoint_name="ep-gen-bucket-1", **shared)
    session = A.connect(one, emulator.url)
    world.generated(session, one, world.world_clock(one))
    assert {bucket for bucket, _, _ in world.generated(session, two, world.world_clock(two)).data_files} == {two.bucket}


# --------------------------------------------------------------------------- build: in-process writes = PUTs

WRITTEN = ("data/", "datacapture/", "ground-truth/")  # what store_objects writes (models and manifest are PUT)


def written(session, cfg) -> dict[str, tuple[str, int, str]]:
    """What S3 holds of the world's data, capture and ground truth: key (under the prefix, the endpoint's name
    replaced) -> (ETag and size as ListObjectsV2 gives them, ContentType as HeadObject gives it)."""
    s3 = session.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cfg.bucket, Prefix=cfg.key("")):
        for o in page.get("Contents", []):
            rest = o["Key"].removeprefix(cfg.key(""))
            if rest.startswith(WRITTEN):
                content_type = s3.head_object(Bucket=cfg.bucket, Key=o["Key"])["ContentType"]
                out[rest.replace(f"/{cfg.endpoint_name}/", "/ENDPOINT/")] = (o["ETag"], o["Size"], content_type)
    return out


def puts(session, cfg) -> list[str]:
    """Keys (under the prefix, the endpoint's name replaced) of every PutObject this session sends from now on."""
    seen: list[str] = []
    session.client("s3").meta.events.register(
        "provide-client-params.s3.PutObject",
        lambda params, **_: seen.append(params["Key"].removeprefix(cfg.key("")).replace(f"/{cfg.endpoint_name}/",
                                                                                        "/ENDPOINT/")))
    return seen


def test_build_writes_into_the_emulator_what_the_put_fallback_writes(emulator, cache_home, monkeypatch):
    built = {}
    for how in ("in process", "by PUT"):
        # buckets and endpoints differ (SageMaker names are unique); seed, days and world are the same
        cfg = tiny("build-direct" if how == "in process" else "build-put")
        session = A.connect(cfg, emulator.url)
        sent = puts(session, cfg)
        with monkeypatch.context() as m:
            if how == "by PUT":
                m.setattr(E, "put_objects_here", lambda *args, **kwargs: False)
            manifest = world.build(session, cfg, progress=lambda msg: None)
        built[how] = (written(session, cfg), sorted(k for k in sent if k.startswith(WRITTEN)), manifest)
    (direct, direct_puts, manifest), (fallback, fallback_puts, _) = built["in process"], built["by PUT"]
    assert direct == fallback  # the same keys, ETags, sizes and content types
    assert direct_puts == [] and fallback_puts == sorted(fallback)  # the in-process build sent none through the API
    kinds = {kind: sorted(k for k in direct if k.startswith(kind)) for kind in WRITTEN}
    assert kinds["data/"] == ["data/test.npz", "data/train.npz"]
    assert len(kinds["datacapture/"]) == manifest["capture_files"] > 10
    assert len(kinds["ground-truth/"]) == manifest["ground_truth_files"] >= 1
    assert {direct[k][2] for k in kinds["datacapture/"] + kinds["ground-truth/"]} == {"application/jsonl"}
    assert {direct[k][2] for k in kinds["data/"]} == {"application/octet-stream"}
    # read back through the API: the bytes the generated world holds
    cfg = tiny("build-direct")
    session = A.connect(cfg, emulator.url)
    generated = world.generated(session, cfg, world.world_clock(cfg))  # from the disk now
    for bucket, key, body in generated.data_files + generated.capture_files + generated.ground_truth_files:
        assert bucket == cfg.bucket and A.get_bytes(session, bucket, key) == body
    pd.testing.assert_frame_equal(A.get_frame(session, cfg.bucket, cfg.key("data", "train.npz")), generated.train,
                                  check_dtype=False)
