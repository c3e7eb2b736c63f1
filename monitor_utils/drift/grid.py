"""The per-feature value grid: cell map, geometry, per-cell ECDF integrals and PSI bins over the cells."""

from __future__ import annotations

import functools
import math

import numpy as np


#: Default number of interior cells of the per-feature value grid (see :class:`NumericFeature`).
GRID_SIZE = 16384

#: Reference tail share left outside the value grid on each side (two open-ended cells).
GRID_TAIL = 1e-3


def grid_bins(x: np.ndarray, lo: float, scale: float, size: int, has_nan: bool) -> np.ndarray:
    """Grid cell of each value: 0 below the grid, 1..size inside, size+1 above, size+2 for NaN.

    ``trunc(clip((x - lo) * scale + 1, 0, size + 1))``: every step is a monotone
    floating-point operation (subtract, multiply by a positive constant, add, clip, and
    truncation of non-negative numbers), so ``a <= b`` implies ``cell(a) <= cell(b)``.
    Applied identically to reference and current data it partitions the real line
    consistently, which is all the exact KS computation relies on; cell edges
    ``lo + (b - 1) / scale`` hold up to rounding, which only matters for Wasserstein.
    """
    t = np.subtract(x, lo)
    t *= scale
    t += 1.0
    np.clip(t, 0.0, float(size + 1), out=t)
    if has_nan:
        t[np.isnan(t)] = size + 2
    return t.astype(np.intp)


def grid_geometry(v: np.ndarray, grid_size: int) -> tuple[float, float, int]:
    """Choose (lo, scale, size) of the value grid from sorted reference values ``v``."""
    finite = v[np.isfinite(v)]
    n = finite.size
    size = int(min(grid_size, max(16, 1 << max(0, int(n - 1).bit_length()))))
    if n == 0:
        return 0.0, 1.0, size
    lo = float(finite[int(math.floor(GRID_TAIL * (n - 1)))])
    hi = float(finite[int(math.ceil((1.0 - GRID_TAIL) * (n - 1)))])
    if not hi > lo:
        lo, hi = float(finite[0]), float(finite[-1])
    if not hi > lo:
        hi = lo + 1.0
    with np.errstate(over="ignore", divide="ignore"):
        scale = size / (hi - lo)
    tiny, huge = np.finfo(np.float64).tiny, np.finfo(np.float64).max / 4
    scale = float(min(max(scale, tiny), huge)) if np.isfinite(scale) else (tiny if hi - lo == np.inf else huge)
    return lo, scale, size


def cell_integrals(counts: np.ndarray, sums: np.ndarray, n: int, lo: float, scale: float, size: int) -> np.ndarray:
    """Integral of the ECDF over each grid cell (``F - 1`` for the open top cell).

    For interior cell b (covering ``[r_{b-1}, r_b)``): ``(w * #before + sum(r_b - x)) / n``;
    for the bottom cell ``sum(r_0 - x) / n``; for the top cell ``-sum(x - r_size) / n``.
    """
    right, width = cell_geometry(lo, scale, size)
    before = np.concatenate(([0], np.cumsum(counts)[:-1]))
    with np.errstate(invalid="ignore", over="ignore"):
        return (width * before + (counts * right - sums)) / n


@functools.lru_cache(maxsize=512)
def cell_geometry(lo: float, scale: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Right edge and width of every grid cell (open cells: the finite edge, width 0)."""
    edges = lo + np.arange(size + 1) / scale
    right = np.append(edges, edges[-1])
    width = np.zeros(size + 2)
    width[1:-1] = 1.0 / scale
    right.flags.writeable = False
    width.flags.writeable = False
    return right, width


def psi_bins(cum: np.ndarray, n: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Group grid cells into ~equal-mass PSI bins; return cut indices and reference shares.

    PSI bin j covers grid cells ``cuts[j] <= cell < cuts[j+1]``.
    """
    k = cum.size
    if n == 0:
        return np.array([0, k], dtype=np.int64), np.array([1.0])
    targets = np.arange(1, n_bins) / n_bins * n
    ends = np.searchsorted(cum, targets, side="left") + 1  # first cell reaching the target, +1
    cuts = np.unique(np.concatenate(([0], ends, [k]))).astype(np.int64)
    cum0 = np.concatenate(([0], cum))
    ref_counts = np.diff(cum0[cuts])
    while ref_counts.size > 1 and ref_counts[-1] == 0:  # last bin empty: merge it
        cuts = np.delete(cuts, -2)
        ref_counts = np.diff(cum0[cuts])
    return cuts, ref_counts / n
