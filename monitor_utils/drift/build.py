"""Building a Baseline from reference data: column summaries, value grids, PSI bins and statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .columns import as_float, column_kind, string_counts
from .features import CategoricalFeature, Feature, NumericFeature
from .grid import GRID_SIZE, cell_integrals, grid_bins, grid_geometry, psi_bins
from .profile import Baseline


def build_baseline(
    reference_data: pd.DataFrame,
    *,
    n_bins: int = 10,
    categorical_max_unique: int = 20,
    prediction_column: str | None = None,
    grid_size: int = GRID_SIZE,
) -> Baseline:
    """Summarise reference data once so that later drift checks need no re-sorting.

    Numeric columns with more than ``categorical_max_unique`` distinct values become
    :class:`NumericFeature` (sorted values, statistics, decile PSI bins, value grid);
    object/category/string columns and numeric columns with few distinct values become
    :class:`CategoricalFeature` (category counts, chi-square test).

    Parameters
    ----------
    reference_data
        Reference (training / baseline) data, one column per feature.
    n_bins
        Number of reference-quantile bins for PSI.
    categorical_max_unique
        Numeric columns with at most this many distinct values are treated as categorical.
        Use 0 to test every numeric column with KS.
    prediction_column
        Name of the model-output column, if present; it is tested like the others and
        flagged with role ``"prediction"``.
    grid_size
        Interior cells of the per-feature value grid (speed/accuracy knob, see
        :class:`NumericFeature`).

    Returns
    -------
    Baseline
    """
    if not isinstance(reference_data, pd.DataFrame):
        raise TypeError(f"reference_data must be a pandas DataFrame, got {type(reference_data).__name__}")
    if reference_data.shape[0] == 0:
        raise ValueError("reference_data has no rows; a baseline needs reference observations")
    if reference_data.shape[1] == 0:
        raise ValueError("reference_data has no columns")
    dupes = reference_data.columns[reference_data.columns.duplicated()].tolist()
    if dupes:
        raise ValueError(f"reference_data has duplicate column(s) {dupes}; rename them")
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2):
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if not (isinstance(categorical_max_unique, (int, np.integer)) and categorical_max_unique >= 0):
        raise ValueError(f"categorical_max_unique must be an integer >= 0, got {categorical_max_unique!r}")
    if not (isinstance(grid_size, (int, np.integer)) and grid_size >= 16):
        raise ValueError(f"grid_size must be an integer >= 16, got {grid_size!r}")
    if prediction_column is not None and prediction_column not in reference_data.columns:
        raise ValueError(
            f"prediction_column {prediction_column!r} is not a column of reference_data; "
            f"columns are {list(reference_data.columns)}"
        )
    features: dict[str, Feature] = {}
    for col in reference_data.columns:
        series = reference_data[col]
        name = str(col) if not isinstance(col, str) else col
        role = "prediction" if col == prediction_column else "feature"
        kind = column_kind(series, name)
        if kind == "string":
            features[name] = _categorical_feature(name, role, series, int(series.size), numeric=False)
            continue
        values = as_float(series, name, "reference")
        v = np.sort(values[~np.isnan(values)])
        distinct = 0 if v.size == 0 else 1 + int(np.count_nonzero(v[1:] != v[:-1]))
        if 0 < distinct <= categorical_max_unique:
            features[name] = _categorical_feature(name, role, v, values.size, numeric=True)
        else:
            features[name] = _numeric_feature(name, role, v, values.size, int(n_bins), int(grid_size))
    settings = {
        "n_bins": int(n_bins),
        "categorical_max_unique": int(categorical_max_unique),
        "grid_size": int(grid_size),
        "prediction_column": prediction_column,
    }
    return Baseline(features=features, n_rows=int(reference_data.shape[0]), settings=settings)


def _numeric_feature(name: str, role: str, v: np.ndarray, n_total: int, n_bins: int, grid_size: int) -> NumericFeature:
    """Summary of sorted NaN-free values ``v`` of a column with ``n_total`` rows."""
    n = v.size
    lo, scale, size = grid_geometry(v, grid_size)
    bins = grid_bins(v, lo, scale, size, has_nan=False)
    counts = np.bincount(bins, minlength=size + 2)
    cum = np.cumsum(counts)
    sums = np.bincount(bins, weights=v, minlength=size + 2)
    integral = cell_integrals(counts, sums, max(n, 1), lo, scale, size)
    pure = np.full(size + 2, np.nan)
    filled = np.flatnonzero(counts)
    if filled.size:
        first = v[cum[filled] - counts[filled]]
        last = v[cum[filled] - 1]
        pure[filled] = np.where(first == last, first, np.nan)
    cuts, shares = psi_bins(cum, n, n_bins)
    st = _describe(v)
    return NumericFeature(
        name=name,
        role=role,
        n_total=int(n_total),
        sorted_values=v,
        inferred_type=_inferred_numeric_type(v),
        **st,
        grid_lo=lo,
        grid_scale=scale,
        grid_size=size,
        grid_cumcount=cum.astype(np.int64),
        grid_integral=integral,
        grid_pure=pure,
        psi_cuts=cuts,
        psi_shares=shares,
    )


def _describe(v: np.ndarray) -> dict[str, float]:
    """mean/std/min/max/quartiles/spread of sorted NaN-free values."""
    n = v.size
    if n == 0:
        nan = math.nan
        return dict(mean=nan, std=nan, minimum=nan, maximum=nan, q25=nan, q50=nan, q75=nan, spread=nan)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(v))
        std = float(np.std(v, ddof=1)) if n > 1 else 0.0
        q25, q50, q75 = (float(q) for q in np.quantile(v, [0.25, 0.5, 0.75]))
    return dict(
        mean=mean,
        std=std,
        minimum=float(v[0]),
        maximum=float(v[-1]),
        q25=q25,
        q50=q50,
        q75=q75,
        spread=_spread(std, q75 - q25),
    )


def _spread(std: float, iqr: float) -> float:
    """Scale used to normalise Wasserstein: std, else IQR/1.349 (e.g. infinite values), else 0."""
    if math.isfinite(std) and std > 0:
        return std
    if math.isfinite(iqr) and iqr > 0:
        return iqr / 1.349
    return 0.0


def _inferred_numeric_type(v: np.ndarray) -> str:
    finite = v[np.isfinite(v)]
    return "Integral" if finite.size and np.all(finite == np.floor(finite)) else "Fractional"


def _categorical_feature(
    name: str, role: str, data: pd.Series | np.ndarray, n_total: int, numeric: bool
) -> CategoricalFeature:
    """Category counts; ``data`` is the sorted NaN-free values if numeric, else the column."""
    if numeric:
        v = data
        cats, counts = _run_lengths(v)
        st = _describe(v)
        return CategoricalFeature(
            name=name,
            role=role,
            n_total=n_total,
            value_type="numeric",
            categories=cats,
            counts=counts,
            inferred_type=_inferred_numeric_type(v),
            mean=st["mean"],
            std=st["std"],
            minimum=st["minimum"],
            maximum=st["maximum"],
            spread=st["spread"],
        )
    vc = string_counts(data)
    return CategoricalFeature(
        name=name,
        role=role,
        n_total=n_total,
        value_type="string",
        categories=np.array(list(vc.index), dtype=object),
        counts=vc.to_numpy(dtype=np.int64),
        inferred_type="String",
    )


def _run_lengths(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of a sorted array."""
    if v.size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(v[1:] != v[:-1]) + 1))
    counts = np.diff(np.append(starts, v.size))
    return v[starts].copy(), counts.astype(np.int64)
