"""Tests for the columnar pass over ground truth and the bucketed label build (issue 24 point 3): the same labels,
quarantine entries and counts as the per-line pass, on mutated objects; latest label wins across objects."""

from __future__ import annotations

import base64
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, strategies as st

from monitor_utils import capture as C, labels as L

KEY = "gt/2026/11/28/10/00-00-000-x.jsonl"
UTC = dt.timezone.utc


def per_line(key: str, body: bytes) -> C.LabelPart:
    """The reference: every line through ``json.loads`` (the per-line pass alone)."""
    keys, positions, years, bad, lines = C.parse_label_lines(key, body)
    return C._label_part(keys, positions, years, bad, lines)


def assert_same(got: C.LabelPart, want: C.LabelPart) -> None:
    assert got.keys.tolist() == want.keys.tolist()
    assert got.positions.tolist() == want.positions.tolist() and got.positions.dtype == np.int32
    np.testing.assert_array_equal(got.years, want.years)
    assert got.quarantined == want.quarantined and got.lines == want.lines


# groundTruthData bodies: the common plain CSV number, and every other shape or value the per-line pass must judge
DATA = st.sampled_from([
    {"data": "1990", "encoding": "CSV"}, {"data": "1990.5", "encoding": "CSV"}, {"data": "-3e2", "encoding": "CSV"},
    {"data": ".5", "encoding": "CSV"}, {"data": "7.", "encoding": "CSV"}, {"data": "+12", "encoding": "CSV"},
    {"data": "1990"},  # no encoding: CSV by default (per-line pass)
    {"data": " 1990 ", "encoding": "CSV"}, {"data": "1990\n", "encoding": "CSV"}, {"data": "1990,1991", "encoding": "CSV"},
    {"data": "1990\n1991\n", "encoding": "CSV"}, {"data": "nan", "encoding": "CSV"}, {"data": "inf", "encoding": "CSV"},
    {"data": "1e999", "encoding": "CSV"}, {"data": "year", "encoding": "CSV"}, {"data": "", "encoding": "CSV"},
    {"data": "1_000", "encoding": "CSV"}, {"data": "0x10", "encoding": "CSV"},
    {"data": json.dumps({"instances": [{"label": 1990}, {"label": 1991.5}]}), "encoding": "JSON"},
    {"data": "1990", "encoding": "JSON"}, {"data": "[1990, 1991]", "encoding": "JSON"},
    {"data": '{"label": 2001}', "encoding": "CSV"}, {"data": base64.b64encode(b"1990").decode(), "encoding": "BASE64"},
    {"data": "!!", "encoding": "BASE64"}, {"data": "1990", "encoding": "csv"}, {"data": "1990", "encoding": "GZIP"},
    {"data": None, "encoding": "CSV"},
])


@st.composite
def label_line(draw, n: int) -> bytes:
    key = draw(st.sampled_from([f"e{n % 5}", f"e\u2028{n % 3}", "", "inf-é"]))
    record = {"groundTruthData": draw(DATA), "eventMetadata": {"eventId": key}, "eventVersion": "0"}
    if draw(st.booleans()):
        record["eventMetadata"]["inferenceTime"] = "2026-11-28T10:00:00Z"  # a field the columnar pass ignores
    text = json.dumps(record, separators=(",", ":") if draw(st.booleans()) else (", ", ": "))
    mutation = draw(st.sampled_from([None] * 8 + ["torn", "bad utf-8", "crlf", "blank", "indent", "no id", "not object",
                                                  "number id", "number data", "two on a line", "no data"]))
    if mutation == "torn":
        text = text[: len(text) // 2]
    elif mutation == "crlf":
        text += "\r"
    elif mutation == "blank":
        text = "  \n" + text
    elif mutation == "indent":
        text = "  " + text
    elif mutation == "no id":
        text = text.replace('"eventId"', '"eventid"')
    elif mutation == "not object":
        text = json.dumps([record])
    elif mutation == "number id":
        text = json.dumps({**record, "eventMetadata": {"eventId": 17}})
    elif mutation == "number data":
        text = json.dumps({**record, "groundTruthData": {"data": 1990, "encoding": "CSV"}})
    elif mutation == "two on a line":
        text = text + text
    elif mutation == "no data":
        text = json.dumps({"eventMetadata": record["eventMetadata"]})
    data = text.encode()
    if mutation == "bad utf-8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff" + data[at:]
    return data


@st.composite
def label_object(draw) -> bytes:
    lines = [draw(label_line(n)) for n in range(draw(st.integers(0, 10)))]
    body = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\n\n"]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + body


@given(label_object())
@example(b"")
@example(b"\xef\xbb\xbf" + C.ground_truth_line("a", 1990).encode())
@example(C.ground_truth_line("a", 1990).encode() + b"\n\xff\n" + C.ground_truth_line("b", [1, 2]).encode())
@example(b'{"groundTruthData":{"data":"1e999","encoding":"CSV"},"eventMetadata":{"eventId":"a"}}')
def test_the_columnar_pass_gives_what_the_per_line_pass_gives(body):
    assert_same(C.parse_label_object(KEY, body), per_line(KEY, body))


def test_plain_labels_take_the_columnar_pass_and_the_rest_go_line_by_line(monkeypatch):
    lines = [C.ground_truth_line(f"e{i}", 1950 + i) for i in range(40)]
    lines[5] = C.ground_truth_line("multi", [2001, 2002, 2003])
    lines[9] = '{"groundTruthData": {"data": "year", "encoding": "CSV"}, "eventMetadata": {"eventId": "h"}}'
    seen = []
    real = C._label_lines
    monkeypatch.setattr(C, "_label_lines", lambda key, numbered: seen.append([n for n, _ in numbered]) or real(key, numbered))
    got = C.parse_label_object(KEY, "\n".join(lines).encode())
    assert seen == [[6, 10]]  # only the multi-record label and the header went line by line
    assert got.keys.tolist()[4:8] == ["e4", "multi", "multi", "multi"] and got.positions.tolist()[4:8] == [0, 0, 1, 2]
    assert got.years.tolist()[5:8] == [2001.0, 2002.0, 2003.0] and [q["line"] for q in got.quarantined] == [10]
    seen.clear()
    C.parse_label_object(KEY, "\n".join(lines[:3] + ['{"torn":']).encode())
    assert seen == [[1, 2, 3, 4]]  # an object pyarrow cannot read whole goes line by line


def reference_compact(keys: list[str], index: list[int], years: list[float]) -> pd.DataFrame:
    """What CompactLabels must hold, computed independently: the latest label of each (key, index), as hashes
    sorted by (h1, h2, index)."""
    h1, h2 = L.key_hashes(keys)
    frame = pd.DataFrame({"h1": h1, "h2": h2, "index": np.asarray(index, np.int32), "year": np.asarray(years, float)})
    frame = frame.drop_duplicates(["h1", "h2", "index"], keep="last")
    return frame.sort_values(["h1", "h2", "index"], kind="stable").reset_index(drop=True)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2), st.integers(1900, 2030)), max_size=200),
       st.integers(1, 5))
