"""Reference summaries of single columns: NumericFeature (KS) and CategoricalFeature (chi-square)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False, repr=False)
class NumericFeature:
    """Reference summary of one continuous feature (tested with two-sample KS).

    Besides the exact sorted reference values and descriptive statistics it holds a *value
    grid*: ``grid_size`` equal-width cells between the reference quantiles ``GRID_TAIL`` and
    ``1 - GRID_TAIL`` plus one open cell on each side. The cell of ``x`` is
    ``trunc(clip((x - grid_lo) * grid_scale + 1, 0, grid_size + 1))``, a monotone function
    of ``x`` in floating point, so reference values of a cell are contiguous in
    ``sorted_values``. Per cell it stores the cumulative reference count, the integral of
    the reference ECDF over the cell (for Wasserstein) and the cell's value when all
    reference values in it are equal (``grid_pure``, NaN otherwise). The grid is an index
    for speed only: KS statistics are computed exactly from ``sorted_values``.
    """

    name: str
    role: str
    n_total: int
    sorted_values: np.ndarray
    inferred_type: str
    mean: float
    std: float
    minimum: float
    maximum: float
    q25: float
    q50: float
    q75: float
    spread: float
    grid_lo: float
    grid_scale: float
    grid_size: int
    grid_cumcount: np.ndarray
    grid_integral: np.ndarray
    grid_pure: np.ndarray
    psi_cuts: np.ndarray
    psi_shares: np.ndarray
    kind: str = field(default="numeric", init=False)

    @property
    def n_present(self) -> int:
        """Number of non-NaN reference values."""
        return int(self.sorted_values.size)

    @property
    def n_missing(self) -> int:
        """Number of NaN reference values."""
        return self.n_total - self.n_present

    @property
    def iqr(self) -> float:
        """Interquartile range of the reference."""
        return self.q75 - self.q25

    @property
    def psi_edges(self) -> np.ndarray:
        """Interior PSI bin edges (reference deciles snapped to the value grid)."""
        return self.grid_lo + (self.psi_cuts[1:-1] - 1) / self.grid_scale

    def __repr__(self) -> str:
        return f"NumericFeature({self.name!r}, n_present={self.n_present}, mean={self.mean:.4g})"


@dataclass(eq=False, repr=False)
class CategoricalFeature:
    """Reference category frequencies of a categorical or low-cardinality feature (chi-square).

    ``value_type`` is ``"numeric"`` (categories are float64 values, kept sorted; also used for
    the Wasserstein distance) or ``"string"`` (categories compared as ``str(value)``).
    """

    name: str
    role: str
    n_total: int
    value_type: str
    categories: np.ndarray
    counts: np.ndarray
    inferred_type: str
    mean: float = math.nan
    std: float = math.nan
    minimum: float = math.nan
    maximum: float = math.nan
    spread: float = math.nan
    kind: str = field(default="categorical", init=False)

    @property
    def n_present(self) -> int:
        """Number of non-missing reference values."""
        return int(self.counts.sum())

    @property
    def n_missing(self) -> int:
        """Number of missing reference values."""
        return self.n_total - self.n_present

    def __repr__(self) -> str:
        return f"CategoricalFeature({self.name!r}, {self.categories.size} categories)"


Feature = NumericFeature | CategoricalFeature
