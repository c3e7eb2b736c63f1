"""SageMaker Model Monitor documents of a baseline: statistics.json and constraints.json."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .features import CategoricalFeature, Feature, NumericFeature
from .options import DEFAULT_MIN_EFFECT, DEFAULT_MIN_EFFECT_CATEGORICAL, EFFECT_SIZES


#: Quantiles written to :meth:`Baseline.to_statistics`.
STAT_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def statistics_document(features: Iterable[Feature], n_rows: int) -> dict:
    """Reference statistics in the layout of SageMaker Model Monitor's ``statistics.json``.

    Parameters
    ----------
    features
        The baseline's column summaries, in column order.
    n_rows
        Rows of the reference data.

    Returns
    -------
    dict
        ``{"version", "dataset": {"item_count"}, "features": [...]}``; each feature has
        ``name``, ``inferred_type`` and either ``numerical_statistics`` (``common``
        {``num_present``, ``num_missing``}, ``mean``, ``sum``, ``std_dev``, ``min``, ``max``,
        ``distribution`` {``quantiles``, ``psi_bins``}) or ``string_statistics``
        (``common``, ``distinct_count``, ``distribution.categorical.buckets``). JSON-able
        (NaN written as ``None``).
    """
    out = []
    for feat in features:
        common = {"num_present": feat.n_present, "num_missing": feat.n_missing}
        entry: dict[str, Any] = {
            "name": feat.name,
            "inferred_type": feat.inferred_type,
            "role": feat.role,
            "drift_test": "ks" if feat.kind == "numeric" else "chi2",
        }
        if isinstance(feat, NumericFeature):
            qs = (
                np.quantile(feat.sorted_values, STAT_QUANTILES)
                if feat.n_present
                else np.full(len(STAT_QUANTILES), np.nan)
            )
            entry["numerical_statistics"] = {
                "common": common,
                "mean": _num(feat.mean),
                "sum": _num(np.sum(feat.sorted_values)),
                "std_dev": _num(feat.std),
                "min": _num(feat.minimum),
                "max": _num(feat.maximum),
                "distribution": {
                    "quantiles": [{"quantile": q, "value": _num(v)} for q, v in zip(STAT_QUANTILES, qs)],
                    "psi_bins": {
                        "edges": [_num(e) for e in feat.psi_edges],
                        "shares": [_num(s) for s in feat.psi_shares],
                    },
                },
            }
        else:
            buckets = [{"value": _json_cat(c), "count": int(n)} for c, n in zip(feat.categories, feat.counts)]
            key = "numerical_statistics" if feat.value_type == "numeric" else "string_statistics"
            stats_entry: dict[str, Any] = {
                "common": common,
                "distinct_count": int(feat.categories.size),
                "distribution": {"categorical": {"buckets": buckets}},
            }
            if feat.value_type == "numeric":
                stats_entry.update(
                    mean=_num(feat.mean),
                    std_dev=_num(feat.std),
                    min=_num(feat.minimum),
                    max=_num(feat.maximum),
                )
            entry[key] = stats_entry
        out.append(entry)
    return {"version": 0.0, "dataset": {"item_count": n_rows}, "features": out}


def constraints_document(
    features: Iterable[Feature],
    *,
    threshold: float,
    correction: str,
    effect_size: str,
) -> dict:
    """Constraints in the layout of SageMaker Model Monitor's ``constraints.json``.

    Parameters
    ----------
    features
        The baseline's column summaries, in column order.
    threshold, correction, effect_size
        Drift settings recorded under ``monitoring_config.drift_detection``.

    Returns
    -------
    dict
        ``{"version", "features": [{name, inferred_type, completeness, num_constraints |
        string_constraints}], "monitoring_config": {...}}``.
    """
    if effect_size not in EFFECT_SIZES:
        raise ValueError(f"unknown effect_size {effect_size!r}; accepted: {list(EFFECT_SIZES)}")
    feats = []
    for feat in features:
        entry: dict[str, Any] = {
            "name": feat.name,
            "inferred_type": feat.inferred_type,
            "completeness": _num(feat.n_present / feat.n_total if feat.n_total else math.nan),
        }
        if isinstance(feat, CategoricalFeature) and feat.value_type == "string":
            entry["string_constraints"] = {"domains": [_json_cat(c) for c in feat.categories]}
        else:
            entry["num_constraints"] = {"is_non_negative": bool(feat.minimum >= 0)}
        feats.append(entry)
    return {
        "version": 0.0,
        "features": feats,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": DEFAULT_MIN_EFFECT["ks"],
                "comparison_method": "Robust",
            },
            "drift_detection": {
                "numeric_test": "ks",
                "categorical_test": "chi2",
                "alpha": threshold,
                "correction": correction,
                "effect_size": effect_size,
                "min_effect": DEFAULT_MIN_EFFECT[effect_size],
                "min_effect_categorical": DEFAULT_MIN_EFFECT_CATEGORICAL,
            },
        },
    }


def _num(x: float) -> float | str | None:
    """JSON-able float: NaN -> None, +-inf -> "inf" / "-inf"."""
    x = float(x)
    if math.isnan(x):
        return None
    return str(x) if math.isinf(x) else x


def _json_cat(c: Any) -> Any:
    return _num(c) if isinstance(c, (float, np.floating)) else str(c)
