"""detect_drift options: effect-size gates, accepted values and their validation."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np


#: Practical-size gates per effect size. All three are calibrated to the same event: a pure
#: location shift of about 0.045 standard deviations of a normal feature, i.e. between the
#: 0.02 SD shift that must *not* raise an alarm and the 0.1 SD shift that must (with 51,630
#: current rows both shifts are statistically significant, so only the gate separates them).
#: * ``wasserstein`` (Wasserstein-1 / reference std) equals the shift in SD units for a pure
#:   location shift of *any* shape: measured 0.020-0.026 for 0.02 SD and 0.099-0.103 for
#:   0.1 SD on normal, Student-t(3/5), lognormal, exponential, uniform, bimodal, rounded and
#:   integer features; same-distribution windows give 0.002-0.012. Hence 0.05, the default.
#: * ``ks``: D ~= shift * SD * density peak (0.40 normal, 0.64 Student-t(3), 1.4 lognormal),
#:   and on tied data D cannot tell 0.02 from 0.1 SD (both move values one lattice step).
#:   0.02 is right for normal-like features only.
#: * ``psi`` (decile PSI) ~= shift^2 * Fisher information: 0.0098 at 0.1 SD for a normal but
#:   0.40 for a lognormal; 0.002 is right for normal-like features only. The conventional
#:   PSI 0.1 "moderate shift" rule corresponds to ~0.3 SD of a normal feature.
DEFAULT_MIN_EFFECT: dict[str, float] = {"wasserstein": 0.05, "ks": 0.02, "psi": 0.002}

#: PSI gate for categorical / low-cardinality features (about a binary share moving 0.50 -> 0.52).
DEFAULT_MIN_EFFECT_CATEGORICAL = 0.002

_CORRECTIONS = ("bh", "bonferroni", "none")
EFFECT_SIZES = ("wasserstein", "psi", "ks")
_DATASET_RULES = ("count", "share", "weighted")
_DEFAULT_DATASET_THRESHOLD = {"count": 1, "share": 0.5, "weighted": 0.5}

_OPTION_NAMES = (
    "correction",
    "effect_size",
    "min_effect",
    "min_effect_categorical",
    "dataset_rule",
    "dataset_threshold",
    "weights",
    "columns",
    "n_bins",
    "categorical_max_unique",
    "prediction_column",
)
BUILD_OPTIONS = ("n_bins", "categorical_max_unique", "prediction_column")


def resolve_options(threshold: float, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate detect_drift options and fill in defaults."""
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"detect_drift() got unknown option(s) {unknown}; accepted options: {list(_OPTION_NAMES)}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not 0 < threshold < 1:
        raise ValueError(f"threshold is the significance level alpha and must be in (0, 1), got {threshold!r}")
    correction = options.get("correction", "bh")
    if correction not in _CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; accepted: {list(_CORRECTIONS)}")
    effect_size = options.get("effect_size", "wasserstein")
    if effect_size not in EFFECT_SIZES:
        raise ValueError(f"unknown effect_size {effect_size!r}; accepted: {list(EFFECT_SIZES)}")
    min_effect = _non_negative("min_effect", options.get("min_effect", DEFAULT_MIN_EFFECT[effect_size]))
    min_effect_cat = _non_negative(
        "min_effect_categorical", options.get("min_effect_categorical", DEFAULT_MIN_EFFECT_CATEGORICAL)
    )
    rule = options.get("dataset_rule", "count")
    if rule not in _DATASET_RULES:
        raise ValueError(f"unknown dataset_rule {rule!r}; accepted: {list(_DATASET_RULES)}")
    dataset_threshold = options.get("dataset_threshold", _DEFAULT_DATASET_THRESHOLD[rule])
    if rule == "count":
        if not (isinstance(dataset_threshold, (int, np.integer)) and not isinstance(dataset_threshold, bool)
                and dataset_threshold >= 1):
            raise ValueError(
                f"dataset_threshold for dataset_rule='count' is the number of drifted features needed, "
                f"an integer >= 1; got {dataset_threshold!r}"
            )
        dataset_threshold = int(dataset_threshold)
    else:
        if not (isinstance(dataset_threshold, (int, float, np.floating)) and 0 < dataset_threshold <= 1):
            raise ValueError(
                f"dataset_threshold for dataset_rule={rule!r} is a fraction in (0, 1]; got {dataset_threshold!r}"
            )
        dataset_threshold = float(dataset_threshold)
    weights = options.get("weights")
    if weights is not None and rule != "weighted":
        raise ValueError("weights are only used with dataset_rule='weighted'; pass dataset_rule='weighted' or drop them")
    if rule == "weighted":
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError("dataset_rule='weighted' needs weights={feature: importance, ...}")
        bad = [k for k, v in weights.items() if not (isinstance(v, (int, float, np.number)) and v >= 0)]
        if bad:
            raise ValueError(f"weights must be non-negative numbers; bad entries for {bad}")
        weights = {str(k): float(v) for k, v in weights.items()}
    columns = options.get("columns")
    if columns is not None:
        if isinstance(columns, str) or not isinstance(columns, Iterable):
            raise ValueError(f"columns must be a list of column names, got {columns!r}")
        columns = list(columns)
        if not columns:
            raise ValueError("columns is empty; pass at least one column name or None for all")
    return {
        "threshold": float(threshold),
        "correction": correction,
        "effect_size": effect_size,
        "min_effect": min_effect,
        "min_effect_categorical": min_effect_cat,
        "dataset_rule": rule,
        "dataset_threshold": dataset_threshold,
        "weights": weights,
        "columns": columns,
    }


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
