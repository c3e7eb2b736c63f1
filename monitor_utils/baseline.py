"""The baseline profile of the training data, versioned with the served model and stored in S3."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd

from . import attribution, data, drift, metrics, model, model_monitor
from .aws import Aws, get_bytes, get_frame, get_json, put_bytes, put_json, split_s3_uri
from .config import Params
from .model_monitor import model_quality as mq

PREDICTION = "prediction"


def model_version(model_data_url: str) -> str:
    """Version tag of a model artifact (``.../models/v0003/model.tar.gz`` -> 'v0003', else a short hash)."""
    m = re.search(r"/models/(v\d+)/", model_data_url)
    return m.group(1) if m else "m" + hashlib.sha1(model_data_url.encode()).hexdigest()[:10]


def baseline_prefix(cfg: Params, version: str) -> str:
    """S3 key prefix of one model version's baseline."""
    return cfg.key("baselines", version)


def served_prefix(aws: Aws, cfg: Params) -> tuple[str, str]:
    """The served model's artifact URL and the S3 key prefix of its baseline."""
    url = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    return url, baseline_prefix(cfg, model_version(url))


def training_data(aws: Aws, cfg: Params) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Training (and test, when known) data: the UCI file at ``data_path``, else ``s3://BUCKET/PREFIX/data/train.npz``."""
    if cfg.data_path:
        return data.load_uci(cfg.data_path, s3_client=aws.client("s3"))
    train = get_frame(aws, cfg.bucket, cfg.key("data", "train.npz"))
    if train is None:
        raise FileNotFoundError(
            f"no training data: set data_path to YearPredictionMSD.txt, or store it at "
            f"s3://{cfg.bucket}/{cfg.key('data', 'train.npz')}")
    test = get_frame(aws, cfg.bucket, cfg.key("data", "test.npz"))
    return train, test


def ensure_baseline(aws: Aws, cfg: Params) -> tuple[dict, bool]:
    """Build the served model's baseline unless it is stored; return (description, created)."""
    url = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    version = model_version(url)
    prefix = baseline_prefix(cfg, version)
    info = get_json(aws, cfg.bucket, f"{prefix}/info.json")
    if info is not None:
        return info, False
    served = model.from_artifact(get_bytes(aws, *split_s3_uri(url)))
    train, test = training_data(aws, cfg)
    reference = train[data.FEATURES].copy()
    reference[PREDICTION] = model.predict(served, train)
    profile = drift.build_baseline(reference)
    put_bytes(aws, cfg.bucket, f"{prefix}/baseline.bin", profile.to_bytes())
    target = drift.build_baseline(train[[data.TARGET]].astype(float))
    put_bytes(aws, cfg.bucket, f"{prefix}/target_baseline.bin", target.to_bytes())
    store_model_monitor_files(aws, cfg.bucket, prefix, reference)
    test_metrics = None
    if test is not None:
        test_metrics = metrics.regression_metrics(test[data.TARGET], model.predict(served, test))
        put_json(aws, cfg.bucket, f"{prefix}/test_metrics.json", test_metrics)
    info = {"uri": f"s3://{cfg.bucket}/{prefix}/", "model_version": version, "model_data_url": url,
            "reference_rows": int(len(reference)), "features": len(data.FEATURES), "feature_names": list(data.FEATURES),
            "test_metrics": test_metrics}
    put_json(aws, cfg.bucket, f"{prefix}/info.json", info)
    return info, True


def store_model_monitor_files(aws: Aws, bucket: str, prefix: str, reference: pd.DataFrame) -> None:
    """Write ``statistics.json`` and ``constraints.json`` of ``reference`` under ``prefix`` as Model Monitor's
    analyzer writes them (every MSD feature and the prediction are real numbers: ``Fractional``)."""
    types = {str(col): "Fractional" for col in reference.columns}
    stats = model_monitor.statistics_document(reference, types)
    put_bytes(aws, bucket, f"{prefix}/statistics.json", model_monitor.dumps(stats).encode(), "application/json")
    cons = model_monitor.constraints_document(stats)
    put_bytes(aws, bucket, f"{prefix}/constraints.json", model_monitor.dumps(cons).encode(), "application/json")


