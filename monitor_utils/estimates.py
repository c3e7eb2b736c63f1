"""Label-free quality estimates: the loss estimator fitted beside the baseline, applied to each window when it closes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import data, keeping, model, publish, windows
from .capture import capture_uri_for, read_capture
from .aws import Aws, get_bytes, get_json, put_bytes, put_json, split_s3_uri
from .baseline import PREDICTION, model_version, served_prefix, training_data
from .config import Params
from .estimation import LossEstimator
from .records import to_jsonable

ESTIMATOR_FILE = "loss_estimator.bin"
SUMMARY_FILE = "loss_estimator.json"
DEFAULT_WINDOW_RECORDS = 1000  # when no complete window of traffic has been captured yet
MIN_WINDOW_RECORDS = 100
FIT_SEED = 0
# published metric name -> key of the window's estimate; the estimated-rmse alarm watches EstimatedRMSE
PUBLISHED = {"EstimatedRMSE": "estimated_rmse", "EstimatedRMSELow": "estimated_rmse_low",
             "EstimatedRMSEHigh": "estimated_rmse_high", "EstimatedMAE": "estimated_mae",
             "OutsideSupport": "outside_support"}
RECORD_KEYS = ("window", "estimated_rmse", "estimated_rmse_low", "estimated_rmse_high", "estimated_mae", "realized_rmse")
_FITTED: dict[str, bytes] = {}  # same reference, window size and seed: same estimator (fit is deterministic)


def window_records(aws: Aws, cfg: Params, now: dt.datetime, features: list[str]) -> int:
    """Records in the newest complete window of captured traffic (what the estimator is calibrated for)."""
    w = windows.containing(now, cfg.window)
    previous = windows.containing(w.start - dt.timedelta(seconds=1), cfg.window)
    batch = read_capture(aws, capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name), previous, features)
    return int(len(batch.records)) or DEFAULT_WINDOW_RECORDS


def fit_estimator(reference: pd.DataFrame, features: list[str], window_size: int, seed: int = FIT_SEED,
                  cache: Path | None = None) -> LossEstimator:
    """Fit the loss estimator on labelled reference records (``features``, ``year``, ``prediction``).

    The window size is capped at half the reference (the calibration draws chunks of that size). Fits are
    deterministic, so a fit of the same reference, window size and seed is reused: from this process, or from
    ``cache`` (a folder: local mode's keeper names one, since the simulated world is the same every run).

    Parameters
    ----------
    reference : pd.DataFrame
        Records the served model did not train on, with its predictions.
    features : list[str]
        Model inputs.
    window_size : int
        Typical records per monitoring window.
    seed : int
        Seed of the fit.

    Returns
    -------
    LossEstimator
    """
    size = int(min(max(window_size, MIN_WINDOW_RECORDS), len(reference) // 2))
    frame = reference[list(features) + [data.TARGET, PREDICTION]]
    digest = hashlib.sha1(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
                          + f"{list(features)}|{size}|{seed}".encode()).hexdigest()
    stored = cache / f"{digest}.bin" if cache is not None else None
    if digest not in _FITTED and stored is not None and stored.is_file():
        _FITTED[digest] = stored.read_bytes()
    if digest not in _FITTED:
        _FITTED[digest] = LossEstimator().fit(frame, features, data.TARGET, PREDICTION, window_size=size,
                                              seed=seed).to_bytes()
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial = stored.with_name(f"{stored.name}.{os.getpid()}.part")  # renamed into place: never half a file
            partial.write_bytes(_FITTED[digest])
            partial.replace(stored)
    return LossEstimator.from_bytes(_FITTED[digest])


def ensure_estimator(aws: Aws, cfg: Params, now: dt.datetime, features: list[str]) -> tuple[dict | None, bool]:
    """Fit and store the served model's loss estimator beside its baseline unless it is stored.

    The reference is the labelled test split (records the served model did not train on), predicted by the
    served model. Without one there is nothing to fit on: the summary says so and no estimates are made.

    Returns
    -------
    tuple[dict | None, bool]
        The estimator's summary (None without a test split) and whether this call created it.
    """
    summary = load_summary(aws, cfg)
    if summary is not None:
        return summary, False
    url, prefix = served_prefix(aws, cfg)
    _, test = training_data(aws, cfg)
    if test is None or len(test) < 2 * MIN_WINDOW_RECORDS:
        return None, False
    served = model.from_artifact(get_bytes(aws, *split_s3_uri(url)))
    reference = test.assign(**{PREDICTION: model.predict(served, test)})
    est = fit_estimator(reference, features, window_records(aws, cfg, now, features),
                        cache=keeping.current().estimator_folder(aws))
    put_bytes(aws, cfg.bucket, f"{prefix}/{ESTIMATOR_FILE}", est.to_bytes())
    summary = {"uri": f"s3://{cfg.bucket}/{prefix}/{ESTIMATOR_FILE}", "model_version": model_version(url),
               **{k: v for k, v in est.summary().items() if k != "fit_seconds"}}
    put_json(aws, cfg.bucket, f"{prefix}/{SUMMARY_FILE}", summary)
    return summary, True


def load_estimator(aws: Aws, cfg: Params) -> LossEstimator | None:
    """The served model's stored loss estimator, or None when setup stored none (no labelled test split)."""
    _, prefix = served_prefix(aws, cfg)
    blob = get_bytes(aws, cfg.bucket, f"{prefix}/{ESTIMATOR_FILE}")
    return None if blob is None else LossEstimator.from_bytes(blob)


def load_summary(aws: Aws, cfg: Params) -> dict | None:
    """Where the served model's loss estimator is stored and how it was calibrated (None when setup stored none)."""
    return get_json(aws, cfg.bucket, f"{served_prefix(aws, cfg)[1]}/{SUMMARY_FILE}")


def estimate_window(estimator: LossEstimator, w: windows.Window, records: pd.DataFrame) -> dict:
    """One window's estimate from its scored records (no labels): estimated RMSE, its interval and MAE,
    the share of records outside the reference's support, and the records used."""
    scored = records[PREDICTION].notna().to_numpy()  # input-only captures carry no prediction to judge
    count = int(np.count_nonzero(scored))
    row = {"window": w.label, "end": w.end, "records": count}
    if not count:
        return {**row, **{k: None for k in PUBLISHED.values()}}
    out = estimator.estimate(records, rows=None if count == len(records) else scored)  # no copy of the frame
    return {**row, **{k: out[k] for k in PUBLISHED.values()}}


def window_datums(cfg: Params, w: windows.Window, row: dict) -> list[dict]:
    """MetricData of one window's estimate, stamped at the window's end (when it could first be known)."""
    return [publish.datum(name, row[key], w.end, cfg.metric_dimensions(), "None")
            for name, key in PUBLISHED.items() if row.get(key) is not None]


def with_realized(estimates: pd.DataFrame, metrics_history: pd.DataFrame) -> list[dict]:
    """The ``estimates`` record: per estimated window, the estimate and the realized RMSE (None while labels wait),
    plus the share of records outside the reference's support and the window's end."""
    realized = (metrics_history.set_index("window")["rmse"] if len(metrics_history) and "rmse" in metrics_history
                else pd.Series(dtype=float))
    return [to_jsonable({**{k: row.get(k) for k in RECORD_KEYS if k != "realized_rmse"},
                         "realized_rmse": realized.get(str(row["window"])),
                         "outside_support": row.get("outside_support"),
                         "end": windows.iso(pd.Timestamp(row["end"]).to_pydatetime())})
            for row in estimates.to_dict("records")]


def accuracy(estimates: list[dict]) -> dict | None:
    """Mean and worst relative error of the estimate where labels have landed, and how often the realized RMSE
    lies inside the interval; None before any window has both."""
    both = [e for e in estimates if e["realized_rmse"] and e["estimated_rmse"] is not None]
    if not both:
        return None
    rel = np.array([abs(e["estimated_rmse"] / e["realized_rmse"] - 1) for e in both])
    inside = np.array([e["estimated_rmse_low"] <= e["realized_rmse"] <= e["estimated_rmse_high"] for e in both])
    return {"windows": len(both), "mean_relative_error": float(rel.mean()), "worst_relative_error": float(rel.max()),
            "inside_interval": float(inside.mean())}
