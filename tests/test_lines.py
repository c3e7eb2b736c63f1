"""Every captured line accounted for (issue 22): one regression test per failure the mutator found, and the window
record's accounting end to end on the emulator."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from monitor_utils import aws, capture as C, config, data as D, drift, engine, reader as R, windows as W
from monitor_utils.baseline import PREDICTION

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 28, 10, tzinfo=UTC)
WINDOW = W.Window(HOUR, HOUR + dt.timedelta(hours=1))
NEXT = W.Window(WINDOW.end, WINDOW.end + dt.timedelta(hours=1))
KEY = "p/datacapture/ep/AllTraffic/2026/11/28/10/00-00-000-x.jsonl"
X = D.generate(40, seed=7)[D.FEATURES].to_numpy(dtype=float)
BUCKET = "unit-test-lines-bucket"


def line(i: int, fmt: str = "csv", when: dt.datetime | None = None, inference_id: str | None = None) -> str:
    when = when or HOUR + dt.timedelta(minutes=i % 60)
    return C.capture_line(X[i], 1990.0 + i, f"ev-{i}", inference_id or f"inf-{i}", W.iso(when), fmt)


def body_of(lines: list[str | bytes]) -> bytes:
    return b"\n".join(s if isinstance(s, bytes) else s.encode() for s in lines) + b"\n"


def per_line(key: str, body: bytes, window: W.Window = WINDOW) -> R.Parsed:
    """The per-line pass alone over every line of the object: the reference the columnar pass must equal."""
    what = R.not_text(body)
    if what is not None:
        return R.parse_object(key, body, window, D.FEATURES, 0)
    return R.parse_lines(key, R.split_lines(body), window, D.FEATURES, 0)


def parse(body: bytes, window: W.Window = WINDOW, key: str = KEY) -> R.Parsed:
    """parse_object, checked against the per-line pass and the accounting invariant."""
    got, want = R.parse_object(key, body, window, D.FEATURES, 0), per_line(key, body, window)
    pd.testing.assert_frame_equal(got.frame(D.FEATURES), want.frame(D.FEATURES))
    assert got.quarantined == want.quarantined
    assert (got.captured, got.lines, got.outside, got.missing) == (want.captured, want.lines, want.outside, want.missing)
    assert got.lines == got.lines_read + len(got.quarantined) + got.outside
    return got


# --- 1. a line separator inside a JSON string -----------------------------------------------------------------


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\u0085"])
def test_a_line_separator_inside_a_string_does_not_split_the_line(sep):
    lines = []
    for i in range(6):
        rec = json.loads(line(i))
        rec["eventMetadata"]["eventId"] = f"ev{sep}{i}"  # a valid JSON string holding the character raw
        rec["captureData"]["endpointInput"]["observedContentType"] = f"text/csv{sep}"
        lines.append(json.dumps(rec, ensure_ascii=False))
    got = parse(body_of(lines))
    assert (got.lines, got.lines_read, got.quarantined) == (6, 6, [])
    assert list(got.frame(D.FEATURES)["event_id"]) == [f"ev{sep}{i}" for i in range(6)]
    assert len(lines[0].splitlines()) == 3  # what str.splitlines made of each line before


def test_a_quarantined_line_carries_its_own_text_and_number_after_a_separator():
    torn = line(3)[:200]
    lines = [line(0).replace('"ev-0"', '"ev\u2028-0"'), line(1), torn, line(4)]
    got = parse(body_of([s.encode() for s in lines]))
    assert [(q["line"], q["text"]) for q in got.quarantined] == [(3, torn)]
    assert got.lines_read == 3


def test_ground_truth_lines_are_split_at_newlines_only():
    gt = [C.ground_truth_line("a\u2028b", 1990), C.ground_truth_line("c\u0085d", 1991), '{"torn":']
    keys, positions, years, bad, lines = C.parse_label_lines("gt/2026/11/28/10/a.jsonl",
                                                             "\n".join(gt).encode("utf-8"))
    assert keys == ["a\u2028b", "c\u0085d"] and [y.tolist() for y in years] == [[1990.0], [1991.0]]
    assert lines == 3 and [(q["line"], q["text"]) for q in bad] == [(3, '{"torn":')]


# --- 2. bad bytes spoil one line, not a file ------------------------------------------------------------------


def test_one_bad_byte_quarantines_its_line_alone_and_the_rest_stays_columnar(monkeypatch):
    lines: list[str | bytes] = [line(i) for i in range(30)]
    lines[7] = lines[7].encode().replace(b"ev-7", b"ev-\xff7")
    body = body_of(lines)
    got, at = parse(body), lines[7].index(b"\xff")
    assert got.lines_read == 29 and [q["line"] for q in got.quarantined] == [8]
    q = got.quarantined[0]
    assert q["reason"] == f"line is not UTF-8 at byte {at}" and q["text"] == lines[7][:R.TEXT_LIMIT].decode()
    seen = []
    real = R.parse_lines
    monkeypatch.setattr(R, "parse_lines", lambda key, numbered, *a: seen.append([n for n, _ in numbered]) or real(key, numbered, *a))
    assert R.parse_object(KEY, body, WINDOW, D.FEATURES, 0).lines_read == 29
    assert seen == [[8]]  # only the bad line went line by line


# mtime=0 and ids: the test's id must not hold the clock (xdist's workers collect it at different seconds)
@pytest.mark.parametrize("body, what", [(gzip.compress(b'{"a": 1}\n' * 50, mtime=0), "gzip data"),
                                        (b"PK\x03\x04" + bytes(range(256)), "a zip archive"),
                                        (b"\x00\x01\x02\x03binary\xff\xfe", "binary data")],
                         ids=["gzip", "zip", "binary"])
def test_an_object_that_is_not_text_is_one_entry_naming_it(body, what):
    got = parse(body)
    assert got.lines == 1 and len(got.quarantined) == 1
    q = got.quarantined[0]
    assert q["line"] == 0 and q["reason"] == f"{what}, not JSON Lines ({len(body):,} bytes)"
    neighbour = parse(body, window=NEXT)  # another window reading the object: accounted there, outside here
    assert (neighbour.lines, neighbour.outside, neighbour.quarantined) == (1, 1, [])
    _, _, _, bad, lines = C.parse_label_lines(KEY, body)
    assert lines == 1 and bad[0]["reason"] == q["reason"]


def test_a_damaged_first_line_with_a_nul_byte_spoils_that_line_only():
    """Found by the long hypothesis profile: a NUL in the first line made the whole object 'binary data', and the
    good lines after it were never read."""
    body = b"\x00\x00junk\n" + "\n".join(line(i, "csv") for i in range(3)).encode() + b"\n"
    got = parse(body)
    assert (got.lines, got.lines_read) == (4, 3)
    assert [q["line"] for q in got.quarantined] == [1]
    gt = b"\x00\n" + C.ground_truth_line("e1", 1990).encode()
    keys, _, _, bad, lines = C.parse_label_lines(KEY, gt)
    assert keys == ["e1"] and lines == 2 and [q["line"] for q in bad] == [1]


def test_a_bad_byte_in_ground_truth_spoils_one_line():
    gt = [C.ground_truth_line(f"e{i}", 1990 + i).encode() for i in range(4)]
    gt[2] = gt[2].replace(b"e2", b"e\xc3(2")
    keys, _, _, bad, lines = C.parse_label_lines(KEY, b"\n".join(gt))
    at = gt[2].index(b"\xc3")
    assert keys == ["e0", "e1", "e3"] and lines == 4
    assert [(q["line"], q["reason"]) for q in bad] == [(3, f"line is not UTF-8 at byte {at}")]


# --- 3. missing and non-finite values -------------------------------------------------------------------------


def _with_value(i: int, fmt: str, j: int, literal: str) -> str:
    """Line i with feature j's value replaced by ``literal`` (JSON bodies: the raw JSON token)."""
    text = line(i, fmt)
    value = repr(float(X[i][j]))
    rec = json.loads(text)
    side = rec["captureData"]["endpointInput"]
    assert side["data"].count(value) == 1
    side["data"] = side["data"].replace(value, literal)
    return json.dumps(rec)


