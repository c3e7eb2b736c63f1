"""Feature-attribution drift as SageMaker Clarify's monitor checks it: global attributions (mean |SHAP|) of the
served model on the baseline and on a window, and the nDCG of the window's ranking against the baseline's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: Clarify's default: a window whose nDCG is below this violates ``feature_attribution_drift_check``.
DEFAULT_NDCG_MIN = 0.9
#: Clarify's label placeholder and method name in analysis.json and its violations.
LABEL = "label0"
METHOD = "shap"
#: Rows a non-linear model's permutation importance is computed on (a sample of the window, for time).
PERMUTATION_ROWS = 1000


@dataclass
class Explainer:
    """What attributes a served model's predictions to its features.

    ``coef`` holds the input-space coefficients when the model is affine in its inputs (then a SHAP value is exact:
    ``coef_j * (x_j - background_mean_j)``); otherwise ``model`` is kept and attributions are scikit-learn's
    permutation importances against the model's own predictions.
    """

    features: list[str]
    background_mean: np.ndarray
    coef: np.ndarray | None = None
    model: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        """``linear_shap`` (exact) or ``permutation_importance``."""
        return "linear_shap" if self.coef is not None else "permutation_importance"


def affine_coefficients(predict, x0: np.ndarray, scale: np.ndarray, rtol: float = 1e-6,
                        probes: int = 8, seed: int = 0) -> np.ndarray | None:
    """Input-space coefficients of ``predict`` when it is affine in its inputs (a scaler and a linear model, say),
    found by unit steps from ``x0`` of size ``scale`` and confirmed on random points; None when it is not affine."""
    p = x0.size
    steps = np.vstack([x0, x0 + np.diag(scale)])
    out = np.asarray(predict(steps), dtype=float)
    coef = (out[1:] - out[0]) / scale
    rng = np.random.default_rng(seed)
    points = x0 + rng.standard_normal((probes, p)) * scale
    expected = out[0] + (points - x0) @ coef
    got = np.asarray(predict(points), dtype=float)
    tolerance = rtol * max(1.0, float(np.max(np.abs(got))))
    return coef if np.all(np.abs(got - expected) <= tolerance) else None


def make_explainer(model: Any, reference: pd.DataFrame, features: Sequence[str]) -> Explainer:
    """An :class:`Explainer` of ``model`` (a scikit-learn estimator or pipeline with ``predict``) with
    ``reference`` (the baseline's records) as the background: exact linear SHAP when the model is affine in its
    inputs (the served ridge pipeline is), permutation importance otherwise."""
    features = list(features)
    x = reference[features].to_numpy(dtype=float)
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)

    def predict(values: np.ndarray) -> np.ndarray:
        return model.predict(pd.DataFrame(values, columns=features))

    coef = affine_coefficients(predict, mean, scale)
    return Explainer(features, mean, coef, None if coef is not None else model)


def linear_shap(coef: np.ndarray, background_mean: np.ndarray, x: np.ndarray) -> np.ndarray:
    """SHAP values of an affine model ``b + x @ coef`` against a background of mean ``background_mean``:
    ``coef_j * (x_j - background_mean_j)`` per record and feature (interventional SHAP, exact for a linear model)."""
    return (np.asarray(x, dtype=float) - background_mean) * coef


def global_attributions(explainer: Explainer, records: pd.DataFrame, seed: int = 0) -> pd.Series:
    """Each feature's global attribution on ``records``: mean |SHAP| (Clarify's ``mean_abs``) with exact linear
    SHAP, else the mean drop in R² against the model's own predictions when the feature is permuted (5 repeats,
    at most :data:`PERMUTATION_ROWS` rows); records missing a value are left out."""
    x = records[explainer.features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    x = x[~np.isnan(x).any(axis=1)]
    if not len(x):
        return pd.Series(np.nan, index=explainer.features)
    if explainer.coef is not None:
        values = np.abs(linear_shap(explainer.coef, explainer.background_mean, x)).mean(axis=0)
        return pd.Series(values, index=explainer.features)
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    if len(x) > PERMUTATION_ROWS:
        x = x[rng.choice(len(x), PERMUTATION_ROWS, replace=False)]
    frame = pd.DataFrame(x, columns=explainer.features)
    own = explainer.model.predict(frame)
    got = permutation_importance(explainer.model, frame, own, n_repeats=5, random_state=seed, scoring="r2")
    return pd.Series(np.maximum(got.importances_mean, 0.0), index=explainer.features)


def ndcg(baseline: pd.Series, current: pd.Series) -> float:
    """nDCG of the window's ranking of the features against the baseline's, as Clarify defines it.

    ``DCG = sum_i a(F[i]) / log2(i + 1)`` with ``F`` the features sorted by their attribution in the window
    (largest first) and ``a`` the baseline's attribution (the relevance); ``iDCG`` the same sum over the
    baseline's own order; ``nDCG = DCG / iDCG`` (1.0 when the ranking is unchanged). Ties in the window keep the
    baseline's order.
    """
    relevance = baseline.astype(float).fillna(0.0).abs()
    score = current.reindex(relevance.index).astype(float).fillna(-np.inf)
    discount = 1.0 / np.log2(np.arange(2, len(relevance) + 2))
    ideal = float(np.sort(relevance.to_numpy())[::-1] @ discount)
    if ideal == 0:
        return math.nan
    order = np.lexsort((-relevance.to_numpy(), -score.to_numpy()))  # by window score, ties by baseline relevance
    return float(relevance.to_numpy()[order] @ discount / ideal)


@dataclass
class AttributionDrift:
    """One window's feature-attribution check."""

    ndcg: float
    threshold: float
    violated: bool
    most_changed: list[str]
    table: pd.DataFrame

    def record(self, top: int = 5) -> dict:
        """Plain values for a stage record."""
        return {"attribution_ndcg": self.ndcg, "attribution_violated": self.violated,
                "attribution_most_changed": self.most_changed[:top]}


