"""SageMaker Data Capture and ground-truth JSONL: write them as SageMaker does, read windows back, join them."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from . import heap, keeping, labels as label_store, payloads, reader, windows
from .aws import Aws, put_bytes, split_s3_uri
from .data import FEATURES
from .reader import parse_request, parse_time, partition_hour  # noqa: F401 - public names of this module

EVENT_VERSION = "0"
T, R = TypeVar("T"), TypeVar("R")
FETCH_WORKERS = 8  # objects fetched at once
PARSE_WORKERS = max(2, min(FETCH_WORKERS, os.cpu_count() or 2))  # objects parsed at once: each holds its text and
# columns while parsed, so more at once than cores only adds memory (the window's peak follows this, not speed)
READ_AHEAD = FETCH_WORKERS  # label objects fetched ahead of the one being parsed (the columnar pass parses one
# faster than one is fetched: more ahead only holds more bodies, a few MB each for a busy endpoint)
CAPTURE_AHEAD = 2 * PARSE_WORKERS  # capture objects fetched and waiting for a parser (their bytes count in the peak)
PARSER_CODE = (reader, payloads, label_store, sys.modules[__name__])  # local mode keeps parsed windows; a change here re-parses


# --- encoding -----------------------------------------------------------------------------------

def capture_line(rows: np.ndarray | Sequence[float], predictions: np.ndarray | Sequence[float] | float, event_id: str,
                 inference_id: str | None, inference_time: str, input_format: str = "csv",
                 features: Sequence[str] = FEATURES) -> str:
    """A Data Capture JSONL line for one invocation (one request of one or more records).

    ``input_format`` is one of :data:`payloads.FORMATS` (for example 'csv', 'json_instances', 'jsonlines',
    'base64'); ``rows`` holds one record (a vector) or several (records x features).
    """
    inp, out = payloads.encode_request(input_format, np.asarray(rows, dtype=float), np.atleast_1d(predictions), features)
    meta = {"eventId": event_id, "inferenceTime": inference_time}
    if inference_id:
        meta["inferenceId"] = inference_id
    record = {"captureData": {"endpointInput": inp, "endpointOutput": out},
              "eventMetadata": meta, "eventVersion": EVENT_VERSION}
    return json.dumps(record, separators=(",", ":"))


def ground_truth_line(event_id: str, labels: float | Sequence[float]) -> str:
    """A ground-truth JSONL line, as Model Monitor expects labels (eventId = the capture's inferenceId, else
    its eventId); several labels mirror a multi-record request by position."""
    record = {"groundTruthData": payloads.encode_labels(np.atleast_1d(labels).tolist()),
              "eventMetadata": {"eventId": event_id}, "eventVersion": EVENT_VERSION}
    return json.dumps(record, separators=(",", ":"))


# --- writing (the simulated endpoint and its labellers) -----------------------------------------

def _file_name(first_time: dt.datetime, tag: str) -> str:
    digest = hashlib.sha1(f"{tag}{first_time.isoformat()}".encode()).hexdigest()[:12]
    return f"{first_time:%M-%S}-{first_time.microsecond // 1000:03d}-{digest}.jsonl"


def hourly_objects(base_uri: str, times: pd.Series, lines: list[str], tag: str) -> list[tuple[str, str, bytes]]:
    """Lines as SageMaker files them: one JSONL object per hour under ``base_uri/yyyy/mm/dd/hh/``, as
    (bucket, key, body), in time order."""
    bucket, base_key = split_s3_uri(base_uri)
    frame = pd.DataFrame({"t": pd.to_datetime(times, utc=True), "line": lines})
    frame["hour"] = frame["t"].dt.floor("h")
    objects = []
    for hour, group in frame.groupby("hour", sort=True):
        first = group["t"].min().floor("us").to_pydatetime()
        key = windows.partition_prefix(base_key, hour.to_pydatetime()) + _file_name(first, tag)
        objects.append((bucket, key, ("\n".join(group["line"]) + "\n").encode()))
    return objects


def put_objects(aws: Aws, objects: Sequence[tuple[str, str, bytes]], content_type: str = "application/jsonl",
                workers: int = 8) -> int:
    """PUT (bucket, key, body) objects, ``workers`` at a time; return how many were written."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda o: put_bytes(aws, o[0], o[1], o[2], content_type), objects))
    return len(objects)


