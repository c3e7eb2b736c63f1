"""Model Monitor's data-quality ``statistics.json``: written from a data frame as the analyzer does, and read back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..kll import DEFAULT_BUCKETS, DEFAULT_C, DEFAULT_K, KLLSketch, sketch_values
from .jackson import json_float, read_float

#: The analyzer's column types (its docs add ``Unknown`` for columns it could not type).
INFERRED_TYPES = ("Integral", "Fractional", "String", "Unknown")
NUMERIC_TYPES = ("Integral", "Fractional")


@dataclass
class FeatureStatistics:
    """One feature of a ``statistics.json``.

    Attributes
    ----------
    name, inferred_type
        As written (``inferred_type`` one of :data:`INFERRED_TYPES`).
    num_present, num_missing
        ``common`` counts.
    mean, sum, std_dev, min, max
        ``numerical_statistics`` (NaN for string features or where the file says ``"NaN"``).
    sketch
        The ``distribution.kll.sketch`` of a numerical feature (None when the file has none).
    buckets
        ``distribution.kll.buckets`` as written.
    categories
        ``string_statistics`` category counts (``distribution.categorical.buckets``), None for numeric features.
    distinct_count
        ``string_statistics.distinct_count``.
    """

    name: str
    inferred_type: str
    num_present: int
    num_missing: int
    mean: float = math.nan
    sum: float = math.nan
    std_dev: float = math.nan
    min: float = math.nan
    max: float = math.nan
    sketch: KLLSketch | None = None
    buckets: list[dict] = field(default_factory=list)
    categories: dict[str, int] | None = None
    distinct_count: float | None = None

    @property
    def is_numeric(self) -> bool:
        """True for a feature written with ``numerical_statistics``."""
        return self.categories is None


@dataclass
class DatasetStatistics:
    """A whole ``statistics.json``: ``item_count`` and the features in file order."""

    item_count: int
    features: dict[str, FeatureStatistics]
    version: float = 0.0


# ---------------------------------------------------------------------------------------------- writing
def inferred_type(series: pd.Series) -> str:
    """The analyzer's type for a column from its dtype: integers (and booleans) ``Integral``, floats
    ``Fractional`` (CSV ``3.0`` is a float), anything else ``String``."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "Integral"
    if pd.api.types.is_float_dtype(series):
        return "Fractional"
    return "String"


def statistics_document(frame: pd.DataFrame, inferred_types: Mapping[str, str] | None = None, *,
                        k: int = DEFAULT_K, c: float = DEFAULT_C, buckets: int = DEFAULT_BUCKETS) -> dict:
    """Statistics of ``frame`` in the layout and with the numbers of Model Monitor's analyzer.

    Parameters
    ----------
    frame : pd.DataFrame
        The baseline data, one column per feature, rows in the order the analyzer would read them (the
        KLL sketch's level 0 keeps that order).
    inferred_types : Mapping[str, str] | None
        Declared type per column (``Integral``, ``Fractional`` or ``String``); columns not named take
        :func:`inferred_type` of their dtype.
    k, c, buckets : int, float, int
        KLL sketch size, shrinking factor and number of equal-width buckets (the analyzer's 2048, 0.64, 10).

    Returns
    -------
    dict
        ``{"version": 0.0, "dataset": {"item_count"}, "features": [...]}``. Numeric features carry
        ``numerical_statistics`` {``common`` {num_present, num_missing}, ``mean``, ``sum``, population
        ``std_dev``, ``min``, ``max``, ``distribution.kll`` {``buckets`` (float counts), ``sketch``}}, computed as
        Spark does (sum in row order, streaming moments); string features carry ``string_statistics``
        {``common``, float ``distinct_count``, ``distribution.categorical.buckets`` [{value, count}]}. NaN is
        written ``"NaN"`` (see :func:`~monitor_utils.model_monitor.jackson.json_float`).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"statistics_document needs a pandas DataFrame, got {type(frame).__name__}")
    declared = dict(inferred_types or {})
    unknown = sorted(set(declared) - {str(col) for col in frame.columns})
    if unknown:
        raise ValueError(f"inferred_types names column(s) {unknown} the data does not have; columns are "
                         f"{[str(col) for col in frame.columns]}")
    types = {}
    for col in frame.columns:
        t = declared.get(str(col)) or inferred_type(frame[col])
        if t not in INFERRED_TYPES[:3]:
            raise ValueError(f"column {col!r}: inferred type {t!r} is not one of {list(INFERRED_TYPES[:3])}")
        types[col] = t
    numeric_cols = [col for col in frame.columns if types[col] in NUMERIC_TYPES]
    values = {}
    for col in numeric_cols:
        try:
            values[col] = frame[col].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(f"column {col!r} is declared {types[col]} but holds values that are not numbers; "
                             f"declare it String or clean it") from None
    moments = _streaming_moments(np.column_stack([values[col] for col in numeric_cols])) if numeric_cols else {}
    features = []
    for col in frame.columns:
        entry: dict[str, Any] = {"name": str(col), "inferred_type": types[col]}
        if types[col] in NUMERIC_TYPES:
            entry["numerical_statistics"] = _numerical(values[col], moments, numeric_cols.index(col), k, c, buckets)
        else:
            entry["string_statistics"] = _string(frame[col])
        features.append(entry)
    return {"version": 0.0, "dataset": {"item_count": int(len(frame))}, "features": features}


def _streaming_moments(x: np.ndarray) -> dict[str, np.ndarray]:
    """Count, row-order sum and Spark's streaming central moments of each column (NaN skipped)."""
    n = np.zeros(x.shape[1])
    total = np.zeros(x.shape[1])
    avg = np.zeros(x.shape[1])
    m2 = np.zeros(x.shape[1])
    present = ~np.isnan(x)
    if present.all():  # the common case: the same arithmetic, without masks and in place
        delta, delta_n, step = np.empty(x.shape[1]), np.empty(x.shape[1]), np.empty(x.shape[1])
        for i, row in enumerate(x, start=1):
            total += row
            np.subtract(row, avg, out=delta)
            np.divide(delta, float(i), out=delta_n)
            avg += delta_n
            np.subtract(delta, delta_n, out=step)
            step *= delta
            m2 += step
        n[:] = x.shape[0]
    else:
        for row, ok in zip(x, present):
            v = np.where(ok, row, 0.0)
            n += ok
            total += v
            delta = np.where(ok, v - avg, 0.0)
            delta_n = np.where(ok, delta / np.maximum(n, 1), 0.0)
            avg += delta_n
            m2 += delta * (delta - delta_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"n": n, "sum": total, "mean": np.where(n > 0, total / np.maximum(n, 1), np.nan),
                "std": np.where(n > 0, np.sqrt(m2 / np.maximum(n, 1)), np.nan)}


