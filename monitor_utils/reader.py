"""Capture objects parsed into records: a columnar pass (pyarrow) per object, a per-line pass for what it cannot prove."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from . import payloads, windows

TEXT_LIMIT = 2000  # characters of an unreadable line kept beside its reason
_SIDE = pa.struct([("observedContentType", pa.string()), ("data", pa.string()), ("encoding", pa.string())])
# only the fields the columnar pass reads, all as text (pyarrow would otherwise turn inferenceTime into timestamps)
CAPTURE_SCHEMA = pa.schema([
    ("captureData", pa.struct([("endpointInput", _SIDE), ("endpointOutput", _SIDE)])),
    ("eventMetadata", pa.struct([("eventId", pa.string()), ("inferenceId", pa.string()), ("inferenceTime", pa.string())])),
])
READ_OPTIONS = pa_json.ReadOptions(use_threads=True)
# a value pyarrow's cast reads exactly as Python's float() does (pyarrow accepts a subset of what float() does)
PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=CAPTURE_SCHEMA, unexpected_field_behavior="ignore")


def parse_time(text: str) -> dt.datetime:
    """``inferenceTime`` (``YYYY-MM-DDTHH:MM:SSZ``, with or without fractional seconds) as aware UTC."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def partition_hour(key: str) -> dt.datetime | None:
    """The ``yyyy/mm/dd/hh`` partition a key sits in (None when it has none)."""
    parts = key.split("/")
    try:
        return dt.datetime(int(parts[-5]), int(parts[-4]), int(parts[-3]), int(parts[-2]), tzinfo=dt.timezone.utc)
    except (ValueError, IndexError):
        return None


def owned(key: str, window: windows.Window) -> bool:
    """True when ``key``'s hour partition lies in ``window`` (or it has none): that window's run reports its faults."""
    hour = partition_hour(key)
    return hour is None or window.start <= hour < window.end


def reason(exc: Exception) -> str:
    """The quarantine reason of a failure to read one line."""
    if isinstance(exc, payloads.BodyError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{type(exc).__name__}: {exc}"


def parse_request(rec: dict, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """(features, predictions, what was captured: input, output or both) of one parsed capture line; both sides
    must agree on the record count."""
    sides = rec["captureData"]
    if not isinstance(sides, dict):
        raise payloads.BodyError("'captureData' is not an object")
    inp, out = sides.get("endpointInput"), sides.get("endpointOutput")
    if inp is None and out is None:
        raise payloads.BodyError("captureData holds neither endpointInput nor endpointOutput")
    x = payloads.parse_input(inp, features) if inp is not None else None
    y = payloads.parse_output(out) if out is not None else None
    if x is not None and y is not None and len(x) != len(y):
        raise payloads.BodyError(f"input has {len(x)} records, output has {len(y)} predictions")
    if x is None:
        return np.full((len(y), len(features)), np.nan), y, "output"
    if y is None:
        return x, np.full(len(x), np.nan), "input"
    return x, y, "both"


@dataclass
class Block:
    """Requests read in one pass: per request its ids, time (ns), file/line rank and record count; per record x, y."""

    event_id: np.ndarray
    inference_id: np.ndarray
    time_ns: np.ndarray
    rank: np.ndarray
    sizes: np.ndarray
    x: np.ndarray
    y: np.ndarray


@dataclass
class Parsed:
    """What one or more capture objects hold for a window: blocks of records, request counts, unreadable lines."""

    blocks: list[Block] = field(default_factory=list)
    captured: dict = field(default_factory=lambda: {"input": 0, "output": 0, "both": 0})
    quarantined: list = field(default_factory=list)

    def add(self, other: "Parsed") -> None:
        """Append another pass's records and counts."""
        self.blocks += other.blocks
        self.quarantined += other.quarantined
        for k, v in other.captured.items():
            self.captured[k] += v

    def frame(self, features: Sequence[str]) -> pd.DataFrame:
        """One row per record, sorted by inference time, join key and position (ties: file and line order)."""
        blocks = [b for b in self.blocks if len(b.sizes)]

        def cat(name: str, empty: np.ndarray) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in blocks]) if blocks else empty

        sizes = cat("sizes", np.empty(0, np.int64))

        def per_record(name: str, empty: np.ndarray) -> np.ndarray:
            return np.repeat(cat(name, empty), sizes)

        event_id, inference_id = per_record("event_id", np.empty(0, object)), per_record("inference_id", np.empty(0, object))
        join_key = np.where(pd.isna(inference_id), event_id, inference_id).astype(object) if len(event_id) else event_id
        starts = np.cumsum(sizes) - sizes
        frame = pd.DataFrame({
            "event_id": event_id, "inference_id": inference_id, "join_key": join_key,
            "record_index": np.arange(int(sizes.sum())) - np.repeat(starts, sizes),
            "inference_time": pd.to_datetime(per_record("time_ns", np.empty(0, np.int64)), utc=True),
            "prediction": cat("y", np.empty(0)),
        })
        rank = per_record("rank", np.empty(0, np.int64))
        order = frame.assign(_rank=rank).sort_values(["inference_time", "join_key", "record_index", "_rank"]).index
        matrix = cat("x", np.empty((0, len(features))))
        if not (order == np.arange(len(order))).all():  # sorted once, on the way into the frame
            frame, matrix = frame.take(order), matrix[order]
        return pd.concat([frame.reset_index(drop=True), pd.DataFrame(matrix, columns=list(features), copy=False)], axis=1)


