"""Multiple-testing corrections of per-feature p-values: Benjamini-Hochberg and Bonferroni."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def benjamini_hochberg(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (same as ``scipy.stats.false_discovery_control``).

    Parameters
    ----------
    p_values
        Raw p-values.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))
    scaled = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(scaled, 0.0, 1.0)
    return out


def bonferroni(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bonferroni adjusted p-values ``min(1, p * m)``."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(1.0, p * p.size)
