"""An existing Model Monitor baseline as the drift reference: its files located (params or schedule), read, and
compared with a window as Model Monitor compares them (largest CDF distance against ``comparison_threshold``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..aws import Aws, get_bytes, split_s3_uri
from ..kll import linf_distance, robust_distance
from .constraints import Constraints, read_constraints
from .statistics import DatasetStatistics, FeatureStatistics, read_statistics
from .violations import Violation, baseline_drift_description


@dataclass
class ModelMonitorBaseline:
    """A baselining job's ``statistics.json`` and ``constraints.json`` and where they were read from."""

    statistics: DatasetStatistics
    constraints: Constraints
    statistics_uri: str = ""
    constraints_uri: str = ""

    @property
    def feature_names(self) -> list[str]:
        """Feature names in the statistics file's order."""
        return list(self.statistics.features)

    def describe(self) -> dict:
        """Where the baseline comes from and its comparison settings (for stage records)."""
        mc = self.constraints.monitoring_config
        return {"statistics_uri": self.statistics_uri, "constraints_uri": self.constraints_uri,
                "item_count": self.statistics.item_count, "features": len(self.statistics.features),
                "comparison_threshold": mc.comparison_threshold, "comparison_method": mc.comparison_method,
                "perform_comparison": mc.perform_comparison}


# ---------------------------------------------------------------------------------------------- locating and reading
def schedule_baseline_uris(sagemaker: Any, schedule_name: str) -> tuple[str, str]:
    """The statistics and constraints S3 URIs a data-quality monitoring schedule uses.

    DescribeMonitoringSchedule gives either an inline ``MonitoringJobDefinition.BaselineConfig`` or a
    ``MonitoringJobDefinitionName``, whose DescribeDataQualityJobDefinition gives ``DataQualityBaselineConfig``.

    Parameters
    ----------
    sagemaker : botocore client
        A SageMaker client.
    schedule_name : str
        ``MonitoringScheduleName``.

    Returns
    -------
    tuple[str, str]
        (statistics URI, constraints URI).
    """
    schedule = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule_name)
    config = schedule.get("MonitoringScheduleConfig", {})
    monitoring_type = config.get("MonitoringType") or schedule.get("MonitoringType") or "DataQuality"
    if monitoring_type != "DataQuality":
        raise ValueError(f"monitoring schedule {schedule_name!r} is a {monitoring_type} monitor; "
                         "model_monitor.schedule_name must name a DataQuality schedule")
    if "MonitoringJobDefinition" in config:
        baseline = config["MonitoringJobDefinition"].get("BaselineConfig", {})
        source = f"monitoring schedule {schedule_name!r}"
    elif config.get("MonitoringJobDefinitionName"):
        name = config["MonitoringJobDefinitionName"]
        baseline = sagemaker.describe_data_quality_job_definition(JobDefinitionName=name).get(
            "DataQualityBaselineConfig", {})
        source = f"data-quality job definition {name!r} of schedule {schedule_name!r}"
    else:
        raise ValueError(f"monitoring schedule {schedule_name!r} has no job definition")
    stats = baseline.get("StatisticsResource", {}).get("S3Uri", "")
    cons = baseline.get("ConstraintsResource", {}).get("S3Uri", "")
    if not stats or not cons:
        raise ValueError(f"{source} has no baseline (StatisticsResource and ConstraintsResource); set "
                         "model_monitor.statistics_uri and model_monitor.constraints_uri instead")
    return stats, cons


def configured_uris(aws: Aws, cfg: Any) -> tuple[str, str] | None:
    """The Model Monitor baseline the params name: ``model_monitor.statistics_uri`` and ``constraints_uri``, else
    the baseline of ``model_monitor.schedule_name``, else None (the suite's own baseline is the reference)."""
    mm = cfg["model_monitor"]
    stats, cons = mm["statistics_uri"], mm["constraints_uri"]
    if stats or cons:
        if not (stats and cons):
            missing = "constraints_uri" if stats else "statistics_uri"
            raise ValueError(f"model_monitor.{missing} is empty: a Model Monitor baseline needs both "
                             "statistics_uri and constraints_uri (or neither, and schedule_name)")
        return stats, cons
    if mm["schedule_name"]:
        return schedule_baseline_uris(aws.client("sagemaker"), mm["schedule_name"])
    return None


def _read_json(aws: Aws, uri: str, param: str) -> Any:
    body = get_bytes(aws, *split_s3_uri(uri))
    if body is None:
        raise FileNotFoundError(f"{uri} does not exist (model_monitor.{param}); point it at the baselining "
                                "job's output")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{uri} is not JSON ({exc}); model_monitor.{param} must name the file itself") from None


