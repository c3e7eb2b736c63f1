"""SageMaker Data Capture and ground-truth JSONL: write them as SageMaker does, read windows back, join them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import windows
from .aws import Aws, get_bytes, put_bytes, split_s3_uri
from .data import FEATURES

EVENT_VERSION = "0"


# --- encoding -----------------------------------------------------------------------------------

def encode_payload(text: str, content_type: str, encoding: str) -> dict:
    """One captureData side as SageMaker writes it (CSV and JSON kept as text, anything else BASE64)."""
    data = base64.b64encode(text.encode()).decode() if encoding == "BASE64" else text
    return {"observedContentType": content_type, "data": data, "encoding": encoding}


def capture_line(features_csv: str, prediction: float, event_id: str, inference_id: str | None,
                 inference_time: str, input_format: str = "csv") -> str:
    """A Data Capture JSONL line for one invocation.

    ``input_format`` is 'csv' (text/csv, encoding CSV), 'json' (application/json, encoding JSON) or
    'base64' (a content type missing from the capture config's lists: stored BASE64).
    """
    if input_format == "json":
        inp = encode_payload(json.dumps({"instances": [[float(x) for x in features_csv.split(",")]]}),
                             "application/json", "JSON")
        out = encode_payload(json.dumps({"predictions": [{"score": round(float(prediction), 4)}]}),
                             "application/json", "JSON")
    else:
        ctype, enc = ("text/csv", "CSV") if input_format == "csv" else ("text/csv; charset=utf-8", "BASE64")
        inp = encode_payload(features_csv, ctype, enc)
        out = encode_payload(f"{prediction:.4f}", "text/csv; charset=utf-8", "CSV" if enc == "CSV" else "BASE64")
    meta = {"eventId": event_id, "inferenceTime": inference_time}
    if inference_id:
        meta["inferenceId"] = inference_id
    record = {"captureData": {"endpointInput": {**inp, "mode": "INPUT"}, "endpointOutput": {**out, "mode": "OUTPUT"}},
              "eventMetadata": meta, "eventVersion": EVENT_VERSION}
    return json.dumps(record, separators=(",", ":"))


def ground_truth_line(event_id: str, year: float) -> str:
    """A ground-truth JSONL line, as Model Monitor expects labels (eventId = the capture's inferenceId)."""
    record = {"groundTruthData": {"data": str(int(year)), "encoding": "CSV"},
              "eventMetadata": {"eventId": event_id}, "eventVersion": EVENT_VERSION}
    return json.dumps(record, separators=(",", ":"))


def _decode(side: dict) -> tuple[str, str]:
    enc = side.get("encoding", "CSV")
    data = side["data"]
    if enc == "BASE64":
        data = base64.b64decode(data, validate=True).decode("utf-8")
    elif enc not in ("CSV", "JSON"):
        raise ValueError(f"unknown encoding {enc!r}")
    return data, side.get("observedContentType", "")


def _parse_features(side: dict) -> np.ndarray:
    data, ctype = _decode(side)
    if "json" in ctype:
        obj = json.loads(data)
        if isinstance(obj, dict):
            obj = obj.get("instances", obj.get("features", obj.get("inputs")))
        arr = np.asarray(obj, dtype=float)
        arr = arr[0] if arr.ndim == 2 and len(arr) == 1 else arr
    else:
        arr = np.array(data.strip().split(","), dtype=float)
    if arr.shape != (len(FEATURES),):
        raise ValueError(f"input has {arr.size} values, the model takes {len(FEATURES)}")
    return arr


def _parse_prediction(side: dict) -> float:
    data, ctype = _decode(side)
    if "json" in ctype:
        obj = json.loads(data)
        if isinstance(obj, dict):
            obj = obj.get("predictions", obj.get("score"))
        while isinstance(obj, list):
            obj = obj[0]
        if isinstance(obj, dict):
            obj = obj.get("score", obj.get("predicted_label"))
        return float(obj)
    return float(data.strip().split(",")[0])


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
    """Captured invocations of one window, and the lines that could not be read."""

    records: pd.DataFrame
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0


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
        raise ValueError(f"file is not UTF-8 ({line})")
    return line


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


def read_capture(aws: Aws, capture_uri: str, window: windows.Window) -> CaptureBatch:
    """Read every captured invocation whose inferenceTime lies in ``window``.

    Lines that cannot be parsed (bad JSON, unknown encoding, wrong feature count, non-numeric values)
    are returned in ``quarantined`` with the reason, never dropped silently and never fatal.
    """
    # files are partitioned by write hour: a record near an hour's end may sit in the next hour's file
    lines, files = _read_lines(aws, capture_uri, windows.floor(window.start, "hourly") - dt.timedelta(hours=1),
                               window.end + dt.timedelta(hours=1))
    rows, feats, quarantined = [], [], []
    for key, n, line in lines:
        try:
            rec = json.loads(_text(line))
            meta = rec["eventMetadata"]
            t = pd.Timestamp(meta["inferenceTime"])
            t = t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")
            if not (window.start <= t.to_pydatetime() < window.end):
                continue
            x = _parse_features(rec["captureData"]["endpointInput"])
            pred = _parse_prediction(rec["captureData"]["endpointOutput"])
            if not np.isfinite(pred):
                raise ValueError(f"prediction {pred} is not finite")
            event_id = meta["eventId"]
        except Exception as exc:  # noqa: BLE001 - every failure is quarantined with its reason
            if not _owned(key, window):
                continue  # a neighbouring hour's file: that window's run quarantines (and counts) it, once
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyError) else f"missing field {exc}"
            quarantined.append({"key": key, "line": n, "reason": reason, "text": str(line)[:2000]})
            continue
        inference_id = meta.get("inferenceId") or None
        rows.append((event_id, inference_id, inference_id or event_id, t, pred))
        feats.append(x)
    frame = pd.DataFrame(rows, columns=["event_id", "inference_id", "join_key", "inference_time", "prediction"])
    features = pd.DataFrame(np.vstack(feats) if feats else np.empty((0, len(FEATURES))), columns=FEATURES)
    records = pd.concat([frame, features], axis=1).sort_values("inference_time", kind="stable").reset_index(drop=True)
    return CaptureBatch(records, quarantined, files)


def read_ground_truth(aws: Aws, ground_truth_uri: str, start: dt.datetime, end: dt.datetime
                      ) -> tuple[pd.DataFrame, list[dict]]:
    """Labels collected in [start, end): columns join_key, year; plus quarantined lines."""
    lines, _ = _read_lines(aws, ground_truth_uri, windows.floor(start, "hourly"), end)
    rows, quarantined = [], []
    for key, n, line in lines:
        try:
            rec = json.loads(_text(line))
            data, _ = _decode({"encoding": rec["groundTruthData"].get("encoding", "CSV"),
                               "data": rec["groundTruthData"]["data"], "observedContentType": "text/csv"})
            rows.append((rec["eventMetadata"]["eventId"], float(data.strip().split(",")[0])))
        except Exception as exc:  # noqa: BLE001
            quarantined.append({"key": key, "line": n, "reason": f"{type(exc).__name__}: {exc}", "text": str(line)[:2000]})
    gt = pd.DataFrame(rows, columns=["join_key", "year"])
    return gt.drop_duplicates("join_key", keep="last"), quarantined


def join_ground_truth(records: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Attach ``year`` to each capture record on inferenceId (else eventId); unlabelled rows get NaN."""
    out = records.merge(labels, on="join_key", how="left", validate="many_to_one")
    return out