def parse_lines(key: str, numbered: list[tuple[int, str]], window: windows.Window, features: Sequence[str],
                rank: int) -> Parsed:
    """The per-line pass: each line read whole with :func:`parse_request`, failures quarantined with their reason."""
    out = Parsed()
    cols: dict[str, list] = {"event_id": [], "inference_id": [], "time_ns": [], "rank": [], "sizes": [], "x": [], "y": []}
    for n, line in numbered:
        try:
            rec = json.loads(line)
            meta = rec["eventMetadata"]
            t = parse_time(meta["inferenceTime"])
            if not (window.start <= t < window.end):
                continue
            x, y, what = parse_request(rec, features)
            event_id = meta["eventId"]
            if not isinstance(event_id, str) or not event_id:
                raise payloads.BodyError("eventMetadata.eventId is empty")
        except Exception as exc:  # noqa: BLE001 - every failure is quarantined with its reason
            if owned(key, window):  # else a neighbouring hour's file: that window's run quarantines it, once
                out.quarantined.append({"key": key, "line": n, "reason": reason(exc), "text": line[:TEXT_LIMIT]})
            continue
        out.captured[what] += 1
        for name, value in (("event_id", event_id), ("inference_id", meta.get("inferenceId") or None),
                            ("time_ns", pd.Timestamp(t).value), ("rank", rank + n), ("sizes", len(y)), ("x", x), ("y", y)):
            cols[name].append(value)
    if cols["sizes"]:
        out.blocks.append(Block(np.asarray(cols["event_id"], dtype=object), np.asarray(cols["inference_id"], dtype=object),
                                np.asarray(cols["time_ns"], dtype=np.int64), np.asarray(cols["rank"], dtype=np.int64),
                                np.asarray(cols["sizes"], dtype=np.int64), np.vstack(cols["x"]), np.concatenate(cols["y"])))
    return out


def _field(struct: pa.Array, *path: str) -> pa.Array | None:
    for name in path:
        if not pa.types.is_struct(struct.type) or struct.type.get_field_index(name) < 0:
            return None
        struct = pc.struct_field(struct, name)
    return struct


def _csv_side(side: pa.Array, response: bool) -> np.ndarray:
    """Rows whose side is a plain CSV body (``encoding`` CSV, a csv content type): a request's values go to the
    vectorised parse, which sends rows it cannot convert back; a response must be one value on one line."""
    data, enc, ctype = (_field(side, k) for k in ("data", "encoding", "observedContentType"))
    kind = pc.utf8_lower(ctype)
    ok = pc.and_(pc.equal(enc, "CSV"), pc.and_(pc.match_substring(kind, "csv"), pc.invert(pc.match_substring(kind, "json"))))
    if response:
        ok = pc.and_(ok, pc.invert(pc.match_substring_regex(data, "[\\n\\r,]")))
    return pc.fill_null(pc.and_(ok, pc.is_valid(data)), False).to_numpy(zero_copy_only=False)


