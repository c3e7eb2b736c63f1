"""Model Monitor's data-quality ``constraints.json``: suggested from statistics as the analyzer does, and read back
in both ``distribution_constraints`` layouts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .jackson import json_float, read_float
from .statistics import INFERRED_TYPES, NUMERIC_TYPES

#: The analyzer's defaults (``monitoring_config`` of every real baseline).
DEFAULT_COMPARISON_THRESHOLD = 0.1
DEFAULT_COMPARISON_METHOD = "Robust"
COMPARISON_METHODS = ("Robust", "Simple")
#: String features with at most this many distinct values get ``string_constraints.domains`` (the analyzer's
#: docs say "for small cardinality" without a number; this is the suite's choice).
DOMAIN_MAX_DISTINCT = 20


@dataclass
class FeatureConstraints:
    """One feature of a ``constraints.json``; absent fields are None.

    ``overrides`` is the feature's ``monitoring_config_overrides`` (or ``monitoringConfigOverrides``) as written.
    """

    name: str
    inferred_type: str
    completeness: float | None = None
    is_non_negative: bool | None = None
    domains: list[str] | None = None
    overrides: dict = field(default_factory=dict)


@dataclass
class MonitoringConfig:
    """``monitoring_config`` with both ``distribution_constraints`` layouts normalised.

    The analyzer's layout is ``{perform_comparison: "Enabled", comparison_threshold, comparison_method}``; the
    older one (SDK test fixtures) ``{enable_comparisons: true, min_domain_mass, comparison_threshold}``, which
    names no method: it reads as the analyzer's default, ``Robust``.
    """

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    perform_comparison: bool = True
    comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD
    comparison_method: str = DEFAULT_COMPARISON_METHOD
    min_domain_mass: float | None = None


@dataclass
class Constraints:
    """A whole ``constraints.json``: features in file order and the monitoring config."""

    features: dict[str, FeatureConstraints]
    monitoring_config: MonitoringConfig
    version: float = 0.0

    def comparison_threshold(self, feature: str) -> float:
        """The drift threshold of ``feature``: its override's ``distribution_constraints.comparison_threshold``
        when it has one, else the file's."""
        over = self.features[feature].overrides.get("distribution_constraints", {}) if feature in self.features else {}
        if "comparison_threshold" in over:
            return read_float(over["comparison_threshold"], f"feature {feature!r} override comparison_threshold")
        return self.monitoring_config.comparison_threshold


