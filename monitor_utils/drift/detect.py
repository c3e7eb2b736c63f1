"""detect_drift: per-feature tests against a baseline, multiple-testing correction and effect-size gates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .build import build_baseline
from .columns import as_float, column_kind
from .corrections import benjamini_hochberg, bonferroni
from .feature_tests import compare_categorical, compare_numeric
from .features import NumericFeature
from .ks import ks_pvalues
from .options import BUILD_OPTIONS, resolve_options
from .profile import Baseline
from .report import DriftReport, assemble_report


def detect_drift(
    reference_data: pd.DataFrame | Baseline,
    current_data: pd.DataFrame,
    threshold: float = 0.05,
    **options: Any,
) -> DriftReport:
    """Per-feature two-sample tests with multiple-testing control and a practical-size gate.

    A feature drifts when its corrected p-value is below ``threshold`` AND its effect size
    reaches ``min_effect``: with 51,630 current rows even a 0.02 SD shift is significant, so
    significance alone would flag harmless noise. Numeric features use the two-sample
    Kolmogorov-Smirnov test (statistic and p-value identical to ``scipy.stats.ks_2samp``);
    categorical / low-cardinality features use a chi-square homogeneity test with PSI as
    effect. Missing values are excluded from the tests and their share reported.

    Parameters
    ----------
    reference_data
        Reference DataFrame, or a :class:`Baseline` from :func:`build_baseline` (fast path:
        nothing about the reference is recomputed).
    current_data
        Current window with the same columns.
    threshold
        Significance level alpha, applied to the corrected p-values (name and meaning kept
        from the original ``detect_drift(reference, current, threshold=0.05)``).
    **options
        ``correction`` ("bh" Benjamini-Hochberg | "bonferroni" | "none"; default "bh"),
        ``effect_size`` ("wasserstein" | "psi" | "ks"; default "wasserstein"), ``min_effect``
        (default from :data:`DEFAULT_MIN_EFFECT`), ``min_effect_categorical`` (PSI gate for
        chi-square features, default 0.002), ``dataset_rule`` ("count" | "share" |
        "weighted"; default "count"), ``dataset_threshold`` (count: features needed,
        default 1; share / weighted: fraction, default 0.5), ``weights`` ({feature:
        importance} for "weighted"), ``columns`` (subset to test; other columns are then
        ignored), and when ``reference_data`` is a DataFrame the :func:`build_baseline`
        arguments ``n_bins``, ``categorical_max_unique``, ``prediction_column``.

    Returns
    -------
    DriftReport

    Notes
    -----
    ``wasserstein`` is the Wasserstein-1 distance divided by the reference standard
    deviation (IQR/1.349 when the std is not finite, e.g. with infinite values); for a pure
    location shift it equals the shift in SD units. It is computed from per-cell ECDF
    integrals on the baseline's value grid (tails exactly): exact up to rounding when
    ``F_ref - F_cur`` keeps its sign inside every grid cell, otherwise slightly low (never
    high); measured within 4e-5 SD of ``scipy.stats.wasserstein_distance`` on MSD-shaped
    data, against a gate of 0.05.
    """
    opts = resolve_options(threshold, options)
    if isinstance(reference_data, Baseline):
        baseline = reference_data
        for key in BUILD_OPTIONS:
            if key in options and options[key] != baseline.settings.get(key):
                raise ValueError(
                    f"option {key}={options[key]!r} only applies when reference_data is a DataFrame; "
                    f"this baseline was built with {key}={baseline.settings.get(key)!r}"
                )
    elif isinstance(reference_data, pd.DataFrame):
        baseline = build_baseline(
            reference_data,
            n_bins=options.get("n_bins", 10),
            categorical_max_unique=options.get("categorical_max_unique", 20),
            prediction_column=options.get("prediction_column"),
        )
    else:
        raise TypeError(
            f"reference_data must be a pandas DataFrame or a Baseline, got {type(reference_data).__name__}"
        )
    if not isinstance(current_data, pd.DataFrame):
        raise TypeError(f"current_data must be a pandas DataFrame, got {type(current_data).__name__}")
    if current_data.shape[0] == 0:
        raise ValueError("current_data has no rows; nothing to compare with the baseline")
    names = _check_columns(baseline, current_data, opts["columns"])

    rows = []
    for name in names:
        feat = baseline.features[name]
        series = _current_column(current_data, name)
        if isinstance(feat, NumericFeature):
            if column_kind(series, name) != "numeric":
                raise ValueError(
                    f"column {name!r} is numeric in the baseline but has dtype {series.dtype} in the current "
                    f"data; convert it with pd.to_numeric(..., errors='coerce')"
                )
            row = compare_numeric(feat, as_float(series, name, "current"))
        else:
            row = compare_categorical(feat, series)
        row["nan_share_reference"] = feat.n_missing / feat.n_total if feat.n_total else math.nan
        row["role"] = feat.role
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(names, name="feature"))

    ks_rows = (table["test"] == "ks") & table["tested"] & table["p_value"].isna()  # the large samples
    if ks_rows.any():
        table.loc[ks_rows, "p_value"] = ks_pvalues(
            table.loc[ks_rows, "statistic"].to_numpy(),
            table.loc[ks_rows, "n_reference"].to_numpy(),
            table.loc[ks_rows, "n_current"].to_numpy(),
        )
    _apply_verdicts(table, opts)
    return assemble_report(table, baseline, current_data, opts)


def _check_columns(baseline: Baseline, current: pd.DataFrame, columns: list[str] | None) -> list[str]:
    """Names to test; ValueError naming missing/extra columns."""
    cur_cols = [str(c) for c in current.columns]
    dupes = sorted({c for c in cur_cols if cur_cols.count(c) > 1})
    if dupes:
        raise ValueError(f"current data has duplicate column(s) {dupes}; rename them")
    if columns is None:
        missing = [c for c in baseline.feature_names if c not in cur_cols]
        extra = [c for c in cur_cols if c not in baseline.features]
        problems = []
        if missing:
            problems.append(
                f"current data lacks column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(c) for c in missing)} present in the baseline"
            )
        if extra:
            problems.append(
                f"current data has column{'s' if len(extra) > 1 else ''} "
                f"{', '.join(repr(c) for c in extra)} not present in the baseline"
            )
        if problems:
            raise ValueError(
                "; ".join(problems)
                + "; pass columns=[...] to test a subset, or fix the data / rebuild the baseline"
            )
        return baseline.feature_names
    columns = [str(c) for c in columns]
    unknown = [c for c in columns if c not in baseline.features]
    if unknown:
        raise ValueError(
            f"columns {unknown} are not in the baseline; baseline features: {baseline.feature_names}"
        )
    missing = [c for c in columns if c not in cur_cols]
    if missing:
        raise ValueError(
            f"current data lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} present in the baseline; add it or drop it from columns"
        )
    return list(dict.fromkeys(columns))


def _current_column(current: pd.DataFrame, name: str) -> pd.Series:
    if name in current.columns:
        return current[name]
    for col in current.columns:  # non-string labels were stored as str(label)
        if str(col) == name:
            return current[col]
    raise KeyError(name)  # pragma: no cover - guarded by _check_columns


def _fmt(x: float) -> str:
    return f"{x:.2g}" if x != 0 else "0"


def _apply_verdicts(table: pd.DataFrame, opts: dict[str, Any]) -> None:
    """Adjust p-values, pick/gate effects and write ``drifted`` and ``reason`` in place."""
    tested = table["tested"].to_numpy(dtype=bool)
    p = table["p_value"].to_numpy(dtype=np.float64)
    p_adj = np.full(p.shape, np.nan)
    if opts["correction"] == "bh":
        p_adj[tested] = benjamini_hochberg(p[tested])
    elif opts["correction"] == "bonferroni":
        p_adj[tested] = bonferroni(p[tested])
    else:
        p_adj[tested] = p[tested]
    table["p_adjusted"] = p_adj

    is_ks = (table["test"] == "ks").to_numpy()
    numeric_effect = {"wasserstein": "wasserstein", "psi": "psi", "ks": "statistic"}[opts["effect_size"]]
    effect = np.where(is_ks, table[numeric_effect].to_numpy(dtype=np.float64), table["psi"].to_numpy(dtype=np.float64))
    effect_name = np.where(is_ks, opts["effect_size"], "psi")
    gate = np.where(is_ks, opts["min_effect"], opts["min_effect_categorical"])
    table["effect_size"] = effect_name
    table["effect"] = np.where(tested, effect, np.nan)
    alpha = opts["threshold"]
    significant = tested & (p_adj < alpha)
    with np.errstate(invalid="ignore"):
        large = effect >= gate
    table["drifted"] = significant & large

    reasons = table["reason"].to_numpy(dtype=object).copy()
    for i in np.flatnonzero(tested):
        pa = f"p_adj={_fmt(p_adj[i])}"
        eff = f"{effect_name[i]}={effect[i]:.3g}"
        if not significant[i]:
            reasons[i] = f"{pa} >= {alpha:g}: no significant change"
        elif large[i]:
            reasons[i] = f"{pa} < {alpha:g} and {eff} >= {gate[i]:g}"
        elif math.isnan(effect[i]):
            reasons[i] = f"{pa} < {alpha:g} but {eff} is undefined (non-finite values)"
        else:
            reasons[i] = f"{pa} < {alpha:g} but {eff} < {gate[i]:g}: significant yet too small to matter"
    table["reason"] = reasons