def write_hourly(aws: Aws, base_uri: str, times: pd.Series, lines: list[str], tag: str, workers: int = 8) -> int:
    """Write lines into one JSONL object per hour under ``base_uri/yyyy/mm/dd/hh/``; return objects written."""
    return put_objects(aws, hourly_objects(base_uri, times, lines, tag), workers=workers)


# --- reading ------------------------------------------------------------------------------------

@dataclass
class CaptureBatch:
    """Captured records of one window (one row per record), and the requests that could not be read.

    Attributes
    ----------
    records : pd.DataFrame
        event_id, inference_id, join_key, record_index (position in its request), inference_time,
        prediction (NaN when only the input was captured), then the features (NaN when only the output was).
    quarantined : list[dict]
        Unreadable requests: key, line, reason and the line's text.
    files : int
        Capture objects read.
    requests : int
        Capture lines (requests) in the window that were read.
    input_only, output_only : int
        Requests captured with only their input, or only their output (CaptureMode).
    lines : int
        Non-blank lines of the objects read (an object that is not text counts as one line); each is exactly one
        of ``lines_read`` (== ``requests``), ``lines_quarantined`` (== ``len(quarantined)``) and ``lines_outside``
        (it belongs to another window that reads its object too, and is accounted there).
    missing_values : dict[str, int]
        Feature values captured as ``null`` or ``NaN`` (kept as NaN), per feature with any.
    """

    records: pd.DataFrame
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0
    requests: int = 0
    input_only: int = 0
    output_only: int = 0
    lines: int = 0
    lines_outside: int = 0
    missing_values: dict = field(default_factory=dict)

    @property
    def lines_read(self) -> int:
        """Lines whose records were kept."""
        return self.requests

    @property
    def read_nothing(self) -> bool:
        """Nothing was captured in the window: no line read and none quarantined."""
        return not self.requests and not self.quarantined

    @property
    def lines_quarantined(self) -> int:
        """Lines quarantined by this window."""
        return len(self.quarantined)

    def line_counts(self) -> dict[str, int]:
        """``lines``, ``lines_read``, ``lines_quarantined``, ``lines_outside``: the window record's accounting."""
        return {"lines": self.lines, "lines_read": self.lines_read, "lines_quarantined": self.lines_quarantined,
                "lines_outside": self.lines_outside}


MONTH_LISTING_DAYS = 7  # a read spanning this many days lists whole month partitions: fewer, fuller listings
_SHARED_LISTINGS: ContextVar[tuple[dict, bool] | None] = ContextVar("shared_listings", default=None)


@contextlib.contextmanager
def shared_listings(start: dt.datetime, end: dt.datetime) -> Iterator[None]:
    """Within this block (in this thread), :func:`objects_between` lists each partition once and serves every
    later range in it from that listing: a stage reading its backlog window by window (the block spans
    ``start`` to ``end``) lists each day once instead of once per window that touches it, and a block of
    ``MONTH_LISTING_DAYS`` or more lists whole months. Objects written after their partition was listed are
    not seen inside the block."""
    token = _SHARED_LISTINGS.set(({}, end - start >= dt.timedelta(days=MONTH_LISTING_DAYS)))
    try:
        yield
    finally:
        _SHARED_LISTINGS.reset(token)