# ---------------------------------------------------------------------------------------------- writing
def constraints_document(statistics: dict, *, comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD,
                         comparison_method: str = DEFAULT_COMPARISON_METHOD, datatype_check_threshold: float = 1.0,
                         domain_content_threshold: float = 1.0) -> dict:
    """Constraints suggested from a ``statistics.json`` document, as the analyzer writes them.

    Parameters
    ----------
    statistics : dict
        A document from :func:`~monitor_utils.model_monitor.statistics.statistics_document`.
    comparison_threshold, comparison_method, datatype_check_threshold, domain_content_threshold
        ``monitoring_config`` values (the analyzer's defaults: 0.1, ``Robust``, 1.0, 1.0).

    Returns
    -------
    dict
        ``{"version": 0.0, "features": [{name, inferred_type, completeness, num_constraints {is_non_negative}
        | string_constraints {domains}}], "monitoring_config": {evaluate_constraints, emit_metrics,
        datatype_check_threshold, domain_content_threshold, distribution_constraints {perform_comparison,
        comparison_threshold, comparison_method}}}``.
    """
    if comparison_method not in COMPARISON_METHODS:
        raise ValueError(f"comparison_method {comparison_method!r} is not one of {list(COMPARISON_METHODS)}")
    features = []
    for f in statistics["features"]:
        stats = f.get("numerical_statistics") or f.get("string_statistics")
        present, missing = stats["common"]["num_present"], stats["common"]["num_missing"]
        entry: dict[str, Any] = {"name": f["name"], "inferred_type": f["inferred_type"],
                                 "completeness": json_float(present / (present + missing) if present + missing else math.nan)}
        if f["inferred_type"] in NUMERIC_TYPES:
            low = read_float(stats["min"], f"feature {f['name']!r} min")
            entry["num_constraints"] = {"is_non_negative": bool(low >= 0)}
        else:
            buckets = stats["distribution"]["categorical"]["buckets"]
            if len(buckets) <= DOMAIN_MAX_DISTINCT:
                entry["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        features.append(entry)
    return {"version": 0.0, "features": features, "monitoring_config": {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": float(datatype_check_threshold),
        "domain_content_threshold": float(domain_content_threshold),
        "distribution_constraints": {"perform_comparison": "Enabled",
                                     "comparison_threshold": float(comparison_threshold),
                                     "comparison_method": comparison_method}}}


# ---------------------------------------------------------------------------------------------- reading
def read_constraints(doc: Any, where: str = "constraints.json") -> Constraints:
    """A ``constraints.json`` document (parsed JSON) as :class:`Constraints`; ``where`` names the file in errors."""
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise ValueError(f"{where}: not a Model Monitor constraints file (expected an object with a 'features' list)")
    features: dict[str, FeatureConstraints] = {}
    for i, f in enumerate(doc["features"]):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise ValueError(f"{where}: features[{i}] has no name")
        at = f"{where}: feature {f['name']!r}"
        if f.get("inferred_type") not in INFERRED_TYPES:
            raise ValueError(f"{at}: inferred_type {f.get('inferred_type')!r} is not one of {list(INFERRED_TYPES)}")
        num = f.get("num_constraints") or {}
        string = f.get("string_constraints") or {}
        overrides = f.get("monitoring_config_overrides") or f.get("monitoringConfigOverrides") \
            or string.get("monitoring_config_overrides") or num.get("monitoring_config_overrides") or {}
        domains = string.get("domains")
        features[f["name"]] = FeatureConstraints(
            name=f["name"], inferred_type=f["inferred_type"],
            completeness=None if "completeness" not in f else read_float(f["completeness"], at + ".completeness"),
            is_non_negative=None if "is_non_negative" not in num else _flag(num["is_non_negative"], at + ".is_non_negative"),
            domains=None if domains is None else [str(d) for d in domains], overrides=dict(overrides))
    return Constraints(features, _read_config(doc.get("monitoring_config") or {}, where + ": monitoring_config"),
                       float(doc.get("version", 0.0)))


def _read_config(cfg: dict, at: str) -> MonitoringConfig:
    out = MonitoringConfig()
    for key in ("evaluate_constraints", "emit_metrics"):
        if key in cfg:
            setattr(out, key, _flag(cfg[key], f"{at}.{key}"))
    for key in ("datatype_check_threshold", "domain_content_threshold"):
        if key in cfg:
            setattr(out, key, read_float(cfg[key], f"{at}.{key}"))
    dist = cfg.get("distribution_constraints") or {}
    at += ".distribution_constraints"
    if "perform_comparison" in dist:
        out.perform_comparison = _flag(dist["perform_comparison"], at + ".perform_comparison")
    elif "enable_comparisons" in dist:
        out.perform_comparison = _flag(dist["enable_comparisons"], at + ".enable_comparisons")
    if "comparison_threshold" in dist:
        out.comparison_threshold = read_float(dist["comparison_threshold"], at + ".comparison_threshold")
    if "min_domain_mass" in dist:
        out.min_domain_mass = read_float(dist["min_domain_mass"], at + ".min_domain_mass")
    method = dist.get("comparison_method", dist.get("comparion_method", DEFAULT_COMPARISON_METHOD))
    if method not in COMPARISON_METHODS:
        raise ValueError(f"{at}.comparison_method {method!r} is not one of {list(COMPARISON_METHODS)}")
    out.comparison_method = method
    return out


def _flag(value: Any, at: str) -> bool:
    """``"Enabled"``/``"Disabled"`` or a boolean."""
    if isinstance(value, bool):
        return value
    if value in ("Enabled", "Disabled"):
        return value == "Enabled"
    raise ValueError(f"{at}: expected \"Enabled\", \"Disabled\" or a boolean, got {value!r}")