def _floats(cells: pa.ListArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose every value pyarrow converts, their values as rows x width); the other rows go line by line."""
    try:
        return np.ones(len(cells), dtype=bool), pc.cast(cells.flatten(), pa.float64()).to_numpy().reshape(-1, width)
    except pa.ArrowInvalid:  # some value is not a plain number (a header, a space, a newline): find its rows
        plain = pc.match_substring_regex(cells.flatten(), PLAIN_NUMBER).to_numpy(zero_copy_only=False)
        ok = plain.reshape(-1, width).all(axis=1)
        keep = _take(cells, np.flatnonzero(ok))
        return ok, pc.cast(keep.flatten(), pa.float64()).to_numpy().reshape(-1, width)


def _numbered(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    return values if len(idx) == len(values) else pc.take(values, pa.array(idx))


def parse_object(key: str, body: bytes, window: windows.Window, features: Sequence[str], rank: int) -> Parsed:
    """Records of one capture object in ``window``.

    The object is read as a table with pyarrow's JSON reader; requests whose both sides are single-row CSV (the
    common case) are split and converted to floats in one vectorised pass. Every other request (JSON, JSON Lines,
    BASE64, multi-row CSV, a missing side), and every request of an object the columnar pass cannot read whole
    (a torn line, a value that is not a number), goes through :func:`parse_lines`, which names the reason of
    each unreadable line. ``rank`` orders this object's requests before the next object's.
    """
    try:
        body.decode("utf-8")  # the text itself is kept only where a line must be read on its own
    except UnicodeDecodeError as exc:
        out = Parsed()
        if owned(key, window):
            out.quarantined.append({"key": key, "line": 0, "reason": f"file is not UTF-8 ({exc})", "text": str(exc)})
        return out
    try:
        table = pa_json.read_json(io.BytesIO(body), read_options=READ_OPTIONS, parse_options=PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return parse_lines(key, _numbered(body.decode("utf-8")), window, features, rank)
    numbered = None
    if len(table) != body.count(b"\n") + (not body.endswith(b"\n")):  # blank lines, or other line breaks
        numbered = _numbered(body.decode("utf-8"))
        if len(table) != len(numbered):  # lines split otherwise than str.splitlines does: read them one by one
            return parse_lines(key, numbered, window, features, rank)
    rows = table.to_struct_array().combine_chunks()
    event, inference = _field(rows, "eventMetadata", "eventId"), _field(rows, "eventMetadata", "inferenceId")
    times = pd.to_datetime(pd.Series(_field(rows, "eventMetadata", "inferenceTime").to_numpy(zero_copy_only=False)),
                           utc=True, format="ISO8601", errors="coerce")
    known = times.notna().to_numpy()
    t_ns = np.where(known, times.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64), 0)
    inside = known & (t_ns >= pd.Timestamp(window.start).value) & (t_ns < pd.Timestamp(window.end).value)
    fast = inside & (pc.fill_null(pc.greater(pc.utf8_length(event), 0), False).to_numpy(zero_copy_only=False))
    fast &= _csv_side(_field(rows, "captureData", "endpointInput"), False)
    fast &= _csv_side(_field(rows, "captureData", "endpointOutput"), True)
    out = Parsed()
    idx = np.flatnonzero(fast)
    if len(idx):
        cells = pc.split_pattern(_take(_field(rows, "captureData", "endpointInput", "data"), idx), ",")
        sized = pc.equal(pc.list_value_length(cells), len(features)).to_numpy(zero_copy_only=False)
        converted, x = _floats(_take(cells, np.flatnonzero(sized)), len(features))
        sized[sized] = converted
        try:
            y = pc.cast(_take(_field(rows, "captureData", "endpointOutput", "data"), idx[sized]),
                        pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # a response that is not a plain number: the per-line pass names it
            sized[:], x, y = False, x[:0], np.empty(0)
        finite = np.isfinite(y)
        if not finite.all():  # per-line pass: "not finite"
            sized[np.flatnonzero(sized)[~finite]] = False
            x, y = x[finite], y[finite]
        fast[idx[~sized]] = False
        idx = idx[sized]
        if len(idx):
            lines = idx + 1 if numbered is None else np.asarray([n for n, _ in numbered], dtype=np.int64)[idx]
            inf = _take(inference, idx).to_numpy(zero_copy_only=False)
            out.blocks.append(Block(_take(event, idx).to_numpy(zero_copy_only=False).astype(object),
                                    np.array([v if v else None for v in inf], dtype=object), t_ns[idx], rank + lines,
                                    np.ones(len(idx), dtype=np.int64), x, y))
            out.captured["both"] += len(idx)
    slow = np.flatnonzero(~fast & ~(known & ~inside))  # known-time rows outside the window are skipped
    if len(slow):
        numbered = numbered or _numbered(body.decode("utf-8"))
        out.add(parse_lines(key, [numbered[i] for i in slow], window, features, rank))
    return out