def _listed(aws: Aws, bucket: str, prefix: str) -> list[keeping.Listed]:
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    return [keeping.Listed(o["Key"], o.get("ETag", ""), int(o.get("Size", 0)))
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def objects_between(aws: Aws, base_uri: str, first_hour: dt.datetime, end: dt.datetime) -> list[keeping.Listed]:
    """Objects (key, ETag, size) in the hourly partitions from ``first_hour`` up to ``end``, in key order.

    One listing per day partition the range touches, so only the prefixes the range needs are read (and each
    answer stays small); a range of ``MONTH_LISTING_DAYS`` or more lists whole month partitions instead. Inside
    :func:`shared_listings` the listings are kept and shared by every range in the block.
    """
    bucket, base_key = split_s3_uri(base_uri)
    start_key = windows.partition_prefix(base_key, first_hour)
    stop_key = windows.partition_prefix(base_key, windows.floor(end - dt.timedelta(microseconds=1), "hourly"))
    listings, by_month = _SHARED_LISTINGS.get() or ({}, False)
    by_month = by_month or end - first_hour >= dt.timedelta(days=MONTH_LISTING_DAYS)
    found = []
    day = windows.floor(first_hour, "daily")
    while day <= end:
        prefix = windows.partition_prefix(base_key, day)[: -len("00/")]  # base/yyyy/mm/dd/
        listed_prefix = prefix[: -len("dd/")] if by_month else prefix  # base/yyyy/mm/
        if (bucket, listed_prefix) not in listings:
            listings[(bucket, listed_prefix)] = _listed(aws, bucket, listed_prefix)
        found += [o for o in listings[(bucket, listed_prefix)] if o.key.startswith(prefix)
                  and o.key >= start_key and o.key[: len(stop_key)] <= stop_key]
        day += dt.timedelta(days=1)
    return found


def window_objects(aws: Aws, capture_uri: str, window: windows.Window) -> list[keeping.Listed]:
    """The capture objects :func:`read_capture` reads for ``window``: files are partitioned by write hour, so a
    record near an hour's end may sit in the next hour's file; the hour before the window and after it are read too."""
    return objects_between(aws, capture_uri, windows.floor(window.start, "hourly") - reader.READ_MARGIN,
                           window.end + reader.READ_MARGIN)


def keys_between(aws: Aws, base_uri: str, first_hour: dt.datetime, end: dt.datetime) -> list[str]:
    """Keys of :func:`objects_between`."""
    return [o.key for o in objects_between(aws, base_uri, first_hour, end)]


def capture_uri_for(capture_base: str, endpoint_name: str, variant_name: str) -> str:
    """Where SageMaker writes capture for one variant: ``<DestinationS3Uri>/<endpoint>/<variant>``."""
    return f"{capture_base.rstrip('/')}/{endpoint_name}/{variant_name}"


def read_capture(aws: Aws, capture_uri: str, window: windows.Window, features: Sequence[str] | None = None
                 ) -> CaptureBatch:
    """Read every captured record whose request's inferenceTime lies in ``window``: one row per record.

    Parameters
    ----------
    aws : Aws
        Session.
    capture_uri : str
        ``<DestinationS3Uri>/<endpoint>/<variant>`` (see :func:`capture_uri_for`).
    window : windows.Window
        Requests with ``window.start <= inferenceTime < window.end`` are read.
    features : Sequence[str], optional
        Feature names in model order, from the stored baseline (default: the 90 MSD features). Named JSON
        features map by name; a record with another count of values is quarantined.

    Returns
    -------
    CaptureBatch
        Records, and requests that cannot be read whole (bad JSON, a line that is not UTF-8, unknown encoding, a
        header row, wrong feature count, an infinite value, input and output counts that disagree, a missing time
        or one no window would read) in ``quarantined`` with file, line, reason and the line's text: never
        dropped silently and never fatal. The rest of a file is read. Every non-blank line of every object read
        is counted once: read, quarantined or outside the window (``CaptureBatch.line_counts``).
    """
    features = list(features or FEATURES)
    bucket, _ = split_s3_uri(capture_uri)
    objects = window_objects(aws, capture_uri, window)

    def parse_each() -> Iterator[reader.Parsed]:
        """Objects fetched ``FETCH_WORKERS`` at once (at most that many waiting), parsed ``PARSE_WORKERS`` at once
        on threads of their own: the window's peak is its records plus a few objects in flight."""
        with ThreadPoolExecutor(FETCH_WORKERS) as fetchers, ThreadPoolExecutor(PARSE_WORKERS) as parsers:
            parsing: collections.deque = collections.deque()
            bodies = ahead(fetchers, lambda o: keeping.fetch(aws, bucket, o), objects, CAPTURE_AHEAD)
            for i, (obj, body) in enumerate(zip(objects, bodies)):
                parsing.append(parsers.submit(reader.parse_object, obj.key, body, window, features, i << 32))
                del body
                while len(parsing) > PARSE_WORKERS:
                    yield parsing.popleft().result()
            while parsing:
                yield parsing.popleft().result()

    def parse() -> CaptureBatch:
        parsed = reader.Parsed()
        for part in parse_each():
            parsed.add(part)
        c = parsed.captured
        return CaptureBatch(parsed.frame(features, release=True), parsed.quarantined, len(objects), requests=parsed.lines_read,
                            input_only=c["input"], output_only=c["output"], lines=parsed.lines,
                            lines_outside=parsed.outside, missing_values=parsed.missing)

    detail = f"{windows.iso(window.start)}|{windows.iso(window.end)}|{','.join(features)}"
    return keeping.parsed(aws, "capture", objects, detail, parse, PARSER_CODE)


@dataclass
class LabelBatch:
    """Labels read from ground-truth objects, the lines that could not be read, and every object's line counts.

    Attributes
    ----------
    labels : pd.DataFrame or labels.CompactLabels
        One row per labelled record: join_key, record_index, year; or, read with ``compact``, the same labels as
        hashed keys, record indexes and labels (:class:`labels.CompactLabels`, tens of bytes a label).
    quarantined : list[dict]
        Unreadable lines: key, line, reason and the line's text.
    counts : pd.DataFrame
        Per object: key, hour (its partition), lines (non-blank), lines_read, lines_quarantined; every line of
        an object is read or quarantined (ground truth has no time of its own to be outside of).
    """

    labels: pd.DataFrame | label_store.CompactLabels
    quarantined: list[dict] = field(default_factory=list)
    counts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LABEL_COUNTS))

    def by_window(self, cadence: str) -> dict[str, dict[str, int]]:
        """``label_lines``, ``label_lines_read``, ``label_lines_quarantined`` per window label (``cadence``: hourly or
        daily), by the partition hour of the object holding the lines."""
        out: dict[str, dict[str, int]] = {}
        for row in self.counts.itertuples(index=False):
            if row.hour is None or pd.isna(row.hour):
                continue
            tally = out.setdefault(windows.containing(row.hour, cadence).label, dict.fromkeys(LABEL_KEYS.values(), 0))
            for column, name in LABEL_KEYS.items():
                tally[name] += int(getattr(row, column))
        return out


