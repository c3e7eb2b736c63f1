"""Multiple-testing corrections of per-feature p-values: Benjamini-Hochberg and Bonferroni."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats


def benjamini_hochberg(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``, method "bh").

    Parameters
    ----------
    p_values
        Raw p-values, each in [0, 1].

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order.
    """
    return stats.false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")


def bonferroni(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bonferroni adjusted p-values ``min(1, p * m)``."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(1.0, p * p.size)
