"""Model Monitor's regression model-quality files: per-window ``statistics.json``, ``constraints.json`` suggested from
a baseline, and ``constraint_violations.json`` in the model-quality shape, plus where a window's files go."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..metrics import regression_metrics
from .jackson import java_double, json_float, read_float
from .layout import monitoring_prefix

#: The regression metrics Model Monitor writes, in its order.
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
#: Each metric's comparison in a suggested ``constraints.json`` (errors may not grow, r2 may not fall).
OPERATORS = {"mae": "GreaterThanThreshold", "mse": "GreaterThanThreshold", "rmse": "GreaterThanThreshold",
             "r2": "LessThanThreshold"}
COMPARISON_OPERATORS = ("GreaterThanThreshold", "LessThanThreshold", "GreaterThanOrEqualToThreshold",
                        "LessThanOrEqualToThreshold")
#: Model Monitor's docs: the standard deviation is estimated from 5 subsamples of 80% of the records, and only when
#: there are at least 200 records (otherwise it is written as the string "NaN").
MIN_RECORDS_FOR_STD = 200
SUBSAMPLES = 5
SUBSAMPLE_SHARE = 0.8
#: The folder suffix of the model-quality monitor's outputs beside the data-quality ones (see :func:`output_key`).
FOLDER_SUFFIX = "-model-quality"
#: The schedule's name in the output layout when ``model_monitor.schedule_name`` is empty.
DEFAULT_SCHEDULE = "monitor-utils"


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = regression_metrics(y, p)
    return {k: float(m[k]) for k in REGRESSION_METRICS}


def standard_deviations(actuals, predictions, seed: int) -> dict[str, float]:
    """Each metric's standard deviation as Model Monitor estimates it: the metric on ``SUBSAMPLES`` random
    subsamples of ``SUBSAMPLE_SHARE`` of the records (without replacement), and the sample standard deviation
    (ddof 1) of those values; NaN under ``MIN_RECORDS_FOR_STD`` records. ``seed`` makes it reproducible."""
    y = np.asarray(actuals, dtype=float).ravel()
    p = np.asarray(predictions, dtype=float).ravel()
    if y.size < MIN_RECORDS_FOR_STD:
        return {k: math.nan for k in REGRESSION_METRICS}
    rng = np.random.default_rng(seed)
    size = int(round(SUBSAMPLE_SHARE * y.size))
    draws = [_metrics(y[idx], p[idx]) for idx in (rng.choice(y.size, size, replace=False) for _ in range(SUBSAMPLES))]
    return {k: float(np.std([d[k] for d in draws], ddof=1)) for k in REGRESSION_METRICS}


def regression_statistics(actuals, predictions, *, seed: int = 0,
                          evaluation_time: dt.datetime | None = None) -> dict:
    """A regression ``statistics.json`` document as the model-quality monitor writes it.

    Parameters
    ----------
    actuals, predictions : array-like
        Labels and the model's outputs (one pair per record; at least one).
    seed : int
        Seed of the standard deviation's subsamples (a window's own, so a rerun writes the same file).
    evaluation_time : datetime, optional
        ``dataset.evaluation_time`` (written as ``2023-03-30T21:08:34.729Z``); omitted when None.

    Returns
    -------
    dict
        ``{"version": 0.0, "dataset": {"item_count", "evaluation_time"}, "regression_metrics": {mae, mse, rmse, r2:
        {"value", "standard_deviation"}}}``; the standard deviation is ``"NaN"`` under 200 records.
    """
    y = np.asarray(actuals, dtype=float).ravel()
    p = np.asarray(predictions, dtype=float).ravel()
    values = _metrics(y, p)
    stds = standard_deviations(y, p, seed)
    dataset: dict[str, Any] = {"item_count": int(y.size)}
    if evaluation_time is not None:
        t = evaluation_time.astimezone(dt.timezone.utc) if evaluation_time.tzinfo else evaluation_time
        dataset["evaluation_time"] = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return {"version": 0.0, "dataset": dataset,
            "regression_metrics": {k: {"value": json_float(values[k]), "standard_deviation": json_float(stds[k])}
                                   for k in REGRESSION_METRICS}}


def regression_constraints(statistics: dict) -> dict:
    """The ``constraints.json`` a model-quality baselining job suggests from a regression ``statistics.json``:
    every threshold is the baseline's metric value, errors compared with ``GreaterThanThreshold`` and r2 with
    ``LessThanThreshold`` (so a window worse than the baseline at all is a violation, as with the real baseline)."""
    metrics = statistics["regression_metrics"]
    return {"version": 0.0, "regression_constraints": {
        k: {"threshold": json_float(read_float(metrics[k]["value"], f"regression_metrics.{k}.value")),
            "comparison_operator": OPERATORS[k]} for k in REGRESSION_METRICS if k in metrics}}


def read_regression_constraints(doc: Any, where: str = "constraints.json") -> dict[str, tuple[float, str]]:
    """``{metric: (threshold, comparison_operator)}`` of a model-quality ``constraints.json``; errors name the file
    and the field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("regression_constraints"), dict):
        raise ValueError(f"{where}: not a regression model-quality constraints file (expected an object with a "
                         "'regression_constraints' object; a data-quality constraints file has 'features')")
    out = {}
    for name, c in doc["regression_constraints"].items():
        at = f"{where}: regression_constraints.{name}"
        if not isinstance(c, dict) or "threshold" not in c or "comparison_operator" not in c:
            raise ValueError(f"{at} needs threshold and comparison_operator")
        if c["comparison_operator"] not in COMPARISON_OPERATORS:
            raise ValueError(f"{at}.comparison_operator {c['comparison_operator']!r} is not one of "
                             f"{list(COMPARISON_OPERATORS)}")
        out[str(name)] = (read_float(c["threshold"], at + ".threshold"), str(c["comparison_operator"]))
    return out


