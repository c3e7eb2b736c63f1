"""Reading DataFrame columns for drift checks: column kind, float values, category counts."""

from __future__ import annotations

import numpy as np
import pandas as pd


def column_kind(series: pd.Series, name: str) -> str:
    """'numeric', 'string' (categorical) or an error for unsupported dtypes."""
    dt = series.dtype
    if isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt):
        return "string"
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
        if pd.api.types.is_complex_dtype(dt):
            raise ValueError(f"column {name!r} has complex dtype {dt}; drop it or split real/imaginary parts")
        return "numeric"
    raise ValueError(
        f"column {name!r} has unsupported dtype {dt}; convert it to numbers (e.g. timestamps to "
        f"seconds) or to strings, or drop it"
    )


def as_float(series: pd.Series, name: str, which: str) -> np.ndarray:
    """Float64 view/copy of a numeric column (missing values -> NaN)."""
    if series.dtype == np.float64:
        return series.to_numpy()
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{which} column {name!r} (dtype {series.dtype}) cannot be read as numbers: {exc}; "
            f"convert it with pd.to_numeric(..., errors='coerce')"
        ) from None


def string_counts(series: pd.Series) -> pd.Series:
    """Counts of non-missing values compared as strings, most frequent first (ties by name)."""
    s = series[series.notna()].astype(str)
    vc = s.value_counts(sort=False)
    vc = vc[vc > 0]
    order = sorted(range(len(vc)), key=lambda i: (-int(vc.iloc[i]), vc.index[i]))
    return vc.iloc[order]
