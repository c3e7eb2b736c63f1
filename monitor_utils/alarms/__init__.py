"""CloudWatch alarms package: re-exports the public API of its modules (specs, evaluator, metric math, backtest)."""

from __future__ import annotations

from .backtest import BacktestResult, backtest
from .constants import (
    ACCEPTED_FIELDS,
    ALARM,
    ANOMALY_BAND_OPERATORS,
    BREACHING,
    COMPARISON_OPERATORS,
    EVALUATION_RANGE_RULE,
    IGNORE,
    INSUFFICIENT_DATA,
    MAX_METRICS_IN_MATH_ALARM,
    MISSING,
    NOT_BREACHING,
    OK,
    ONE_DAY_S,
    ONE_HOUR_S,
    SAGEMAKER_ENDPOINT_METRICS,
    SAGEMAKER_METRICS,
    SAGEMAKER_NAMESPACE,
    SEVEN_DAYS_S,
    SINGLE_METRIC_ONLY_FIELDS,
    STATES,
    STATIC_OPERATORS,
    STATISTICS,
    TREAT_MISSING_DATA,
)
from .error_rate import ERROR_RATE_EXPRESSION, error_rate_alarm
from .errors import AlarmSpecError, ExpressionError
from .evaluator import evaluate, points_to_fill
from .metric_math import Value, alarm_datapoints, evaluate_expression
from .specs import alarm_period, validate_alarm_spec

__all__ = [
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "ACCEPTED_FIELDS",
    "STATIC_OPERATORS",
    "ANOMALY_BAND_OPERATORS",
    "COMPARISON_OPERATORS",
    "STATISTICS",
    "TREAT_MISSING_DATA",
    "SAGEMAKER_ENDPOINT_METRICS",
    "SAGEMAKER_METRICS",
    "MAX_METRICS_IN_MATH_ALARM",
    "AlarmSpecError",
    "ExpressionError",
    "BacktestResult",
    "validate_alarm_spec",
    "error_rate_alarm",
    "evaluate",
    "points_to_fill",
    "evaluate_expression",
    "alarm_datapoints",
    "alarm_period",
    "backtest",
]
