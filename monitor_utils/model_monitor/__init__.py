"""SageMaker Model Monitor's data-quality files, checks and metrics, and its baselines as drift references."""

from __future__ import annotations

from .constraints import Constraints, FeatureConstraints, MonitoringConfig, constraints_document, read_constraints
from .jackson import dumps, json_float, read_float
from .layout import execution_prefix, monitoring_prefix, schedule_name
from .metrics import (DATA_METRICS_NAMESPACE, MODEL_METRICS_NAMESPACE, data_metrics_datums, model_metrics_datums)
from .quality import ColumnMatch, WindowQuality, check_window, match_columns
from .reference import (ModelMonitorBaseline, align_columns, baseline_drift, configured_uris, drift_violations,
                        load_configured_baseline, load_model_monitor_baseline, schedule_baseline_uris)
from .statistics import DatasetStatistics, FeatureStatistics, inferred_type, read_statistics, statistics_document
from .verdict import EXACT_REFERENCE, KLL_REFERENCE, KLL_TEST, kll_drift_report
from .violations import Violation, read_violations, violations_document

__all__ = [
    "Constraints", "FeatureConstraints", "MonitoringConfig", "constraints_document", "read_constraints",
    "dumps", "json_float", "read_float",
    "execution_prefix", "monitoring_prefix", "schedule_name",
    "DATA_METRICS_NAMESPACE", "MODEL_METRICS_NAMESPACE", "data_metrics_datums", "model_metrics_datums",
    "ColumnMatch", "WindowQuality", "check_window", "match_columns",
    "ModelMonitorBaseline", "align_columns", "baseline_drift", "configured_uris", "drift_violations",
    "load_configured_baseline", "load_model_monitor_baseline", "schedule_baseline_uris",
    "DatasetStatistics", "FeatureStatistics", "inferred_type", "read_statistics", "statistics_document",
    "EXACT_REFERENCE", "KLL_REFERENCE", "KLL_TEST", "kll_drift_report",
    "Violation", "read_violations", "violations_document",
]
