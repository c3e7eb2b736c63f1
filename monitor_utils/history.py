"""The per-window histories the metrics and drift stages keep in S3, read back by later stages and reports."""

from __future__ import annotations

import pandas as pd

from .aws import Aws, PreconditionFailed, get_json, get_json_etag, put_json_if
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
def estimates_key(cfg: Params) -> str:
    """S3 key of the label-free estimates history (written by the metrics stage)."""
    return cfg.key("metrics", "estimates.json")


def load_estimates(aws: Aws, cfg: Params) -> pd.DataFrame:
    """Every estimated window's label-free estimate (estimated RMSE, interval, MAE, outside support)."""
    raw = get_json(aws, cfg.bucket, estimates_key(cfg)) or {"windows": []}
    return pd.DataFrame(raw["windows"])

def merged(old: pd.DataFrame, new: pd.DataFrame, keys: tuple[str, ...] = ("window", "segment")) -> pd.DataFrame:
    """History rows ``old`` and ``new`` in window order, one row per ``keys`` present (window, segment), the newer
    winning: what a stage adds to a history another runner may have written since it was read."""
    if not len(new):
        return old
    both = pd.concat([old, new], ignore_index=True)
    keys = [k for k in keys if k in both]
    return both.drop_duplicates(keys, keep="last").sort_values("window", kind="stable").reset_index(drop=True)


def _add(aws: Aws, cfg: Params, key: str, parts: dict[str, tuple[pd.DataFrame, tuple[str, ...]]],
         attempts: int = 20) -> dict[str, pd.DataFrame]:
    """Merge new rows into the history at ``key`` (part name -> (rows, key columns)), conditional on the ETag
    read, reading again after a lost write: rows another runner added meanwhile are kept. Returns the stored parts."""
    for _ in range(attempts):
        raw, etag = get_json_etag(aws, cfg.bucket, key)
        raw = raw or {}
        out = {name: merged(pd.DataFrame(raw.get(name, [])), rows, keys) for name, (rows, keys) in parts.items()}
        try:
            put_json_if(aws, cfg.bucket, key, to_jsonable(out), etag)
            return out
        except PreconditionFailed:
            continue
    raise RuntimeError(f"s3://{cfg.bucket}/{key}: lost {attempts} conditional writes in a row; too many runners at once")


def add_metrics(aws: Aws, cfg: Params, windows: pd.DataFrame, segments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add published windows (and their segments) to the metrics history; return the history as stored."""
    out = _add(aws, cfg, metrics_key(cfg), {"windows": (windows, ("window",)), "segments": (segments, ("window", "segment"))})
    return out["windows"], out["segments"]


def add_drift(aws: Aws, cfg: Params, windows: pd.DataFrame, features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add checked windows (and their per-feature rows) to the drift history; return the history as stored."""
    out = _add(aws, cfg, drift_key(cfg), {"windows": (windows, ("window",)), "features": (features, ("window", "feature"))})
    return out["windows"], out["features"]


def add_estimates(aws: Aws, cfg: Params, estimates: pd.DataFrame) -> pd.DataFrame:
    """Add estimated windows to the estimates history; return the history as stored."""
    return _add(aws, cfg, estimates_key(cfg), {"windows": (estimates, ("window",))})["windows"]