LABEL_COUNTS = ["key", "hour", "lines", "lines_read", "lines_quarantined"]
LABEL_KEYS = {"lines": "label_lines", "lines_read": "label_lines_read", "lines_quarantined": "label_lines_quarantined"}


def read_labels(aws: Aws, ground_truth_uri: str, start: dt.datetime, end: dt.datetime, compact: bool = False
                ) -> LabelBatch:
    """Labels collected in [start, end) (the hour partitions of the range): one row per labelled record, the
    ground-truth lines that could not be read (quarantined with file, line, reason and text), and per object its
    lines and how each was accounted for.

    Lines are ``\\n``-separated as in capture (:func:`reader.split_lines`); a line that is not UTF-8 is quarantined
    alone, an object that is not text is one entry. ``eventMetadata.eventId`` is the capture's inferenceId, else
    its eventId. A label for a multi-record request (``{"instances": [{"label": y}, ...]}``) gives one row per
    position. When a record is labelled more than once, the latest label (by collection hour, then file and
    line order) wins.

    With ``compact`` the labels are held as :class:`labels.CompactLabels` (each join key as two 64-bit hashes, its
    record index and label: 28 bytes a label), for a stage that reads a whole backlog's labels once and lets each
    window look its records up (:func:`join_ground_truth` gives the same years either way).
    """
    bucket, _ = split_s3_uri(ground_truth_uri)
    objects = objects_between(aws, ground_truth_uri, windows.floor(start, "hourly"), end)
    detail = f"{windows.iso(start)}|{windows.iso(end)}" + ("|compact" if compact else "")
    return keeping.parsed(aws, "ground_truth", objects, detail,
                          lambda: _parse_ground_truth(aws, bucket, objects, compact), PARSER_CODE)


def read_ground_truth(aws: Aws, ground_truth_uri: str, start: dt.datetime, end: dt.datetime
                      ) -> tuple[pd.DataFrame, list[dict]]:
    """Labels collected in [start, end): one row per labelled record (join_key, record_index, year), plus
    the ground-truth lines that could not be read (quarantined with file, line and reason); see :func:`read_labels`."""
    batch = read_labels(aws, ground_truth_uri, start, end)
    return batch.labels, batch.quarantined


def parse_label_lines(key: str, body: bytes) -> tuple[list[str], list[int], list[np.ndarray], list[dict], int]:
    """(join keys, positions, label arrays, quarantined lines, lines counted) of one ground-truth object, every
    line read by ``json.loads`` (the per-line pass; :func:`parse_label_object` reads most lines columnar)."""
    what = reader.not_text(body)
    if what is not None:
        return [], [], [], [reader.not_text_entry(key, body, what)], 1
    numbered = reader.split_lines(body)
    keys, positions, years, _, quarantined = _label_lines(key, numbered)
    return keys, positions, years, quarantined, len(numbered)