def test_null_and_nan_features_are_missing_and_counted():
    j, k = 3, 10
    lines = [_with_value(0, "csv", j, "nan"), _with_value(1, "csv", j, "NaN"), _with_value(2, "json_instances", k, "null"),
             _with_value(3, "json_instances", j, "NaN"), _with_value(4, "jsonlines", k, "null"), line(5)]
    got = parse(body_of(lines))
    assert got.lines_read == 6 and got.quarantined == []
    assert got.missing == {D.FEATURES[j]: 3, D.FEATURES[k]: 2}
    rec = got.frame(D.FEATURES).set_index("event_id")
    assert np.isnan(rec.loc["ev-0", D.FEATURES[j]]) and rec.loc["ev-5", D.FEATURES[j]] == X[5][j]


@pytest.mark.parametrize("fmt, literal", [("csv", "inf"), ("csv", "-Infinity"), ("csv", "1e999"),
                                          ("json_instances", "Infinity"), ("json_instances", "-Infinity"),
                                          ("json_instances", "1e400"), ("json_instances", "1" + "0" * 400),
                                          ("jsonlines", "-1e999")])
def test_infinite_or_out_of_range_features_quarantine_the_record_naming_the_feature(fmt, literal):
    j = 17
    got = parse(body_of([line(0), _with_value(1, fmt, j, literal), line(2)]))
    assert got.lines_read == 2 and [q["line"] for q in got.quarantined] == [2]
    assert repr(D.FEATURES[j]) in got.quarantined[0]["reason"], got.quarantined[0]["reason"]


