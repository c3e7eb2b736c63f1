"""Tests for monitor_utils.reader: the columnar pass gives exactly what the per-line pass gives, on every shape."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from monitor_utils import capture as C, data as D, payloads as P, reader as R, windows as W

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 28, 10, tzinfo=UTC)
WINDOW = W.Window(HOUR, HOUR + dt.timedelta(hours=1))
KEY = "p/datacapture/ep/AllTraffic/2026/11/28/10/00-00-000-x.jsonl"
X = D.generate(60, seed=4)[D.FEATURES].to_numpy(dtype=float)
CELLS = [[repr(v) for v in row] for row in X.tolist()]


def line(i: int, fmt: str = "csv", k: int = 1, minute: int | None = None, inference_id: bool = True) -> str:
    when = HOUR + dt.timedelta(minutes=i % 60 if minute is None else minute)
    return C.capture_line(X[i:i + k] if k > 1 else X[i], [1990.0 + i + j for j in range(k)] if k > 1 else 1990.0 + i,
                          f"ev-{i}", f"inf-{i}" if inference_id else None, W.iso(when), fmt)


def edit(text: str, side: str, **changes) -> str:
    rec = json.loads(text)
    rec["captureData"][side].update(changes)
    return json.dumps(rec)


def reference(body: bytes, window: W.Window = WINDOW, key: str = KEY) -> R.Parsed:
    """The per-line pass over every line: the reader before the columnar one, line for line."""
    numbered = [(n, s) for n, s in enumerate(body.decode().splitlines(), 1) if s.strip()]
    return R.parse_lines(key, numbered, window, D.FEATURES, 0)


def assert_same(body: bytes, window: W.Window = WINDOW, key: str = KEY) -> R.Parsed:
    got, want = R.parse_object(key, body, window, D.FEATURES, 0), reference(body, window, key)
    pd.testing.assert_frame_equal(got.frame(D.FEATURES), want.frame(D.FEATURES))
    assert got.quarantined == want.quarantined
    assert got.captured == want.captured
    return got


def test_single_record_csv_is_read_exactly(monkeypatch):
    body = ("\n".join(line(i, inference_id=i % 3 > 0) for i in range(40)) + "\n").encode()
    got = assert_same(body)
    monkeypatch.setattr(R, "parse_lines", lambda key, numbered, *a: pytest.fail("per-line pass used") if numbered else R.Parsed())
    assert len(R.parse_object(KEY, body, WINDOW, D.FEATURES, 0).frame(D.FEATURES)) == 40  # all columnar
    rec = got.frame(D.FEATURES)
    np.testing.assert_array_equal(rec[D.FEATURES].to_numpy(), X[:40])
    assert rec["inference_id"].isna().sum() == 14 and got.captured == {"input": 0, "output": 0, "both": 40}


def test_every_shape_and_every_fault_in_one_object():
    mixed = [line(i, fmt, k) for i, (fmt, k) in enumerate([(f, 1 if f in ("csv", "base64") else 3) for f in P.FORMATS])]
    header = edit(line(20), "endpointInput", data=",".join(D.FEATURES))
    spaced = edit(line(21), "endpointInput", data=" " + ",".join(CELLS[21]))
    trailing = edit(line(22), "endpointInput", data=",".join(CELLS[22]) + "\n")
    nan_in = edit(line(23), "endpointInput", data=",".join(["nan"] + CELLS[23][1:]))
    nan_out = edit(line(24), "endpointOutput", data="nan")
    word_out = edit(line(25), "endpointOutput", data="high")
    short = C.capture_line(X[26][:89], 1.0, "short", None, W.iso(HOUR))
    no_type = json.loads(line(27))
    del no_type["captureData"]["endpointInput"]["observedContentType"]
    no_output = json.loads(line(28))
    del no_output["captureData"]["endpointOutput"]
    empty_id = json.loads(line(29))
    empty_id["eventMetadata"]["eventId"] = ""
    outside = line(30, minute=0).replace("T10:00:00Z", "T12:00:00Z")
    naive = line(31).replace("Z\"", "\"")
    lines = [*mixed, header, spaced, "", trailing, nan_in, nan_out, word_out, short, json.dumps(no_type),
             json.dumps(no_output), json.dumps(empty_id), outside, naive, line(32), "   ", line(33)]
    got = assert_same(("\n".join(lines) + "\n").encode())
    reasons = [q["reason"] for q in got.quarantined]
    assert len(reasons) == 6 and "header row" in reasons[0] and "89 values" in reasons[3], reasons
    assert "partition 2026/11/28/10: no window reads both" in reasons[5]  # 12:00 is read by windows from 11:00
    assert {"input": 1} == {k: v for k, v in got.captured.items() if k == "input"}
    rec = got.frame(D.FEATURES).set_index("event_id")
    assert rec.loc["ev-21", D.FEATURES[0]] == X[21][0] and np.isnan(rec.loc["ev-23", D.FEATURES[0]])  # read by float()


def test_a_torn_line_sends_the_object_to_the_per_line_pass():
    lines = [line(i) for i in range(5)]
    lines[2] = lines[2][: len(lines[2]) // 2]
    got = assert_same(("\n".join(lines)).encode())
    assert [q["line"] for q in got.quarantined] == [3] and "JSONDecodeError" in got.quarantined[0]["reason"]


def test_a_neighbouring_hour_file_line_is_accounted_by_the_window_of_its_time():
    late = line(1, minute=59)
    bad = edit(line(2, minute=59), "endpointOutput", data="nan")
    next_hour = "p/datacapture/ep/AllTraffic/2026/11/28/11/00-00-000-y.jsonl"
    body = (late + "\n" + bad + "\n").encode()
    got = assert_same(body, key=next_hour)
    assert [q["line"] for q in got.quarantined] == [2] and got.captured["both"] == 1 and got.outside == 0
    owner = W.Window(WINDOW.end, WINDOW.end + dt.timedelta(hours=1))  # the partition's window: both lines are outside
    other = assert_same(body, window=owner, key=next_hour)
    assert (other.lines, other.outside, other.quarantined, other.lines_read) == (2, 2, [], 0)


@pytest.mark.parametrize("body", [b"", b"\n\n", b"\xff\xfe caf\xe9\n", b"[1, 2, 3]\n"])
def test_degenerate_objects(body):
    got = R.parse_object(KEY, body, WINDOW, D.FEATURES, 0)
    if body.strip() and body.startswith(b"["):
        assert "not a capture record" in got.quarantined[0]["reason"]
    elif body.startswith(b"\xff"):
        assert "UTF-8" in got.quarantined[0]["reason"]
    else:
        assert got.quarantined == [] and got.frame(D.FEATURES).empty
