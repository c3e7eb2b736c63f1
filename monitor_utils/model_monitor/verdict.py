"""A window's drift verdict decided by Model Monitor's check alone (KLL CDF distance), shaped as the exact tests' report."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..drift.options import resolve_options
from ..drift.report import _TABLE_COLUMNS, DriftReport, dataset_verdict

#: The ``test`` of a row decided by :func:`kll_drift_report` (the exact tests write "ks" or "chi2").
KLL_TEST = "kll_cdf"
#: The stage record's ``reference`` when the suite's own baseline decided, and when a Model Monitor baseline did.
EXACT_REFERENCE = "exact tests against the suite's baseline"
KLL_REFERENCE = "Model Monitor baseline (KLL CDF distance)"


def kll_drift_report(table: pd.DataFrame, opts: dict[str, Any], n_reference: int, n_current: int,
                     prediction: str | None = None, missing_reference: dict[str, float] | None = None) -> DriftReport:
    """The :class:`DriftReport` of one window whose per-feature verdicts are Model Monitor's ``baseline_drift_check``.

    A feature drifts when its distance (:func:`model_monitor.baseline_drift`: the largest distance between the
    baseline's KLL CDF and the window's, ``Robust`` less the two-sample KS margin) exceeds its
    ``comparison_threshold``; the window drifts under the drift params' ``dataset_rule`` over those features (with
    the default ``count`` rule: at least ``dataset_threshold`` features, the prediction counted as the exact tests
    count it). ``statistic`` and ``effect`` are the distance (largest first in ``drifted_features``); the p-value,
    PSI and Wasserstein columns are NaN (a sketch gives none).

    Parameters
    ----------
    table : pd.DataFrame
        A :func:`model_monitor.baseline_drift` table (indexed by window column).
    opts : dict
        detect_drift options (:func:`drift.detector_options`); only ``dataset_rule``, ``dataset_threshold`` and
        ``weights`` decide here.
    n_reference, n_current : int
        Rows of the baseline (its ``item_count``) and of the window.
    prediction : str | None
        The window's model-output column (its ``role`` is "prediction").
    missing_reference : dict[str, float] | None
        Baseline feature -> share of its values missing in the baseline.

    Returns
    -------
    DriftReport
    """
    opts = resolve_options(opts["threshold"], {k: v for k, v in opts.items() if k != "threshold"})
    missing_reference = missing_reference or {}
    rows = []
    for col, r in table.iterrows():
        tested = not math.isnan(r["distance"])
        window_n = int(r["window_n"])
        reason = (r["description"] if r["drifted"] else
                  f"{r['method']} KLL CDF distance {r['distance']:.4f} <= comparison_threshold {r['threshold']:g}"
                  if tested else "not compared: no values in the baseline's sketch or in the window")
        rows.append({"test": KLL_TEST, "statistic": r["distance"], "p_value": math.nan, "p_adjusted": math.nan,
                     "psi": math.nan, "wasserstein": math.nan, "effect_size": f"linf_{str(r['method']).lower()}",
                     "effect": r["distance"], "drifted": bool(r["drifted"]),
                     "nan_share_reference": missing_reference.get(str(r["baseline_feature"]), math.nan),
                     "nan_share_current": 1 - window_n / n_current if n_current else math.nan,
                     "n_reference": int(r["baseline_n"]), "n_current": window_n,
                     "role": "prediction" if col == prediction else "feature", "tested": tested, "reason": reason})
    out = pd.DataFrame(rows, index=pd.Index([str(c) for c in table.index], name="feature"))[_TABLE_COLUMNS]
    drifted = out[out["drifted"]].sort_values("effect", ascending=False, kind="stable").index.tolist()
    tested = out.index[out["tested"]].tolist()
    detected, share = dataset_verdict(drifted, tested, opts, set(out.index))
    return DriftReport(drift_detected=detected, table=out, n_reference=int(n_reference), n_current=int(n_current),
                       drifted_features=drifted, drift_share=share, options=dict(opts))