@pytest.mark.parametrize("data", ["nan", "inf", "-Infinity", "null"])
def test_a_prediction_that_is_not_finite_quarantines_the_record(data):
    rec = json.loads(line(1))
    rec["captureData"]["endpointOutput"]["data"] = data
    got = parse(body_of([line(0), json.dumps(rec)]))
    assert got.lines_read == 1 and len(got.quarantined) == 1 and got.quarantined[0]["reason"]


def test_drift_and_the_estimator_handle_missing_feature_values():
    frame = D.generate(600, seed=3)
    ref = frame.iloc[:400].assign(**{PREDICTION: frame["year"].iloc[:400] + 1.0})
    current = frame.iloc[400:].assign(**{PREDICTION: frame["year"].iloc[400:] - 2.0}).reset_index(drop=True)
    current.loc[:49, D.FEATURES[0]] = np.nan
    baseline = drift.build_baseline(ref[D.FEATURES + [PREDICTION]])
    table = drift.detect_drift(baseline, current[D.FEATURES + [PREDICTION]]).table
    assert table.loc[D.FEATURES[0], "nan_share_current"] == pytest.approx(50 / 200)
    assert table.loc[D.FEATURES[0], "n_current"] == 150
    from monitor_utils.estimation import LossEstimator

    est = LossEstimator(calibration_chunks=10, n_boot=2).fit(ref, D.FEATURES, window_size=100)
    complete = frame.iloc[400:].assign(**{PREDICTION: frame["year"].iloc[400:] - 2.0})
    full, gap = est.estimate(complete), est.estimate(current)
    assert (gap["missing_values"], full["missing_values"]) == (50, 0) and np.isfinite(gap["estimated_rmse"])
    assert gap["estimated_rmse"] == pytest.approx(full["estimated_rmse"], rel=0.2)
    with pytest.raises(ValueError, match=D.FEATURES[0]):
        est.estimate(current.fillna(np.inf))


# --- 4. times that do not fit ---------------------------------------------------------------------------------


