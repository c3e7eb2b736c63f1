"""Property tests of the capture and ground-truth readers (issue 22): whatever bytes arrive, every line is read,
quarantined or outside, exactly once; the columnar and per-line passes agree; nothing escapes.

Objects are generated from every request/response shape the reader knows (``payloads.FORMATS``: single and
multi-record CSV, JSON, JSON Lines, named features, BASE64) and mutated: torn and joined lines, a line separator
inside strings, a BOM, CRLF, blank lines, bad UTF-8, huge lines, missing and non-finite numbers, duplicate ids,
times outside the window, far from the partition or unreadable, and objects that are not text. Each object sits in
partition hour P and goes through the three hourly windows that read it (P-1h, P, P+1h), through both passes.
Profiles (tests/conftest.py): ``default`` in ``make test``, ``--hypothesis-profile=long`` for thousands of cases.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, note, strategies as st

from monitor_utils import capture as C, payloads as P, reader as R, windows as W

UTC = dt.timezone.utc
FEATURES = ["f0", "f1", "f2", "f3", "f4"]
HOUR = dt.datetime(2026, 11, 28, 10, tzinfo=UTC)
KEY = "p/datacapture/ep/AllTraffic/2026/11/28/10/00-00-000-x.jsonl"
WINDOWS = [W.Window(HOUR + dt.timedelta(hours=h), HOUR + dt.timedelta(hours=h + 1)) for h in (-1, 0, 1)]
SENTINEL, SCORE = 12345.678, 4321.5  # a value the generator replaces by a literal in the body
SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x1c", "\x0b", "\x0c", "\r"]
FEATURE_LITERALS = {"csv": {"nan": "read", "NaN": "read", "inf": "quarantine", "-inf": "quarantine",
                            "1e999": "quarantine", "null": "quarantine", "": "quarantine", " 7.5": "read"},
                    "json": {"NaN": "read", "null": "read", "Infinity": "quarantine", "-Infinity": "quarantine",
                             "1e400": "quarantine", "1" + "0" * 400: "quarantine", '"7.5"': "read", '"x"': "quarantine",
                             "true": "any"}}
SCORE_LITERALS = {"csv": ["nan", "inf", "-Infinity", "high"], "json": ["NaN", "Infinity", "null", '"x"']}


GOOD = C.capture_line([1.0, 2.0, 3.0, 4.0, 5.0], 1999.0, "g", None, "2026-11-28T10:30:00Z", "csv", FEATURES).encode()


TALLY = {"objects": 0, "lines": 0, "read": 0, "quarantined": 0, "window passes": 0}


@pytest.fixture(scope="module", autouse=True)
def tally():
    """Objects and lines the module's examples generated (printed with ``-s``: the issue note's figures)."""
    yield
    print("\nproperty tests:", ", ".join(f"{v:,} {k}" for k, v in TALLY.items()))


@dataclass
class Line:
    """One generated line: its bytes, the records it holds, and what the readers must make of it."""

    data: bytes
    event_id: str
    records: int
    expect: str  # "read" (its records, in the window of its time), "quarantine" (by exactly one window), "any"
    missing: int = 0  # feature values given as missing
    number: int = 0  # its line number in the object

    def __repr__(self) -> str:
        return f"Line({self.data[:160]!r}...{len(self.data)} bytes, {self.event_id!r}, {self.records}, {self.expect!r})"


def rare(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n + 1`` draws (hypothesis favours small integers, so not ``integers(0, n) == 0``)."""
    return st.sampled_from([False] * n + [True])


def _replace_in_side(side: dict, old: str, new: str) -> bool:
    text = base64.b64decode(side["data"]).decode() if side["encoding"] == "BASE64" else side["data"]
    if old not in text:
        return False
    text = text.replace(old, new, 1)
    side["data"] = base64.b64encode(text.encode()).decode() if side["encoding"] == "BASE64" else text
    return True


