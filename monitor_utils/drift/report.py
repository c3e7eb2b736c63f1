"""DriftReport, the result of detect_drift, and the dataset-level verdict that assembles it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .profile import Baseline


@dataclass(eq=False, repr=False)
class DriftReport:
    """Result of :func:`detect_drift`; ``bool(report)`` is ``report.drift_detected``.

    Attributes
    ----------
    drift_detected
        Dataset-level verdict under ``options['dataset_rule']``.
    table
        One row per feature (index = feature name): ``test`` ("ks" | "chi2"), ``statistic``
        (KS D, or the chi-square statistic), ``p_value``, ``p_adjusted``, ``psi``,
        ``wasserstein`` (Wasserstein-1 divided by the reference spread), ``effect_size`` (name
        of the gated effect), ``effect``, ``drifted``, ``nan_share_reference``,
        ``nan_share_current``, ``n_reference``/``n_current`` (non-missing values), ``role``,
        ``tested`` and ``reason``.
    n_reference, n_current
        Rows of the reference and current data.
    drifted_features
        Drifted features, largest ``effect`` first.
    drift_share
        Drifted / tested features.
    options
        Resolved options including ``threshold``.
    """

    drift_detected: bool
    table: pd.DataFrame
    n_reference: int
    n_current: int
    drifted_features: list[str]
    drift_share: float
    options: dict[str, Any]

    def __bool__(self) -> bool:
        return bool(self.drift_detected)

    def __repr__(self) -> str:
        return (
            f"DriftReport(drift_detected={self.drift_detected}, drifted={len(self.drifted_features)}/"
            f"{int(self.table['tested'].sum())} features, n_current={self.n_current})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with one entry per feature under ``"features"`` (NaN -> None)."""
        rows = []
        for name, row in self.table.iterrows():
            entry: dict[str, Any] = {"feature": str(name)}
            for col, val in row.items():
                if isinstance(val, (bool, np.bool_)):
                    entry[col] = bool(val)
                elif isinstance(val, (int, np.integer)):
                    entry[col] = int(val)
                elif isinstance(val, (float, np.floating)):
                    entry[col] = None if math.isnan(val) else (str(val) if math.isinf(val) else float(val))
                else:
                    entry[col] = val
            rows.append(entry)
        return {
            "drift_detected": bool(self.drift_detected),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "drift_share": float(self.drift_share),
            "drifted_features": list(self.drifted_features),
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()},
            "features": rows,
        }


_TABLE_COLUMNS = [
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "psi",
    "wasserstein",
    "effect_size",
    "effect",
    "drifted",
    "nan_share_reference",
    "nan_share_current",
    "n_reference",
    "n_current",
    "role",
    "tested",
    "reason",
]


def assemble_report(
    table: pd.DataFrame, baseline: Baseline, current: pd.DataFrame, opts: dict[str, Any]
) -> DriftReport:
    """The DriftReport of a finished per-feature table: column order, drifted features and the dataset verdict."""
    table = table[_TABLE_COLUMNS].copy()
    table["drifted"] = table["drifted"].astype(bool)
    table["tested"] = table["tested"].astype(bool)
    tested_names = table.index[table["tested"]].tolist()
    drifted = table[table["drifted"]].sort_values("effect", ascending=False, kind="stable")
    drifted_names = drifted.index.tolist()
    detected, share = dataset_verdict(drifted_names, tested_names, opts, baseline.features)
    return DriftReport(
        drift_detected=bool(detected),
        table=table,
        n_reference=baseline.n_rows,
        n_current=int(current.shape[0]),
        drifted_features=drifted_names,
        drift_share=float(share),
        options=dict(opts),
    )


def dataset_verdict(
    drifted_names: list[str], tested_names: list[str], opts: dict[str, Any], known: Any
) -> tuple[bool, float]:
    """The dataset-level verdict under ``opts['dataset_rule']`` and the drift share (drifted / tested features).

    ``known`` holds the reference's feature names (``weights`` may name only those)."""
    n_tested = len(tested_names)
    share = len(drifted_names) / n_tested if n_tested else 0.0
    rule, level = opts["dataset_rule"], opts["dataset_threshold"]
    if rule == "count":
        detected = len(drifted_names) >= level
    elif rule == "share":
        detected = n_tested > 0 and share >= level
    else:
        weights = opts["weights"]
        unknown = [k for k in weights if k not in known]
        if unknown:
            raise ValueError(f"weights name feature(s) {unknown} not in the baseline; fix or remove them")
        missing = [c for c in tested_names if c not in weights]
        if missing:
            raise ValueError(
                f"weights lack tested feature(s) {missing}; give every tested feature a weight (0 to ignore it)"
            )
        total = sum(weights[c] for c in tested_names)
        if total <= 0:
            raise ValueError("weights of the tested features sum to 0; give at least one a positive weight")
        detected = sum(weights[c] for c in drifted_names) / total >= level
    return bool(detected), float(share)