def test_a_line_after_the_window_is_outside_here_and_read_by_its_own_window():
    late = line(1, when=WINDOW.end + dt.timedelta(minutes=20))  # a client clock a little ahead, same partition
    body = body_of([line(0), late])
    here, there = parse(body), parse(body, window=NEXT)
    assert (here.lines, here.lines_read, here.outside, here.quarantined) == (2, 1, 1, [])
    assert (there.lines, there.lines_read, there.outside, there.quarantined) == (2, 1, 1, [])
    assert list(there.frame(D.FEATURES)["event_id"]) == ["ev-1"]


@pytest.mark.parametrize("when", [HOUR + dt.timedelta(hours=5), HOUR - dt.timedelta(hours=3),
                                  HOUR.replace(year=2062)])
def test_a_time_no_window_reads_with_its_partition_is_quarantined_naming_both(when):
    body = body_of([line(0), line(1, when=when)])
    got = parse(body)
    assert got.lines_read == 1 and [q["line"] for q in got.quarantined] == [2] and got.outside == 0
    why = got.quarantined[0]["reason"]
    assert W.iso(when) in why and "partition 2026/11/28/10" in why and "no window reads both" in why
    assert not R.reads(W.containing(when, "hourly"), HOUR)  # the window of its time does not list the partition...
    prev = W.Window(HOUR - dt.timedelta(hours=1), HOUR)
    assert (parse(body, window=prev).outside, parse(body, window=prev).quarantined) == (2, [])  # ...nor this one


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-01T00:00:00Z", 1764324000])
def test_a_missing_or_unparsable_time_is_quarantined(value):
    rec = json.loads(line(1))
    if value is None:
        del rec["eventMetadata"]["inferenceTime"]
    else:
        rec["eventMetadata"]["inferenceTime"] = value
    got = parse(body_of([line(0), json.dumps(rec)]))
    assert got.lines_read == 1 and [q["line"] for q in got.quarantined] == [2]
    assert "inferenceTime" in got.quarantined[0]["reason"]


# --- the window record, end to end ----------------------------------------------------------------------------


@pytest.fixture()
def s3(emulator):
    a = aws.connect(config.validate({}), emulator.url)
    aws.ensure_bucket(a, BUCKET)
    return a


def test_the_window_records_account_for_every_line_of_every_object_they_read(s3):
    base = C.capture_uri_for(f"s3://{BUCKET}/every-line/datacapture", "ep", "AllTraffic")
    bucket, prefix = aws.split_s3_uri(base)

    def put(hour: dt.datetime, name: str, body: bytes) -> None:
        aws.put_bytes(s3, bucket, W.partition_prefix(prefix, hour) + name, body)

    early = HOUR - dt.timedelta(hours=1)
    put(early, "a.jsonl", body_of([line(0, when=early + dt.timedelta(minutes=59)), line(1, when=HOUR + dt.timedelta(minutes=2))]))
    put(HOUR, "b.jsonl", body_of([line(2), b"{\"torn\": \xff", "", line(3, when=WINDOW.end + dt.timedelta(minutes=5)),
                                  line(4, when=HOUR + dt.timedelta(hours=9)), _with_value(5, "csv", 2, "nan")]))
    put(WINDOW.end, "c.jsonl", body_of([line(6, when=WINDOW.end - dt.timedelta(seconds=1)), line(7, when=WINDOW.end)]))
    put(WINDOW.end, "d.gz", gzip.compress(b"{}\n", mtime=0))
    counts = {}
    for w in (W.Window(early, HOUR), WINDOW, NEXT):
        res = engine.metrics_window(s3, w, capture_uri=base, features=D.FEATURES, labels=pd.DataFrame(
            {"join_key": pd.Series(dtype=object), "record_index": pd.Series(dtype=int), "year": pd.Series(dtype=float)}))
        row = res["row"]
        assert row["lines"] == row["lines_read"] + row["lines_quarantined"] + row["lines_outside"], row
        assert row["lines_read"] == row["requests"] and row["lines_quarantined"] == len(res["quarantined"])
        counts[w.label] = (row["lines"], row["lines_read"], row["lines_quarantined"], row["lines_outside"])
    # early reads a, b (and c? no: its partition 11 is two hours on); WINDOW reads a, b, c, d; NEXT reads b, c, d
    assert counts == {"2026-11-28T09": (2 + 5, 1, 0, 6), "2026-11-28T10": (2 + 5 + 2 + 1, 4, 2, 4),
                      "2026-11-28T11": (5 + 2 + 1, 2, 1, 5)}
    drifted = engine.drift_window(s3, WINDOW, capture_uri=base, features=D.FEATURES,
                                  baseline=drift.build_baseline(pd.DataFrame(X, columns=D.FEATURES).assign(**{PREDICTION: 1990.0})),
                                  opts={})
    assert drifted["missing_values"] == {D.FEATURES[2]: 1} and drifted["lines"] == 10