@st.composite
def good_line(draw, n: int) -> Line:
    """A capture line as SageMaker writes it, maybe with a missing or non-finite value, a separator inside a string,
    a time anywhere from the window before to the window after, far off or unreadable, a huge field."""
    fmt = draw(st.sampled_from(P.FORMATS))
    k = 1 if fmt in ("csv", "base64") else draw(st.integers(1, 3))
    values = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=k * len(FEATURES),
                           max_size=k * len(FEATURES)))
    rows = np.array(values).reshape(k, len(FEATURES))
    scores = np.array(draw(st.lists(st.floats(1900, 2030), min_size=k, max_size=k)))
    expect, missing = "read", 0
    kind = "csv" if fmt in ("csv", "csv_batch", "base64") else "json"
    value_mutation = draw(st.sampled_from([None] * 8 + ["feature", "score"]))
    if value_mutation == "feature":
        rows[draw(st.integers(0, k - 1)), draw(st.integers(0, len(FEATURES) - 1))] = SENTINEL
    elif value_mutation == "score":
        scores[0] = SCORE
    far = draw(rare(9))  # a time no window reads with the partition
    minutes = draw(st.sampled_from([-24 * 60, -180, 300, 365 * 24 * 60 * 40]) if far else st.integers(-60, 119))
    when = HOUR + dt.timedelta(minutes=minutes, seconds=draw(st.integers(0, 59)),
                               microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))
    stamp = W.iso(when) if when.microsecond == 0 else when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event_id = f"e{n}"
    rec = json.loads(C.capture_line(rows if k > 1 else rows[0], scores if k > 1 else scores[0], event_id,
                                    draw(st.sampled_from([None, f"i{n}", ""])), stamp, fmt, FEATURES))
    if value_mutation == "feature":
        literal = draw(st.sampled_from(sorted(FEATURE_LITERALS[kind])))
        assert _replace_in_side(rec["captureData"]["endpointInput"], repr(SENTINEL), literal)
        expect = FEATURE_LITERALS[kind][literal]
        missing = int(literal.lower() in ("nan", "null") and expect == "read")
    elif value_mutation == "score":
        out = rec["captureData"]["endpointOutput"]
        literal = draw(st.sampled_from(SCORE_LITERALS["csv" if out["observedContentType"].startswith("text/csv")
                                                       else "json"]))
        assert _replace_in_side(out, f"{SCORE:.4f}", literal) or _replace_in_side(out, repr(SCORE), literal)
        expect = "quarantine"
    time_mutation = draw(st.sampled_from([None] * 20 + ["missing", "garbage", "number"]))
    if time_mutation == "missing":
        del rec["eventMetadata"]["inferenceTime"]
    elif time_mutation:
        rec["eventMetadata"]["inferenceTime"] = "yesterday" if time_mutation == "garbage" else 1764324000
    if time_mutation:
        expect = "quarantine"
    elif not R.reads(R.belonging(WINDOWS[1], when), HOUR):
        expect = "quarantine"  # no window reads both its time and its partition
    if draw(st.booleans()):  # a line separator inside strings: the line stays one line
        sep = draw(st.sampled_from(SEPARATORS))
        event_id = f"e{sep}{n}"
        rec["eventMetadata"]["eventId"] = event_id
        rec["eventMetadata"]["customAttributes"] = f"a{sep}b"
    if draw(rare(60)):  # a huge line (pyarrow's block is 1 MB)
        rec["padding"] = "x" * draw(st.sampled_from([5_000, 1_100_000]))
    text = json.dumps(rec, ensure_ascii=draw(st.booleans()))
    if draw(rare(10)):
        text += "\r"  # CRLF
    return Line(text.encode(), event_id, k, expect, missing * (expect == "read"))


def _bad_utf8(data: bytes, at: int, junk: bytes) -> bytes:
    at = min(at, len(data))
    return data[:at] + junk + data[at:]


@st.composite
def capture_object(draw) -> tuple[bytes, list[Line]]:
    """An object of generated lines with mutations; also returns the lines as the readers should see them."""
    lines = [draw(good_line(n)) for n in range(draw(st.integers(0, 8)))]
    for line in lines:
        mutation = draw(st.sampled_from([None] * 10 + ["torn", "bad utf-8", "dup id", "bom inside", "byte"]))
        if mutation == "torn":
            line.data, line.expect = line.data[: draw(st.integers(1, max(1, len(line.data) - 1)))], "any"
        elif mutation == "bad utf-8":
            junk = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xe2\x82", b"\x80\x80"]))
            line.data, line.expect = _bad_utf8(line.data, draw(st.integers(0, len(line.data))), junk), "quarantine"
        elif mutation == "dup id" and len(lines) > 1:
            other = draw(st.sampled_from(lines))
            for ascii_only in (True, False):
                old = json.dumps(line.event_id, ensure_ascii=ascii_only).encode()
                if other is not line and old in line.data:
                    line.data = line.data.replace(old, json.dumps(other.event_id).encode(), 1)
                    line.event_id = other.event_id
                    break
        elif mutation == "bom inside":  # at the object's start a BOM is dropped; anywhere else it spoils the line
            line.data, line.expect = R.BOM + line.data, "quarantine" if line is not lines[0] else "any"
        elif mutation == "byte":
            at = draw(st.integers(0, len(line.data) - 1))
            line.data = line.data[:at] + bytes([draw(st.integers(0, 255))]) + line.data[at + 1:]
            line.expect = "any"
    parts: list[bytes] = []
    for i, line in enumerate(lines):
        line.number = b"".join(parts).count(b"\n") + 1
        parts.append(line.data)
        if i < len(lines) - 1 and draw(rare(12)):  # joined with the next: two records, one line
            line.expect = lines[i + 1].expect = "any"
            continue
        parts.append(b"\n")
        parts.append(draw(st.sampled_from([b""] * 8 + [b"\n", b"   \n", b"\t\r\n"])))
    body = b"".join(parts)
    if draw(rare(8)):
        body = R.BOM + body  # a BOM at the start of the object is dropped
    if draw(rare(8)) and body.endswith(b"\n"):
        body = body[:-1]  # no final newline
    if draw(rare(40)):
        body = gzip.compress(body, mtime=0)
        for line in lines:
            line.expect = "any"
    return body, lines