def load_own_constraints(aws: Aws, cfg: Params) -> tuple[model_monitor.Constraints, str] | None:
    """The ``constraints.json`` setup wrote beside the served model's baseline and its URI (None when that baseline
    predates the file: its data-quality checks wait for a baseline built again)."""
    key = f"{served_prefix(aws, cfg)[1]}/constraints.json"
    body = get_bytes(aws, cfg.bucket, key)
    if body is None:
        return None
    uri = f"s3://{cfg.bucket}/{key}"
    return model_monitor.read_constraints(json.loads(body), uri), uri


def store_drift_settings(aws: Aws, cfg: Params, options: dict) -> tuple[dict, bool]:
    """Write the drift checks' settings (:func:`drift.settings_document` of ``options``, the detect_drift options a
    stage runs with) beside the served model's baseline as ``monitor_utils_drift.json`` unless already there;
    return (the settings, whether they were written)."""
    doc = drift.settings_document(options)
    key = f"{served_prefix(aws, cfg)[1]}/{drift.SETTINGS_FILE}"
    if get_json(aws, cfg.bucket, key) == doc:
        return doc, False
    put_json(aws, cfg.bucket, key, doc)
    return doc, True


def load_baseline(aws: Aws, cfg: Params) -> tuple[drift.Baseline, dict]:
    """The served model's stored baseline and its description; a clear error when setup has not run."""
    _, prefix = served_prefix(aws, cfg)
    blob = get_bytes(aws, cfg.bucket, f"{prefix}/baseline.bin")
    if blob is None:
        raise FileNotFoundError(f"no baseline at s3://{cfg.bucket}/{prefix}/ for the served model; "
                                "run the setup stage (notebooks/00_setup.ipynb) first")
    return drift.Baseline.from_bytes(blob), get_json(aws, cfg.bucket, f"{prefix}/info.json") or {}


def find_baseline(aws: Aws, cfg: Params) -> tuple[drift.Baseline | None, dict]:
    """The served model's stored baseline and its description, or (None, {}) when no ``baseline.bin`` is stored
    for the served model (the drift stage can then run on a configured Model Monitor baseline alone)."""
    _, prefix = served_prefix(aws, cfg)
    blob = get_bytes(aws, cfg.bucket, f"{prefix}/baseline.bin")
    if blob is None:
        return None, {}
    return drift.Baseline.from_bytes(blob), get_json(aws, cfg.bucket, f"{prefix}/info.json") or {}


def no_reference_error(aws: Aws, cfg: Params) -> FileNotFoundError:
    """The error of a drift check with no reference at all: neither the suite's baseline nor a Model Monitor one."""
    _, prefix = served_prefix(aws, cfg)
    return FileNotFoundError(
        f"no drift reference for the served model: no baseline at s3://{cfg.bucket}/{prefix}/baseline.bin and no "
        "Model Monitor baseline configured; run the setup stage (notebooks/00_setup.ipynb) to build the suite's "
        "baseline, or set model_monitor.statistics_uri and model_monitor.constraints_uri (or "
        "model_monitor.schedule_name) to use an existing Model Monitor baseline")


def feature_names(aws: Aws, cfg: Params) -> list[str]:
    """The served model's input features in request order, as its stored baseline names them (the 90 MSD
    features when no baseline is stored yet)."""
    _, prefix = served_prefix(aws, cfg)
    info = get_json(aws, cfg.bucket, f"{prefix}/info.json")
    if info and info.get("feature_names"):
        return list(info["feature_names"])
    blob = get_bytes(aws, cfg.bucket, f"{prefix}/baseline.bin")  # stored before its info named the features
    if blob is None:
        return list(data.FEATURES)
    return [f for f in drift.Baseline.from_bytes(blob).feature_names if f != PREDICTION]


def load_target_baseline(aws: Aws, cfg: Params) -> drift.Baseline | None:
    """The training labels' profile (for target drift), or None when the stored baseline predates it."""
    blob = get_bytes(aws, cfg.bucket, f"{served_prefix(aws, cfg)[1]}/target_baseline.bin")
    return None if blob is None else drift.Baseline.from_bytes(blob)


MODEL_QUALITY_FOLDER = "model_quality"  # beside the data-quality files: the model-quality baseline's own
ATTRIBUTION_FILE = "analysis.json"      # the global attributions of the served model on its reference data


