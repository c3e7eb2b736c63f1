"""Regression quality metrics: point values matching scikit-learn, bootstrap intervals and per-segment tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import data, windows

METRIC_NAMES = ("count", "mse", "rmse", "mae", "r2", "median_ae", "bias")
MIN_SEGMENT_ROWS = 20
BOOTSTRAP_CHUNK_VALUES = 1 << 20  # resampled pairs held at once by bootstrap_intervals (8 MB per array)


def _as_arrays(actuals, predictions) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actuals, dtype=float).ravel()
    p = np.asarray(predictions, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"actuals has {y.size} values but predictions has {p.size}; pass one prediction per actual")
    if y.size == 0:
        raise ValueError("no values: metrics need at least one (actual, prediction) pair")
    bad_y, bad_p = ~np.isfinite(y), ~np.isfinite(p)
    if bad_y.any() or bad_p.any():
        which = "actuals" if bad_y.any() else "predictions"
        idx = int(np.flatnonzero(bad_y if bad_y.any() else bad_p)[0])
        raise ValueError(f"{which} holds NaN or infinity (first at position {idx}); drop or fix those rows first")
    return y, p


def regression_metrics(actuals, predictions) -> dict:
    """Count, MSE, RMSE, MAE, R2, median absolute error and bias of predictions against actuals.

    Parameters
    ----------
    actuals : array-like
        True values (release years).
    predictions : array-like
        Model outputs, same length.

    Returns
    -------
    dict
        ``count, mse, rmse, mae, r2, median_ae, bias`` with bias = mean(predictions - actuals).
        R2 follows scikit-learn: 1.0 for a perfect fit of constant actuals, 0.0 for an imperfect one,
        NaN for a single value.

    Raises
    ------
    ValueError
        Empty input, NaN or infinity, or lengths that differ.
    """
    y, p = _as_arrays(actuals, predictions)
    err = p - y
    mse = float(np.mean(err**2))
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if y.size < 2:
        r2 = float("nan")
    elif ss_tot == 0:
        r2 = 1.0 if ss_res == 0 else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return {"count": int(y.size), "mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(err))),
            "r2": r2, "median_ae": float(np.median(np.abs(err))), "bias": float(np.mean(err))}


def bootstrap_intervals(actuals, predictions, *, n_boot: int = 200, level: float = 0.9, seed: int = 0,
                        chunk_values: int = BOOTSTRAP_CHUNK_VALUES) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for RMSE and R2 (resampling pairs).

    The resamples are drawn a few at a time (at most ``chunk_values`` resampled pairs held at once), from the
    same random stream as drawing all ``n_boot x n`` indices at once: the intervals are the same for the same
    seed, and memory stays near a few copies of the window instead of ``n_boot`` of them.

    Returns
    -------
    dict
        ``{"rmse": (low, high), "r2": (low, high)}``; NaN bounds for fewer than 2 pairs.
    """
    y, p = _as_arrays(actuals, predictions)
    if y.size < 2:
        return {"rmse": (float("nan"),) * 2, "r2": (float("nan"),) * 2}
    rng = np.random.default_rng(seed)
    sse, sst = np.empty(n_boot), np.empty(n_boot)
    rows = max(1, chunk_values // y.size)
    for first in range(0, n_boot, rows):
        idx = rng.integers(0, y.size, size=(min(rows, n_boot - first), y.size))
        yb = y[idx]
        sse[first:first + len(idx)] = np.sum((p[idx] - yb) ** 2, axis=1)
        sst[first:first + len(idx)] = np.sum((yb - yb.mean(axis=1, keepdims=True)) ** 2, axis=1)
        del idx, yb
    rmse = np.sqrt(sse / y.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - sse / sst, np.where(sse == 0, 1.0, 0.0))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {"rmse": tuple(float(v) for v in np.percentile(rmse, [lo, hi])),
            "r2": tuple(float(v) for v in np.percentile(r2, [lo, hi]))}


def metrics_by_segment(frame: pd.DataFrame, segment: str, actual: str = "year", prediction: str = "prediction",
                       min_count: int = 1) -> pd.DataFrame:
    """One row of :func:`regression_metrics` per value of ``segment`` (segments under ``min_count`` rows skipped)."""
    rows = []
    for value, group in frame.groupby(segment, sort=True):
        if len(group) >= min_count:
            rows.append({segment: value, **regression_metrics(group[actual], group[prediction])})
    return pd.DataFrame(rows, columns=[segment, *METRIC_NAMES])


def segment_labels(frame: pd.DataFrame, column: str) -> pd.Series:
    """Segment of each row by ``column``: its value, or its quartile ('col:q1'..'col:q4') for a numeric column."""
    if column not in frame:
        raise ValueError(f"segment column {column!r} (params segment_columns) is not in the captured records; "
                         f"available: {', '.join(c for c in frame.columns if c != 'year')}")
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 12:
        return column + ":q" + (pd.qcut(values.rank(method="first"), 4, labels=False) + 1).astype(str)
    return column + "=" + values.astype(str)


def evaluate_window(w: windows.Window, rows: pd.DataFrame, quarantined: int,
                    segment_columns: list[str] = ()) -> tuple[dict, pd.DataFrame]:
    """Metrics, bootstrap intervals, coverage and per-segment (decade and ``segment_columns``) metrics of one window."""
    labelled = rows.dropna(subset=["year", "prediction"])  # input-only captures have no prediction to score
    row = {"window": w.label, "start": w.start, "end": w.end, "captured": int(len(rows)),
           "labelled": int(len(labelled)), "label_coverage": float(len(labelled) / len(rows)) if len(rows) else 0.0,
           "quarantined": quarantined}
    if len(labelled):
        row.update(regression_metrics(labelled["year"], labelled["prediction"]))
        ci = bootstrap_intervals(labelled["year"], labelled["prediction"], seed=int(w.start.timestamp()) % 2**31)
        row.update(rmse_low=ci["rmse"][0], rmse_high=ci["rmse"][1], r2_low=ci["r2"][0], r2_high=ci["r2"][1])
        parts = [labelled.assign(segment=data.decade(labelled["year"]))]
        parts += [labelled.assign(segment=segment_labels(labelled, c)) for c in segment_columns]
        segments = pd.concat([metrics_by_segment(p, "segment", min_count=MIN_SEGMENT_ROWS) for p in parts],
                             ignore_index=True)
    else:
        row.update({k: None for k in METRIC_NAMES if k != "count"}, count=0)
        segments = pd.DataFrame(columns=["segment", *METRIC_NAMES])
    segments.insert(0, "window", w.label)
    return row, segments
