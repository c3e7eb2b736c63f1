"""SageMaker Data Capture and ground-truth JSONL: write them as SageMaker does, read windows back, join them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from . import payloads, windows
from .aws import Aws, get_bytes, put_bytes, split_s3_uri
from .data import FEATURES

EVENT_VERSION = "0"


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


def write_hourly(aws: Aws, base_uri: str, times: pd.Series, lines: list[str], tag: str, workers: int = 8) -> int:
    """Write lines into one JSONL object per hour under ``base_uri/yyyy/mm/dd/hh/``; return objects written."""
    bucket, base_key = split_s3_uri(base_uri)
    frame = pd.DataFrame({"t": pd.to_datetime(times, utc=True), "line": lines})
    frame["hour"] = frame["t"].dt.floor("h")
    jobs = []
    for hour, group in frame.groupby("hour", sort=True):
        first = group["t"].min().floor("us").to_pydatetime()
        key = windows.partition_prefix(base_key, hour.to_pydatetime()) + _file_name(first, tag)
        jobs.append((key, ("\n".join(group["line"]) + "\n").encode()))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda kv: put_bytes(aws, bucket, kv[0], kv[1], "application/jsonl"), jobs))
    return len(jobs)


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
    """

    records: pd.DataFrame
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0
    requests: int = 0
    input_only: int = 0
    output_only: int = 0


def keys_between(aws: Aws, base_uri: str, first_hour: dt.datetime, end: dt.datetime) -> list[str]:
    """Keys in the hourly partitions from ``first_hour`` up to ``end``: one listing that starts at the first
    partition (StartAfter) and stops past the last, so only the prefixes the range needs are read."""
    bucket, base_key = split_s3_uri(base_uri)
    start_key = windows.partition_prefix(base_key, first_hour)
    stop_key = windows.partition_prefix(base_key, windows.floor(end - dt.timedelta(microseconds=1), "hourly"))
    keys = []
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=base_key.rstrip("/") + "/", StartAfter=start_key[:-1]):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key[: len(stop_key)] > stop_key:
                return keys
            if key >= start_key:
                keys.append(key)
    return keys


def _read_lines(aws: Aws, base_uri: str, first_hour: dt.datetime, end: dt.datetime, workers: int = 8
                ) -> tuple[list[tuple[str, int, str | UnicodeDecodeError]], int]:
    """(key, line number, text) for every line in the hourly partitions from ``first_hour`` up to ``end``;
    a file that is not UTF-8 gives one entry holding its decode error instead of text."""
    bucket, _ = split_s3_uri(base_uri)
    keys = keys_between(aws, base_uri, first_hour, end)
    with ThreadPoolExecutor(workers) as pool:
        bodies = list(pool.map(lambda k: get_bytes(aws, bucket, k) or b"", keys))
    out = []
    for key, body in zip(keys, bodies):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((key, 0, exc))
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                out.append((key, n, line))
    return out, len(keys)


def _text(line: str | UnicodeDecodeError) -> str:
    if isinstance(line, UnicodeDecodeError):
        raise payloads.BodyError(f"file is not UTF-8 ({line})")
    return line