def _label_lines(key: str, numbered: Sequence[tuple[int, bytes]]
                 ) -> tuple[list[str], list[int], list[np.ndarray], list[int], list[dict]]:
    """The per-line pass over some lines of an object: (join keys, positions, label arrays, each label's line
    number, quarantined lines)."""
    keys: list[str] = []
    positions: list[int] = []
    years: list[np.ndarray] = []
    at: list[int] = []
    quarantined = []
    for n, raw in numbered:
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise payloads.BodyError(f"line is not UTF-8 at byte {exc.start}") from None
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise payloads.BodyError(f"line is a JSON {type(rec).__name__}, not a ground-truth record")
            event_id = rec["eventMetadata"]["eventId"]
            if not isinstance(event_id, str) or not event_id:
                raise payloads.BodyError("eventMetadata.eventId is empty")
            labels = payloads.parse_labels(rec["groundTruthData"])
        except Exception as exc:  # noqa: BLE001
            quarantined.append(reader.quarantine_entry(key, n, reader.reason(exc), raw))
            continue
        keys += [event_id] * len(labels)
        positions += range(len(labels))
        at += [n] * len(labels)
        years.append(labels)
    return keys, positions, years, at, quarantined


# the fields the columnar pass over ground truth reads, as text (a label is converted from its CSV text)
GROUND_TRUTH_SCHEMA = pa.schema([("groundTruthData", pa.struct([("data", pa.string()), ("encoding", pa.string())])),
                                 ("eventMetadata", pa.struct([("eventId", pa.string())]))])
GROUND_TRUTH_OPTIONS = pa_json.ParseOptions(explicit_schema=GROUND_TRUTH_SCHEMA, unexpected_field_behavior="ignore")


@dataclass
class LabelPart:
    """The labels of one ground-truth object in line order (one entry per label), its unreadable lines and its
    non-blank line count.

    Attributes
    ----------
    keys : np.ndarray
        Join keys (Python strings, object dtype): the object's only strings, let go with it.
    positions : np.ndarray
        int32 position of each label's record in its request.
    years : np.ndarray
        float64 labels.
    quarantined : list[dict]
        Unreadable lines, in line order.
    lines : int
        Non-blank lines (an object that is not text counts as one).
    """

    keys: np.ndarray
    positions: np.ndarray
    years: np.ndarray
    quarantined: list[dict]
    lines: int


def _label_part(keys: list | np.ndarray, positions, years: list[np.ndarray] | np.ndarray, quarantined: list[dict],
                lines: int) -> LabelPart:
    years = (np.concatenate(years) if len(years) else np.empty(0)) if isinstance(years, list) else years
    return LabelPart(np.asarray(keys, dtype=object).reshape(-1), np.asarray(positions, dtype=np.int32).reshape(-1),
                     np.asarray(years, dtype=np.float64), quarantined, lines)


def parse_label_object(key: str, body: bytes) -> LabelPart:
    """The labels of one ground-truth object, as :func:`parse_label_lines` reads them, mostly in one columnar pass.

    The object is read as a table with pyarrow's JSON reader (explicit schema, one block); lines labelling a
    single-record request with one plain number in CSV (``groundTruthData.data``, encoding CSV: the common
    case) are converted in one vectorised cast. Every other line (JSON or BASE64 labels, several labels, a
    value that is not a plain finite number, a missing or empty eventId, a line that is not UTF-8), and every
    line of an object the columnar pass cannot read whole, goes through the per-line pass: the same labels in
    the same order, the same quarantine entries and counts either way.
    """
    what = reader.not_text(body)
    if what is not None:
        return _label_part([], [], [], [reader.not_text_entry(key, body, what)], 1)
    text, numbered, not_utf8 = reader.text_part(body)
    read = reader.json_table(text, numbered, GROUND_TRUTH_OPTIONS)
    if read is None:
        numbered = reader.split_lines(body)
        k, p, y, _, bad = _label_lines(key, numbered)
        return _label_part(k, p, y, bad, len(numbered))
    rows, numbered = read
    gt, event = pc.struct_field(rows, "groundTruthData"), pc.struct_field(rows, "eventMetadata")
    event_id, data = pc.struct_field(event, "eventId"), pc.struct_field(gt, "data")
    fast = pc.and_(pc.and_(pc.greater(pc.utf8_length(event_id), 0), pc.equal(pc.struct_field(gt, "encoding"), "CSV")),
                   pc.match_substring_regex(data, reader.PLAIN_NUMBER))
    fast = pc.fill_null(fast, False).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(fast)
    years = pc.cast(data.take(pa.array(idx)), pa.float64()).to_numpy(zero_copy_only=False)
    finite = np.isfinite(years)
    if not finite.all():  # 1e999: the per-line pass names it
        fast[idx[~finite]], idx, years = False, idx[finite], years[finite]
    keys = event_id.take(pa.array(idx)).to_numpy(zero_copy_only=False)
    lines = len(rows) + len(not_utf8)
    slow = np.flatnonzero(~fast)
    if not len(slow) and not not_utf8:
        return _label_part(keys, np.zeros(len(idx), np.int32), years, [], lines)
    line_of = (idx + 1) if numbered is None else np.fromiter((n for n, _ in numbered), np.int64, len(numbered))[idx]
    numbered = numbered or reader.split_lines(text)
    rest = sorted([numbered[i] for i in slow] + not_utf8)
    k, p, y, at, bad = _label_lines(key, rest)
    order = np.argsort(np.concatenate([line_of, np.asarray(at, dtype=np.int64)]), kind="stable")
    return _label_part(np.concatenate([keys, np.asarray(k, dtype=object)])[order],
                       np.concatenate([np.zeros(len(idx), np.int32), np.asarray(p, dtype=np.int32)])[order],
                       np.concatenate([years] + y)[order], bad, lines)


