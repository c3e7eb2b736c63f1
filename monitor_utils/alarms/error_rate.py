"""The endpoint's invocation error-rate alarm: metric math over the 4XX, 5XX and Invocations counts."""

from __future__ import annotations

from collections.abc import Sequence

from .constants import NOT_BREACHING, SAGEMAKER_NAMESPACE
from .specs import validate_alarm_spec


ERROR_RATE_EXPRESSION = "IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)"


def error_rate_alarm(
    name: str,
    endpoint_name: str,
    variant_name: str,
    threshold: float,
    period: int = 300,
    evaluation_periods: int = 3,
    datapoints_to_alarm: int = 2,
    actions: Sequence[str] = (),
    treat_missing_data: str = NOT_BREACHING,
) -> dict:
    """Build a validated metric-math alarm on the endpoint's invocation error rate.

    The watched series is ``IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)``: the fraction (0..1) of
    invocations answered with a 4XX or 5XX code, using the Sum of Invocation4XXErrors, Invocation5XXErrors
    and Invocations over AWS/SageMaker with EndpointName/VariantName dimensions. ``IF`` keeps a period with
    zero invocations at rate 0 instead of dividing by zero (CloudWatch drops such a point); a period with no
    Invocations datapoint at all stays missing and ``treat_missing_data`` (default notBreaching: no traffic
    is no error) decides.

    Parameters
    ----------
    name
        AlarmName.
    endpoint_name, variant_name
        The EndpointName and VariantName dimension values.
    threshold
        Error-rate fraction; the alarm breaches when the rate is greater than it.
    period, evaluation_periods, datapoints_to_alarm
        Seconds per datapoint, N and M of the "M out of N" rule.
    actions
        SNS topic (or other action) ARNs used for AlarmActions and OKActions.
    treat_missing_data
        TreatMissingData value.

    Returns
    -------
    dict
        PutMetricAlarm keyword arguments, already passed through :func:`validate_alarm_spec`.
    """
    spec = {
        "AlarmName": name,
        "AlarmDescription": (
            f"Invocation error rate (4XX+5XX)/Invocations of {endpoint_name}/{variant_name} above {threshold:g} "
            f"in {datapoints_to_alarm} of {evaluation_periods} periods of {period} s"
        ),
        "Metrics": [
            _sagemaker_query("inv", "Invocations", endpoint_name, variant_name, period),
            _sagemaker_query("m4xx", "Invocation4XXErrors", endpoint_name, variant_name, period),
            _sagemaker_query("m5xx", "Invocation5XXErrors", endpoint_name, variant_name, period),
            {
                "Id": "error_rate",
                "Expression": ERROR_RATE_EXPRESSION,
                "Label": "Invocation error rate",
                "ReturnData": True,
            },
        ],
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": datapoints_to_alarm,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": treat_missing_data,
    }
    if actions:
        spec["AlarmActions"] = list(actions)
        spec["OKActions"] = list(actions)
    return validate_alarm_spec(spec)


def _sagemaker_query(qid: str, metric: str, endpoint_name: str, variant_name: str, period: int) -> dict:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": SAGEMAKER_NAMESPACE,
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint_name},
                    {"Name": "VariantName", "Value": variant_name},
                ],
            },
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }
