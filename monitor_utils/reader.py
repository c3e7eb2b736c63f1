"""Capture objects parsed into records, every line accounted for: a columnar pass (pyarrow), a per-line pass for the rest."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from . import capture_layout, payloads, windows

TEXT_LIMIT = 1024  # bytes of an unreadable line kept beside its reason
READ_MARGIN = dt.timedelta(hours=1)  # a window reads the hour partitions this far either side of it
BLANK = b" \t\r"  # a line of only these bytes is blank (JSON whitespace; a line break is only \n)
BOM = b"\xef\xbb\xbf"  # dropped at the start of an object (a file saved by a Windows editor)
NOT_TEXT = ((b"\x1f\x8b", "gzip data"), (b"PK\x03\x04", "a zip archive"), (b"BZh", "bzip2 data"),
            (b"\xfd7zXZ\x00", "xz data"), (b"\x28\xb5\x2f\xfd", "zstd data"), (b"PAR1", "Parquet data"),
            (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"))
_SIDE = pa.struct([("observedContentType", pa.string()), ("data", pa.string()), ("encoding", pa.string())])
# only the fields the columnar pass reads, all as text (pyarrow would otherwise turn inferenceTime into timestamps)
CAPTURE_SCHEMA = pa.schema([
    ("captureData", pa.struct([("endpointInput", _SIDE), ("endpointOutput", _SIDE)])),
    ("eventMetadata", pa.struct([("eventId", pa.string()), ("inferenceId", pa.string()), ("inferenceTime", pa.string())])),
])
READ_BLOCK = 1 << 20  # the least block pyarrow's JSON reader reads at once; an object is read as one block
# a value pyarrow's cast reads exactly as Python's float() does (pyarrow accepts a subset of what float() does)
PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# the inferenceTime SageMaker writes: the columnar pass reads only these (pyarrow, pandas and fromisoformat agree
# on them; a year from 1900 to 2199 stays in range of nanoseconds; a date such as 02-30 sends the object to pandas)
PLAIN_TIME = r"^(19|20|21)\d\d-[01]\d-[0-3]\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$"
PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=CAPTURE_SCHEMA, unexpected_field_behavior="ignore")
_HOUR_NS = 3_600_000_000_000
# pyarrow allocates through the C library (what is freed goes back to it and to the system), not its default pool
# (mimalloc or jemalloc), which keeps what each parsing thread freed: a window's peak stays near its bytes (1.95x
# instead of 2.6x for read_capture). Set for the whole process when the reader is imported.
POOL = pa.system_memory_pool()
pa.set_memory_pool(POOL)
STRING = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default string column: Arrow strings, NaN missing


def parse_time(text: str) -> dt.datetime:
    """``inferenceTime`` (``YYYY-MM-DDTHH:MM:SSZ``, with or without fractional seconds) as aware UTC.

    Raises
    ------
    payloads.BodyError
        For a value that is not a string holding an ISO 8601 time.
    """
    if not isinstance(text, str):
        raise payloads.BodyError(f"inferenceTime is {str(text)[:40]!r}, not an ISO 8601 time")
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise payloads.BodyError(f"inferenceTime {text[:40]!r} is not an ISO 8601 time") from None
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


def reads(window: windows.Window, hour: dt.datetime) -> bool:
    """True when ``window`` lists the partition starting at ``hour``: its own hours and ``READ_MARGIN`` either side."""
    first = windows.floor(window.start, "hourly") - READ_MARGIN
    return first <= hour <= windows.floor(window.end + READ_MARGIN - dt.timedelta(microseconds=1), "hourly")


def belonging(window: windows.Window, t: dt.datetime) -> windows.Window:
    """The window of ``window``'s length and grid that holds ``t``."""
    step = window.end - window.start
    start = window.start + ((t - window.start) // step) * step
    return windows.Window(start, start + step)


def split_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines of an object as (1-based line number, bytes).

    Lines are the bytes between ``\n`` (SageMaker's JSON Lines): a trailing ``\r`` is stripped and nothing else
    splits a line (not U+2028, U+2029 or U+0085 inside a string). A line of spaces, tabs and ``\r`` only is
    blank. A UTF-8 byte order mark at the start of the object is dropped.
    """
    if body.startswith(BOM):
        body = body[len(BOM):]
    out = []
    for n, line in enumerate(body.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip(BLANK):
            out.append((n, line))
    return out


def not_text(body: bytes) -> str | None:
    """What an object looks like when it is not JSON Lines text at all ('gzip data', ...), else None.

    An object starting with a known file signature is that file. Otherwise it is 'binary data' only when its
    start holds a NUL byte and no line of it starts a JSON object: a text object whose first line is damaged
    (a NUL in it) keeps its other lines, which are read, and the damaged line is quarantined alone.
    """
    for magic, what in NOT_TEXT:
        if body.startswith(magic):
            return what
    head = body[:1024].lstrip(BOM + BLANK + b"\n")
    if head[:1] != b"{" and b"\x00" in head and b"\n{" not in body:
        return "binary data"
    return None


def not_text_entry(key: str, body: bytes, what: str) -> dict:
    """The one quarantine entry of an object that is not text (line 0): its size, what it looks like, its first bytes."""
    return {"key": key, "line": 0, "reason": f"{what}, not JSON Lines ({len(body):,} bytes)", "text": body[:64].hex(" ")}


def reason(exc: Exception) -> str:
    """The quarantine reason of a failure to read one line."""
    if isinstance(exc, payloads.BodyError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{type(exc).__name__}: {exc}"


def parse_request(rec: dict, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """(features, predictions, what was captured: input, output or both) of one parsed capture line; both sides
    must agree on the record count. Missing feature values (``null``, ``NaN``) are NaN; a value that is infinite
    or out of float range quarantines the request, naming the feature."""
    sides = rec["captureData"]
    if not isinstance(sides, dict):
        raise payloads.BodyError("'captureData' is not an object")
    inp, out = sides.get("endpointInput"), sides.get("endpointOutput")
    if inp is None and out is None:
        raise payloads.BodyError("captureData holds neither endpointInput nor endpointOutput")
    x = payloads.parse_input(inp, features) if inp is not None else None
    y = payloads.parse_output(out) if out is not None else None
    if x is not None:
        bad = np.isinf(x)
        if bad.any():
            i, j = (int(v[0]) for v in np.nonzero(bad))
            raise payloads.BodyError(f"record {i} feature {features[j]!r} is {x[i, j]}: not a finite number")
    if x is not None and y is not None and len(x) != len(y):
        raise payloads.BodyError(f"input has {len(x)} records, output has {len(y)} predictions")
    if x is None:
        return np.full((len(y), len(features)), np.nan), y, "output"
    if y is None:
        return x, np.full(len(x), np.nan), "input"
    return x, y, "both"


@dataclass
class Block:
    """Requests read in one pass: per request its ids (pyarrow strings; no inferenceId is null), time (ns),
    file/line rank and record count; per record x, y."""

    event_id: pa.Array
    inference_id: pa.Array
    time_ns: np.ndarray
    rank: np.ndarray
    sizes: np.ndarray
    x: np.ndarray
    y: np.ndarray


def _strings(values: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Arrow strings as pandas' default string column (the ``str`` dtype), without a Python object each."""
    return pd.array(values, dtype=STRING)


def _sorted_order(time_ns: np.ndarray, key: pa.Array, record_index: np.ndarray, rank: np.ndarray) -> np.ndarray | None:
    """Positions by inference time, join key, record index and rank; None when they are in that order already
    (checked on the times alone when they strictly increase: the common case, no sort)."""
    steps = np.diff(time_ns)
    if (steps > 0).all():
        return None
    order = pc.sort_indices(pa.table({"t": time_ns, "k": key, "i": record_index, "r": rank}),
                            sort_keys=[("t", "ascending"), ("k", "ascending"), ("i", "ascending"),
                                       ("r", "ascending")]).to_numpy()
    return None if (order == np.arange(len(order))).all() else order


@dataclass
class Parsed:
    """What one or more capture objects hold for a window: blocks of records, request counts, unreadable lines,
    and the accounting of every non-blank line: ``lines == lines_read + lines_quarantined + outside``."""

    blocks: list[Block] = field(default_factory=list)
    captured: dict = field(default_factory=lambda: {"input": 0, "output": 0, "both": 0})
    quarantined: list = field(default_factory=list)
    lines: int = 0
    outside: int = 0
    missing: dict = field(default_factory=dict)

    @property
    def lines_read(self) -> int:
        """Lines whose records were kept (one request each)."""
        return sum(self.captured.values())

    def add(self, other: "Parsed") -> None:
        """Append another pass's records and counts."""
        self.blocks += other.blocks
        self.quarantined += other.quarantined
        for k, v in other.captured.items():
            self.captured[k] += v
        self.lines += other.lines
        self.outside += other.outside
        for k, v in other.missing.items():
            self.missing[k] = self.missing.get(k, 0) + v

    def frame(self, features: Sequence[str], release: bool = False) -> pd.DataFrame:
        """One row per record, sorted by inference time, join key and position (ties: file and line order).

        The features are copied once, block by block, into one matrix the frame then holds without another copy
        (column-major: each feature one contiguous column); ids stay Arrow strings. With ``release`` the blocks
        are let go as they are copied (the Parsed is empty afterwards): the window's records are held once.
        """
        blocks = [b for b in self.blocks if len(b.sizes)]
        if release:
            self.blocks = []
        width = len(features)
        sizes = np.concatenate([b.sizes for b in blocks]) if blocks else np.empty(0, np.int64)
        n, single = int(sizes.sum()), bool((sizes == 1).all())

        def per_request(name: str, dtype: type) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in blocks]) if blocks else np.empty(0, dtype)

        def strings(name: str) -> pa.Array:
            return pa.concat_arrays([getattr(b, name) for b in blocks]) if blocks else pa.array([], pa.string())

        event_id, inference_id, time_ns, rank = strings("event_id"), strings("inference_id"), \
            per_request("time_ns", np.int64), per_request("rank", np.int64)
        if single:
            record_index = np.zeros(n, dtype=np.int64)
        else:
            request = np.repeat(np.arange(len(sizes)), sizes)
            record_index = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            event_id, inference_id = event_id.take(pa.array(request)), inference_id.take(pa.array(request))
            time_ns, rank = time_ns[request], rank[request]
        join_key = pc.coalesce(inference_id, event_id)
        order = _sorted_order(time_ns, join_key, record_index, rank)
        x, y = np.empty((n, width), order="F"), np.empty(n)
        at = 0
        destination = None if order is None else np.empty(n, dtype=np.int64)
        if destination is not None:
            destination[order] = np.arange(n)
        while blocks:
            block = blocks.pop(0)
            rows = slice(at, at + len(block.y)) if destination is None else destination[at:at + len(block.y)]
            x[rows], y[rows] = block.x, block.y
            at += len(block.y)
            del block
        if order is not None:
            take = pa.array(order)
            event_id, inference_id, join_key = event_id.take(take), inference_id.take(take), join_key.take(take)
            time_ns, record_index = time_ns[order], record_index[order]
        frame = pd.DataFrame(x, columns=list(features), copy=False)
        columns = {"event_id": _strings(event_id), "inference_id": _strings(inference_id), "join_key": _strings(join_key),
                   "record_index": record_index, "inference_time": pd.to_datetime(time_ns, utc=True), "prediction": y}
        for i, (name, values) in enumerate(columns.items()):
            frame.insert(i, name, values)
        return frame


def quarantine_entry(key: str, n: int, why: str, line: bytes | str) -> dict:
    """A quarantined line: its file, 1-based line number, reason and its own text (its first ``TEXT_LIMIT`` bytes)."""
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    return {"key": key, "line": n, "reason": why, "text": raw[:TEXT_LIMIT].decode("utf-8", "replace")}


def _far(t: dt.datetime, hour: dt.datetime) -> str:
    hours = (t - hour) / dt.timedelta(hours=1)
    return (f"inferenceTime {windows.iso(t)} is {hours:+.1f} h from its partition {hour:%Y/%m/%d/%H}: no window "
            "reads both (a client clock off?)")


def parse_lines(key: str, numbered: Sequence[tuple[int, bytes | str]], window: windows.Window,
                features: Sequence[str], rank: int) -> Parsed:
    """The per-line pass: each line read whole with :func:`parse_request`, failures quarantined with their reason.

    Every line is accounted for once. A line whose ``inferenceTime`` lies in ``window`` is read, or quarantined
    with its reason. A line of another window is outside, when that window reads this object too; a line
    without a usable time (not UTF-8, not JSON, no or a bad time) or a time so far from the object's partition
    hour that no window reads both is quarantined by the window owning the partition, and outside for the others.
    """
    out = Parsed()
    hour, mine = partition_hour(key), owned(key, window)
    cols: dict[str, list] = {"event_id": [], "inference_id": [], "time_ns": [], "rank": [], "sizes": [], "x": [], "y": []}
    missing = np.zeros(len(features), dtype=np.int64)

    def fault(n: int, why: str, line: bytes | str) -> None:  # a line no window's time claims: its partition's
        if mine:
            out.quarantined.append(quarantine_entry(key, n, why, line))
        else:
            out.outside += 1

    for n, line in numbered:
        out.lines += 1
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                fault(n, f"line is not UTF-8 at byte {exc.start}", line)
                continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise payloads.BodyError(f"line is a JSON {type(rec).__name__}, not a capture record")
            meta = rec["eventMetadata"]
            if not isinstance(meta, dict):
                raise payloads.BodyError("'eventMetadata' is not an object")
            t = parse_time(meta["inferenceTime"])
        except Exception as exc:  # noqa: BLE001 - every failure is quarantined with its reason
            fault(n, reason(exc), line)
            continue
        if not (window.start <= t < window.end):
            if hour is None or reads(belonging(window, t), hour):
                out.outside += 1  # its own window reads this object and accounts for it
            else:
                fault(n, _far(t, hour), line)
            continue
        try:
            x, y, what = parse_request(rec, features)
            event_id = meta.get("eventId")
            if not isinstance(event_id, str) or not event_id:
                raise payloads.BodyError("eventMetadata.eventId is missing or empty")
            inference_id = meta.get("inferenceId") or None
            if inference_id is not None and not isinstance(inference_id, str):
                raise payloads.BodyError(f"eventMetadata.inferenceId is {str(inference_id)[:40]!r}, not a string")
        except Exception as exc:  # noqa: BLE001
            out.quarantined.append(quarantine_entry(key, n, reason(exc), line))
            continue
        out.captured[what] += 1
        if what != "output":
            missing += np.isnan(x).sum(axis=0)
        for name, value in (("event_id", event_id), ("inference_id", inference_id),
                            ("time_ns", pd.Timestamp(t).value), ("rank", rank + n), ("sizes", len(y)), ("x", x), ("y", y)):
            cols[name].append(value)
    if cols["sizes"]:
        out.blocks.append(Block(pa.array(cols["event_id"], pa.string()), pa.array(cols["inference_id"], pa.string()),
                                np.asarray(cols["time_ns"], dtype=np.int64), np.asarray(cols["rank"], dtype=np.int64),
                                np.asarray(cols["sizes"], dtype=np.int64), np.vstack(cols["x"]), np.concatenate(cols["y"])))
    out.missing = {features[j]: int(v) for j, v in enumerate(missing) if v}
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


def _floats(cells: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose every value pyarrow converts, their values as rows x width) of ``cells``, the values of rows
    one after the other (``width`` each); the other rows go line by line."""
    try:
        return np.ones(len(cells) // width, dtype=bool), pc.cast(cells, pa.float64()).to_numpy().reshape(-1, width)
    except pa.ArrowInvalid:  # some value is not a plain number (a header, a space, a newline): find its rows
        plain = pc.match_substring_regex(cells.cast(pa.string()), PLAIN_NUMBER).to_numpy(zero_copy_only=False)
        ok = plain.reshape(-1, width).all(axis=1)
        keep = (np.flatnonzero(ok)[:, None] * width + np.arange(width)).ravel()
        return ok, pc.cast(_take(cells, keep), pa.float64()).to_numpy().reshape(-1, width)


def _split(rows: pa.Array, width: int) -> tuple[np.ndarray, pa.Array]:
    """(rows of ``width`` comma-separated values, the values of those rows one after the other)."""
    split = pc.split_pattern(rows.cast(pa.string()), ",")
    sized = pc.equal(pc.list_value_length(split), width).to_numpy(zero_copy_only=False)
    return sized, _take(split, np.flatnonzero(sized)).flatten()


def _times(stamps: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose inferenceTime has SageMaker's plain form and a real date, their times in ns since the epoch, 0
    elsewhere): cast by pyarrow; an object holding an impossible date (02-30) is read by pandas instead."""
    plain = pc.fill_null(pc.match_substring_regex(stamps, PLAIN_TIME), False)
    try:
        times = pc.cast(pc.if_else(plain, stamps, None), pa.timestamp("ns", tz="UTC"))
        return times.is_valid().to_numpy(zero_copy_only=False), times.cast(pa.int64()).fill_null(0).to_numpy()
    except pa.ArrowInvalid:
        parsed = pd.to_datetime(pd.Series(stamps.to_numpy(zero_copy_only=False)).where(plain.to_numpy(zero_copy_only=False)),
                                utc=True, format="ISO8601", errors="coerce")
        known = parsed.notna().to_numpy()
        return known, np.where(known, parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64), 0)


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    return values if len(idx) == len(values) else pc.take(values, pa.array(idx))