def load_model_monitor_baseline(aws: Aws, statistics_uri: str, constraints_uri: str) -> ModelMonitorBaseline:
    """Read a Model Monitor baseline from S3; errors name the URI, the field and the param to fix."""
    stats = read_statistics(_read_json(aws, statistics_uri, "statistics_uri"), statistics_uri)
    cons = read_constraints(_read_json(aws, constraints_uri, "constraints_uri"), constraints_uri)
    return ModelMonitorBaseline(stats, cons, statistics_uri, constraints_uri)


def load_configured_baseline(aws: Aws, cfg: Any) -> ModelMonitorBaseline | None:
    """The Model Monitor baseline the params name (see :func:`configured_uris`), or None."""
    uris = configured_uris(aws, cfg)
    return None if uris is None else load_model_monitor_baseline(aws, *uris)


# ---------------------------------------------------------------------------------------------- comparing
def align_columns(baseline_names: Sequence[str], features: Sequence[str], prediction: str | None) -> dict[str, str]:
    """Baseline feature -> window column. By name when every baseline feature is a window column; otherwise by
    position, as the analyzer matches captured data: the model's output first, then the inputs in request order
    (so a headerless baseline ``_c0, _c1, ...`` of ``prediction + features`` or of ``features`` lines up)."""
    columns = list(features) + ([prediction] if prediction else [])
    if set(baseline_names) <= set(columns):
        return {name: name for name in baseline_names}
    for order in (([prediction] if prediction else []) + list(features), list(features)):
        if len(order) == len(baseline_names):
            return dict(zip(baseline_names, order))
    raise ValueError(f"the Model Monitor baseline's {len(baseline_names)} features ({list(baseline_names)[:5]}...) "
                     f"match neither the window's column names nor its {len(features)} inputs (+1 output) by position")


def baseline_drift(baseline: ModelMonitorBaseline, window: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Model Monitor's ``baseline_drift_check`` of one window against the baseline, one row per feature.

    Numeric features: the largest distance between the baseline's KLL CDF and the window's exact empirical CDF
    (``linf_simple``); string features: the largest difference of category shares. With ``comparison_method``
    ``Robust`` the distance is ``linf_robust = max(0, linf_simple - 1.8 * sqrt((n + m) / (n m)))`` (Deequ's
    two-sample KS margin; n, m the baseline's and the window's counts). A feature drifts when comparisons are
    enabled and the distance exceeds its ``comparison_threshold``.

    Parameters
    ----------
    baseline : ModelMonitorBaseline
    window : pd.DataFrame
        The window's records.
    columns : dict[str, str]
        Baseline feature -> window column (:func:`align_columns`).

    Returns
    -------
    pd.DataFrame
        Indexed by window column: ``baseline_feature``, ``distance``, ``linf_simple``, ``threshold``, ``method``,
        ``drifted``, ``baseline_n``, ``window_n``, ``sketch_error`` (bound on the sketch CDF's error; the
        distance is within it of the exact one), ``description`` (the violation's text when drifted).
    """
    mc = baseline.constraints.monitoring_config
    rows = []
    for name, col in columns.items():
        feat = baseline.statistics.features[name]
        threshold = baseline.constraints.comparison_threshold(name) if name in baseline.constraints.features \
            else mc.comparison_threshold
        linf, n, m, err = _linf(feat, window[col]) if col in window else (math.nan, 0, 0, math.nan)
        distance = linf if mc.comparison_method == "Simple" or not (n and m) else robust_distance(linf, n, m)
        drifted = bool(mc.perform_comparison and not math.isnan(distance) and distance > threshold)
        rows.append({"feature": col, "baseline_feature": name, "distance": distance, "linf_simple": linf,
                     "threshold": threshold, "method": mc.comparison_method, "drifted": drifted,
                     "baseline_n": n, "window_n": m, "sketch_error": err,
                     "description": baseline_drift_description(distance, threshold) if drifted else ""})
    return pd.DataFrame(rows).set_index("feature")


def _linf(feat: FeatureStatistics, column: pd.Series) -> tuple[float, int, int, float]:
    if feat.is_numeric:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if feat.sketch is None or feat.sketch.n == 0 or values.size == 0:
            return math.nan, 0 if feat.sketch is None else feat.sketch.n, int(values.size), math.nan
        return linf_distance(feat.sketch, values), feat.sketch.n, int(values.size), feat.sketch.error_bound()
    present = column.dropna().astype(str)
    base = pd.Series(feat.categories, dtype=float)
    n, m = int(base.sum()), int(present.size)
    if not (n and m):
        return math.nan, n, m, 0.0
    current = present.value_counts().astype(float)
    cats = base.index.union(current.index)
    diff = (base.reindex(cats, fill_value=0) / n - current.reindex(cats, fill_value=0) / m).abs()
    return float(diff.max()), n, m, 0.0


def drift_violations(table: pd.DataFrame) -> list[Violation]:
    """The ``baseline_drift_check`` violations of a :func:`baseline_drift` table."""
    return [Violation(str(row.baseline_feature), "baseline_drift_check", row.description)
            for row in table[table["drifted"]].itertuples()]