def reference_lines(body: bytes) -> int:
    """Non-blank lines, counted independently of the reader: bytes between b'\\n', a trailing \\r dropped."""
    if R.not_text(body):
        return 1
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    return sum(1 for s in body.split(b"\n") if s.rstrip(b"\r").strip(b" \t\r"))


def both_passes(body: bytes, window: W.Window) -> R.Parsed:
    """parse_object, asserted equal to the per-line pass over every line, and the accounting invariant."""
    fast = R.parse_object(KEY, body, window, FEATURES, 0)
    slow = (R.parse_object(KEY, body, window, FEATURES, 0) if R.not_text(body)
            else R.parse_lines(KEY, R.split_lines(body), window, FEATURES, 0))
    pd.testing.assert_frame_equal(fast.frame(FEATURES), slow.frame(FEATURES))
    assert fast.quarantined == slow.quarantined
    assert (fast.captured, fast.lines, fast.outside, fast.missing) == (slow.captured, slow.lines, slow.outside, slow.missing)
    assert fast.lines == fast.lines_read + len(fast.quarantined) + fast.outside == reference_lines(body)
    assert all(len(q["text"]) <= R.TEXT_LIMIT for q in fast.quarantined)
    return fast


def _check(body: bytes, lines: list[Line]) -> None:
    note(f"body={body[:2000]!r}")
    parsed = [both_passes(body, w) for w in WINDOWS]
    total = reference_lines(body)
    for k, v in (("objects", 1), ("lines", total), ("read", sum(p.lines_read for p in parsed)),
                 ("quarantined", sum(len(p.quarantined) for p in parsed)), ("window passes", len(WINDOWS))):
        TALLY[k] += v
    # exactly once across the windows that read the object: each line read or quarantined by one of them
    assert sum(p.lines_read + len(p.quarantined) for p in parsed) == total
    where = [(q["line"], i) for i, p in enumerate(parsed) for q in p.quarantined]
    assert len({n for n, _ in where}) == len(where), where
    frames = [p.frame(FEATURES) for p in parsed]
    rows = pd.concat(frames)["event_id"].value_counts()
    quarantined_ids = {id(line) for line in lines if line.number in {n for n, _ in where}}
    shared = {line.event_id for line in lines if line.expect != "read"}
    for line in lines:
        if line.expect == "read":
            want = sum(other.records for other in lines if other.expect == "read" and other.event_id == line.event_id)
            got = int(rows.get(line.event_id, 0))
            assert got >= want if line.event_id in shared else got == want, (line.event_id, got, want)
            assert id(line) not in quarantined_ids
        elif line.expect == "quarantine":
            assert id(line) in quarantined_ids, line.data[:300]
    missing = sum(line.missing for line in lines if line.expect == "read")
    assert sum(sum(p.missing.values()) for p in parsed) >= missing


@given(capture_object())
@example((b"", []))
@example((b"\xef\xbb\xbf", []))
@example((b"\n\r\n \n", []))
@example((R.BOM + b"\xff{}\n" + R.BOM + GOOD + b"\n", []))  # found: a BOM not at the object's start, once a bad line went
def test_every_line_is_read_quarantined_or_outside_exactly_once(obj):
    _check(*obj)


@given(st.binary(max_size=400))
@example(b"\x1f\x8b\x08\x00")
@example(b'{"eventMetadata": {"inferenceTime": "2026-11-28T10:00:00Z"}}\n\xff')
@example(b"[]\n{}\n5\n\"x\"\nnull\n")
def test_arbitrary_bytes_never_escape_and_the_passes_agree(body):
    for w in WINDOWS:
        both_passes(body, w)
    _, _, _, bad, lines = C.parse_label_lines(KEY, body)
    assert lines == reference_lines(body) and len(bad) <= lines


@st.composite
def label_object(draw) -> tuple[bytes, int]:
    """A ground-truth object of labels (single and multi-record, CSV and JSON) with mutations; and how many of its
    lines must be read."""
    out, good = [], 0
    for n in range(draw(st.integers(0, 8))):
        labels = draw(st.lists(st.floats(1900, 2030), min_size=1, max_size=3))
        sep = draw(st.sampled_from(["", "\u2028", "\u0085"]))
        text = C.ground_truth_line(f"e{sep}{n}", labels).encode()
        mutation = draw(st.sampled_from([None] * 6 + ["torn", "bad utf-8", "crlf", "blank"]))
        if mutation == "torn":
            text = text[: len(text) // 2]
        elif mutation == "bad utf-8":
            text = _bad_utf8(text, draw(st.integers(0, len(text))), b"\xff")
        elif mutation == "crlf":
            text += b"\r"
        elif mutation == "blank":
            out.append(b"  ")
        good += mutation in (None, "crlf", "blank")
        out.append(text)
    return b"\n".join(out), good


@given(label_object())
def test_ground_truth_lines_are_each_read_or_quarantined(obj):
    body, good = obj
    keys, positions, years, bad, lines = C.parse_label_lines(KEY, body)
    assert lines == reference_lines(body) and lines - len(bad) >= good
    assert len(keys) == len(positions) == sum(len(y) for y in years)
    assert len({q["line"] for q in bad}) == len(bad)