def attribution_drift(baseline: pd.Series, current: pd.Series, threshold: float = DEFAULT_NDCG_MIN) -> AttributionDrift:
    """Compare a window's global attributions with the baseline's.

    Returns
    -------
    AttributionDrift
        nDCG (:func:`ndcg`), whether it is below ``threshold``, the features by how far their attribution moved
        (``|log(window / baseline)|``, largest first: a relative move, so a feature of small weight whose values
        broke stands out beside a heavy feature that moved a little) and a table per feature: ``baseline``,
        ``window``, ``change`` (window - baseline), ``ratio`` (window / baseline), ``baseline_rank``, ``window_rank``.
    """
    table = pd.DataFrame({"baseline": baseline.astype(float), "window": current.reindex(baseline.index).astype(float)})
    table["change"] = table["window"] - table["baseline"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = table["window"] / table["baseline"]
        moved = np.abs(np.log(table["ratio"].to_numpy(dtype=float)))
    table["baseline_rank"] = table["baseline"].rank(ascending=False, method="first").astype(int)
    table["window_rank"] = table["window"].rank(ascending=False, method="first").astype("Int64")
    moved = np.where(np.isnan(moved), -1.0, moved)  # a feature without attribution on either side: last
    table = table.iloc[np.argsort(-moved, kind="stable")]
    score = ndcg(baseline, current)
    violated = bool(not math.isnan(score) and score < threshold)
    return AttributionDrift(score, float(threshold), violated, [str(f) for f in table.index], table.rename_axis("feature"))


def analysis_document(attributions: pd.Series, expected_value: float | None, method: str) -> dict:
    """Clarify's explainability ``analysis.json`` of global attributions:
    ``{"version": "1.0", "explanations": {"kernel_shap": {"label0": {"global_shap_values": {feature: value},
    "expected_value": ...}}}}`` (``expected_value`` left out when None; the suite adds ``"method"``: how the
    values were computed)."""
    label: dict[str, Any] = {"global_shap_values": {str(k): float(v) for k, v in attributions.items()}}
    if expected_value is not None:
        label["expected_value"] = float(expected_value)
    return {"version": "1.0", "method": method, "explanations": {"kernel_shap": {LABEL: label}}}


def read_analysis(doc: Any, where: str = "analysis.json") -> pd.Series:
    """The global SHAP values of a Clarify ``analysis.json`` (its first label), as a Series by feature."""
    try:
        labels = doc["explanations"]["kernel_shap"]
        first = next(iter(labels.values()))
        return pd.Series(first["global_shap_values"], dtype=float)
    except (KeyError, TypeError, StopIteration, AttributeError):
        raise ValueError(f"{where}: expected explanations.kernel_shap.<label>.global_shap_values") from None


def violation_document(drift: AttributionDrift) -> dict:
    """Clarify's feature-attribution ``constraint_violations.json``: ``{"version": "1.0", "violations": [{label,
    metric_name: "shap", constraint_check_type: "feature_attribution_drift_check", description}]}`` (empty list
    when the window passes). No Clarify-written description is public; the suite's names the nDCG and threshold."""
    violations = []
    if drift.violated:
        violations.append({"label": LABEL, "metric_name": METHOD, "constraint_check_type": "feature_attribution_drift_check",
                           "description": f"nDCG {drift.ndcg:.4f} of the global SHAP values against the baseline is "
                                          f"below the threshold {drift.threshold:g}; most changed: "
                                          + ", ".join(drift.most_changed[:3])})
    return {"version": "1.0", "violations": violations}