def test_the_bucketed_build_keeps_the_latest_label_across_parts(labels, n_parts):
    keys = [f"k{k}" for k, _, _ in labels]
    index, years = [i for _, i, _ in labels], [float(y) for _, _, y in labels]
    h1, h2 = L.key_hashes(keys)
    cuts = np.linspace(0, len(labels), n_parts + 1).astype(int)
    parts = [(h1[a:b], h2[a:b], np.asarray(index[a:b], np.int32), np.asarray(years[a:b])) for a, b in zip(cuts, cuts[1:])]
    got = L.CompactLabels.build(parts)
    want = reference_compact(keys, index, years)
    assert got.h1.tolist() == want["h1"].tolist() and got.h2.tolist() == want["h2"].tolist()
    assert got.record_index.tolist() == want["index"].tolist() and got.year.tolist() == want["year"].tolist()
    assert (got.h1.dtype, got.h2.dtype, got.record_index.dtype, got.year.dtype) == (np.uint64, np.uint64, np.int32, np.float64)
    assert got.collisions == 0 and parts == [None] * len(parts)


def test_a_large_build_spans_many_chunks_and_stays_sorted():
    rng = np.random.default_rng(5)
    n = 3 * L.CHUNK * 4  # several full chunks in some buckets when the top bits are few
    h1 = rng.integers(0, 1 << 62, n, dtype=np.uint64) >> np.uint64(4)  # only 16 of the 256 buckets: big buckets
    h2 = rng.integers(0, 1 << 62, n, dtype=np.uint64)
    years = rng.random(n)
    builder = L.LabelBuilder()
    for part in np.array_split(np.arange(n), 7):
        builder.add(h1[part], h2[part], np.zeros(len(part), np.int32), years[part])
    builder.add(h1[:10], h2[:10], np.zeros(10, np.int32), -years[:10])  # relabelled later: these win
    got = builder.build()
    assert len(got) == n and len(builder) == 0 and (np.diff(got.h1.astype(np.float64)) >= 0).all()
    order = np.argsort(h1, kind="stable")
    want = years[order].copy()
    want[np.searchsorted(h1[order], h1[:10])] = -years[:10]
    np.testing.assert_array_equal(got.year, want)


@pytest.fixture()
def s3(emulator):
    """A session on the test session's emulator (tests/conftest.py) with this file's bucket."""
    from monitor_utils import aws, config

    session = aws.connect(config.validate({}), emulator.url)
    aws.ensure_bucket(session, "test-bucket")
    return session


def test_read_labels_latest_label_wins_across_objects_through_the_columnar_pass(s3):
    gt_uri = "s3://test-bucket/labels-columnar/ground-truth"
    hour = dt.datetime(2026, 11, 30, 8, tzinfo=UTC)
    first = [C.ground_truth_line(f"inf-{i}", 1950 + i) for i in range(20)] + [C.ground_truth_line("m", [1, 2, 3])]
    later = [C.ground_truth_line("inf-3", 2020), C.ground_truth_line("m", [7, 8]), '{"torn":',
             C.ground_truth_line("inf-4", 2021), C.ground_truth_line("inf-4", 2022)]
    times = [hour] * len(first) + [hour + dt.timedelta(hours=1)] * len(later)
    C.write_hourly(s3, gt_uri, pd.Series(times), first + later, "gt")
    full = C.read_labels(s3, gt_uri, hour, hour + dt.timedelta(hours=2))
    small = C.read_labels(s3, gt_uri, hour, hour + dt.timedelta(hours=2), compact=True)
    records = pd.DataFrame({"join_key": ["inf-3", "inf-4", "m", "m", "m", "inf-5", "x"], "record_index": [0, 0, 0, 1, 2, 0, 0]})
    years = C.join_ground_truth(records, small.labels)["year"].tolist()
    assert years[:6] == [2020.0, 2022.0, 7.0, 8.0, 3.0, 1955.0] and np.isnan(years[6])
    pd.testing.assert_frame_equal(C.join_ground_truth(records, full.labels), C.join_ground_truth(records, small.labels))
    assert [(q["key"].rsplit("/", 2)[-2], q["line"]) for q in small.quarantined] == [("09", 3)]
    assert small.counts[["lines", "lines_read", "lines_quarantined"]].values.tolist() == [[21, 21, 0], [5, 4, 1]]