def _reason(exc: Exception) -> str:
    if isinstance(exc, payloads.BodyError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{type(exc).__name__}: {exc}"


def parse_time(text: str) -> dt.datetime:
    """``inferenceTime`` (``YYYY-MM-DDTHH:MM:SSZ``, with or without fractional seconds) as aware UTC."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def capture_uri_for(capture_base: str, endpoint_name: str, variant_name: str) -> str:
    """Where SageMaker writes capture for one variant: ``<DestinationS3Uri>/<endpoint>/<variant>``."""
    return f"{capture_base.rstrip('/')}/{endpoint_name}/{variant_name}"


def partition_hour(key: str) -> dt.datetime | None:
    """The ``yyyy/mm/dd/hh`` partition a key sits in (None when it has none)."""
    parts = key.split("/")
    try:
        return dt.datetime(int(parts[-5]), int(parts[-4]), int(parts[-3]), int(parts[-2]), tzinfo=dt.timezone.utc)
    except (ValueError, IndexError):
        return None


def _owned(key: str, window: windows.Window) -> bool:
    hour = partition_hour(key)
    return hour is None or window.start <= hour < window.end


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
        Records, and requests that cannot be read whole (bad JSON, unknown encoding, a header row, wrong
        feature count, input and output counts that disagree) in ``quarantined`` with file, line and reason:
        never dropped silently and never fatal. The rest of a file is read.
    """
    features = list(features or FEATURES)
    # files are partitioned by write hour: a record near an hour's end may sit in the next hour's file
    lines, files = _read_lines(aws, capture_uri, windows.floor(window.start, "hourly") - dt.timedelta(hours=1),
                               window.end + dt.timedelta(hours=1))
    meta_rows, blocks, preds, quarantined = [], [], [], []
    captured = {"input": 0, "output": 0, "both": 0}
    for key, n, line in lines:
        try:
            rec = json.loads(_text(line))
            meta = rec["eventMetadata"]
            t = parse_time(meta["inferenceTime"])
            if not (window.start <= t < window.end):
                continue
            x, y, what = parse_request(rec, features)
            event_id = meta["eventId"]
            if not isinstance(event_id, str) or not event_id:
                raise payloads.BodyError("eventMetadata.eventId is empty")
        except Exception as exc:  # noqa: BLE001 - every failure is quarantined with its reason
            if not _owned(key, window):
                continue  # a neighbouring hour's file: that window's run quarantines (and counts) it, once
            quarantined.append({"key": key, "line": n, "reason": _reason(exc), "text": str(line)[:2000]})
            continue
        captured[what] += 1
        inference_id = meta.get("inferenceId") or None
        meta_rows.append((event_id, inference_id, inference_id or event_id, t))
        blocks.append(x)
        preds.append(y)
    sizes = np.array([len(y) for y in preds], dtype=int)

    def per_record(column: int) -> np.ndarray:
        return np.repeat(np.array([m[column] for m in meta_rows] or [], dtype=object), sizes)

    frame = pd.DataFrame({
        "event_id": per_record(0), "inference_id": per_record(1), "join_key": per_record(2),
        "record_index": np.concatenate([np.arange(k) for k in sizes]) if len(sizes) else np.empty(0, dtype=int),
        "inference_time": pd.to_datetime(per_record(3), utc=True),
        "prediction": np.concatenate(preds) if preds else np.empty(0),
    })
    matrix = np.vstack(blocks) if blocks else np.empty((0, len(features)))
    records = pd.concat([frame, pd.DataFrame(matrix, columns=features)], axis=1)
    records = records.sort_values(["inference_time", "join_key", "record_index"], kind="stable").reset_index(drop=True)
    return CaptureBatch(records, quarantined, files, requests=sum(captured.values()),
                        input_only=captured["input"], output_only=captured["output"])


def read_ground_truth(aws: Aws, ground_truth_uri: str, start: dt.datetime, end: dt.datetime
                      ) -> tuple[pd.DataFrame, list[dict]]:
    """Labels collected in [start, end): one row per labelled record (join_key, record_index, year), plus
    the ground-truth lines that could not be read (quarantined with file, line and reason).

    ``eventMetadata.eventId`` is the capture's inferenceId, else its eventId. A label for a multi-record
    request (``{"instances": [{"label": y}, ...]}``) gives one row per position. When a record is labelled
    more than once, the latest label (by collection hour, then file and line order) wins.
    """
    lines, _ = _read_lines(aws, ground_truth_uri, windows.floor(start, "hourly"), end)
    keys, positions, years, quarantined = [], [], [], []
    for key, n, line in lines:
        try:
            rec = json.loads(_text(line))
            event_id = rec["eventMetadata"]["eventId"]
            if not isinstance(event_id, str) or not event_id:
                raise payloads.BodyError("eventMetadata.eventId is empty")
            labels = payloads.parse_labels(rec["groundTruthData"])
        except Exception as exc:  # noqa: BLE001
            quarantined.append({"key": key, "line": n, "reason": _reason(exc), "text": str(line)[:2000]})
            continue
        keys += [event_id] * len(labels)
        positions += range(len(labels))
        years.append(labels)
    gt = pd.DataFrame({"join_key": pd.Series(keys, dtype=object), "record_index": np.asarray(positions, dtype=int),
                       "year": np.concatenate(years) if years else np.empty(0)})
    return gt.drop_duplicates(["join_key", "record_index"], keep="last").reset_index(drop=True), quarantined


def join_ground_truth(records: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Attach ``year`` to each capture record on (inferenceId else eventId, record_index); unlabelled rows get NaN."""
    if "record_index" not in labels:
        labels = labels.assign(record_index=0)
    if "record_index" not in records:
        return records.assign(record_index=0).merge(labels, on=["join_key", "record_index"], how="left",
                                                    validate="many_to_one").drop(columns="record_index")
    return records.merge(labels, on=["join_key", "record_index"], how="left", validate="many_to_one")