def ensure_model_baselines(aws: Aws, cfg: Params) -> tuple[dict, list[str]]:
    """Write, unless stored, the served model's model-quality baseline (``model_quality/statistics.json`` and
    ``constraints.json`` from the test split, thresholds = the baseline's metric values as a model-quality
    baselining job suggests them) and its global attributions on the reference data (``analysis.json`` in
    Clarify's shape, with the background's feature means); return where they are and what was written."""
    url, prefix = served_prefix(aws, cfg)
    mq_key = f"{prefix}/{MODEL_QUALITY_FOLDER}/constraints.json"
    at_key = f"{prefix}/{ATTRIBUTION_FILE}"
    need_mq, need_at = get_bytes(aws, cfg.bucket, mq_key) is None, get_bytes(aws, cfg.bucket, at_key) is None
    written = []
    if need_mq or need_at:
        served = model.from_artifact(get_bytes(aws, *split_s3_uri(url)))
        train, test = training_data(aws, cfg)
        features = feature_names(aws, cfg)
        if need_mq and test is not None:
            stats = mq.regression_statistics(test[data.TARGET], model.predict(served, test), seed=0)
            put_bytes(aws, cfg.bucket, f"{prefix}/{MODEL_QUALITY_FOLDER}/statistics.json",
                      model_monitor.dumps(stats).encode(), "application/json")
            put_bytes(aws, cfg.bucket, mq_key, model_monitor.dumps(mq.regression_constraints(stats)).encode(),
                      "application/json")
            written.append(f"wrote the model-quality baseline s3://{cfg.bucket}/{mq_key} from the test split")
        if need_at:
            explainer = attribution.make_explainer(served, train, features)
            values = attribution.global_attributions(explainer, train)
            doc = attribution.analysis_document(values, float(served.predict(train[features]).mean()), explainer.method)
            doc["background_mean"] = dict(zip(features, map(float, explainer.background_mean)))
            put_json(aws, cfg.bucket, at_key, doc)
            written.append(f"wrote the served model's global attributions s3://{cfg.bucket}/{at_key} "
                           f"({explainer.method})")
    return {"model_quality_constraints": f"s3://{cfg.bucket}/{mq_key}" if get_bytes(aws, cfg.bucket, mq_key) else None,
            "attributions": f"s3://{cfg.bucket}/{at_key}"}, written


def load_model_quality_constraints(aws: Aws, cfg: Params) -> tuple[dict | None, str]:
    """The model-quality constraints each window is checked against and their URI: ``model_monitor.
    model_quality_constraints_uri`` when set (a missing or malformed file is an error naming the param), else the
    served model's own from setup (None when setup had no test split)."""
    uri = cfg["model_monitor"]["model_quality_constraints_uri"]
    if not uri:
        uri = f"s3://{cfg.bucket}/{served_prefix(aws, cfg)[1]}/{MODEL_QUALITY_FOLDER}/constraints.json"
        body = get_bytes(aws, *split_s3_uri(uri))
        return (None, uri) if body is None else (mq.read_regression_constraints(json.loads(body), uri), uri)
    body = get_bytes(aws, *split_s3_uri(uri))
    if body is None:
        raise FileNotFoundError(f"{uri} does not exist (model_monitor.model_quality_constraints_uri); point it at a "
                                "model-quality baselining job's constraints.json")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{uri} is not JSON ({exc}); model_monitor.model_quality_constraints_uri must name the "
                         "constraints.json itself") from None
    return mq.read_regression_constraints(doc, f"{uri} (model_monitor.model_quality_constraints_uri)"), uri


def load_explainer(aws: Aws, cfg: Params):
    """The served model's explainer (:func:`attribution.make_explainer` on the stored background means) and its
    baseline global attributions, or (None, None) when setup has not stored them."""
    url, prefix = served_prefix(aws, cfg)
    doc = get_json(aws, cfg.bucket, f"{prefix}/{ATTRIBUTION_FILE}")
    if doc is None or "background_mean" not in doc:
        return None, None
    served = model.from_artifact(get_bytes(aws, *split_s3_uri(url)))
    features = list(doc["background_mean"])
    background = pd.DataFrame([doc["background_mean"]], columns=features)
    explainer = attribution.make_explainer(served, background, features)
    return explainer, attribution.read_analysis(doc, f"s3://{cfg.bucket}/{prefix}/{ATTRIBUTION_FILE}")