def test_ground_truth_lines_are_counted_per_window_by_partition(s3):
    uri = f"s3://{BUCKET}/every-label/ground-truth"
    bucket, prefix = aws.split_s3_uri(uri)

    def put(hour: dt.datetime, name: str, body: bytes) -> None:
        aws.put_bytes(s3, bucket, W.partition_prefix(prefix, hour) + name, body)

    put(HOUR, "a.jsonl", body_of([C.ground_truth_line("a", 1990), b"\xff\xfe", "", C.ground_truth_line("b", [1991, 1992])]))
    put(HOUR + dt.timedelta(hours=1), "b.jsonl", body_of([C.ground_truth_line("c\u2028", 1993), '{"torn":']))
    put(HOUR + dt.timedelta(hours=25), "c.jsonl", gzip.compress(b"{}\n", mtime=0))
    batch = C.read_labels(s3, uri, HOUR, HOUR + dt.timedelta(days=2))
    assert list(batch.labels["join_key"]) == ["a", "b", "b", "c\u2028"]
    assert [(q["line"], q["reason"][:24]) for q in batch.quarantined] == [
        (2, "line is not UTF-8 at byt"), (2, "JSONDecodeError: Expecti"), (0, "gzip data, not JSON Line")]
    assert batch.by_window("hourly") == {
        "2026-11-28T10": {"label_lines": 3, "label_lines_read": 2, "label_lines_quarantined": 1},
        "2026-11-28T11": {"label_lines": 2, "label_lines_read": 1, "label_lines_quarantined": 1},
        "2026-11-29T11": {"label_lines": 1, "label_lines_read": 0, "label_lines_quarantined": 1}}
    assert batch.by_window("daily") == {
        "2026-11-28": {"label_lines": 5, "label_lines_read": 3, "label_lines_quarantined": 2},
        "2026-11-29": {"label_lines": 1, "label_lines_read": 0, "label_lines_quarantined": 1}}
    labels, quarantined = C.read_ground_truth(s3, uri, HOUR, HOUR + dt.timedelta(days=2))
    pd.testing.assert_frame_equal(labels, batch.labels)
    assert quarantined == batch.quarantined


def test_the_metrics_report_table_shows_the_accounting_and_blanks_for_older_windows():
    from monitor_utils.stages.metrics import read_table

    history = [{"window": "2026-11-27", "requests": 9, "captured": 12, "input_only": 0, "output_only": 0},
               {"window": "2026-11-28", "lines": 11, "lines_read": 9, "lines_quarantined": 1, "lines_outside": 1,
                "requests": 9, "captured": 12, "input_only": 1, "output_only": 0, "label_lines": 8,
                "label_lines_read": 8, "label_lines_quarantined": 0}]
    table = read_table(history)
    assert table.loc["2026-11-28", "accounted"] == True and table.loc["2026-11-28", "records"] == 12  # noqa: E712
    assert pd.isna(table.loc["2026-11-27", "lines"]) and pd.isna(table.loc["2026-11-27", "accounted"])
    history[1]["lines"] = 12
    assert read_table(history).loc["2026-11-28", "accounted"] == False  # noqa: E712
