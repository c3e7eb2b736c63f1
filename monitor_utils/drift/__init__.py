"""Drift detection package: re-exports the public API of its modules (baselines, KS tests, effect sizes, verdicts)."""

from __future__ import annotations

from .build import build_baseline
from .corrections import benjamini_hochberg, bonferroni
from .detect import detect_drift
from .feature_tests import PSI_EPS
from .features import CategoricalFeature, Feature, NumericFeature
from .grid import GRID_SIZE, GRID_TAIL
from .ks import MAX_AUTO_N, ecdf_points, ks_pvalue, ks_statistic_sorted
from .options import DEFAULT_MIN_EFFECT, DEFAULT_MIN_EFFECT_CATEGORICAL
from .profile import Baseline
from .report import DriftReport
from .settings import SETTINGS_FILE, detector_options, settings_document

__all__ = [
    "Baseline",
    "NumericFeature",
    "CategoricalFeature",
    "DriftReport",
    "build_baseline",
    "detect_drift",
    "ks_statistic_sorted",
    "ks_pvalue",
    "ecdf_points",
    "benjamini_hochberg",
    "bonferroni",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_MIN_EFFECT_CATEGORICAL",
    "SETTINGS_FILE",
    "detector_options",
    "settings_document",
]