def _ns(t: dt.datetime) -> int:
    return pd.Timestamp(t).value


def _outside(window: windows.Window, hour: dt.datetime | None, t_ns: np.ndarray) -> np.ndarray:
    """For times (ns) outside ``window``: whether the window of the same grid holding each reads ``hour``'s object
    (as :func:`reads` of :func:`belonging`, vectorised)."""
    if hour is None:
        return np.ones(len(t_ns), dtype=bool)
    step, origin = _ns(window.end) - _ns(window.start), _ns(window.start)
    start = origin + ((t_ns - origin) // step) * step
    end = start + step
    margin = READ_MARGIN // dt.timedelta(microseconds=1) * 1000
    first = start - start % _HOUR_NS - margin
    last = end + margin - 1
    last = last - last % _HOUR_NS
    return (first <= _ns(hour)) & (_ns(hour) <= last)


def parse_object(key: str, body: bytes, window: windows.Window, features: Sequence[str], rank: int) -> Parsed:
    """Records of one capture object in ``window``, and the account of each of its lines (see :class:`Parsed`).

    Lines written byte for byte in SageMaker's own single-record CSV layout (the common case) are cut into their
    fields by byte positions (:func:`capture_layout.cut`: no JSON parser); the other lines are read as a table
    with pyarrow's JSON reader. In both, requests whose both sides are single-row CSV are split and converted to
    floats in one vectorised pass. Every other request (JSON, JSON Lines, BASE64, multi-row CSV, a missing side,
    a missing or non-finite value, a time that is not SageMaker's plain form), and every request of lines pyarrow
    cannot read whole (a torn line, two records on one line), goes through :func:`parse_lines`, which names the reason of each unreadable line: both passes give the
    same records, counts and quarantine. A line that is not UTF-8 is quarantined alone and the rest of the object
    still goes through the columnar pass; an object that is not text at all (gzip, an image) is one quarantine
    entry naming its size and what it looks like (counted as one line). ``rank`` orders this object's requests
    before the next object's.
    """
    what = not_text(body)
    if what is not None:
        out = Parsed(lines=1)
        if owned(key, window):
            out.quarantined.append(not_text_entry(key, body, what))
        else:
            out.outside = 1
        return out
    cut = capture_layout.cut(body)  # lines in SageMaker's own layout, cut by byte positions
    out = _cut_pass(key, body, cut, window, features, rank)
    text, not_utf8 = utf8_lines(cut.rest)  # the other lines: read by pyarrow, line by line when that fails
    for line in not_utf8:  # a line that is not UTF-8 goes to the per-line pass alone
        out.add(parse_lines(key, [line], window, features, rank))
    if text:
        out.add(_columnar(key, joined(text), text, window, features, rank))
    out.quarantined.sort(key=lambda q: q["line"])  # in line order, as the per-line pass gives them
    return out


def _cut_pass(key: str, body: bytes, cut: capture_layout.Cut, window: windows.Window, features: Sequence[str],
              rank: int) -> Parsed:
    """The columnar pass over the lines of an object :func:`capture_layout.cut` found in SageMaker's layout: both
    sides are CSV by that layout."""
    out = Parsed(lines=len(cut.line))
    width = len(features)
    spans = cut.spans

    def text(name: str) -> pa.Array:
        return capture_layout.strings(body, *spans[name])

    def cells(idx: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        return _split(capture_layout.views(body, spans["data"][0][idx], spans["data"][1][idx]), width)

    def outputs(idx: np.ndarray) -> pa.Array:
        return capture_layout.strings(body, spans["y"][0][idx], spans["y"][1][idx])

    event = text("event_id")
    plain = spans["event_id"][1] > spans["event_id"][0]  # an eventId (both sides are CSV by the layout)
    return _rows_pass(out, key, window, features, rank, cut.line, event, text("inference_id"), text("time"), plain,
                      cells, outputs, lambda rows: [(int(cut.line[i]), body[spans["line"][0][i]:spans["line"][1][i]])
                                                    for i in rows])


def _columnar(key: str, body: bytes, numbered: list[tuple[int, bytes]], window: windows.Window,
              features: Sequence[str], rank: int) -> Parsed:
    """The columnar pass (pyarrow's JSON reader) over ``body``, the UTF-8 lines ``numbered`` joined."""
    read = json_table(body, numbered, PARSE_OPTIONS)
    if read is None:  # a torn line, or a line pyarrow read as several: one by one
        return parse_lines(key, numbered, window, features, rank)
    rows, _ = read
    out = Parsed(lines=len(rows))
    event, inference = _field(rows, "eventMetadata", "eventId"), _field(rows, "eventMetadata", "inferenceId")
    plain = pc.fill_null(pc.greater(pc.utf8_length(event), 0), False).to_numpy(zero_copy_only=False)
    plain &= _csv_side(_field(rows, "captureData", "endpointInput"), False)
    plain &= _csv_side(_field(rows, "captureData", "endpointOutput"), True)
    lines = np.fromiter((n for n, _ in numbered), dtype=np.int64, count=len(numbered))

    def cells(idx: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        return _split(_take(_field(rows, "captureData", "endpointInput", "data"), idx), len(features))

    def outputs(idx: np.ndarray) -> pa.Array:
        return _take(_field(rows, "captureData", "endpointOutput", "data"), idx)

    return _rows_pass(out, key, window, features, rank, lines, event, inference,
                      _field(rows, "eventMetadata", "inferenceTime"), plain, cells, outputs,
                      lambda idx: [numbered[i] for i in idx])


def _rows_pass(out: Parsed, key: str, window: windows.Window, features: Sequence[str], rank: int, lines: np.ndarray,
               event: pa.Array, inference: pa.Array, stamps: pa.Array, plain: np.ndarray,
               cells: Callable[[np.ndarray], tuple[np.ndarray, pa.Array]], outputs: Callable[[np.ndarray], pa.Array],
               lines_of: Callable[[np.ndarray], list[tuple[int, bytes]]]) -> Parsed:
    """The rows of a columnar pass (one a line; ``lines`` their numbers) into ``out``: those in ``window`` whose
    request is ``plain`` (an eventId, both sides single-row CSV) and whose ``cells`` (the row's values, rows
    whose value count is right) and ``outputs`` convert to finite floats are kept; rows outside are counted;
    every other row goes through :func:`parse_lines` (``lines_of``: their numbered lines), which names its reason."""
    known, t_ns = _times(stamps)
    inside = known & (t_ns >= _ns(window.start)) & (t_ns < _ns(window.end))
    outside = known & ~inside
    outside[outside] = _outside(window, partition_hour(key), t_ns[outside])  # else quarantined line by line
    out.outside += int(outside.sum())
    fast = inside & plain
    idx = np.flatnonzero(fast)
    if len(idx):
        sized, values = cells(idx)
        converted, x = _floats(values, len(features))
        sized[sized] = converted
        try:
            y = pc.cast(outputs(idx[sized]), pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # a response that is not a plain number: the per-line pass names it
            sized[:], x, y = False, x[:0], np.empty(0)
        finite = np.isfinite(y + x.sum(axis=1))  # a sum is finite when its values are (or a rare overflow: the
        # per-line pass reads that row exactly)
        if not finite.all():  # missing or non-finite values: the per-line pass counts or names them
            sized[np.flatnonzero(sized)[~finite]] = False
            x, y = x[finite], y[finite]
        fast[idx[~sized]] = False
        idx = idx[sized]
        if len(idx):
            inf = _take(inference, idx)
            no_id = pc.equal(inf, "")  # an empty inferenceId is none (the join falls back to the eventId)
            out.blocks.append(Block(_take(event, idx).cast(pa.string()), pc.if_else(no_id, None, inf).cast(pa.string()),
                                    t_ns[idx], rank + lines[idx], np.ones(len(idx), dtype=np.int64), x, y))
            out.captured["both"] += len(idx)
    slow = np.flatnonzero(~fast & ~outside)
    if len(slow):
        rest = parse_lines(key, lines_of(slow), window, features, rank)
        rest.lines = 0  # counted above with the object's lines
        out.add(rest)
    return out


# --- shared by other JSON Lines readers (ground truth) ---------------------------------------------------------

def text_part(body: bytes) -> tuple[bytes, list[tuple[int, bytes]] | None, list[tuple[int, bytes]]]:
    """(the object's UTF-8 text for a columnar pass, its non-blank lines when they had to be split, the lines that
    are not UTF-8): an object that is all text is returned whole and unsplit (the common case); otherwise the
    lines that are not UTF-8 are set apart (for the per-line pass to quarantine) and the rest is joined again."""
    try:
        body.decode("utf-8")
        return body, None, []
    except UnicodeDecodeError:
        pass
    text, bad = utf8_lines(split_lines(body))
    return joined(text), text, bad


def utf8_lines(numbered: Sequence[tuple[int, bytes]]) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """(the numbered lines that are UTF-8, those that are not), each in line order."""
    text, bad = [], []
    for n, line in numbered:
        try:
            line.decode("utf-8")
            text.append((n, line))
        except UnicodeDecodeError:
            bad.append((n, line))
    return text, bad


def joined(numbered: Sequence[tuple[int, bytes]]) -> bytes:
    """Numbered lines joined again for a columnar pass (one row a line)."""
    body = b"\n".join(line for _, line in numbered)
    if body.startswith(BOM):  # not the object's own start (split_lines dropped that one): pyarrow must not skip it
        body = b"\n" + body
    return body


def _plain_lines(body: bytes, rows: int) -> bool:
    """True when the object's lines are its rows one for one, found without splitting it: no blank line, no line
    that starts with whitespace, and as many rows as lines (one vectorised pass over the bytes)."""
    if body[:1] in (b"", b" ", b"\t", b"\r", b"\n"):
        return False
    data = np.frombuffer(body, dtype=np.uint8)
    breaks = np.flatnonzero(data == 10)
    after = data[breaks[breaks < len(data) - 1] + 1]
    if ((after == 10) | (after == 32) | (after == 9) | (after == 13)).any():
        return False
    return rows == len(breaks) + (not body.endswith(b"\n"))


def json_table(body: bytes, numbered: list[tuple[int, bytes]] | None, options: pa_json.ParseOptions
               ) -> tuple[pa.StructArray, list[tuple[int, bytes]] | None] | None:
    """An object of UTF-8 JSON Lines read as one table with pyarrow (``options``: its explicit schema), as rows of a
    struct array, with its non-blank lines (``numbered``, split here when its rows are not its lines one for one);
    None when the columnar pass cannot read it whole (a torn line, a line that is not an object, a field of
    another type than the schema's, two records on one line): then every line goes through the per-line pass."""
    try:
        read = pa_json.ReadOptions(use_threads=False, block_size=max(READ_BLOCK, len(body) + 1))
        table = pa_json.read_json(io.BytesIO(body), read_options=read, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if numbered is None and not _plain_lines(body, len(table)):
        numbered = split_lines(body)
    if numbered is not None and len(table) != len(numbered):
        return None
    return table.to_struct_array().combine_chunks(), numbered
