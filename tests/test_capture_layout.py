"""The byte-position cut of capture lines in SageMaker's own CSV layout (issue 24, point 4): a line is cut only when
its JSON holds exactly the fields cut from it, and the reader gives the same records as the per-line pass."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, strategies as st

from monitor_utils import capture as C, capture_layout as L, reader as R, windows as W

UTC = dt.timezone.utc
FEATURES = ["f0", "f1", "f2"]
HOUR = dt.datetime(2026, 11, 28, 10, tzinfo=UTC)
KEY = "p/datacapture/ep/AllTraffic/2026/11/28/10/00-00-000-x.jsonl"
WINDOW = W.Window(HOUR, HOUR + dt.timedelta(hours=1))
FIELDS = {"data": ("captureData", "endpointInput", "data"), "y": ("captureData", "endpointOutput", "data"),
          "event_id": ("eventMetadata", "eventId"), "inference_id": ("eventMetadata", "inferenceId"),
          "time": ("eventMetadata", "inferenceTime")}


def sagemaker_line(i: int, inference_id: str | None = "inf", order: str = "sagemaker",
                   output_type: str = "text/csv; charset=utf-8") -> bytes:
    """A capture line as SageMaker writes it (eventId, inferenceId, inferenceTime) or as the simulator does
    (``capture_line``: inferenceTime before inferenceId)."""
    meta = {"eventId": f"ev-{i}"}
    if order == "simulator":
        meta["inferenceTime"] = f"2026-11-28T10:{i % 60:02d}:00Z"
    if inference_id is not None:
        meta["inferenceId"] = f"{inference_id}-{i}"
    meta["inferenceTime"] = f"2026-11-28T10:{i % 60:02d}:00Z"
    side = lambda ctype, mode, data: {"observedContentType": ctype, "mode": mode, "data": data, "encoding": "CSV"}
    record = {"captureData": {"endpointInput": side("text/csv", "INPUT", f"{i}.5,-2e-3,{i * 7}"),
                              "endpointOutput": side(output_type, "OUTPUT", f"{1990 + i}.25")},
              "eventMetadata": meta, "eventVersion": "0"}
    return json.dumps(record, separators=(",", ":")).encode()


def fields_of(body: bytes, cut: L.Cut, k: int) -> dict[str, str]:
    return {name: body[cut.spans[name][0][k]:cut.spans[name][1][k]].decode() for name in FIELDS}


def json_fields(line: bytes) -> dict[str, str]:
    rec = json.loads(line)
    out = {}
    for name, path in FIELDS.items():
        value = rec
        for step in path:
            value = value.get(step, "") if isinstance(value, dict) else None
        out[name] = value
    return out


@pytest.mark.parametrize("inference_id", ["inf", None])
@pytest.mark.parametrize("order", ["sagemaker", "simulator"])
@pytest.mark.parametrize("output_type", ["text/csv; charset=utf-8", "text/csv"])
def test_every_layout_is_cut_into_the_fields_its_json_holds(inference_id, order, output_type):
    lines = [sagemaker_line(i, inference_id, order, output_type) for i in range(5)]
    body = b"\n".join(lines) + b"\n"
    cut = L.cut(body)
    assert cut.line.tolist() == [1, 2, 3, 4, 5] and cut.rest == [] and cut.lines == 5
    for k, line in enumerate(lines):
        assert fields_of(body, cut, k) == json_fields(line)


def test_the_simulator_writes_a_layout():
    line = C.capture_line([1.0, 2.0, 3.0], 1999.0, "e", "i", "2026-11-28T10:30:00Z", "csv", FEATURES).encode()
    assert L.cut(line).line.tolist() == [1]


def test_other_lines_are_left_whole_with_their_numbers_as_split_lines_gives_them():
    good = sagemaker_line(1)
    escaped = good.replace(b'"ev-1"', b'"ev\\u002d1"')  # valid JSON, an escape: a JSON parser reads it
    body = (L.BOM + good + b"\n\n  \t\r\n" + good.replace(b"ev-1", b"\xc3\xa9v") + b"\r\n" + escaped + b"\n"
            + good + b" \n{\"torn\":\n" + good)
    cut = L.cut(body)
    assert cut.line.tolist() == [1, 8]  # the BOM is the object's, not the line's; no trailing break needed
    assert cut.rest == [(n, line) for n, line in R.split_lines(body) if n not in (1, 8)]
    assert cut.lines == len(R.split_lines(body)) == 6


def mutations() -> st.SearchStrategy[bytes]:
    """A layout line with one byte replaced, inserted or deleted, or text added at either end."""
    line = sagemaker_line(3)
    at = st.integers(0, len(line))
    byte = st.sampled_from(list(b'"\\,:{} \t\r!x0aE.-\x00\x7f') + [0xc3, 0xff])
    return st.one_of(
        st.builds(lambda i, b: line[:i] + bytes([b]) + line[i + 1:], at, byte),
        st.builds(lambda i, b: line[:i] + bytes([b]) + line[i:], at, byte),
        st.builds(lambda i: line[:i] + line[i + 1:], at),
        st.builds(lambda s: line + s, st.sampled_from([b"x", b"}", b',"a":1}', b"0"])),
        st.builds(lambda s: s + line, st.sampled_from([b"x", b"{", b"0"])))


@given(mutations())
def test_a_line_is_cut_only_when_its_json_holds_exactly_the_cut_fields(line):
    cut = L.cut(line)
    if len(cut.line):
        assert fields_of(line, cut, 0) == json_fields(line)  # valid JSON, and these texts
    else:
        assert cut.rest == R.split_lines(line)  # left whole (a trailing \r stripped), or blank


@given(st.lists(st.one_of(mutations(), st.just(sagemaker_line(4)), st.just(sagemaker_line(5, None))), max_size=6))
def test_the_reader_gives_the_per_line_pass_records_and_accounting(lines):
    body = b"\n".join(lines)
    assume(R.not_text(body) is None)  # an object that is not text is one entry (tests/test_lines.py)
    got = R.parse_object(KEY, body, WINDOW, FEATURES, 0)
    want = R.parse_lines(KEY, R.split_lines(body), WINDOW, FEATURES, 0)
    pd.testing.assert_frame_equal(got.frame(FEATURES), want.frame(FEATURES))
    assert (got.lines, got.outside, got.captured, got.quarantined) == \
        (want.lines, want.outside, want.captured, want.quarantined)


def test_plain_lines_are_not_read_by_a_json_parser(monkeypatch):
    body = b"\n".join(sagemaker_line(i, inference_id) for i in range(40) for inference_id in ("inf", None))
    monkeypatch.setattr(R.pa_json, "read_json", lambda *a, **k: pytest.fail("JSON parser used"))
    monkeypatch.setattr(R, "parse_lines", lambda *a, **k: pytest.fail("per-line pass used"))
    got = R.parse_object(KEY, body, WINDOW, FEATURES, 0)
    assert got.lines == got.lines_read == 80
    records = got.frame(FEATURES)
    assert np.array_equal(records["f2"].sort_values().unique(), np.arange(40) * 7.0)


@given(st.binary(min_size=0, max_size=64).map(lambda b: bytes(c % 128 for c in b)),
       st.lists(st.tuples(st.integers(0, 64), st.integers(0, 30)), max_size=12))
def test_views_hold_the_texts_they_name_short_long_and_at_the_end(body, spans):
    spans = [(min(s, len(body)), min(s + n, len(body))) for s, n in spans]
    start, end = np.array([s for s, _ in spans], dtype=np.int64), np.array([e for _, e in spans], dtype=np.int64)
    got = L.views(body, start, end)
    got.validate(full=True)
    assert got.to_pylist() == [body[s:e].decode() for s, e in spans]
    assert L.strings(body, start, end).to_pylist() == got.to_pylist()
