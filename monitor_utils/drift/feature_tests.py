"""Per-feature tests against the baseline: exact KS D, PSI, Wasserstein and chi-square."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .columns import as_float, string_counts
from .features import CategoricalFeature, Feature, NumericFeature
from .grid import cell_geometry, cell_integrals, grid_bins
from .ks import MAX_AUTO_N


#: Floor for bin shares inside the PSI logarithm (empty bins would give infinite PSI).
PSI_EPS = 1e-4


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index with shares floored at :data:`PSI_EPS`."""
    r = np.maximum(ref_share, PSI_EPS)
    c = np.maximum(cur_share, PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def _normalise(w: float, spread: float) -> float:
    if spread > 0:
        return w / spread
    return 0.0 if w == 0 else math.inf


def _untested(feat: Feature, n_cur: int, nan_cur: float, reason: str) -> dict[str, Any]:
    return {
        "test": "ks" if feat.kind == "numeric" else "chi2",
        "statistic": math.nan,
        "p_value": math.nan,
        "psi": math.nan,
        "wasserstein": math.nan,
        "n_reference": feat.n_present,
        "n_current": n_cur,
        "nan_share_current": nan_cur,
        "tested": False,
        "reason": reason,
    }


def compare_numeric(feat: NumericFeature, x: np.ndarray) -> dict[str, Any]:
    """Exact KS D, PSI and (grid) Wasserstein of one current column against its baseline.

    KS: the ECDF difference is known exactly at every grid-cell boundary from the cell
    counts; its supremum inside a cell is bounded by the boundary values plus the cell's
    mass. Only cells whose bound exceeds the best boundary value are refined exactly
    (their current values sorted and located in the sorted reference), so D is exact
    while the work is O(n_cur + grid_size) plus a few sorted cells.

    p-value: when both samples have at most :data:`~monitor_utils.drift.ks.MAX_AUTO_N`
    values, ``scipy.stats.ks_2samp(method="exact")`` on the two samples (what its default
    method does at these sizes); otherwise NaN here, and :func:`detect_drift` fills in the
    asymptotic p-values of all large-sample features in one vectorised call.
    """
    n_nan = int(np.count_nonzero(np.isnan(x)))
    has_nan = n_nan > 0
    m = x.size - n_nan
    nan_share = n_nan / x.size if x.size else math.nan
    n = feat.n_present
    if m == 0:
        return _untested(feat, 0, nan_share, f"all {x.size} current values are missing; not tested")
    if n == 0:
        return _untested(feat, m, nan_share, "all reference values are missing; not tested")
    size, k = feat.grid_size, feat.grid_size + 2
    bins = grid_bins(x, feat.grid_lo, feat.grid_scale, size, has_nan)
    counts = np.bincount(bins, minlength=k + 1)[:k]
    cum_cur = np.cumsum(counts)
    cum_ref = feat.grid_cumcount

    # exact ECDF difference at the cell boundaries (same float ops as scipy: a/n - b/m)
    f_ref = cum_ref / n
    f_cur = cum_cur / m
    diff = f_ref - f_cur
    d = max(float(diff.max()), float(-diff.min()), 0.0)
    # upper bounds inside cell b: F_ref(end of b) - F_cur(start of b) and vice versa
    up = f_ref.copy()
    up[1:] -= f_cur[:-1]
    down = f_cur.copy()
    down[1:] -= f_ref[:-1]
    cand = (up > d) | (down > d)
    if cand.any():
        cand = _drop_pure_cells(feat, x, bins, counts, cand)
    if cand.any():
        d = max(d, _refine_ks(feat.sorted_values, x, bins, cand, cum_ref, cum_cur - counts, n, m))

    w_raw = _wasserstein_grid(feat, x, bins, counts, n, m)
    # PSI on reference-decile bins (unions of grid cells)
    cum0 = np.concatenate(([0], cum_cur))
    cur_share = np.diff(cum0[feat.psi_cuts]) / m
    p_value = math.nan
    if max(n, m) <= MAX_AUTO_N:
        p_value = float(stats.ks_2samp(feat.sorted_values, x[~np.isnan(x)], method="exact").pvalue)
    return {
        "test": "ks",
        "statistic": d,
        "p_value": p_value,
        "psi": _psi(feat.psi_shares, cur_share),
        "wasserstein": _normalise(w_raw, feat.spread),
        "n_reference": n,
        "n_current": m,
        "nan_share_current": nan_share,
        "tested": True,
        "reason": "",
    }


def _wasserstein_grid(
    feat: NumericFeature, x: np.ndarray, bins: np.ndarray, counts: np.ndarray, n: int, m: int
) -> float:
    """Wasserstein-1 = integral of |F_ref - F_cur|, from per-cell ECDF integrals.

    Interior cells contribute ``|integral of (F_ref - F_cur) over the cell|``, computed from
    the stored reference cell integrals and the current cell counts and sums: exact unless
    ``F_ref - F_cur`` changes sign inside the cell (then low by at most the cell width
    times the cell's masses). The two open tail cells (0.1% of the reference each side,
    very wide for heavy tails) are integrated exactly from their sorted values.
    """
    size, k = feat.grid_size, feat.grid_size + 2
    sums = np.bincount(bins, weights=x, minlength=k + 1)[:k]
    cur_int = cell_integrals(counts, sums, m, feat.grid_lo, feat.grid_scale, size)
    right, _ = cell_geometry(feat.grid_lo, feat.grid_scale, size)
    ref = feat.sorted_values
    cum_ref = feat.grid_cumcount
    with np.errstate(invalid="ignore", over="ignore"):
        interior = float(np.sum(np.abs(feat.grid_integral[1:-1] - cur_int[1:-1])))
        tails = x[(bins == 0) | (bins == size + 1)]
        low = np.sort(tails[tails < right[0]]) if counts[0] else tails[:0]
        high = np.sort(tails[tails >= right[0]]) if counts[-1] else tails[:0]
        lower = _tail_l1(ref[: cum_ref[0]], low, right[0], n, m)
        upper = _tail_l1(-ref[cum_ref[size] :][::-1], -high[::-1], -right[-1], n, m)
    return interior + lower + upper


def _tail_l1(ref_tail: np.ndarray, cur_tail: np.ndarray, edge: float, n: int, m: int) -> float:
    """Exact integral of |F_ref - F_cur| from -inf to ``edge``.

    ``ref_tail`` / ``cur_tail`` are the sorted values below ``edge`` (for the upper tail the
    caller passes negated values, turning survival functions into ECDFs); ``n`` and ``m``
    are the full sample sizes.
    """
    pts = np.sort(np.concatenate((ref_tail, cur_tail)))
    if pts.size == 0:
        return 0.0
    pts = np.minimum(pts, edge)
    f_ref = np.searchsorted(ref_tail, pts, side="right") / n
    f_cur = np.searchsorted(cur_tail, pts, side="right") / m
    return float(np.sum(np.abs(f_ref - f_cur) * np.diff(np.append(pts, edge))))


def _drop_pure_cells(
    feat: NumericFeature, x: np.ndarray, bins: np.ndarray, counts: np.ndarray, cand: np.ndarray
) -> np.ndarray:
    """Un-flag candidate cells where every reference and current value is the same number.

    In such a cell the ECDF difference only takes its two boundary values, so it needs no
    refinement. This keeps heavily tied (rounded) features from sorting whole columns.
    """
    pure = feat.grid_pure
    pure_cand = cand & ~np.isnan(pure)
    if np.count_nonzero(counts[pure_cand]) == 0 or counts[pure_cand].sum() < 256:
        return cand
    lookup = np.append(pure, np.nan)  # NaN cell index (size+2) maps to NaN
    same = x == lookup[bins]
    n_same = np.bincount(bins[same], minlength=cand.size)[: cand.size]
    return cand & ~(pure_cand & (n_same == counts))


def _refine_ks(
    ref: np.ndarray,
    x: np.ndarray,
    bins: np.ndarray,
    cand: np.ndarray,
    cum_ref: np.ndarray,
    prev_cur: np.ndarray,
    n: int,
    m: int,
) -> float:
    """Exact sup of |F_ref - F_cur| over the candidate cells (see :func:`ks_statistic_sorted`).

    ``cum_ref[b]`` counts reference values in cells <= b, ``prev_cur[b]`` current values in
    cells < b.
    """
    flag = np.append(cand, False)  # NaN cell never selected
    mask = flag[bins]
    sel = np.sort(x[mask])
    sel_bins = np.sort(bins[mask])  # monotone cell map: aligned with the sorted values
    first = np.searchsorted(sel_bins, sel_bins, side="left")
    rank = prev_cur[sel_bins] + (np.arange(sel.size) - first)  # global 0-based rank in current
    # reference values of cells before (after) the candidate span are strictly smaller
    # (larger) than every selected value, so searching the span's slice is exact
    start = int(cum_ref[sel_bins[0] - 1]) if sel_bins[0] > 0 else 0
    stop = int(cum_ref[sel_bins[-1]])
    span = ref[start:stop]
    left = np.searchsorted(span, sel, side="left") + start
    right = np.searchsorted(span, sel, side="right") + start
    d_plus = np.max(left / n - rank / m)
    d_minus = np.max((rank + 1) / m - right / n)
    return float(max(d_plus, d_minus))


def compare_categorical(feat: CategoricalFeature, series: pd.Series) -> dict[str, Any]:
    """Pearson chi-square homogeneity test (2 x k table, no continuity correction) and PSI."""
    size = int(series.size)
    if feat.value_type == "numeric":
        x = as_float(series, feat.name, "current")
        x = x[~np.isnan(x)]
        m = x.size
        cats = feat.categories
        if m and cats.size:
            idx = np.minimum(np.searchsorted(cats, x), cats.size - 1)
            match = cats[idx] == x
            cur_counts = np.bincount(idx[match], minlength=cats.size)
            new_vals, new_counts = np.unique(x[~match], return_counts=True)
        else:
            cur_counts = np.zeros(cats.size, dtype=np.int64)
            new_vals, new_counts = np.unique(x, return_counts=True)
        values = np.concatenate((cats, new_vals))
    else:
        vc = string_counts(series)
        m = int(vc.sum())
        known = {c: i for i, c in enumerate(feat.categories)}
        cur_counts = np.zeros(feat.categories.size, dtype=np.int64)
        extra_vals, extra_counts = [], []
        for value, count in vc.items():
            if value in known:
                cur_counts[known[value]] = count
            else:
                extra_vals.append(value)
                extra_counts.append(count)
        new_counts = np.array(extra_counts, dtype=np.int64)
        values = None
    nan_share = (size - m) / size if size else math.nan
    n = feat.n_present
    if m == 0:
        return _untested(feat, 0, nan_share, f"all {size} current values are missing; not tested")
    if n == 0:
        return _untested(feat, m, nan_share, "all reference values are missing; not tested")
    ref = np.concatenate((feat.counts, np.zeros(new_counts.size, dtype=np.int64)))
    cur = np.concatenate((cur_counts, new_counts))
    stat, p = _chi2_homogeneity(ref, cur)
    wasserstein = math.nan
    if values is not None:
        order = np.argsort(values, kind="stable")
        gaps = np.diff(values[order])
        f_ref = np.cumsum(ref[order])[:-1] / n
        f_cur = np.cumsum(cur[order])[:-1] / m
        wasserstein = _normalise(float(np.sum(np.abs(f_ref - f_cur) * gaps)), feat.spread)
    return {
        "test": "chi2",
        "statistic": stat,
        "p_value": p,
        "psi": _psi(ref / n, cur / m),
        "wasserstein": wasserstein,
        "n_reference": n,
        "n_current": m,
        "nan_share_current": nan_share,
        "tested": True,
        "reason": "",
    }


def _chi2_homogeneity(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square on the 2 x k table [ref; cur]: ``chi2_contingency(correction=False)``.

    Categories absent from both rows are dropped (their expected count would be 0); a table
    with fewer than two categories left is no evidence of change (statistic 0, p-value 1).
    """
    keep = (ref + cur) > 0
    table = np.vstack((ref[keep], cur[keep]))
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)
