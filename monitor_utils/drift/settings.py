"""The suite's own drift settings as a run used them, stored beside Model Monitor's files (``monitor_utils_drift.json``)."""

from __future__ import annotations

from typing import Any, Mapping

from .options import DEFAULT_MIN_EFFECT, DEFAULT_MIN_EFFECT_CATEGORICAL, EFFECT_SIZES

#: File name beside ``statistics.json`` and ``constraints.json``.
SETTINGS_FILE = "monitor_utils_drift.json"


def detector_options(params: Mapping[str, Any]) -> dict:
    """:func:`detect_drift` keyword options from the ``drift`` params section (``alpha``, ``correction``,
    ``effect_size``, ``min_effect`` (0: the default gate), ``dataset_rule``, ``dataset_threshold``)."""
    opts = {"threshold": params["alpha"], "correction": params["correction"], "effect_size": params["effect_size"],
            "dataset_rule": params["dataset_rule"],
            "dataset_threshold": max(1, int(round(params["dataset_threshold"]))) if params["dataset_rule"] == "count"
            else params["dataset_threshold"]}
    if params["min_effect"] > 0:
        opts["min_effect"] = params["min_effect"]
    return opts


def settings_document(options: Mapping[str, Any]) -> dict:
    """The drift checks' settings from :func:`detect_drift` options, with every default filled in.

    Parameters
    ----------
    options
        ``threshold`` (alpha) and the other :func:`detect_drift` options a stage runs with.

    Returns
    -------
    dict
        ``{"version": 1, "numeric_test": "ks", "categorical_test": "chi2", "alpha", "correction", "effect_size",
        "min_effect", "min_effect_categorical", "dataset_rule", "dataset_threshold"}``.
    """
    effect = options.get("effect_size", "wasserstein")
    if effect not in EFFECT_SIZES:
        raise ValueError(f"unknown effect_size {effect!r}; accepted: {list(EFFECT_SIZES)}")
    return {"version": 1, "numeric_test": "ks", "categorical_test": "chi2",
            "alpha": float(options["threshold"]),
            "correction": options.get("correction", "bh"),
            "effect_size": effect,
            "min_effect": float(options.get("min_effect", DEFAULT_MIN_EFFECT[effect])),
            "min_effect_categorical": float(options.get("min_effect_categorical", DEFAULT_MIN_EFFECT_CATEGORICAL)),
            "dataset_rule": options.get("dataset_rule", "count"),
            "dataset_threshold": options.get("dataset_threshold", 1)}
