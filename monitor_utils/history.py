"""The per-window histories the metrics and drift stages keep in S3, read back by later stages and reports."""

from __future__ import annotations

import pandas as pd

from .aws import Aws, get_json, put_json
from .config import Params
from .records import to_jsonable


def metrics_key(cfg: Params) -> str:
    """S3 key of the metrics stage's history."""
    return cfg.key("metrics", "history.json")


def drift_key(cfg: Params) -> str:
    """S3 key of the drift stage's history."""
    return cfg.key("drift", "history.json")


def load_metrics(aws: Aws, cfg: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every published window's metrics, and the per-segment metrics."""
    raw = get_json(aws, cfg.bucket, metrics_key(cfg)) or {"windows": [], "segments": []}
    return pd.DataFrame(raw["windows"]), pd.DataFrame(raw["segments"])


def load_drift(aws: Aws, cfg: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-window drift summaries, and per-window, per-feature rows (statistic, effect, drifted)."""
    raw = get_json(aws, cfg.bucket, drift_key(cfg)) or {"windows": [], "features": []}
    return pd.DataFrame(raw["windows"]), pd.DataFrame(raw["features"])


def store_metrics(aws: Aws, cfg: Params, windows: pd.DataFrame, segments: pd.DataFrame) -> None:
    """Replace the metrics history."""
    put_json(aws, cfg.bucket, metrics_key(cfg), to_jsonable({"windows": windows, "segments": segments}))


def store_drift(aws: Aws, cfg: Params, windows: pd.DataFrame, features: pd.DataFrame) -> None:
    """Replace the drift history."""
    put_json(aws, cfg.bucket, drift_key(cfg), to_jsonable({"windows": windows, "features": features}))


def estimates_key(cfg: Params) -> str:
    """S3 key of the label-free estimates history (written by the metrics stage)."""
    return cfg.key("metrics", "estimates.json")


def load_estimates(aws: Aws, cfg: Params) -> pd.DataFrame:
    """Every estimated window's label-free estimate (estimated RMSE, interval, MAE, outside support)."""
    raw = get_json(aws, cfg.bucket, estimates_key(cfg)) or {"windows": []}
    return pd.DataFrame(raw["windows"])


def store_estimates(aws: Aws, cfg: Params, estimates: pd.DataFrame) -> None:
    """Replace the estimates history."""
    put_json(aws, cfg.bucket, estimates_key(cfg), to_jsonable({"windows": estimates}))


def merged(old: pd.DataFrame, new: pd.DataFrame, keys: tuple[str, ...] = ("window", "segment")) -> pd.DataFrame:
    """History rows ``old`` and ``new`` in window order, one row per ``keys`` present (window, segment), the newer
    winning: what a stage adds to a history another runner may have written since it was read."""
    if not len(new):
        return old
    both = pd.concat([old, new], ignore_index=True)
    keys = [k for k in keys if k in both]
    return both.drop_duplicates(keys, keep="last").sort_values("window", kind="stable").reset_index(drop=True)
