"""Tests for monitor_utils.capture: Data Capture / ground-truth JSONL written and read back on the emulator (moto)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from monitor_utils import aws, capture as C, config, data as D, windows as W

UTC = dt.timezone.utc
BUCKET = "unit-test-capture-bucket"
HOUR = dt.timedelta(hours=1)


def t(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def capture_local_aws(emulator):
    """The session's local AWS emulator (tests/conftest.py)."""
    return emulator


@pytest.fixture(scope="module")
def connection(capture_local_aws):
    return aws.connect(config.validate({}), capture_local_aws.url)


@pytest.fixture()
def s3(connection):
    aws.ensure_bucket(connection, BUCKET)  # per test: another file may reset moto's shared state
    return connection


@pytest.fixture()
def base(request) -> str:
    """A capture base URI of this test's own (moto's state is shared by every server in the process)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    return C.capture_uri_for(f"s3://{BUCKET}/{name}/datacapture", "ep", "AllTraffic")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return D.generate(40, seed=21)


def csv_of(row: pd.Series) -> str:
    return ",".join(repr(float(v)) for v in row[D.FEATURES])


def vec(row: pd.Series) -> np.ndarray:
    return row[D.FEATURES].to_numpy(dtype=float)


def keys_under(a, uri: str) -> list[str]:
    bucket, key = aws.split_s3_uri(uri)
    return sorted(aws.list_keys(a, bucket, key.rstrip("/") + "/"))


def put_lines(a, uri: str, hour: dt.datetime, name: str, lines: list[str]) -> str:
    bucket, key = aws.split_s3_uri(uri)
    full = W.partition_prefix(key, hour) + name
    aws.put_bytes(a, bucket, full, ("\n".join(lines) + "\n").encode())
    return full


# --------------------------------------------------------------------------- line format


@pytest.mark.parametrize("fmt, ctype, enc", [("csv", "text/csv", "CSV"),
                                             ("json_instances", "application/json", "JSON"),
                                             ("base64", "text/csv; charset=utf-8", "BASE64")])
def test_capture_line_format(rows, fmt, ctype, enc):
    features = csv_of(rows.iloc[0])
    rec = json.loads(C.capture_line(vec(rows.iloc[0]), 1999.123456, "ev-1", "inf-1", "2026-11-28T10:00:00Z", fmt))
    assert rec["eventVersion"] == "0"
    assert rec["eventMetadata"] == {"eventId": "ev-1", "inferenceId": "inf-1", "inferenceTime": "2026-11-28T10:00:00Z"}
    inp, out = rec["captureData"]["endpointInput"], rec["captureData"]["endpointOutput"]
    assert inp["mode"] == "INPUT" and out["mode"] == "OUTPUT"
    assert inp["observedContentType"] == ctype and inp["encoding"] == enc
    if fmt == "csv":
        assert inp["data"] == features and out["data"] == "1999.1235"
    elif fmt == "base64":
        assert base64.b64decode(inp["data"]).decode() == features
        assert base64.b64decode(out["data"]).decode() == "1999.1235" and out["encoding"] == "BASE64"
    else:
        assert json.loads(inp["data"]) == {"instances": [[float(x) for x in features.split(",")]]}
        assert json.loads(out["data"]) == {"predictions": [1999.1235]}


def test_capture_line_without_inference_id():
    rec = json.loads(C.capture_line([1.0, 2.0], 2000.0, "ev-9", None, "2026-11-28T10:00:00Z"))
    assert rec["eventMetadata"] == {"eventId": "ev-9", "inferenceTime": "2026-11-28T10:00:00Z"}


def test_ground_truth_line():
    rec = json.loads(C.ground_truth_line("inf-7", 1987.0))
    assert rec == {"groundTruthData": {"data": "1987", "encoding": "CSV"}, "eventMetadata": {"eventId": "inf-7"},
                   "eventVersion": "0"}


def test_capture_uri_for():
    assert C.capture_uri_for("s3://b/p/datacapture/", "ep", "AllTraffic") == "s3://b/p/datacapture/ep/AllTraffic"


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", ["csv", "json_instances", "json_features", "json_named", "jsonlines", "base64"])
def test_round_trip_through_read_capture(s3, base, rows, fmt):
    start = t(2026, 11, 28, 10)
    times = [start + dt.timedelta(minutes=5 * i + 1) for i in range(10)]
    preds = [1990.0 + i * 1.23456 for i in range(10)]
    lines = [C.capture_line(vec(rows.iloc[i]), preds[i], f"ev-{i}", f"inf-{i}", W.iso(times[i]), fmt)
             for i in range(10)]
    C.write_hourly(s3, base, pd.Series(times), lines, "cap")
    batch = C.read_capture(s3, base, W.Window(start, start + HOUR))
    assert batch.quarantined == []
    rec = batch.records
    assert list(rec.columns) == ["event_id", "inference_id", "join_key", "record_index", "inference_time", "prediction",
                                 *D.FEATURES]
    assert (rec["record_index"] == 0).all()
    assert list(rec["event_id"]) == [f"ev-{i}" for i in range(10)]
    assert list(rec["join_key"]) == [f"inf-{i}" for i in range(10)]
    np.testing.assert_array_equal(rec[D.FEATURES].to_numpy(), rows.iloc[:10][D.FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(rec["prediction"], preds, atol=5e-5)
    assert [ts.to_pydatetime() for ts in rec["inference_time"]] == times


def test_mixed_formats_in_one_file(s3, base, rows):
    start = t(2026, 11, 28, 3)
    fmts = ["csv", "json_instances", "base64"] * 4
    times = [start + dt.timedelta(minutes=4 * i) for i in range(12)]
    lines = [C.capture_line(vec(rows.iloc[i]), 2000 + i, f"e{i}", None, W.iso(times[i]), f)
             for i, f in enumerate(fmts)]
    assert C.write_hourly(s3, base, pd.Series(times), lines, "cap") == 1
    rec = C.read_capture(s3, base, W.Window(start, start + HOUR)).records
    np.testing.assert_array_equal(rec[D.FEATURES].to_numpy(), rows.iloc[:12][D.FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(rec["prediction"], [2000 + i for i in range(12)])
    assert rec["inference_id"].isna().all() and list(rec["join_key"]) == [f"e{i}" for i in range(12)]


# --------------------------------------------------------------------------- write_hourly


def test_write_hourly_one_object_per_hour(s3, base):
    times = [t(2026, 11, 28, 10, 5, 1, 250000), t(2026, 11, 28, 10, 55), t(2026, 11, 28, 11, 30),
             t(2026, 11, 28, 13, 0), t(2026, 11, 29, 0, 0, 1)]
    lines = [f'{{"n":{i}}}' for i in range(len(times))]
    shuffled = [4, 2, 0, 3, 1]  # order of the input does not matter for the layout
    n = C.write_hourly(s3, base, pd.Series([times[i] for i in shuffled]), [lines[i] for i in shuffled], "tag")
    assert n == 4
    keys = keys_under(s3, base)
    _, base_key = aws.split_s3_uri(base)
    hours = [k[len(base_key) + 1:].rsplit("/", 1)[0] for k in keys]
    assert hours == ["2026/11/28/10", "2026/11/28/11", "2026/11/28/13", "2026/11/29/00"]
    # file names start with the first record's minute-second-millisecond, as SageMaker names them
    assert re.fullmatch(r"05-01-250-[0-9a-f]{12}\.jsonl", keys[0].rsplit("/", 1)[1])
    bucket, _ = aws.split_s3_uri(base)
    body = aws.get_bytes(s3, bucket, keys[0]).decode()
    assert body.endswith("\n") and set(body.splitlines()) == {lines[0], lines[1]}
    assert aws.get_bytes(s3, bucket, keys[3]).decode().splitlines() == [lines[4]]


# --------------------------------------------------------------------------- windows


def test_read_capture_returns_only_records_in_window(s3, base, rows):
    w = W.Window(t(2026, 11, 28, 10), t(2026, 11, 28, 11))
    cases = {  # event id -> (inference time, inside?)
        "before-far": (t(2026, 11, 28, 9, 30), False),
        "before-1us": (w.start - dt.timedelta(microseconds=1), False),
        "at-start": (w.start, True),
        "middle": (t(2026, 11, 28, 10, 30), True),
        "last-second": (w.end - dt.timedelta(seconds=1), True),
        "at-end": (w.end, False),
        "after": (t(2026, 11, 28, 11, 20), False),
        "next-day": (t(2026, 11, 29, 10, 30), False),
    }
    lines = [C.capture_line(vec(rows.iloc[i]), 2000.0, ev, None, when.isoformat().replace("+00:00", "Z"))
             for i, (ev, (when, _)) in enumerate(cases.items())]
    C.write_hourly(s3, base, pd.Series([w for w, _ in cases.values()]), lines, "cap")
    # a record from the window's last moment, flushed into the next hour's file (as SageMaker can)
    late = C.capture_line(vec(rows.iloc[20]), 2001.0, "late-flush", None, "2026-11-28T10:59:59.900000Z")
    put_lines(s3, base, t(2026, 11, 28, 11), "59-59-999-late.jsonl", [late])
    batch = C.read_capture(s3, base, w)
    assert batch.quarantined == []
    got = list(batch.records["event_id"])
    assert got == ["at-start", "middle", "last-second", "late-flush"]  # sorted by inference time
    assert set(got) == {ev for ev, (_, inside) in cases.items() if inside} | {"late-flush"}
    # read: the 09, 10 and 11 partitions (11 holds two files); the next day is never listed
    assert batch.files == 4 == sum(1 for k in keys_under(s3, base) if "/2026/11/28/" in k)


def test_read_capture_daily_window_and_naive_times(s3, base, rows):
    day = W.Window(t(2026, 11, 27), t(2026, 11, 28))
    times = [t(2026, 11, 26, 23, 59, 59), t(2026, 11, 27, 0, 0), t(2026, 11, 27, 12), t(2026, 11, 27, 23, 59, 59),
             t(2026, 11, 28)]
    lines = [C.capture_line(vec(rows.iloc[i]), 2000.0, f"d{i}", None, x.strftime("%Y-%m-%dT%H:%M:%S"))
             for i, x in enumerate(times)]  # inferenceTime without a zone: UTC
    C.write_hourly(s3, base, pd.Series(times), lines, "cap")
    assert list(C.read_capture(s3, base, day).records["event_id"]) == ["d1", "d2", "d3"]


def test_read_capture_empty_window(s3, base):
    batch = C.read_capture(s3, base, W.Window(t(2026, 1, 1), t(2026, 1, 2)))
    assert batch.records.empty and batch.quarantined == [] and batch.files == 0
    assert list(batch.records.columns)[:6] == ["event_id", "inference_id", "join_key", "record_index", "inference_time",
                                               "prediction"]
    assert len(batch.records.columns) == 6 + 90


# --------------------------------------------------------------------------- malformed input


def malformed_lines(rows) -> dict[str, tuple[str, str]]:
    """name -> (line, a word the quarantine reason must contain)."""
    good = C.capture_line(vec(rows.iloc[0]), 2000.0, "x", None, "2026-11-28T10:10:00Z")
    rec = json.loads(good)
    no_meta = {k: v for k, v in rec.items() if k != "eventMetadata"}
    short = json.loads(C.capture_line(vec(rows.iloc[0])[:89], 2000.0, "x", None, "2026-11-28T10:10:00Z"))
    text = json.loads(good)
    text["captureData"]["endpointInput"]["data"] = text["captureData"]["endpointInput"]["data"].replace(
        text["captureData"]["endpointInput"]["data"].split(",")[5], "loud", 1)
    b64 = json.loads(C.capture_line(vec(rows.iloc[0]), 2000.0, "x", None, "2026-11-28T10:10:00Z", "base64"))
    b64["captureData"]["endpointInput"]["data"] = "!!not base64!!"
    unknown = json.loads(good)
    unknown["captureData"]["endpointInput"]["encoding"] = "XML"
    nan_pred = json.loads(good)
    nan_pred["captureData"]["endpointOutput"]["data"] = "nan"
    bad_time = json.loads(good)
    bad_time["eventMetadata"]["inferenceTime"] = "yesterday"
    no_capture = json.loads(good)
    del no_capture["captureData"]
    return {
        "truncated": (good[: len(good) // 2], "JSONDecodeError"),
        "no-metadata": (json.dumps(no_meta), "eventMetadata"),
        "89-features": (json.dumps(short), "89 values"),
        "non-numeric": (json.dumps(text), "loud"),
        "bad-base64": (json.dumps(b64), "base64"),
        "unknown-encoding": (json.dumps(unknown), "XML"),
        "nan-prediction": (json.dumps(nan_pred), "not finite"),
        "bad-time": (json.dumps(bad_time), "yesterday"),
        "no-capture-data": (json.dumps(no_capture), "captureData"),
        "not-an-object": ("[1, 2, 3]", "not a capture record"),
    }


def test_malformed_lines_are_quarantined_with_reason(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    bad = malformed_lines(rows)
    good = [C.capture_line(vec(rows.iloc[i]), 2000.0 + i, f"good-{i}", None, W.iso(hour + dt.timedelta(minutes=i)))
            for i in range(1, 4)]
    lines = [good[0], *[line for line, _ in bad.values()], good[1], "", good[2]]
    key = put_lines(s3, base, hour, "00-00-000-mixed.jsonl", lines)
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    assert list(batch.records["event_id"]) == ["good-1", "good-2", "good-3"]
    assert len(batch.quarantined) == len(bad)
    for q, (name, (line, word)) in zip(batch.quarantined, bad.items()):
        assert q["key"] == key
        assert q["line"] == lines.index(line) + 1, name
        assert q["text"] == line[:1024], name
        assert word in q["reason"], (name, q["reason"])


def test_a_non_utf8_line_is_quarantined_alone(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    good = C.capture_line(vec(rows.iloc[0]), 2000.0, "good", None, "2026-11-28T10:30:00Z")
    put_lines(s3, base, hour, "10-00-000-good.jsonl", [good])
    bucket, key = aws.split_s3_uri(base)
    bad_key = W.partition_prefix(key, hour) + "20-00-000-latin1.jsonl"
    aws.put_bytes(s3, bucket, bad_key, good.encode() + b"\n\xff\xfe caf\xe9\n")
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    assert list(batch.records["event_id"]) == ["good", "good"]  # the rest of the object is read
    assert len(batch.quarantined) == 1 and batch.quarantined[0]["line"] == 2
    assert batch.quarantined[0]["key"] == bad_key and "line is not UTF-8 at byte 0" == batch.quarantined[0]["reason"]
    assert batch.files == 2


def test_missing_event_id_is_quarantined(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    rec = json.loads(C.capture_line(vec(rows.iloc[0]), 2000.0, "x", "inf-x", "2026-11-28T10:10:00Z"))
    del rec["eventMetadata"]["eventId"]
    good = C.capture_line(vec(rows.iloc[1]), 2000.0, "good", None, "2026-11-28T10:20:00Z")
    put_lines(s3, base, hour, "00-00-000-noid.jsonl", [json.dumps(rec), good])
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    assert list(batch.records["event_id"]) == ["good"]
    assert len(batch.quarantined) == 1 and "eventId" in batch.quarantined[0]["reason"]


# --------------------------------------------------------------------------- ground truth and join


def test_ground_truth_round_trip_and_join(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    gt_uri = base.replace("datacapture", "ground-truth")
    ids = {  # event id -> inference id (None: the client sent none)
        "ev-0": "inf-0", "ev-1": "inf-1", "ev-2": None, "ev-3": None, "ev-4": "inf-4", "ev-5": "inf-5"}
    times = [hour + dt.timedelta(minutes=3 * i) for i in range(len(ids))]
    lines = [C.capture_line(vec(rows.iloc[i]), 1990.0 + i, ev, inf, W.iso(times[i]))
             for i, (ev, inf) in enumerate(ids.items())]
    C.write_hourly(s3, base, pd.Series(times), lines, "cap")
    records = C.read_capture(s3, base, W.Window(hour, hour + HOUR)).records
    assert list(records["join_key"]) == ["inf-0", "inf-1", "ev-2", "ev-3", "inf-4", "inf-5"]

    labels = {"inf-0": 1980, "ev-2": 1995, "inf-4": 2004,
              "ev-1": 1111,     # keyed by the eventId of a record that HAS an inferenceId: must not match
              "inf-5": 1966, "orphan": 2000}
    label_times = [t(2026, 11, 30, 8) + dt.timedelta(minutes=i) for i in range(len(labels) + 1)]
    gt_lines = [C.ground_truth_line(k, y) for k, y in labels.items()] + [C.ground_truth_line("inf-5", 1967)]
    C.write_hourly(s3, gt_uri, pd.Series(label_times), gt_lines, "gt")
    gt, quarantined = C.read_ground_truth(s3, gt_uri, t(2026, 11, 30), t(2026, 12, 1))
    assert quarantined == []
    assert gt["join_key"].is_unique
    assert gt.set_index("join_key")["year"].to_dict() == {**labels, "inf-5": 1967.0}  # a later label wins

    joined = C.join_ground_truth(records, gt)
    assert len(joined) == len(records)
    assert list(joined["event_id"]) == list(records["event_id"])
    years = dict(zip(joined["event_id"], joined["year"]))
    assert years["ev-0"] == 1980 and years["ev-2"] == 1995 and years["ev-4"] == 2004 and years["ev-5"] == 1967
    assert np.isnan(years["ev-1"]) and np.isnan(years["ev-3"])
    np.testing.assert_array_equal(joined[D.FEATURES].to_numpy(), records[D.FEATURES].to_numpy())


def test_read_ground_truth_window_and_quarantine(s3, base):
    gt_uri = base.replace("datacapture", "ground-truth")
    put_lines(s3, gt_uri, t(2026, 11, 29, 23), "a.jsonl", [C.ground_truth_line("early", 1990)])
    put_lines(s3, gt_uri, t(2026, 11, 30, 0), "a.jsonl", [C.ground_truth_line("in-1", 1991), '{"broken":',
                                                          json.dumps({"eventMetadata": {"eventId": "x"}})])
    put_lines(s3, gt_uri, t(2026, 11, 30, 23), "a.jsonl", [C.ground_truth_line("in-2", 1992)])
    put_lines(s3, gt_uri, t(2026, 12, 1, 0), "a.jsonl", [C.ground_truth_line("late", 1993)])
    gt, quarantined = C.read_ground_truth(s3, gt_uri, t(2026, 11, 30), t(2026, 12, 1))
    assert list(gt["join_key"]) == ["in-1", "in-2"] and list(gt["year"]) == [1991.0, 1992.0]
    assert [q["line"] for q in quarantined] == [2, 3]


def test_join_without_labels_gives_nan():
    records = pd.DataFrame({"event_id": ["a", "b"], "join_key": ["a", "ib"], "prediction": [2000.0, 2001.0]})
    out = C.join_ground_truth(records, pd.DataFrame(columns=["join_key", "year"]))
    assert list(out["event_id"]) == ["a", "b"] and out["year"].isna().all()


# --------------------------------------------------------------------------- listing


def test_keys_between_lists_only_the_range(s3, base):
    bucket, key = aws.split_s3_uri(base)
    written = {}
    for h in range(6, 16):
        written[h] = put_lines(s3, base, t(2026, 11, 28, h), f"00-00-000-h{h:02d}.jsonl", ["{}"])
    put_lines(s3, base, t(2026, 11, 28, 10), "30-00-000-second.jsonl", ["{}"])
    # neighbours that share a textual prefix must never leak in
    aws.put_bytes(s3, bucket, key + "2/2026/11/28/11/00-00-000-sibling.jsonl", b"{}\n")
    aws.put_bytes(s3, bucket, key.rsplit("/", 1)[0] + "/Other/2026/11/28/11/x.jsonl", b"{}\n")

    got = C.keys_between(s3, base, t(2026, 11, 28, 10), t(2026, 11, 28, 13))
    assert got == sorted(got)
    assert [k.split("/")[-2] for k in got] == ["10", "10", "11", "12"]
    assert all(k.startswith(key + "/") for k in got)

    # an end inside an hour includes that hour's partition
    got = C.keys_between(s3, base, t(2026, 11, 28, 14), t(2026, 11, 28, 15, 30))
    assert got == [written[14], written[15]]
    assert C.keys_between(s3, base, t(2026, 11, 28, 20), t(2026, 11, 28, 23)) == []
    assert C.keys_between(s3, base, t(2026, 11, 27, 0), t(2026, 11, 28, 7)) == [written[6]]


def test_keys_between_across_days_and_months(s3, base):
    hours = [t(2026, 11, 30, 22), t(2026, 11, 30, 23), t(2026, 12, 1, 0), t(2026, 12, 1, 1), t(2026, 12, 2, 0)]
    keys = [put_lines(s3, base, h, "00-00-000-x.jsonl", ["{}"]) for h in hours]
    assert C.keys_between(s3, base, t(2026, 11, 30, 23), t(2026, 12, 1, 2)) == keys[1:4]


# --------------------------------------------------------------------------- records, not requests


def test_multi_record_requests_give_one_row_per_record_and_join_labels_by_position(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    gt_uri = base.replace("datacapture", "ground-truth")
    x = rows[D.FEATURES].to_numpy(dtype=float)
    lines = [C.capture_line(x[0:3], [1990.0, 1991.0, 1992.0], "ev-a", "inf-a", "2026-11-28T10:01:00Z", "json_features"),
             C.capture_line(x[3:4], [1993.0], "ev-b", None, "2026-11-28T10:02:00.250Z", "csv"),
             C.capture_line(x[4:6], [1994.0, 1995.0], "ev-c", None, "2026-11-28T10:03:00Z", "jsonlines")]
    put_lines(s3, base, hour, "01-00-000-a.jsonl", lines)
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    rec = batch.records
    assert batch.quarantined == [] and batch.requests == 3 and len(rec) == 6
    assert list(zip(rec["join_key"], rec["record_index"])) == [
        ("inf-a", 0), ("inf-a", 1), ("inf-a", 2), ("ev-b", 0), ("ev-c", 0), ("ev-c", 1)]
    np.testing.assert_array_equal(rec[D.FEATURES].to_numpy(), x[:6])
    np.testing.assert_array_equal(rec["prediction"], [1990.0, 1991.0, 1992.0, 1993.0, 1994.0, 1995.0])
    assert rec["inference_time"].iloc[3] == pd.Timestamp("2026-11-28T10:02:00.250Z")  # fractional seconds kept

    # labels: inf-a labelled as a batch in its request's shape, then relabelled at position 1 later;
    # ev-c labelled in one line; ev-b never
    first = json.dumps({"groundTruthData": {"data": json.dumps({"instances": [{"label": 2000}, {"label": 2001},
                                                                               {"label": 2002}]}), "encoding": "JSON"},
                        "eventMetadata": {"eventId": "inf-a"}, "eventVersion": "0"})
    bucket, key = aws.split_s3_uri(gt_uri)
    # one-line files without a trailing newline, written with json.dumps' default separators (as real ones are)
    aws.put_bytes(s3, bucket, W.partition_prefix(key, t(2026, 11, 29, 6)) + "inf-a.jsonl", first.encode())
    later = {"groundTruthData": {"data": json.dumps({"instances": [{"label": 2000}, {"label": 1970}, {"label": 2002}]}),
                                 "encoding": "JSON"}, "eventMetadata": {"eventId": "inf-a"}, "eventVersion": "0"}
    aws.put_bytes(s3, bucket, W.partition_prefix(key, t(2026, 11, 30, 6)) + "inf-a.jsonl", json.dumps(later).encode())
    aws.put_bytes(s3, bucket, W.partition_prefix(key, t(2026, 11, 29, 6)) + "ev-c.jsonl",
                  C.ground_truth_line("ev-c", [1980.0, 1981.0]).encode())
    labels, bad = C.read_ground_truth(s3, gt_uri, t(2026, 11, 29), t(2026, 12, 1))
    assert bad == [] and len(labels) == 5
    joined = C.join_ground_truth(rec, labels)
    assert len(joined) == 6
    assert joined["year"].tolist()[:3] == [2000.0, 1970.0, 2002.0]  # by position; the later label wins
    assert np.isnan(joined["year"].iloc[3]) and joined["year"].tolist()[4:] == [1980.0, 1981.0]


def test_input_only_and_output_only_captures_are_read_for_what_they_hold(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    x = rows[D.FEATURES].to_numpy(dtype=float)
    full = [json.loads(C.capture_line(x[i:i + 2], [1990.0 + i, 1991.0 + i], f"ev-{i}", None,
                                      f"2026-11-28T10:0{i}:00Z", "json_instances")) for i in range(3)]
    del full[0]["captureData"]["endpointOutput"]  # CaptureMode: Input only
    del full[1]["captureData"]["endpointInput"]   # CaptureMode: Output only
    put_lines(s3, base, hour, "01-00-000-modes.jsonl", [json.dumps(r) for r in full])
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    rec = batch.records
    assert batch.quarantined == [] and (batch.requests, batch.input_only, batch.output_only) == (3, 1, 1)
    assert len(rec) == 6
    assert rec["prediction"].isna().tolist() == [True, True, False, False, False, False]
    assert rec[D.FEATURES].isna().all(axis=1).tolist() == [False, False, True, True, False, False]
    np.testing.assert_array_equal(rec[D.FEATURES].to_numpy()[:2], x[0:2])
    np.testing.assert_array_equal(rec["prediction"].iloc[2:4], [1991.0, 1992.0])


def test_bad_requests_are_quarantined_and_the_rest_of_the_file_is_read(s3, base, rows):
    hour = t(2026, 11, 28, 10)
    x = rows[D.FEATURES].to_numpy(dtype=float)
    mismatch = json.loads(C.capture_line(x[0:3], [1.0, 2.0, 3.0], "mm", None, "2026-11-28T10:01:00Z", "csv_batch"))
    mismatch["captureData"]["endpointOutput"]["data"] = "1.0,2.0"
    header = json.loads(C.capture_line(x[0], 1.0, "hdr", "0", "2026-11-28T10:02:00Z"))
    header["captureData"]["endpointInput"]["data"] = ",".join(D.FEATURES)
    short = C.capture_line(x[0][:69], 1.0, "short", None, "2026-11-28T10:03:00Z")
    good = [C.capture_line(x[i:i + 2], [1.0, 2.0], f"ok-{i}", None, f"2026-11-28T10:1{i}:00Z", "json_named")
            for i in range(2)]
    lines = [good[0], json.dumps(mismatch), json.dumps(header), short, good[1]]
    key = put_lines(s3, base, hour, "01-00-000-bad.jsonl", lines)
    batch = C.read_capture(s3, base, W.Window(hour, hour + HOUR))
    assert batch.records["event_id"].tolist() == ["ok-0", "ok-0", "ok-1", "ok-1"]
    reasons = {q["line"]: q["reason"] for q in batch.quarantined}
    assert all(q["key"] == key for q in batch.quarantined)
    assert set(reasons) == {2, 3, 4}
    assert "input has 3 records, output has 2" in reasons[2]
    assert "header row" in reasons[3]
    assert "has 69 values, the baseline has 90" in reasons[4]


def test_features_come_from_the_baseline_names(s3, base):
    hour = t(2026, 11, 28, 10)
    names = ["tempo", "loudness"]
    body = {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                              "data": json.dumps([{"loudness": -5.0, "tempo": 120.0}]), "encoding": "JSON"},
                            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "1999",
                                               "encoding": "CSV"}},
            "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-11-28T10:00:00Z"}, "eventVersion": "0"}
    put_lines(s3, base, hour, "00-00-000-named.jsonl", [json.dumps(body)])
    rec = C.read_capture(s3, base, W.Window(hour, hour + HOUR), features=names).records
    assert list(rec.columns[-2:]) == names and rec[names].iloc[0].tolist() == [120.0, -5.0]


# --------------------------------------------------------------------------- shared listings


@pytest.fixture()
def list_calls(s3):
    """Prefixes of every ListObjectsV2 call this session sends during the test."""
    calls: list[str] = []

    def seen(params, **_):
        calls.append(params["Prefix"])

    events = s3.client("s3").meta.events
    events.register("provide-client-params.s3.ListObjectsV2", seen, unique_id="test-capture-list-calls")
    yield calls
    events.unregister("provide-client-params.s3.ListObjectsV2", unique_id="test-capture-list-calls")


def spread(s3, base, hours) -> list[str]:
    """Two objects in each of ``hours`` (an object name sorts before and after another hour's), keys in key order."""
    return sorted(k for h in hours for k in (put_lines(s3, base, h, "00-00-000-a.jsonl", ["{}"]),
                                             put_lines(s3, base, h, "59-59-999-b.jsonl", ["{}"])))


def reference_keys(s3, base, first_hour, end) -> list[str]:
    """The keys of the hours [first_hour, hour of end) from a full listing: what objects_between must give."""
    bucket, base_key = aws.split_s3_uri(base)
    last = W.floor(end - dt.timedelta(microseconds=1), "hourly")
    out = []
    for k in keys_under(s3, base):
        hour = dt.datetime.strptime(k[len(base_key) + 1:].rsplit("/", 1)[0], "%Y/%m/%d/%H").replace(tzinfo=UTC)
        if first_hour <= hour <= last:
            out.append(k)
    return out


RANGES = [(t(2026, 11, 30, 22), t(2026, 12, 1, 2)),  # across the month's end
          (t(2026, 11, 30, 23), t(2026, 12, 1, 0, 30)),
          (t(2026, 11, 29, 0), t(2026, 12, 3, 0)),
          (t(2026, 12, 1, 1), t(2026, 12, 1, 1, 0, 1)),
          (t(2026, 12, 2, 5), t(2026, 12, 2, 9)),  # no object in it
          (t(2026, 11, 29, 23), t(2026, 11, 30, 1))]


def test_shared_listings_give_what_unshared_reads_give_listing_each_day_once(s3, base, list_calls):
    hours = [t(2026, 11, 29, 0), t(2026, 11, 29, 23), t(2026, 11, 30, 0), t(2026, 11, 30, 22), t(2026, 11, 30, 23),
             t(2026, 12, 1, 0), t(2026, 12, 1, 1), t(2026, 12, 1, 2), t(2026, 12, 2, 23), t(2026, 12, 3, 0)]
    spread(s3, base, hours)
    bucket, key = aws.split_s3_uri(base)
    aws.put_bytes(s3, bucket, key + "2/2026/12/01/01/00-00-000-sibling.jsonl", b"{}\n")  # a neighbour prefix
    unshared = [C.objects_between(s3, base, a, b) for a, b in RANGES]
    for (a, b), got in zip(RANGES, unshared):
        assert [o.key for o in got] == reference_keys(s3, base, a, b)
    assert [o.key for o in unshared[0]] and not unshared[4]
    list_calls.clear()
    with C.shared_listings(t(2026, 11, 29), t(2026, 12, 3)):
        first = C.objects_between(s3, base, *RANGES[0])
        assert len(list_calls) == 2  # 2026/11/30/ and 2026/12/01/
        assert C.objects_between(s3, base, *RANGES[1]) == unshared[1]
        assert len(list_calls) == 2  # an overlapping range is served from those listings
        shared = [first] + [C.objects_between(s3, base, a, b) for a, b in RANGES[1:]]
    assert shared == unshared  # keys, ETags and sizes
    assert sorted(list_calls) == sorted(set(list_calls))  # each partition listed once in the block
    assert sorted(p[len(key) + 1:] for p in list_calls) == [f"2026/{d}/" for d in ("11/29", "11/30", "12/01",
                                                                                   "12/02", "12/03")]
    list_calls.clear()
    assert C.objects_between(s3, base, *RANGES[0]) == unshared[0] and len(list_calls) == 2  # outside: listed again


def test_a_long_block_or_range_lists_whole_months(s3, base, list_calls):
    hours = [t(2026, 11, 20, 5), t(2026, 11, 25, 0), t(2026, 11, 30, 23), t(2026, 12, 1, 0), t(2026, 12, 4, 12)]
    spread(s3, base, hours)
    _, key = aws.split_s3_uri(base)
    daily = [C.objects_between(s3, base, a, b) for a, b in RANGES[:2]]
    assert len(list_calls) == 4  # short ranges outside a block: one listing per day
    list_calls.clear()
    with C.shared_listings(t(2026, 11, 24), t(2026, 12, 5)):  # 11 days
        assert [C.objects_between(s3, base, a, b) for a, b in RANGES[:2]] == daily
        assert sorted(p[len(key) + 1:] for p in list_calls) == ["2026/11/", "2026/12/"]
        week = C.objects_between(s3, base, t(2026, 11, 24), t(2026, 12, 5))
        assert len(list_calls) == 2
    assert [o.key for o in week] == reference_keys(s3, base, t(2026, 11, 24), t(2026, 12, 5))
    assert len(week) == 8  # the object of 2026-11-20, listed with its month, stays out
    list_calls.clear()
    assert C.objects_between(s3, base, t(2026, 11, 24), t(2026, 12, 5)) == week  # a long range alone: months too
    assert len(list_calls) == 2


def test_objects_written_after_their_partition_was_listed_are_seen_after_the_block(s3, base):
    hour = t(2026, 12, 1, 10)
    before = spread(s3, base, [hour])
    with C.shared_listings(t(2026, 12, 1), t(2026, 12, 2)):
        assert [o.key for o in C.objects_between(s3, base, hour, hour + HOUR)] == before
        late = put_lines(s3, base, hour, "30-00-000-late.jsonl", ["{}"])
        assert [o.key for o in C.objects_between(s3, base, hour, hour + HOUR)] == before
        other_day = put_lines(s3, base, t(2026, 12, 2, 1), "00-00-000-c.jsonl", ["{}"])  # a day not listed yet
        assert [o.key for o in C.objects_between(s3, base, t(2026, 12, 2), t(2026, 12, 2, 2))] == [other_day]
    assert [o.key for o in C.objects_between(s3, base, hour, hour + HOUR)] == sorted(before + [late])


def test_a_block_is_not_shared_with_other_threads(s3, base, list_calls):
    from concurrent.futures import ThreadPoolExecutor

    hour = t(2026, 12, 1, 10)
    spread(s3, base, [hour])
    with C.shared_listings(t(2026, 12, 1), t(2026, 12, 2)):
        C.objects_between(s3, base, hour, hour + HOUR)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(C.objects_between, s3, base, hour, hour + HOUR).result()
    assert len(list_calls) == 2


def test_window_objects_are_the_window_and_an_hour_either_side(s3, base):
    hours = [t(2026, 11, 30, 21), t(2026, 11, 30, 22), t(2026, 11, 30, 23), t(2026, 12, 1, 0), t(2026, 12, 1, 1),
             t(2026, 12, 1, 2), t(2026, 12, 1, 3)]
    keys = spread(s3, base, hours)
    for w, inside in [(W.Window(t(2026, 12, 1, 0), t(2026, 12, 1, 2)), keys[4:12]),  # 23h to 02h
                      (W.Window(t(2026, 11, 30, 23, 30), t(2026, 12, 1, 0, 30)), keys[2:10])]:  # 22h to 01h
        got = C.window_objects(s3, base, w)
        assert [o.key for o in got] == inside
        assert got == C.objects_between(s3, base, W.floor(w.start, "hourly") - HOUR, w.end + HOUR)
        bucket, _ = aws.split_s3_uri(base)
        head = s3.client("s3").head_object(Bucket=bucket, Key=got[0].key)
        assert (got[0].etag, got[0].size) == (head["ETag"], head["ContentLength"])
