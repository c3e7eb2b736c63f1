"""Label-free RMSE (with an interval) and MAE of a window: a direct loss model that also sees contradicting features."""

from __future__ import annotations

import io
import math
import time
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

FORMAT_VERSION = 1
MAX_LEVELS = 200  # target levels of the prediction-space model (a continuous target is quantised)
CHUNK_ROWS = 2048  # records per chunk of a window's per-record work (a few MB a temporary, whatever the window)
LEVEL_CHUNK_ROWS = 1024  # records per chunk of the kernel correction (records x MAX_LEVELS temporaries)


def _check_columns(frame: pd.DataFrame, wanted: list[str], what: str) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(f"{what}: missing column(s) {shown}{more}")


def _finite_matrix(frame: pd.DataFrame, columns: list[str], what: str, missing: bool = False) -> np.ndarray:
    """The columns as floats; raises on non-numeric or non-finite values (NaN allowed with ``missing``)."""
    try:
        values = frame[columns].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: non-numeric values in {columns[:5]}... ({exc})") from None
    bad = np.isinf(values) if missing else ~np.isfinite(values)
    if bad.any():
        cols = [columns[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise ValueError(f"{what}: {int(bad.any(axis=1).sum())} record(s) with missing or infinite values "
                         f"in column(s) {cols[:5]}{'...' if len(cols) > 5 else ''}")
    return values


def _rows_mean(G: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``G[rows].mean(axis=0)`` without ``G[rows]``: the rows gathered a chunk at a time, each chunk summed after the
    running sum (numpy sums a C-ordered matrix's axis 0 row after row), so the mean is the same to the bit."""
    total = None
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        if total is None:
            total = np.take(G, part, axis=0).sum(axis=0)
            continue
        block = np.empty((len(part) + 1, G.shape[1]))
        block[0] = total
        np.take(G, part, axis=0, out=block[1:])
        total = block.sum(axis=0)
    return total / len(rows)


class LossEstimator:
    """Estimate a window's RMSE (with an interval) and MAE from its inputs and predictions, without labels.

    Three parts, all fitted on labelled reference data the served model did not train on:

    * a direct loss model (DLE): gradient-boosted trees predicting each record's squared and absolute error
      from its standardised features and the prediction (cross-fitted; the folds' models are averaged);
    * a consistency model: the linear regression of every feature on all the others (from the reference's
      precision matrix). When a window's mean residual of a feature lies far outside the reference's spread
      (beyond what its year mix explains), that feature contradicts the others: its shift is estimated, the
      records are repaired to consistent values, and a linear surrogate of the served model gives the
      *consistent prediction*. The gap between served and consistent prediction adds to the expected error;
    * a prediction-space model of the year given the (consistent) prediction: kernel-weighted reference years.
      It estimates the window's year mix by maximum likelihood (assuming label shift: the features of a song of
      a given year stay as in the reference) and turns mix and gap into a correction of the loss:
      expected squared error = DLE(consistent record) + [kernel loss under the window's mix at the served
      prediction - kernel loss under the reference mix at the consistent prediction].

    A multiplicative factor on the DLE part, fitted on reference chunks of window size with out-of-fold loss
    predictions, makes the estimated RMSE unbiased on reference-like windows. The interval for the realized
    RMSE combines the window's own sampling noise (from the kernel model's fourth moments), a bootstrap of the
    shift and mix estimates and the reference's own sampling error, scaled so that it covers ``level`` of plain
    reference chunks, plus a model-error term proportional to the correction, sized so that it covers ``level``
    of perturbed reference chunks (a random year-mix tilt and, in most, one feature shifted against the others
    in all or part of the chunk; their predictions follow the surrogate).

    Parameters
    ----------
    n_bins : int
        Year bins (reference quantiles) of the year-mix model.
    min_r2 : float
        Only features the others predict with at least this R^2 on the reference can be declared inconsistent.
        The default (0) checks every feature: a shift the year mix does not explain counts as a break, even for a
        feature the others barely predict (there a break and a legitimate change look alike).
    z_min : float
        A feature is inconsistent only if its window-mean standardised residual is at least this many standard
        errors from zero ...
    effect_min : float
        ... and at least this large in residual standard deviations.
    max_breaks : int
        At most this many inconsistent features per window.
    level : float
        Nominal coverage of the RMSE interval.
    n_boot : int
        Bootstrap replicates of the shift and mix estimates per window.
    folds : int
        Cross-fitting folds of the loss model.
    calibration_chunks : int
        Reference chunks of window size drawn for calibration.
    label_prior : float
        Pseudo-records of the reference year mix added to a window's when estimating its mix.
    """

    def __init__(self, *, n_bins: int = 8, min_r2: float = 0.0, z_min: float = 5.0, effect_min: float = 0.25,
                 max_breaks: int = 5, level: float = 0.9, n_boot: int = 30, folds: int = 3,
                 calibration_chunks: int = 100, label_prior: float = 10.0) -> None:
        if not 0.5 <= level < 1:
            raise ValueError(f"level must lie in [0.5, 1), got {level}")
        if n_bins < 2 or folds < 2 or n_boot < 0 or calibration_chunks < 10 or max_breaks < 0:
            raise ValueError("n_bins and folds need >= 2, calibration_chunks >= 10, n_boot and max_breaks >= 0")
        self.n_bins, self.min_r2, self.z_min, self.effect_min = n_bins, min_r2, z_min, effect_min
        self.max_breaks, self.level, self.n_boot, self.folds = max_breaks, level, n_boot, folds
        self.calibration_chunks, self.label_prior = calibration_chunks, label_prior
        self.fitted_ = False

    # --- fitting ------------------------------------------------------------------------------------

    def fit(self, reference: pd.DataFrame, features: list[str], target: str = "year", prediction: str = "prediction",
            *, window_size: int, seed: int = 0) -> LossEstimator:
        """Fit on labelled reference data with the served model's predictions.

        Parameters
        ----------
        reference : pd.DataFrame
            Records the served model did not train on (e.g. the test split), with ``features``, ``target`` and
            ``prediction``. Several thousand rows; at least twice ``window_size`` and 200.
        features : list[str]
            The model's input columns.
        target, prediction : str
            Label and served-prediction columns.
        window_size : int
            Typical records per monitoring window: the size of the calibration chunks.
        seed : int
            Seed of the folds, the trees and the chunks; same data and seed, same estimator.

        Returns
        -------
        LossEstimator
            ``self``, fitted.

        Raises
        ------
        ValueError
            Naming missing columns, non-finite values, or too few rows.
        """
        with threadpool_limits(1):  # small matrices and trees: threads cost more than they save on shared cores
            return self._fit(reference, list(features), target, prediction, int(window_size), int(seed))

    def _fit(self, reference: pd.DataFrame, features: list[str], target: str, prediction: str, window_size: int,
             seed: int) -> LossEstimator:
        t0 = time.perf_counter()
        self.fitted_ = False
        if not features:
            raise ValueError("features: empty list")
        _check_columns(reference, features + [target, prediction], "reference")
        n = len(reference)
        if window_size < 1:
            raise ValueError(f"window_size must be positive, got {window_size}")
        if n < max(200, 2 * window_size):
            raise ValueError(f"reference: {n} rows; the estimator needs at least max(200, 2 x window_size = "
                             f"{2 * window_size})")
        X = _finite_matrix(reference, features, "reference")
        y = _finite_matrix(reference, [target], "reference")[:, 0]
        p = _finite_matrix(reference, [prediction], "reference")[:, 0]
        rng = np.random.default_rng(seed)
        self.features, self.target, self.prediction = features, target, prediction
        self.window_size, self.seed, self.reference_rows = window_size, int(seed), n
        d = len(features)

        # support and standardisation
        self.x_min, self.x_max = X.min(axis=0), X.max(axis=0)
        self.mu = X.mean(axis=0)
        sd = X.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        Z = (X - self.mu) / self.sd

        # consistency model: each feature regressed on the others, via the precision matrix
        C = Z.T @ Z / n
        C[np.diag_indices(d)] = np.where(sd > 1e-12, np.diag(C), 1.0)
        C = 0.999 * C + 0.001 * np.eye(d)
        self.theta = np.linalg.inv(C)
        self.theta_diag = np.diag(self.theta).copy()
        self.r2 = 1.0 - 1.0 / self.theta_diag
        G = Z @ self.theta  # row i: (Theta z_i); standardised residual of feature j = G[:, j] / sqrt(Theta_jj)
        U = G / np.sqrt(self.theta_diag)
        self.resid_kurtosis = (U ** 4).mean(axis=0) / np.maximum((U ** 2).mean(axis=0) ** 2, 1e-12)

        # linear surrogate of the served model (per standardised feature) for consistent predictions
        A = np.c_[np.ones(n), Z]
        coef, *_ = np.linalg.lstsq(A, p, rcond=None)
        self.b = coef[1:]
        fitted = A @ coef
        self.surrogate_r2 = float(1 - ((p - fitted) ** 2).sum() / max(((p - p.mean()) ** 2).sum(), 1e-12))
        lo, hi = min(y.min(), p.min()), max(y.max(), p.max())
        self.pred_range = (float(lo), float(hi))

        # year mix: bins, reference shares, and each bin's mean residual vector (what a mix change does to residuals)
        edges = np.unique(np.quantile(y, np.linspace(0, 1, self.n_bins + 1)[1:-1]))
        self.bin_edges = edges
        ybin = np.searchsorted(edges, y, side="right")
        nb = len(edges) + 1
        counts = np.bincount(ybin, minlength=nb).astype(float)
        self.pi_ref = counts / n
        self.resid_by_bin = np.vstack([G[ybin == k].mean(axis=0) if counts[k] else np.zeros(d) for k in range(nb)])

        # prediction-space model of the year: kernel mass of each target level at a grid of predictions
        levels, level_of = np.unique(y, return_inverse=True)
        if len(levels) > MAX_LEVELS:  # a continuous target: quantise to quantile levels
            cuts = np.quantile(y, np.linspace(0, 1, MAX_LEVELS + 1)[1:-1])
            _, level_of = np.unique(np.searchsorted(cuts, y, side="right"), return_inverse=True)
            levels = np.array([y[level_of == k].mean() for k in range(level_of.max() + 1)])
        self.levels = levels.astype(float)
        self.level_bin = np.searchsorted(edges, self.levels, side="right")
        h = 1.06 * max(p.std(), 1e-6) * n ** -0.2
        self.bandwidth = float(h)
        grid = np.arange(p.min() - 3 * h, p.max() + 3 * h + h / 4, h / 4)
        self.grid0, self.grid_step = float(grid[0]), float(h / 4)
        onehot = np.zeros((n, len(levels)))
        onehot[np.arange(n), level_of] = 1.0
        mass = np.zeros((len(grid), len(levels)))
        for start in range(0, len(grid), 256):
            g = grid[start:start + 256]
            mass[start:start + 256] = np.exp(-0.5 * ((g[:, None] - p[None, :]) / h) ** 2) @ onehot
        self.kernel_mass = mass
        self.kernel_bins = np.stack([mass[:, self.level_bin == k].sum(axis=1) for k in range(nb)], axis=1)
        self.y_center = float(y.mean())
        powers = np.stack([(self.levels - self.y_center) ** k for k in range(5)], axis=1)  # (levels, 5)
        self.kernel_bin_moments = np.stack([mass[:, self.level_bin == k] @ powers[self.level_bin == k]
                                            for k in range(nb)], axis=1)  # (grid, bins, 5)
        self.p_support = (float(p.min()), float(p.max()))

        # direct loss models, cross-fitted: out-of-fold predictions for calibration, the fold models for use
        inputs = np.c_[Z, p]
        sq, ab = (y - p) ** 2, np.abs(y - p)
        # the reference is a sample too: relative standard error of its mean squared error
        self.reference_rel_se = float(sq.std() / math.sqrt(n) / max(sq.mean(), 1e-12))
        folds = rng.permutation(n) % self.folds
        oof_sq, oof_ab = np.zeros(n), np.zeros(n)
        self.loss_models: list[tuple[HistGradientBoostingRegressor, HistGradientBoostingRegressor]] = []
        for f in range(self.folds):
            tr, te = folds != f, folds == f
            pair = (self._tree(rng).fit(inputs[tr], sq[tr]), self._tree(rng).fit(inputs[tr], ab[tr]))
            oof_sq[te] = np.maximum(pair[0].predict(inputs[te]), 0.0)
            oof_ab[te] = np.maximum(pair[1].predict(inputs[te]), 0.0)
            self.loss_models.append(pair)

        # calibration on reference chunks of window size: plain ones (unbiasedness, sampling spread) and
        # perturbed ones (a tilted year mix and, in some, a feature shifted against the others)
        self.mse_factor, self.mae_factor, self.var_scale, self.model_error = 1.0, 1.0, 1.0, 0.0
        self.fitted_ = True
        chunk = min(window_size, n // 2)
        boot = max(5, self.n_boot // 3)
        plain, perturbed = [], []
        for _ in range(self.calibration_chunks):
            idx = rng.choice(n, size=chunk, replace=False)
            parts = self._window(Z[idx], p[idx], oof_sq[idx], oof_ab[idx], rng, n_boot=boot)
            plain.append(self._calibration_row(parts, y[idx], p[idx]))
        pick = np.abs(self.b) / max(np.abs(self.b).sum(), 1e-12)
        for _ in range(self.calibration_chunks):
            tilt = np.exp(rng.normal(0.0, rng.uniform(0.0, 1.0), nb))[ybin]
            idx = rng.choice(n, size=chunk, replace=True, p=tilt / tilt.sum())
            Zc, pc = Z[idx].copy(), p[idx].copy()
            if rng.random() < 0.6:
                j = int(rng.choice(d, p=pick))
                shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 3.0)
                part = rng.random(chunk) < (1.0 if rng.random() < 0.6 else rng.uniform(0.3, 1.0))
                Zc[part, j] += shift
                pc[part] = np.clip(pc[part] + self.b[j] * shift, *self.pred_range)
            parts = self._window(Zc, pc, oof_sq[idx], oof_ab[idx], rng, n_boot=boot)
            perturbed.append(self._calibration_row(parts, y[idx], pc))
        plain_a, pert_a = np.array(plain), np.array(perturbed)
        dle, corr, var, dle_a, corr_a, real_rmse, real_mae = plain_a.T
        self.mse_factor = self._solve(lambda c: np.sqrt(np.maximum(c * dle + corr, 0)).mean() - real_rmse.mean(),
                                      0.2, 5.0, 1.0)
        self.mae_factor = float(max(real_mae.mean() - corr_a.mean(), 1e-9) / max(dle_a.mean(), 1e-9))
        self.var_scale = self._solve(lambda s: self._coverage(plain_a, s, 0.0) - self.level, 0.2, 5.0, 1.0)
        if self._coverage(pert_a, self.var_scale, 0.0) < self.level:
            self.model_error = self._solve(lambda k: self._coverage(pert_a, self.var_scale, k) - self.level,
                                           0.0, 2.0, 2.0)
        self.calibration = {"chunks": int(len(plain_a)), "chunk_size": int(chunk),
                            **{f"{name}_{key}": value for name, arr in (("plain", plain_a), ("perturbed", pert_a))
                               for key, value in self._calibration_figures(arr).items()}}
        self.fit_seconds = round(time.perf_counter() - t0, 2)
        return self

    @staticmethod
    def _tree(rng: np.random.Generator) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(max_iter=60, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=50,
                                             max_bins=64, l2_regularization=1.0, random_state=int(rng.integers(2 ** 31)))

    @staticmethod
    def _calibration_row(parts: dict[str, Any], y: np.ndarray, p: np.ndarray) -> tuple[float, ...]:
        return (parts["dle_mse"], parts["correction_mse"], parts["var_mse"], parts["dle_mae"],
                parts["correction_mae"], math.sqrt(((y - p) ** 2).mean()), float(np.abs(y - p).mean()))

    def _bounds(self, mse: np.ndarray, var: np.ndarray, corr: np.ndarray, scale: float, kappa: float,
                extra: np.ndarray | float = 0.0):
        sd = np.sqrt(scale ** 2 * self.mse_factor ** 2 * var + (kappa * np.abs(corr)) ** 2 + extra)
        z = self._z()
        return np.sqrt(np.maximum(mse - z * sd, 0.0)), np.sqrt(mse + z * sd)

    def _coverage(self, rows: np.ndarray, scale: float, kappa: float) -> float:
        dle, corr, var, _, _, real, _ = rows.T
        mse = np.maximum(self.mse_factor * dle + corr, 1e-9)
        lo, hi = self._bounds(mse, var, corr, scale, kappa)
        return float(((real >= lo) & (real <= hi)).mean())

    def _calibration_figures(self, rows: np.ndarray) -> dict[str, float]:
        dle, corr, _, _, _, real, _ = rows.T
        rel = np.sqrt(np.maximum(self.mse_factor * dle + corr, 1e-9)) / real - 1
        return {"mean_relative_error": float(np.abs(rel).mean()), "worst_relative_error": float(np.abs(rel).max()),
                "bias": float(rel.mean()), "coverage": self._coverage(rows, self.var_scale, self.model_error)}

    @staticmethod
    def _solve(gap, lo: float, hi: float, default: float) -> float:
        """Root of an increasing ``gap`` on [lo, hi] by bisection (``default`` if it has no sign change)."""
        if gap(lo) > 0 or gap(hi) < 0:
            return float(lo if gap(lo) > 0 else default)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
        return float(hi)

    def _z(self) -> float:
        return float(ndtri(0.5 + self.level / 2))

    # --- the window model -----------------------------------------------------------------------------

    def _cells(self, pr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = (np.clip(pr, *self.p_support) - self.grid0) / self.grid_step
        i0 = np.clip(np.floor(f).astype(int), 0, len(self.kernel_mass) - 2)
        return i0, f - i0

    def _mix(self, pr: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        """Maximum-likelihood year mix of the window (EM, SQUAREM-accelerated, on the kernel's bin posteriors at the
        consistent predictions rounded to the grid), shrunk towards the reference mix by ``label_prior``
        pseudo-records; returned as weights (window share / reference share) per bin."""
        cells = np.rint((np.clip(pr, *self.p_support) - self.grid0) / self.grid_step).astype(int)
        cells, counts = np.unique(np.clip(cells, 0, len(self.kernel_bins) - 1), return_counts=True)
        post = self.kernel_bins[cells] / self.pi_ref
        post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)  # now proportional to p(bin | cell) / pi_ref
        total = counts.sum() + self.label_prior
        prior = self.label_prior * self.pi_ref

        def em(pi: np.ndarray) -> np.ndarray:
            q = post * pi
            q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
            return (counts @ q + prior) / total

        pi = self.pi_ref * (start if start is not None else 1.0)
        pi = pi / pi.sum()
        for _ in range(100):
            p1 = em(pi)
            p2 = em(p1)
            r, v = p1 - pi, p2 - 2 * p1 + pi
            step = -math.sqrt((r @ r) / max(v @ v, 1e-300))
            nxt = pi - 2 * step * r + step * step * v
            nxt = em(nxt / nxt.sum()) if (nxt > 0).all() else em(p2)
            if np.abs(nxt - pi).max() < 1e-6:
                pi = nxt
                break
            pi = nxt
        return pi / self.pi_ref

    def _repair(self, g_mean: np.ndarray, weights: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
        """Inconsistent features and their shifts (standardised units), net of what the year mix explains."""
        target = g_mean - ((weights - 1.0) * self.pi_ref) @ self.resid_by_bin
        chosen: list[int] = []
        delta = np.zeros_like(target)
        eligible = self.r2 >= self.min_r2
        root = np.sqrt(self.theta_diag)
        for _ in range(self.max_breaks):
            resid = target - (self.theta[:, chosen] @ delta[chosen] if chosen else 0.0)
            r = np.where(eligible, resid / root, 0.0)
            r[chosen] = 0.0
            k = int(np.argmax(np.abs(r)))
            if abs(r[k]) * math.sqrt(n) < self.z_min or abs(r[k]) < self.effect_min:
                break
            chosen.append(k)
            delta[:] = 0.0
            delta[chosen] = np.linalg.solve(self.theta[np.ix_(chosen, chosen)], target[chosen])
        return chosen, delta

    def _shift_and_mix(self, g_mean: np.ndarray, p: np.ndarray, rounds: int = 3, start: np.ndarray | None = None):
        """Alternate: inconsistent features given the mix, the mix given the consistent predictions (``g_mean``: the
        records' mean of ``Theta z``)."""
        n = len(p)
        weights = np.ones(len(self.pi_ref)) if start is None else start
        for _ in range(rounds):
            chosen, delta = self._repair(g_mean, weights, n)
            pr = np.clip(p - self.b @ delta, *self.pred_range)
            weights = self._mix(pr, weights)
        return chosen, delta, pr, weights

    def _correction(self, p: np.ndarray, pr: np.ndarray, weights: np.ndarray, full: bool = True):
        """Per record: the kernel loss under the window's mix at the served prediction minus the reference's at the
        consistent prediction; with ``full``, also that loss, the variance of the squared error and the same
        correction for the absolute error. Computed in chunks of records (each record's figures depend on that
        record alone: the same values as at once, without records x levels temporaries of the whole window)."""
        n = len(p)
        if n <= LEVEL_CHUNK_ROWS:
            return self._correction_rows(p, pr, weights, full)
        outs = [np.empty(n) for _ in range(4 if full else 1)]
        for start in range(0, n, LEVEL_CHUNK_ROWS):
            part = slice(start, start + LEVEL_CHUNK_ROWS)
            got = self._correction_rows(p[part], pr[part], weights, full)
            for out, values in zip(outs, got if full else (got,)):
                out[part] = values
        return tuple(outs) if full else outs[0]

    def _correction_rows(self, p: np.ndarray, pr: np.ndarray, weights: np.ndarray, full: bool):
        """:meth:`_correction` of a chunk of records."""
        i0, frac = self._cells(pr)
        f = frac[:, None]
        mom = self.kernel_bin_moments[i0] * (1 - f[:, :, None]) + self.kernel_bin_moments[i0 + 1] * f[:, :, None]
        tgt = np.einsum("nbk,b->nk", mom, weights)
        tgt /= np.maximum(tgt[:, :1], 1e-300)
        ref = mom.sum(axis=1)
        ref /= np.maximum(ref[:, :1], 1e-300)
        c, cr = p - self.y_center, pr - self.y_center
        loss_t = tgt[:, 2] - 2 * c * tgt[:, 1] + c * c
        loss_s = ref[:, 2] - 2 * cr * ref[:, 1] + cr * cr
        if not full:
            return loss_t - loss_s
        fourth = tgt[:, 4] - 4 * c * tgt[:, 3] + 6 * c * c * tgt[:, 2] - 4 * c ** 3 * tgt[:, 1] + c ** 4
        var_sq = np.maximum(fourth - loss_t ** 2, 0.0)
        mass = self.kernel_mass[i0] * (1 - f) + self.kernel_mass[i0 + 1] * f
        pref = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
        ptgt = mass * weights[self.level_bin]
        ptgt /= np.maximum(ptgt.sum(axis=1, keepdims=True), 1e-300)
        abs_corr = ((ptgt * np.abs(self.levels[None, :] - p[:, None])).sum(axis=1)
                    - (pref * np.abs(self.levels[None, :] - pr[:, None])).sum(axis=1))
        return loss_t - loss_s, np.maximum(loss_t, 1e-9), var_sq, abs_corr

    def _dispersion(self, G: np.ndarray, chosen: list[int], delta: np.ndarray, rows: np.ndarray | None = None) -> float:
        """Extra mean squared gap when an inconsistent feature's shift varies within the window (part broken);
        ``rows``: of those records of ``G`` (a resample), else of all. Only the inconsistent features' columns are
        read."""
        if not chosen:
            return 0.0
        n = len(G) if rows is None else len(rows)
        extra = 0.0
        shift = self.theta[:, chosen] @ delta[chosen]
        for j in chosen:
            column = G[:, j] if rows is None else G[rows, j]
            u = (column - shift[j]) / math.sqrt(self.theta_diag[j])
            excess = u.var() - 1.0
            se = math.sqrt(max(self.resid_kurtosis[j] - 1.0, 0.0) / n)
            if excess > self.z_min * se / 2:
                extra += self.b[j] ** 2 * excess / self.theta_diag[j]
        return float(extra)

    def _window(self, Z: np.ndarray, p: np.ndarray, dle_sq: np.ndarray | None, dle_ab: np.ndarray | None,
                rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
        G = Z @ self.theta
        chosen, delta, pr, weights = self._shift_and_mix(G.mean(axis=0), p)
        if dle_sq is None or dle_ab is None:
            dle_sq, dle_ab = self._direct_loss(Z, delta, pr)
        corr, loss_t, var_sq, abs_corr = self._correction(p, pr, weights)
        disp = self._dispersion(G, chosen, delta)
        n = len(p)
        scale = np.clip((dle_sq + corr) / loss_t, 0.25, 4.0)
        var_mse = float((var_sq * scale ** 2).sum() / n ** 2)
        boot = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            bc, bd, bpr, bw = self._shift_and_mix(_rows_mean(G, idx), p[idx], rounds=2, start=weights)
            bcorr = self._correction(p[idx], bpr, bw, full=False)
            boot.append(dle_sq[idx].mean() + bcorr.mean() + self._dispersion(G, bc, bd, rows=idx))
        if len(boot) > 1:
            var_mse += float(np.var(boot, ddof=1))
        return {"dle_mse": float(dle_sq.mean()), "correction_mse": float(corr.mean()) + disp, "var_mse": var_mse,
                "dle_mae": float(dle_ab.mean()), "correction_mae": float(abs_corr.mean()),
                "inconsistent": chosen, "delta": delta, "weights": weights, "gap": float((pr - p).mean()),
                "dispersion": disp}

    def _direct_loss(self, Z: np.ndarray, delta: np.ndarray, pr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The loss models' squared and absolute error of each record (its consistent values and prediction),
        averaged over the folds; in chunks of records (a tree's prediction of a record depends on that record
        alone), so the model inputs are never a second copy of the window."""
        n = len(pr)
        dle_sq, dle_ab = np.empty(n), np.empty(n)
        for start in range(0, n, CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            inputs = np.empty((len(pr[part]), Z.shape[1] + 1))  # [consistent values, consistent prediction]
            np.subtract(Z[part], delta, out=inputs[:, :-1])
            inputs[:, -1] = pr[part]
            dle_sq[part] = np.mean([np.maximum(m[0].predict(inputs), 0.0) for m in self.loss_models], axis=0)
            dle_ab[part] = np.mean([np.maximum(m[1].predict(inputs), 0.0) for m in self.loss_models], axis=0)
        return dle_sq, dle_ab

    # --- use ------------------------------------------------------------------------------------------

    def _prepare(self, current: pd.DataFrame, rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The window's standardised features ``Z`` (missing values imputed), predictions, which records lie outside
        the reference's support, and the count of missing feature values; of the records ``rows`` (a boolean mask)
        when given. ``Z`` is the only float matrix of records x features made: filled a column at a time from the frame
        (no copy of the frame or of its columns), then standardised in place."""
        if not self.fitted_:
            raise RuntimeError("LossEstimator is not fitted; call fit(reference, features, window_size=...) first")
        if not isinstance(current, pd.DataFrame):
            raise TypeError(f"current must be a pandas DataFrame, got {type(current).__name__}")
        _check_columns(current, self.features + [self.prediction], "current window")
        n = len(current) if rows is None else int(np.count_nonzero(rows))
        if n == 0:
            raise ValueError("current window: no records; an empty window has no estimate")
        Z = np.empty((n, len(self.features)))
        outside = np.zeros(n, dtype=bool)
        gone = np.zeros(n, dtype=bool)
        infinite, bad_columns = np.zeros(n, dtype=bool), []
        missing = 0
        for j, name in enumerate(self.features):
            try:
                values = current[name].to_numpy(dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"current window: non-numeric values in {self.features[:5]}... ({exc})") from None
            if rows is not None:
                values = values[rows]
            bad = np.isinf(values)
            if bad.any():
                infinite |= bad
                bad_columns.append(name)
            nan = np.isnan(values)
            missing += int(nan.sum())
            gone |= nan
            outside |= (values < self.x_min[j]) | (values > self.x_max[j])
            Z[:, j] = values
        if bad_columns:
            raise ValueError(f"current window: {int(infinite.sum())} record(s) with missing or infinite values "
                             f"in column(s) {bad_columns[:5]}{'...' if len(bad_columns) > 5 else ''}")
        try:
            p = current[self.prediction].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"current window: non-numeric values in {[self.prediction]}... ({exc})") from None
        if rows is not None:
            p = p[rows]
        if not np.isfinite(p).all():
            raise ValueError(f"current window: {int((~np.isfinite(p)).sum())} record(s) with missing or infinite "
                             f"values in column(s) {[self.prediction]}")
        Z -= self.mu
        Z /= self.sd
        if gone.any():  # imputed values count as the record's values for the support, too
            at = np.flatnonzero(gone)
            was_missing = np.isnan(Z[at])
            self._impute(Z)
            filled = np.where(was_missing, self.mu + self.sd * Z[at], np.nan)
            outside[at] |= ((filled < self.x_min) | (filled > self.x_max)).any(axis=1)
        return Z, p, outside, missing

    def _impute(self, Z: np.ndarray) -> np.ndarray:
        """Missing standardised values replaced, in place, by their expectation given the record's other values
        under the reference's Gaussian model (precision matrix Theta: z_M = -Theta_MM^-1 Theta_MO z_O); such a value
        agrees with the others, so it neither adds error nor looks like a broken feature. A record with no value
        left gets the reference mean."""
        gone = np.isnan(Z)
        if not gone.any():
            return Z
        patterns, which = np.unique(gone[gone.any(axis=1)], axis=0, return_inverse=True)
        rows = np.flatnonzero(gone.any(axis=1))
        del gone
        for k, pattern in enumerate(patterns):
            r, m = rows[which.ravel() == k], np.flatnonzero(pattern)
            o = np.flatnonzero(~pattern)
            if len(o) == 0:
                Z[np.ix_(r, m)] = 0.0
                continue
            Z[np.ix_(r, m)] = -np.linalg.solve(self.theta[np.ix_(m, m)], self.theta[np.ix_(m, o)] @ Z[np.ix_(r, o)].T).T
        return Z

    def _run(self, current: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        with threadpool_limits(1):  # a window is small: threads cost more than they save
            return self._run_window(current, rows)

    def _run_window(self, current: pd.DataFrame, rows: np.ndarray | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
        Z, p, outside, missing = self._prepare(current, rows)
        rng = np.random.default_rng([self.seed, len(p)])
        parts = self._window(Z, p, None, None, rng, self.n_boot)
        mse = max(self.mse_factor * parts["dle_mse"] + parts["correction_mse"], 1e-9)
        extra = (self.reference_rel_se * self.mse_factor * parts["dle_mse"]) ** 2
        lo, hi = self._bounds(np.array([mse]), np.array([parts["var_mse"]]), np.array([parts["correction_mse"]]),
                              self.var_scale, self.model_error, extra)
        out = {"estimated_rmse": math.sqrt(mse),
               "estimated_rmse_low": float(lo[0]),
               "estimated_rmse_high": float(hi[0]),
               "estimated_mae": max(self.mae_factor * parts["dle_mae"] + parts["correction_mae"], 0.0),
               "outside_support": float(outside.mean()),
               "records": int(len(p)),
               "missing_values": missing}
        return out, parts

    def estimate(self, current: pd.DataFrame, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Estimated RMSE (with its interval) and MAE of one window, from its features and served predictions.

        Parameters
        ----------
        current : pd.DataFrame
            The window's records: the fitted features and the prediction column (other columns are ignored).
        rows : np.ndarray | None
            A boolean mask of the records to estimate from (``current.loc[rows]`` without copying the frame); all
            when None.

        Returns
        -------
        dict[str, Any]
            ``estimated_rmse``, ``estimated_rmse_low``, ``estimated_rmse_high`` (interval for the realized RMSE at
            ``level``), ``estimated_mae``, ``outside_support`` (share of records with any feature outside the
            reference's [min, max]; estimates are weaker there), ``records`` and ``missing_values`` (feature
            values given as NaN: each is replaced by its expectation given the record's other features).

        Raises
        ------
        ValueError
            Naming missing columns, infinite feature values or predictions that are not finite, or for an empty
            window.
        """
        return self._run(current, rows)[0]

    def diagnose(self, current: pd.DataFrame) -> dict[str, Any]:
        """What drives a window's estimate: inconsistent features, the year mix, the consistent-prediction gap.

        Parameters
        ----------
        current : pd.DataFrame
            As for :meth:`estimate`.

        Returns
        -------
        dict[str, Any]
            The estimate, plus ``inconsistent_features`` (feature, shift in feature units and in reference SDs,
            R^2 from the others), ``year_mix`` (bin edges, reference and window shares), ``consistent_gap`` (mean
            consistent minus served prediction), ``dle_rmse`` (loss model alone, calibrated) and
            ``correction_mse`` (what the mix and gap add to the squared error).
        """
        out, parts = self._run(current)
        delta = parts["delta"]
        out["inconsistent_features"] = [{"feature": self.features[j], "shift": float(delta[j] * self.sd[j]),
                                         "shift_sd": float(delta[j]), "r2": float(self.r2[j])}
                                        for j in parts["inconsistent"]]
        out["year_mix"] = {"bin_edges": [float(e) for e in self.bin_edges],
                           "reference": [float(v) for v in self.pi_ref],
                           "window": [float(v) for v in self.pi_ref * parts["weights"] / (self.pi_ref * parts["weights"]).sum()]}
        out["consistent_gap"] = parts["gap"]
        out["dle_rmse"] = math.sqrt(max(self.mse_factor * parts["dle_mse"], 0.0))
        out["correction_mse"] = parts["correction_mse"]
        return out

    def summary(self) -> dict[str, Any]:
        """Fit facts for a report: reference rows, window size, calibration on reference chunks, fit time."""
        if not self.fitted_:
            raise RuntimeError("LossEstimator is not fitted")
        return {"reference_rows": self.reference_rows, "window_size": self.window_size, "features": len(self.features),
                "level": self.level, "mse_factor": self.mse_factor, "mae_factor": self.mae_factor,
                "var_scale": self.var_scale, "model_error": self.model_error, "surrogate_r2": self.surrogate_r2,
                "checkable_features": int((self.r2 >= self.min_r2).sum()), "calibration": dict(self.calibration),
                "fit_seconds": self.fit_seconds}

    # --- storage --------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted estimator as bytes (joblib, compressed), to store beside the baseline."""
        if not self.fitted_:
            raise RuntimeError("LossEstimator is not fitted; nothing to store")
        buf = io.BytesIO()
        joblib.dump({"format": FORMAT_VERSION, "state": self.__dict__}, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LossEstimator:
        """Load an estimator stored by :meth:`to_bytes`.

        Raises
        ------
        ValueError
            If the bytes are not a stored estimator of a known format.
        """
        try:
            payload = joblib.load(io.BytesIO(blob))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"not a stored LossEstimator ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"not a stored LossEstimator of format {FORMAT_VERSION}")
        est = cls.__new__(cls)
        est.__dict__.update(payload["state"])
        return est