@dataclass(frozen=True)
class ModelQualityViolation:
    """One entry of a model-quality ``constraint_violations.json`` (the check type is the comparison operator)."""

    constraint_check_type: str
    description: str
    metric_name: str


def _breaks(value: float, threshold: float, operator: str) -> bool:
    if math.isnan(value):
        return False
    return {"GreaterThanThreshold": value > threshold, "LessThanThreshold": value < threshold,
            "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanOrEqualToThreshold": value <= threshold}[operator]


def _text(x: float) -> str:
    return java_double(x) if math.isfinite(x) else str(json_float(x))


def check_regression(statistics: dict, constraints: dict[str, tuple[float, str]]) -> list[ModelQualityViolation]:
    """The violations of a window's regression ``statistics.json`` against :func:`read_regression_constraints`'s
    constraints, worded as Model Monitor words them: ``Metric rmse with 11.3 +/- 0.2 was GreaterThanThreshold
    '9.0'`` (a metric the statistics lack is not checked)."""
    metrics = statistics["regression_metrics"]
    out = []
    for name, (threshold, operator) in constraints.items():
        if name not in metrics:
            continue
        value = read_float(metrics[name]["value"], f"regression_metrics.{name}.value")
        std = read_float(metrics[name]["standard_deviation"], f"regression_metrics.{name}.standard_deviation")
        if _breaks(value, threshold, operator):
            out.append(ModelQualityViolation(
                operator, f"Metric {name} with {_text(value)} +/- {_text(std)} was {operator} '{_text(threshold)}'",
                name))
    return out


def model_quality_violations_document(violations: list[ModelQualityViolation]) -> dict:
    """``{"violations": [{constraint_check_type, description, metric_name}, ...]}``."""
    return {"violations": [asdict(v) for v in violations]}


def output_key(prefix: str, endpoint_name: str, schedule_name: str, when: dt.datetime) -> str:
    """Key prefix of one model-quality execution's files, in Model Monitor's layout under the suite's prefix:
    ``PREFIX/monitoring/<endpoint>/<schedule>-model-quality/<yyyy>/<mm>/<dd>/<hh>`` (``when`` is the execution's
    hour: a window's end, when a scheduled job would evaluate it; ``schedule_name`` empty means
    :data:`DEFAULT_SCHEDULE`)."""
    return f"{output_root(prefix, endpoint_name, schedule_name)}/{when:%Y/%m/%d/%H}"


def output_root(prefix: str, endpoint_name: str, schedule_name: str) -> str:
    """``PREFIX/monitoring/<endpoint>/<schedule>-model-quality``: where every execution's hour folder goes."""
    return monitoring_prefix(prefix, endpoint_name, (schedule_name or DEFAULT_SCHEDULE) + FOLDER_SUFFIX)