def _numerical(v: np.ndarray, moments: dict, j: int, k: int, c: float, n_buckets: int) -> dict:
    present = v[~np.isnan(v)]
    sketch = sketch_values(present, k, c)
    lo, hi = (float(present.min()), float(present.max())) if present.size else (math.nan, math.nan)
    return {
        "common": {"num_present": int(present.size), "num_missing": int(v.size - present.size)},
        "mean": json_float(moments["mean"][j]),
        "sum": json_float(moments["sum"][j]),
        "std_dev": json_float(moments["std"][j]),
        "min": json_float(lo),
        "max": json_float(hi),
        "distribution": {"kll": {"buckets": sketch.buckets(lo, hi, n_buckets) if present.size else [],
                                 "sketch": sketch.to_json()}},
    }


def _string(series: pd.Series) -> dict:
    present = series.dropna().astype(str)
    counts = present.value_counts(sort=False)
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "common": {"num_present": int(present.size), "num_missing": int(series.size - present.size)},
        "distinct_count": float(len(counts)),
        "distribution": {"categorical": {"buckets": [{"value": value, "count": int(n)} for value, n in order]}},
    }


# ---------------------------------------------------------------------------------------------- reading
def read_statistics(doc: Any, where: str = "statistics.json") -> DatasetStatistics:
    """A ``statistics.json`` document (parsed JSON) as :class:`DatasetStatistics`.

    Reads both feature layouts the analyzer writes (``numerical_statistics`` with a KLL distribution,
    ``string_statistics`` with categorical buckets); ``where`` (e.g. the S3 URI) names the file in errors.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise ValueError(f"{where}: not a Model Monitor statistics file (expected an object with a "
                         f"'features' list)")
    item_count = doc.get("dataset", {}).get("item_count")
    if not isinstance(item_count, (int, float)) or isinstance(item_count, bool):
        raise ValueError(f"{where}: dataset.item_count is missing or not a number")
    features: dict[str, FeatureStatistics] = {}
    for i, f in enumerate(doc["features"]):
        at = f"{where}: features[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise ValueError(f"{at} has no name")
        at = f"{where}: feature {f['name']!r}"
        if f["name"] in features:
            raise ValueError(f"{at} appears twice")
        features[f["name"]] = _read_feature(f, at)
    return DatasetStatistics(int(item_count), features, float(doc.get("version", 0.0)))


def _read_feature(f: dict, at: str) -> FeatureStatistics:
    t = f.get("inferred_type")
    if t not in INFERRED_TYPES:
        raise ValueError(f"{at}: inferred_type {t!r} is not one of {list(INFERRED_TYPES)}")
    if "numerical_statistics" in f:
        ns = f["numerical_statistics"]
        common = _common(ns, at + ".numerical_statistics")
        kll = (ns.get("distribution") or {}).get("kll") or {}
        sketch = KLLSketch.from_json(kll["sketch"], at + ".numerical_statistics.distribution.kll.sketch") \
            if "sketch" in kll else None
        nums = {key: read_float(ns[key], f"{at}.numerical_statistics.{key}") if key in ns else math.nan
                for key in ("mean", "sum", "std_dev", "min", "max")}
        return FeatureStatistics(f["name"], t, *common, **nums, sketch=sketch, buckets=list(kll.get("buckets", [])))
    if "string_statistics" in f:
        ss = f["string_statistics"]
        common = _common(ss, at + ".string_statistics")
        buckets = ((ss.get("distribution") or {}).get("categorical") or {}).get("buckets", [])
        try:
            categories = {str(b["value"]): int(b["count"]) for b in buckets}
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{at}.string_statistics.distribution.categorical.buckets: each bucket needs a "
                             f"value and an integer count") from None
        distinct = ss.get("distinct_count")
        return FeatureStatistics(f["name"], t, *common, categories=categories,
                                 distinct_count=None if distinct is None else read_float(distinct, at + ".distinct_count"))
    raise ValueError(f"{at} has neither numerical_statistics nor string_statistics")


def _common(stats: dict, at: str) -> tuple[int, int]:
    common = stats.get("common") or {}
    try:
        return int(common["num_present"]), int(common["num_missing"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{at}.common needs integer num_present and num_missing") from None