def ahead(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Sequence[T], limit: int) -> Iterator[R]:
    """``fn`` of each item on ``pool``, in order, with at most ``limit`` results fetched ahead of the one taken
    (``pool.map`` would run every item at once and hold every result: a backlog's labels all in memory)."""
    pending: collections.deque = collections.deque()
    rest = iter(items)
    for item in itertools.islice(rest, limit):
        pending.append(pool.submit(fn, item))
    while pending:
        result = pending.popleft().result()
        for item in itertools.islice(rest, 1):
            pending.append(pool.submit(fn, item))
        yield result


def _parse_ground_truth(aws: Aws, bucket: str, objects: Sequence[keeping.Listed], compact: bool = False) -> LabelBatch:
    parts, quarantined, counts = [], [], []
    builder = label_store.LabelBuilder() if compact else None
    heap.map_large_buffers()
    with ThreadPoolExecutor(FETCH_WORKERS) as pool:
        bodies = ahead(pool, lambda o: keeping.fetch(aws, bucket, o), objects, READ_AHEAD)
        for obj, body in zip(objects, bodies):
            part = parse_label_object(obj.key, body)
            del body
            if builder is not None:  # each object's keys hashed as it is read: no Python string kept
                builder.add(*label_store.key_hashes(part.keys), part.positions, part.years)
            else:
                parts.append(part)
            quarantined += part.quarantined
            counts.append((obj.key, partition_hour(obj.key), part.lines, part.lines - len(part.quarantined),
                           len(part.quarantined)))
            del part
    counts = pd.DataFrame(counts, columns=LABEL_COUNTS)
    if builder is not None:
        return LabelBatch(builder.build(), quarantined, counts)
    gt = pd.DataFrame({"join_key": pd.Series(np.concatenate([p.keys for p in parts]) if parts else [], dtype=object),
                       "record_index": np.concatenate([p.positions for p in parts]).astype(int) if parts else np.empty(0, int),
                       "year": np.concatenate([p.years for p in parts]) if parts else np.empty(0)})
    gt = gt.drop_duplicates(["join_key", "record_index"], keep="last").reset_index(drop=True)
    return LabelBatch(gt, quarantined, counts)


def join_ground_truth(records: pd.DataFrame, labels: pd.DataFrame | label_store.CompactLabels) -> pd.DataFrame:
    """Attach ``year`` to each capture record on (inferenceId else eventId, record_index); unlabelled rows get NaN.

    ``labels`` is a frame (join_key, record_index when a request holds several records, year and any other
    columns, attached alike) or :class:`labels.CompactLabels`. The records' columns are not copied: only the key
    columns are matched, and the labels' columns are added to a new frame sharing the records' data.
    """
    out = records.reset_index(drop=True)
    index = out["record_index"] if "record_index" in out else np.zeros(len(out), dtype=np.int64)
    if isinstance(labels, label_store.CompactLabels):
        return out.assign(year=labels.lookup(out["join_key"], index))
    if "record_index" not in labels:
        labels = labels.assign(record_index=0)
    keys = pd.DataFrame({"join_key": out["join_key"], "record_index": index})
    matched = keys.merge(labels, on=["join_key", "record_index"], how="left", validate="many_to_one")
    return out.assign(**{c: matched[c].to_numpy() for c in matched.columns if c not in keys.columns})
