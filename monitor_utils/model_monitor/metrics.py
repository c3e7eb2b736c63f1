"""Model Monitor's own CloudWatch metrics (data-metrics and model-metrics namespaces), as PutMetricData datums."""

from __future__ import annotations

import datetime as dt
import math
from typing import Mapping

from ..publish import NAMESPACE_KEY, datum
from .jackson import read_float

#: The namespaces and dimensions real monitoring runs publish to (AWS's notebooks' alarms read them; the
#: developer guide spells them ``/aws/sagemaker/Endpoints/data-metric`` with ``EndpointName``/``ScheduleName``).
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
DOCS_DATA_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints/data-metric"
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")


def dimensions(endpoint: str, schedule: str) -> dict[str, str]:
    """``Endpoint`` and ``MonitoringSchedule``, as real runs publish them."""
    return {"Endpoint": endpoint, "MonitoringSchedule": schedule}


def _with_namespace(d: dict, namespace: str) -> dict:
    d[NAMESPACE_KEY] = namespace
    return d


def data_metrics_datums(statistics: dict, distances: Mapping[str, float], when: dt.datetime, endpoint: str,
                        schedule: str, statistic_values: bool = True) -> list[dict]:
    """A window's data-quality metrics as Model Monitor publishes them, to :data:`DATA_METRICS_NAMESPACE`.

    Per feature ``f`` of the window's ``statistics.json``: ``feature_data_<f>`` (numeric features: the window's
    values as StatisticValues, so Average, Sum, Minimum, Maximum and SampleCount read back as the statistics'
    mean, sum, min, max and num_present), ``feature_non_null_<f>`` (share of values present, 0-1) and
    ``feature_baseline_drift_<f>`` (the feature's distance from the baseline, where ``distances`` has a finite one).

    Parameters
    ----------
    statistics : dict
        The window's statistics document (:func:`~.statistics.statistics_document`).
    distances : Mapping[str, float]
        Baseline drift distance per feature (named as in ``statistics``).
    when : datetime
        The datums' timestamp (the window's end).
    endpoint, schedule : str
        The ``Endpoint`` and ``MonitoringSchedule`` dimensions.
    statistic_values : bool
        ``feature_data_<f>`` as StatisticValues (PutMetricData); False gives its mean as a single value (Embedded
        Metric Format here carries single values: then only Average reads as the analyzer's).

    Returns
    -------
    list[dict]
        Datums carrying their namespace under :data:`monitor_utils.publish.NAMESPACE_KEY`.
    """
    dims = dimensions(endpoint, schedule)
    out = []
    for f in statistics["features"]:
        name = f["name"]
        stats = f.get("numerical_statistics") or f.get("string_statistics")
        present, missing = stats["common"]["num_present"], stats["common"]["num_missing"]
        if present + missing:
            out.append(_with_namespace(datum(f"feature_non_null_{name}", present / (present + missing), when, dims),
                                       DATA_METRICS_NAMESPACE))
        if "numerical_statistics" in f and present:
            ns = f["numerical_statistics"]
            values = {k: read_float(ns[k], f"{name}.{k}") for k in ("sum", "min", "max", "mean")}
            if not statistic_values and math.isfinite(values["mean"]):
                out.append(_with_namespace(datum(f"feature_data_{name}", values["mean"], when, dims),
                                           DATA_METRICS_NAMESPACE))
            elif statistic_values and all(math.isfinite(v) for v in values.values()):
                out.append(_with_namespace({
                    "MetricName": f"feature_data_{name}", "Timestamp": when, "Unit": "None",
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    "StatisticValues": {"SampleCount": float(present), "Sum": values["sum"],
                                        "Minimum": values["min"], "Maximum": values["max"]}}, DATA_METRICS_NAMESPACE))
        distance = distances.get(name)
        if distance is not None and math.isfinite(distance):
            out.append(_with_namespace(datum(f"feature_baseline_drift_{name}", float(distance), when, dims),
                                       DATA_METRICS_NAMESPACE))
    return out


def model_metrics_datums(metrics: Mapping[str, float], when: dt.datetime, endpoint: str, schedule: str) -> list[dict]:
    """A window's regression metrics (``mae``, ``mse``, ``rmse``, ``r2``; finite ones) as Model Monitor publishes
    them, to :data:`MODEL_METRICS_NAMESPACE` with ``Endpoint`` and ``MonitoringSchedule``."""
    dims = dimensions(endpoint, schedule)
    return [_with_namespace(datum(name, float(metrics[name]), when, dims), MODEL_METRICS_NAMESPACE)
            for name in REGRESSION_METRICS
            if metrics.get(name) is not None and math.isfinite(float(metrics[name]))]
