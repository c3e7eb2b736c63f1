"""The simulated production world of local mode: a trained model behind an endpoint, days of captured traffic and labels."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import sklearn

from .. import capture, data, model, payloads, publish, registry, windows
from ..aws import Aws, ensure_bucket, frame_bytes, get_json, put_json
from ..config import Params, parse_time
from . import caches, emulator

MANIFEST_KEY = "world/manifest.json"
BROKEN_OFFSET_SD = 2.0  # the broken feature arrives shifted by two reference standard deviations
NEWER_SHARE_MAX = 0.7
MAX_RECORDS_PER_REQUEST = 5
WORLD_PARAMS = ("scenario", "days", "seed", "world", "faults", "data_path", "endpoint_name", "variant_name")
WORLD_CODE = (sys.modules[__name__], data, model, capture, payloads, windows, publish)  # a change here simulates again
TEXT_VALUE = "unknown"  # what a broken upstream writes for the broken feature when world.text_share asks for it
TEXT_SENTINEL = -987654.3125  # a number no feature holds, replaced by TEXT_VALUE in the capture line
REQUEST_COLUMNS = ["inference_time", "event_id", "inference_id", "input_format", "latency_us", "label_delay_days",
                   "labelled", "status"]


def world_clock(cfg: Params) -> dt.datetime:
    """End of the simulated world: ``now`` if given, else today's midnight UTC."""
    if cfg.now:
        return parse_time(cfg.now)
    return windows.floor(dt.datetime.now(dt.timezone.utc), "daily")


def read_manifest(aws: Aws, cfg: Params) -> dict | None:
    """The manifest of the world in this bucket, if one was built."""
    from ..aws import error_code

    try:
        return get_json(aws, cfg.bucket, cfg.key(MANIFEST_KEY))
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("NoSuchBucket", "404"):
            return None  # no bucket yet means no world
        raise


def placeholder_container(aws: Aws) -> dict:
    """Local stand-ins for the image and role a real deployment names (built from the emulator's account)."""
    account = aws.account_id
    return {"image": f"{account}.dkr.ecr.{aws.region}.amazonaws.com/sklearn-inference:1.4",
            "role": f"arn:aws:iam::{account}:role/msd-monitoring-sagemaker"}


def _training_data(cfg: Params, aws: Aws) -> tuple[pd.DataFrame, pd.DataFrame]:
    if cfg.data_path:
        return data.load_uci(cfg.data_path, s3_client=aws.client("s3"))
    return (data.generate(cfg.world["train_rows"], seed=cfg.seed * 1000 + 1),
            data.generate(cfg.world["test_rows"], seed=cfg.seed * 1000 + 2))


def simulate_traffic(cfg: Params, start: dt.datetime, days: int, served, first_day: int = 0,
                     reference_std: float = 6.0) -> pd.DataFrame:
    """Invocations of ``days`` days from ``start``: times, ids, features, the served model's predictions, true years.

    Day ``first_day + d`` of the world decides the drift state, so later extensions continue the same story.
    """
    w = cfg.world
    rows = []
    total_days = cfg.days
    drift_day = int(round(w["drift_start_fraction"] * total_days))
    for d in range(days):
        day = first_day + d
        rng = np.random.default_rng([cfg.seed, day])
        drifting = cfg.scenario == "drift" and day >= drift_day
        newer = min(NEWER_SHARE_MAX, 0.25 * (day - drift_day + 1)) if drifting else 0.0
        n = int(rng.poisson(w["requests_per_day"]))
        years = data.sample_years(n, rng, newer)
        feats = data.features_for_years(years, rng)
        if drifting and day >= drift_day + 1:
            feats[w["broken_feature"]] = feats[w["broken_feature"]] - BROKEN_OFFSET_SD * reference_std
        seconds = np.sort(rng.uniform(0, 86400, n))
        frame = feats
        frame.insert(0, "year", years)
        frame.insert(0, "inference_time", pd.Timestamp(start + dt.timedelta(days=d)) + pd.to_timedelta(seconds, unit="s"))
        frame.insert(1, "event_id", [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)])
        has_id = rng.random(n) >= 0.05  # some clients send no InferenceId: the join falls back to eventId
        frame.insert(2, "inference_id", [f"req-{day:04d}-{i:06d}" if h else None for i, h in enumerate(has_id)])
        frame["input_format"] = rng.choice(["csv", "json", "base64"], size=n, p=[0.9, 0.07, 0.03])  # kept: same draws
        frame["latency_us"] = np.round(rng.lognormal(np.log(12_000), 0.35, n))
        frame["label_delay_days"] = 0.5 + rng.exponential(max(w["label_delay_days"] - 0.5, 0.01), n)
        frame["labelled"] = rng.random(n) < w["label_coverage"]
        frame["status"] = rng.choice([200, 400, 500], size=n, p=[0.995, 0.004, 0.001])
        frame = group_requests(frame, w["capture_formats"], np.random.default_rng([cfg.seed, day, 1]), day)
        rows.append(frame)
    traffic = pd.concat(rows, ignore_index=True)
    traffic["prediction"] = model.predict(served, traffic)
    return traffic


