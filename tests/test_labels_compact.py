"""Tests for monitor_utils.labels: compact labels join exactly as the frame of labels does, collisions told apart."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitor_utils import capture as C, labels as L, windows as W

UTC = dt.timezone.utc


def frame_and_compact(keys: list[str], index: list[int], years: list[float]) -> tuple[pd.DataFrame, L.CompactLabels]:
    """The same labels, in reading order, as the deduplicated frame read_labels gives and as CompactLabels."""
    frame = pd.DataFrame({"join_key": pd.Series(keys, dtype=object), "record_index": np.asarray(index, dtype=int),
                          "year": np.asarray(years, dtype=float)})
    frame = frame.drop_duplicates(["join_key", "record_index"], keep="last").reset_index(drop=True)
    h1, h2 = L.key_hashes(keys)
    compact = L.CompactLabels.build([(h1, h2, np.asarray(index, dtype=np.int32), np.asarray(years, dtype=float))])
    return frame, compact


def test_compact_join_equals_frame_join_on_random_labels():
    rng = np.random.default_rng(3)
    n = 4000
    keys = [f"inf-{i}" for i in rng.integers(0, 1500, n)]  # repeated keys: several positions and relabels
    index = rng.integers(0, 4, n).tolist()
    years = rng.integers(1922, 2012, n).astype(float).tolist()
    frame, compact = frame_and_compact(keys, index, years)
    assert len(compact) == len(frame) and compact.collisions == 0
    records = pd.DataFrame({"event_id": [f"ev-{i}" for i in range(3000)],
                            "join_key": [f"inf-{i}" for i in rng.integers(0, 2000, 3000)],  # some never labelled
                            "record_index": rng.integers(0, 5, 3000), "prediction": rng.normal(2000, 5, 3000)})
    want = C.join_ground_truth(records, frame)
    got = C.join_ground_truth(records, compact)
    pd.testing.assert_frame_equal(got, want)
    assert 0 < got["year"].notna().sum() < len(got)  # both labelled and unlabelled rows were looked up


def test_latest_label_wins_and_single_record_requests_need_no_record_index():
    frame, compact = frame_and_compact(["a", "b", "a", "c"], [0, 0, 0, 0], [1990, 1991, 1992, 1993])
    records = pd.DataFrame({"join_key": ["c", "a", "x", "b"], "prediction": [1.0, 2.0, 3.0, 4.0]})
    got = C.join_ground_truth(records, compact)
    pd.testing.assert_frame_equal(got, C.join_ground_truth(records, frame))
    assert got["year"].tolist()[:2] == [1993.0, 1992.0] and np.isnan(got["year"][2])


def test_first_hash_collisions_are_detected_and_told_apart(monkeypatch):
    # force collisions: a first hash of only 4 values, so most keys share it with others; the second tells them apart
    real = L.key_hashes
    monkeypatch.setattr(L, "key_hashes", lambda keys: (real(keys)[0] % np.uint64(4), real(keys)[1]))
    keys = [f"k{i}" for i in range(200)]
    frame, compact = frame_and_compact(keys, [0] * 200, list(range(200)))
    assert compact.collisions == 200
    records = pd.DataFrame({"join_key": keys[::-1] + ["nobody"], "record_index": 0})
    years = C.join_ground_truth(records, compact)["year"]
    assert years.tolist()[:200] == [float(v) for v in range(199, -1, -1)] and np.isnan(years.iloc[200])


def test_a_label_takes_tens_of_bytes():
    n = 100_000
    _, compact = frame_and_compact([f"5b0c2e8e-{i:08d}-4f0a-9d55-inference" for i in range(n)], [0] * n, [2000.0] * n)
    assert compact.nbytes / n == 28  # two uint64 hashes, an int32 index, a float64 label; no Python string


def test_read_labels_compact_joins_as_the_frame(s3):
    gt_uri = "s3://test-bucket/labels-compact/ground-truth"
    hour = dt.datetime(2026, 11, 30, 8, tzinfo=UTC)
    lines = [C.ground_truth_line(f"inf-{i}", 1950 + i) for i in range(30)] + [C.ground_truth_line("inf-3", 1)]
    lines += [C.ground_truth_line("multi", [2001, 2002, 2003]), '{"broken":']
    C.write_hourly(s3, gt_uri, pd.Series([hour + dt.timedelta(minutes=i) for i in range(len(lines))]), lines, "gt")
    full = C.read_labels(s3, gt_uri, hour, hour + dt.timedelta(hours=2))
    small = C.read_labels(s3, gt_uri, hour, hour + dt.timedelta(hours=2), compact=True)
    assert isinstance(small.labels, L.CompactLabels) and len(small.labels) == len(full.labels) == 33
    assert small.quarantined == full.quarantined and len(small.quarantined) == 1
    pd.testing.assert_frame_equal(small.counts, full.counts)
    records = pd.DataFrame({"join_key": ["inf-3", "multi", "multi", "multi", "inf-99"], "record_index": [0, 2, 0, 1, 0]})
    got = C.join_ground_truth(records, small.labels)
    pd.testing.assert_frame_equal(got, C.join_ground_truth(records, full.labels))
    assert got["year"].tolist()[:4] == [1.0, 2003.0, 2001.0, 2002.0]


def test_join_keeps_the_records_data_uncopied():
    records = pd.DataFrame(np.zeros((1000, 3)), columns=["f1", "f2", "prediction"]).assign(join_key="a", record_index=0)
    _, compact = frame_and_compact(["a"], [0], [1999.0])
    for labels in (compact, pd.DataFrame({"join_key": ["a"], "record_index": [0], "year": [1999.0]})):
        out = C.join_ground_truth(records, labels)
        assert np.shares_memory(out["f1"].to_numpy(), records["f1"].to_numpy())
        assert (out["year"] == 1999.0).all()


@pytest.fixture()
def s3(emulator):
    """A session on the test session's emulator (tests/conftest.py) with this file's bucket."""
    from monitor_utils import aws, config

    session = aws.connect(config.validate({}), emulator.url)
    aws.ensure_bucket(session, "test-bucket")
    return session