def group_requests(frame: pd.DataFrame, formats: list[str], rng: np.random.Generator, day: int) -> pd.DataFrame:
    """Pack consecutive records into requests: each request takes a shape from ``formats`` (multi-record shapes
    carry 1-5 records), and its records share the first one's time, ids, status, latency and label fate."""
    n = len(frame)
    request = np.empty(n, dtype=np.int64)
    shape = np.empty(n, dtype=object)
    i = r = 0
    while i < n:
        fmt = formats[int(rng.integers(len(formats)))]
        k = min(int(rng.integers(1, MAX_RECORDS_PER_REQUEST + 1)) if fmt in payloads.MULTI_RECORD else 1, n - i)
        request[i:i + k] = r
        shape[i:i + k] = fmt
        i += k
        r += 1
    starts = np.flatnonzero(np.r_[True, request[1:] != request[:-1]]) if n else np.empty(0, dtype=int)
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    out = frame.copy()
    for col in REQUEST_COLUMNS:
        out[col] = frame[col].to_numpy()[first]
    out["input_format"] = shape
    out.insert(1, "request", [f"{day:04d}-{q:06d}" for q in request])
    out.insert(2, "record_index", np.arange(n) - first)
    return out


def traffic_objects(cfg: Params, traffic: pd.DataFrame, now: dt.datetime) -> tuple[list, list, dict]:
    """The capture files of ``traffic`` and the label files collected before ``now``, as AWS and labellers write
    them: (capture objects, ground-truth objects, counts); objects are (bucket, key, body)."""
    ok = traffic[traffic["status"] == 200]
    rng = np.random.default_rng([cfg.seed, 99])
    features = ok[data.FEATURES].to_numpy(copy=True)
    text = broken_values(cfg, ok, features, now)
    starts = np.flatnonzero(ok["record_index"].to_numpy() == 0)
    bounds = np.r_[starts, len(ok)]
    first = ok.iloc[starts]
    preds = ok["prediction"].to_numpy()
    # a request without an InferenceId has none in its capture (pandas holds the gap as NaN, never write that)
    lines = [capture.capture_line(features[a:b], preds[a:b], e, i if isinstance(i, str) else None, windows.iso(t), fmt)
             for a, b, e, i, t, fmt in zip(bounds[:-1], bounds[1:], first["event_id"], first["inference_id"],
                                          first["inference_time"], first["input_format"])]
    for idx in np.flatnonzero(np.add.reduceat(text, bounds[:-1]) > 0) if text.any() else ():
        a, b = bounds[idx], bounds[idx + 1]  # a text value: the request goes as CSV with the word in its cell
        rows = features[a:b].copy()
        rows[text[a:b], data.FEATURES.index(cfg.world["broken_feature"])] = TEXT_SENTINEL
        line = capture.capture_line(rows, preds[a:b], first["event_id"].iloc[idx],
                                    first["inference_id"].iloc[idx] if isinstance(first["inference_id"].iloc[idx], str)
                                    else None, windows.iso(first["inference_time"].iloc[idx]), "csv")
        lines[idx] = line.replace(repr(TEXT_SENTINEL), TEXT_VALUE)
    corrupt = rng.random(len(lines)) < cfg.faults["malformed_capture_fraction"]
    for idx in np.flatnonzero(corrupt):
        lines[idx] = lines[idx][: len(lines[idx]) // 2]  # a torn write: the line ends mid-record
    capture_files = capture.hourly_objects(capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name),
                                           first["inference_time"], lines, "cap")
    years = ok["year"].to_numpy()
    requests = first.assign(years=[years[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    labelled = requests[requests["labelled"]].copy()
    known = labelled["inference_time"] + pd.to_timedelta(labelled["label_delay_days"], unit="D")
    # labellers deliver in a daily batch at 06:00 UTC, written under the hour it was collected
    labelled["collected"] = (known - pd.Timedelta(hours=6)).dt.ceil("D") + pd.Timedelta(hours=6)
    labelled = labelled[labelled["collected"] < pd.Timestamp(now)]
    gt_lines = [capture.ground_truth_line(i if isinstance(i, str) else e, y)
                for i, e, y in zip(labelled["inference_id"], labelled["event_id"], labelled["years"])]
    gt_files = capture.hourly_objects(cfg.ground_truth_uri, labelled["collected"], gt_lines, "gt") if gt_lines else []
    counts = {"invocations": int((traffic["record_index"] == 0).sum()), "captured": int(len(lines)),
              "captured_records": int(len(ok)), "capture_files": len(capture_files),
              "malformed_lines": int(corrupt.sum()), "labels_written": int(labelled["years"].map(len).sum()),
              "ground_truth_files": len(gt_files)}
    return capture_files, gt_files, counts


def broken_values(cfg: Params, ok: pd.DataFrame, features: np.ndarray, now: dt.datetime) -> np.ndarray:
    """Break data quality as asked (``world.missing_share``, ``world.text_share``): from the day
    ``drift_start_fraction`` names, that share of records gets its ``broken_feature`` value missing (NaN in
    ``features``, captured null/NaN) or as text; returns which records carry text (their values stay numbers in
    ``features``; the capture writes :data:`TEXT_VALUE` instead)."""
    w = cfg.world
    text = np.zeros(len(ok), dtype=bool)
    if not (w["missing_share"] or w["text_share"]):
        return text
    start = now - dt.timedelta(days=cfg.days) + dt.timedelta(days=int(round(w["drift_start_fraction"] * cfg.days)))
    affected = (ok["inference_time"] >= pd.Timestamp(start)).to_numpy()
    draw = np.random.default_rng([cfg.seed, 98]).random(len(ok))
    missing = affected & (draw < w["missing_share"])
    text = affected & ~missing & (draw < w["missing_share"] + w["text_share"])
    features[missing, data.FEATURES.index(w["broken_feature"])] = np.nan
    return text


def endpoint_metric_datums(cfg: Params, traffic: pd.DataFrame) -> list[dict]:
    """Hourly AWS/SageMaker endpoint metrics of ``traffic`` as SageMaker emits them (local simulation only)."""
    dims = {"EndpointName": cfg.endpoint_name, "VariantName": cfg.variant_name}
    datums = []
    requests = traffic[traffic["record_index"] == 0]  # an invocation is a request, whatever it holds
    hours = requests["inference_time"].dt.floor("h")
    for hour, g in requests.groupby(hours, sort=True):
        ts = hour.to_pydatetime()
        datums.append(publish.datum("Invocations", len(g), ts, dims, "Count"))
        datums.append(publish.datum("Invocation4XXErrors", int((g["status"] == 400).sum()), ts, dims, "Count"))
        datums.append(publish.datum("Invocation5XXErrors", int((g["status"] == 500).sum()), ts, dims, "Count"))
        ms = np.round(g["latency_us"] / 1000.0)  # 1 ms buckets keep a datum under 150 distinct values
        values, counts = np.unique(np.minimum(ms, 149), return_counts=True)
        datums.append({"MetricName": "ModelLatency", "Timestamp": ts, "Unit": "Microseconds",
                       "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                       "Values": [float(v * 1000) for v in values], "Counts": [float(c) for c in counts]})
    return datums


@dataclass
class Generated:
    """Everything the simulated world writes, computed from the params alone (same params and code, same world).

    Attributes
    ----------
    train, test : pd.DataFrame
        The training and test data; the champion is trained on ``train``.
    data_files, capture_files, ground_truth_files : list[tuple[str, str, bytes]]
        Objects as (bucket, key, body): the two data sets as .npz, Data Capture JSONL, ground-truth JSONL.
    endpoint_datums : list[dict]
        The endpoint's own hourly AWS/SageMaker metrics, as PutMetricData datums.
    counts : dict
        Invocations, captured requests and records, files, torn lines and labels written (for the manifest).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    data_files: list
    capture_files: list
    ground_truth_files: list
    endpoint_datums: list
    counts: dict


def generate(aws: Aws, cfg: Params, now: dt.datetime) -> Generated:
    """Compute the world of ``cfg`` ending at ``now``: data, the champion's traffic, its capture, labels and metrics."""
    train, test = _training_data(cfg, aws)
    champion = model.train_model(train)  # the model the endpoint serves; the same fit ``build`` registers
    traffic = simulate_traffic(cfg, now - dt.timedelta(days=cfg.days), cfg.days, champion,
                               reference_std=float(train[cfg.world["broken_feature"]].std()))
    capture_files, gt_files, counts = traffic_objects(cfg, traffic, now)
    data_files = [(cfg.bucket, cfg.key("data", f"{name}.npz"), frame_bytes(frame))
                  for name, frame in (("train", train), ("test", test))]
    return Generated(train, test, data_files, capture_files, gt_files, endpoint_metric_datums(cfg, traffic), counts)


def generated(aws: Aws, cfg: Params, now: dt.datetime) -> Generated:
    """:func:`generate`, kept on disk in local mode: a run after the first with the same params (and code, and
    real data file) takes the world from the cache instead of simulating it again."""
    source = {}
    if cfg.data_path and not cfg.data_path.startswith("s3://"):
        stat = Path(cfg.data_path).stat()
        source = {"size": stat.st_size, "mtime": stat.st_mtime}
    identity = {name: cfg[name] for name in WORLD_PARAMS} | {
        "now": windows.iso(now), "capture": capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name),
        "ground_truth": cfg.ground_truth_uri, "bucket": cfg.bucket, "data_key": cfg.key("data"), "data_source": source,
        "versions": [np.__version__, pd.__version__, sklearn.__version__]}
    return caches.parsed(aws, "world", [], json.dumps(identity, sort_keys=True, default=str),
                         lambda: generate(aws, cfg, now), WORLD_CODE)


def store_objects(aws: Aws, objects: list, content_type: str) -> None:
    """Write (bucket, key, body) objects: straight into the emulator this process serves, else by PUT."""
    if objects and not emulator.put_objects_here(aws.endpoint_url, aws.account_id, objects, content_type,
                                                 aws.kms_key_id):
        capture.put_objects(aws, objects, content_type)


def build(aws: Aws, cfg: Params, progress: Callable[[str], None] = print) -> dict:
    """Build the deterministic simulated production world for ``cfg`` (local mode) and return its manifest.

    Trains the baseline model, stores it in S3, creates the SageMaker model, endpoint config (with
    DataCaptureConfig) and endpoint, then writes ``cfg.days`` days of traffic served by that model: capture,
    labels and the endpoint's metrics. What is written comes from :func:`generated` (kept on disk after the
    first run) and goes straight into the emulator's store when this process serves it.
    """
    if aws.mode != "local":
        raise RuntimeError("the simulated world is built only in local mode; in aws mode the real endpoint has traffic")
    t0 = time.perf_counter()
    now = world_clock(cfg)
    start = now - dt.timedelta(days=cfg.days)
    ensure_bucket(aws, cfg.bucket)
    world = generated(aws, cfg, now)
    store_objects(aws, world.data_files, "application/octet-stream")
    champion = model.train_model(world.train)
    registry.register(aws, cfg, 1, model.to_artifact(champion), {"parent": None, "training_rows": int(len(world.train)),
                                                                 "note": "baseline model of the simulated world"})
    container = placeholder_container(aws)
    names = registry.create_model_and_config(aws, cfg, 1, container["image"], container["role"])
    aws.client("sagemaker").create_endpoint(EndpointName=cfg.endpoint_name, EndpointConfigName=names["config"])
    progress(f"world: model {names['model']} deployed to endpoint {cfg.endpoint_name}")
    store_objects(aws, world.capture_files + world.ground_truth_files, "application/jsonl")
    endpoint_stats = emulator.publish_aws_namespace(aws, "AWS/SageMaker", world.endpoint_datums)
    counts = {**world.counts, "endpoint_metric_calls": endpoint_stats.calls}
    drift_day = int(round(cfg.world["drift_start_fraction"] * cfg.days))
    manifest = {
        "scenario": cfg.scenario, "seed": cfg.seed, "days": cfg.days, "start": windows.iso(start), "now": windows.iso(now),
        "drift_start": windows.iso(start + dt.timedelta(days=drift_day)) if cfg.scenario == "drift" else None,
        "broken_feature": cfg.world["broken_feature"] if cfg.scenario == "drift" else None,
        "data_quality": {"feature": cfg.world["broken_feature"], "missing_share": cfg.world["missing_share"],
                         "text_share": cfg.world["text_share"],
                         "from": windows.iso(start + dt.timedelta(days=drift_day))}
        if cfg.world["missing_share"] or cfg.world["text_share"] else None,
        "broken_from": windows.iso(start + dt.timedelta(days=drift_day + 1)) if cfg.scenario == "drift" else None,
        "model_version": names["version"], "endpoint_name": cfg.endpoint_name, **counts,
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    put_json(aws, cfg.bucket, cfg.key(MANIFEST_KEY), manifest)
    progress(f"world: {counts['captured']} captured requests ({counts['captured_records']} records) over {cfg.days} days "
             f"({cfg.scenario}), {counts['labels_written']} labels, built in {manifest['build_seconds']} s")
    return manifest


def quality_after_deploy(aws: Aws, cfg: Params, now: dt.datetime, previous_model_url: str, days: int = 2) -> dict:
    """Local mode: simulate the next ``days`` of traffic, now served by the newly deployed model, and compare its
    quality with what the previous model would have delivered on the same requests."""
    from ..aws import get_bytes, get_frame, split_s3_uri
    from ..metrics import regression_metrics

    served = model.load_served_model(aws, cfg.endpoint_name, cfg.variant_name)
    train = get_frame(aws, cfg.bucket, cfg.key("data", "train.npz"))
    ref_std = float(train[cfg.world["broken_feature"]].std()) if train is not None else 6.0
    traffic = simulate_traffic(cfg, now, days, served, first_day=cfg.days, reference_std=ref_std)
    previous = model.from_artifact(get_bytes(aws, *split_s3_uri(previous_model_url)))
    return {"days": days, "requests": int(len(traffic)),
            "served_model": regression_metrics(traffic["year"], traffic["prediction"]),
            "previous_model": regression_metrics(traffic["year"], model.predict(previous, traffic))}
