"""Tests for monitor_utils.alarms against CloudWatch's documented examples, botocore and hand arithmetic."""

from __future__ import annotations

import copy
import io
import math
from datetime import datetime, timedelta, timezone

import botocore.session
import pandas as pd
import pytest
from botocore.validate import ParamValidator

from monitor_utils import alarms as A
from monitor_utils.alarms import ALARM, INSUFFICIENT_DATA, OK

STATES = (OK, ALARM, INSUFFICIENT_DATA)
RETAIN = "Retain current state"


# --------------------------------------------------------------------------- independent references


@pytest.fixture(scope="module")
def botocore_errors():
    """botocore's own PutMetricAlarm request validation, used as the reference for request shape."""
    model = botocore.session.get_session().get_service_model("cloudwatch")
    shape = model.operation_model("PutMetricAlarm").input_shape

    def errors(params: dict) -> str:
        report = ParamValidator().validate(params, shape)
        return report.generate_report() if report.has_errors() else ""

    return errors


def single_metric_spec(**overrides) -> dict:
    spec = {
        "AlarmName": "ep-latency-p99",
        "AlarmDescription": "p99 model latency above 500 ms",
        "MetricName": "ModelLatency",
        "Namespace": "AWS/SageMaker",
        "ExtendedStatistic": "p99",
        "Dimensions": [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}],
        "Period": 300,
        "EvaluationPeriods": 3,
        "Threshold": 500_000.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "Unit": "Microseconds",
    }
    spec.update(overrides)
    return spec


def seed_alarm() -> dict:
    """The seed notebook's alarm: a made-up metric in the AWS/SageMaker namespace."""
    return {
        "AlarmName": "seed-model-error-rate",
        "MetricName": "ModelErrorRate",
        "Namespace": "AWS/SageMaker",
        "Statistic": "Average",
        "Dimensions": [{"Name": "EndpointName", "Value": "msd-year-endpoint"}],
        "Period": 300,
        "EvaluationPeriods": 3,
        "Threshold": 0.05,
        "ComparisonOperator": "GreaterThanThreshold",
    }


def stat_query(qid: str, metric: str = "Invocations", return_data: bool | None = False) -> dict:
    query = {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/SageMaker",
                "MetricName": metric,
                "Dimensions": [{"Name": "EndpointName", "Value": "ep"}],
            },
            "Period": 60,
            "Stat": "Sum",
        },
    }
    if return_data is not None:
        query["ReturnData"] = return_data
    return query


def math_spec(metrics: list[dict], **overrides) -> dict:
    spec = {
        "AlarmName": "ep-math",
        "Metrics": metrics,
        "EvaluationPeriods": 3,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    spec.update(overrides)
    return spec


# --------------------------------------------------------------------------- docs' worked examples
#
# Amazon CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data", section
# "How alarm state is evaluated when data is missing". Both tables: Evaluation Periods = 3, evaluation
# range 5, most recent data point on the right; 0 = not breaching, X = breaching, - = missing.
# Columns: Data points | # of data points that must be filled | MISSING | IGNORE | BREACHING | NOT BREACHING

DOC_TABLE_DATAPOINTS_TO_ALARM_3 = [
    ("0 - X - X", 0, "OK", "OK", "OK", "OK"),
    ("0 - - - -", 2, "OK", "OK", "OK", "OK"),
    ("- - - - -", 3, "INSUFFICIENT_DATA", "Retain current state", "ALARM", "OK"),
    ("0 X X - X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("- - X - -", 2, "ALARM", "Retain current state", "ALARM", "OK"),
]

# Second table: "Datapoints to Alarm is only 2 while Evaluation Periods is 3" (2 out of 3).
# Columns: Data points | # of missing data points | MISSING | IGNORE | BREACHING | NOT BREACHING
DOC_TABLE_DATAPOINTS_TO_ALARM_2 = [
    ("0 - X - X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("0 0 X 0 X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("0 - X - -", 1, "OK", "OK", "ALARM", "OK"),
    ("- - - - 0", 2, "OK", "OK", "ALARM", "OK"),
    ("- - - X -", 2, "ALARM", "Retain current state", "ALARM", "OK"),
]

TREATMENT_COLUMNS = ("missing", "ignore", "breaching", "notBreaching")
DOC_THRESHOLD = 0.5  # "0" is 0.0 (not breaching), "X" is 1.0 (breaching) under GreaterThanThreshold


def doc_points(text: str) -> list[float | None]:
    return [{"0": 0.0, "O": 0.0, "X": 1.0, "-": None}[c] for c in text.split()]


def doc_alarm(datapoints_to_alarm: int, treat: str = "missing") -> dict:
    return {
        "AlarmName": "doc-example",
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": datapoints_to_alarm,
        "Threshold": DOC_THRESHOLD,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": treat,
    }


def _doc_cells():
    for m, table in ((3, DOC_TABLE_DATAPOINTS_TO_ALARM_3), (2, DOC_TABLE_DATAPOINTS_TO_ALARM_2)):
        for points, _filled, *cells in table:
            for treat, cell in zip(TREATMENT_COLUMNS, cells):
                yield pytest.param(m, points, treat, cell, id=f"{m}of3[{points}]-{treat}")


@pytest.mark.parametrize(("m", "points", "treat", "cell"), list(_doc_cells()))
@pytest.mark.parametrize("current", STATES)
def test_docs_missing_data_tables(m, points, treat, cell, current):
    expected = current if cell == RETAIN else cell
    assert A.evaluate(doc_alarm(m, treat), doc_points(points), current_state=current) == expected


@pytest.mark.parametrize(
    ("m", "points", "filled"),
    [(3, row[0], row[1]) for row in DOC_TABLE_DATAPOINTS_TO_ALARM_3]
    + [(2, row[0], row[1]) for row in DOC_TABLE_DATAPOINTS_TO_ALARM_2],
)
def test_docs_points_to_fill_column(m, points, filled):
    assert A.points_to_fill(doc_alarm(m), doc_points(points)) == filled


# Same page, "Avoiding premature transitions to alarm state" (Datapoints to Alarm 3, missing treated as missing).
@pytest.mark.parametrize("points", ["- - - - X", "- - - X -", "- - - X O", "- - X - O"])
def test_docs_premature_alarm_is_avoided(points):
    assert A.evaluate(doc_alarm(3), doc_points(points), current_state=OK) != ALARM


def test_docs_premature_alarm_goes_to_alarm_when_oldest_breach_is_old_enough():
    assert A.evaluate(doc_alarm(3), doc_points("- - X - -"), current_state=OK) == ALARM


# --------------------------------------------------------------------------- evaluator


def threshold_alarm(op: str, threshold: float = 10.0, n: int = 1, m: int | None = None, treat: str = "missing") -> dict:
    return {
        "AlarmName": "t",
        "EvaluationPeriods": n,
        "DatapointsToAlarm": n if m is None else m,
        "Threshold": threshold,
        "ComparisonOperator": op,
        "TreatMissingData": treat,
    }


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("GreaterThanOrEqualToThreshold", 9.99, OK),
        ("GreaterThanOrEqualToThreshold", 10.0, ALARM),
        ("GreaterThanOrEqualToThreshold", 10.01, ALARM),
        ("GreaterThanThreshold", 9.99, OK),
        ("GreaterThanThreshold", 10.0, OK),
        ("GreaterThanThreshold", 10.01, ALARM),
        ("LessThanThreshold", 9.99, ALARM),
        ("LessThanThreshold", 10.0, OK),
        ("LessThanThreshold", 10.01, OK),
        ("LessThanOrEqualToThreshold", 9.99, ALARM),
        ("LessThanOrEqualToThreshold", 10.0, ALARM),
        ("LessThanOrEqualToThreshold", 10.01, OK),
    ],
)
def test_comparison_operators_including_equality(op, value, expected):
    assert A.evaluate(threshold_alarm(op), [value]) == expected


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([20, 1, 20], ALARM),  # 2 of 3 breaching, not consecutive
        ([1, 20, 20], ALARM),
        ([20, 1, 1], OK),  # only 1 of 3
        ([1, 1, 1], OK),
        ([20, 20, 1, 1, 1], OK),  # no point missing: the older 2 of the range are ignored
        ([1, 1, 20, 1, 20], ALARM),
    ],
)
def test_m_out_of_n_two_of_three(points, expected):
    assert A.evaluate(threshold_alarm("GreaterThanThreshold", n=3, m=2), points) == expected


def test_most_recent_real_points_reach_back_past_missing_ones():
    # 3 real points among 5: they are used and TreatMissingData is not consulted (breaching would otherwise alarm).
    alarm = threshold_alarm("GreaterThanThreshold", n=3, m=3, treat="breaching")
    assert A.evaluate(alarm, [20, 20, None, 1, None]) == OK
    assert A.evaluate(alarm, [20, 20, None, 20, None]) == ALARM


@pytest.mark.parametrize(
    ("treat", "expected"),
    [("breaching", ALARM), ("notBreaching", OK), ("missing", INSUFFICIENT_DATA), ("ignore", ALARM)],
)
def test_each_treatment_when_everything_is_missing(treat, expected):
    alarm = threshold_alarm("GreaterThanThreshold", n=3, m=2, treat=treat)
    assert A.evaluate(alarm, [None] * 5, current_state=ALARM) == expected


@pytest.mark.parametrize(
    ("treat", "expected"),
    [("breaching", ALARM), ("notBreaching", OK), ("missing", OK), ("ignore", OK)],
)
def test_each_treatment_fills_only_what_is_missing(treat, expected):
    # One real non-breaching point, 2 of 3 to alarm: only filling both gaps as breaching reaches 2.
    alarm = threshold_alarm("GreaterThanThreshold", n=3, m=2, treat=treat)
    assert A.evaluate(alarm, [None, None, None, None, 1.0], current_state=INSUFFICIENT_DATA) == expected


@pytest.mark.parametrize("current", STATES)
def test_ignore_keeps_the_current_state(current):
    alarm = threshold_alarm("GreaterThanThreshold", n=3, m=3, treat="ignore")
    assert A.evaluate(alarm, [None, None, None, None, None], current_state=current) == current
    assert A.evaluate(alarm, [None, None, 20.0, None, None], current_state=current) == current


def test_short_range_is_padded_with_missing_and_nan_is_missing():
    alarm = threshold_alarm("GreaterThanThreshold", n=3, m=2, treat="breaching")
    assert A.evaluate(alarm, [1.0]) == A.evaluate(alarm, [None, None, 1.0]) == ALARM
    assert A.evaluate(alarm, [math.nan, 20.0, 1.0]) == A.evaluate(alarm, [None, 20.0, 1.0]) == ALARM
    assert A.evaluate(threshold_alarm("GreaterThanThreshold", n=3, treat="missing"), []) == INSUFFICIENT_DATA


def test_evaluate_rejects_bad_state_and_anomaly_band():
    with pytest.raises(A.AlarmSpecError, match="current_state"):
        A.evaluate(threshold_alarm("GreaterThanThreshold"), [1.0], current_state="PENDING")
    with pytest.raises(A.AlarmSpecError, match="ComparisonOperator"):
        A.evaluate(threshold_alarm("GreaterThanUpperThreshold"), [1.0])


# --------------------------------------------------------------------------- validation


def test_valid_single_metric_spec_gets_defaults_and_matches_botocore(botocore_errors):
    spec = single_metric_spec()
    original = copy.deepcopy(spec)
    out = A.validate_alarm_spec(spec)
    assert spec == original  # input untouched
    assert out["DatapointsToAlarm"] == 3
    assert out["TreatMissingData"] == "missing"
    assert out["ActionsEnabled"] is True
    assert {k: out[k] for k in spec} == spec
    assert botocore_errors(out) == ""


def test_seed_alarm_with_made_up_sagemaker_metric_is_rejected():
    with pytest.raises(A.AlarmSpecError) as err:
        A.validate_alarm_spec(seed_alarm())
    message = str(err.value)
    assert "ModelErrorRate" in message
    assert "seed-model-error-rate" in message
    assert "metric math" in message


def test_sagemaker_endpoint_metrics_match_the_docs():
    documented = {
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "InvocationModelErrors",
        "ModelLatency",
        "OverheadLatency",
        "ModelSetupTime",
        "InvocationsPerInstance",
        "ConcurrentRequestsPerModel",
    }
    assert documented <= A.SAGEMAKER_ENDPOINT_METRICS
    assert "ModelErrorRate" not in A.SAGEMAKER_METRICS
    for metric in sorted(A.SAGEMAKER_ENDPOINT_METRICS):
        A.validate_alarm_spec(single_metric_spec(MetricName=metric, ExtendedStatistic="p50"))


def test_known_metrics_allow_list():
    custom = single_metric_spec(Namespace="MSD/Model", MetricName="PredictionDrift", Unit="None")
    known = {("MSD/Model", "PredictionMAE")}
    with pytest.raises(A.AlarmSpecError, match="PredictionDrift.*PredictionMAE"):
        A.validate_alarm_spec(custom, known_metrics=known)
    A.validate_alarm_spec(custom, known_metrics=known | {("MSD/Model", "PredictionDrift")})
    A.validate_alarm_spec(custom)  # no allow-list: custom namespaces are not checked
    # An allow-list can admit an AWS/SageMaker metric this module does not list.
    A.validate_alarm_spec(seed_alarm(), known_metrics={("AWS/SageMaker", "ModelErrorRate")})


@pytest.mark.parametrize(
    "field", ["MetricName", "Namespace", "Period", "EvaluationPeriods", "ComparisonOperator", "Threshold"]
)
def test_missing_required_field_is_named(field):
    spec = single_metric_spec()
    del spec[field]
    with pytest.raises(A.AlarmSpecError, match=field):
        A.validate_alarm_spec(spec)


def test_unknown_field_lists_accepted_fields(botocore_errors):
    spec = single_metric_spec(Treshold=3)
    with pytest.raises(A.AlarmSpecError) as err:
        A.validate_alarm_spec(spec)
    assert "Treshold" in str(err.value)
    assert "ComparisonOperator, TreatMissingData" in str(err.value)
    assert "Unknown parameter" in botocore_errors(spec)


def test_bad_comparison_operator_lists_all_accepted():
    with pytest.raises(A.AlarmSpecError) as err:
        A.validate_alarm_spec(single_metric_spec(ComparisonOperator="GreaterThan"))
    for op in A.COMPARISON_OPERATORS:
        assert op in str(err.value)
    assert set(A.COMPARISON_OPERATORS) == set(
        botocore.session.get_session().get_service_model("cloudwatch").shape_for("ComparisonOperator").enum
    )


def test_anomaly_band_operator_needs_threshold_metric_id():
    with pytest.raises(A.AlarmSpecError, match="ThresholdMetricId"):
        A.validate_alarm_spec(single_metric_spec(ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold"))
    band = math_spec(
        [
            stat_query("m1", return_data=True),
            {"Id": "ad1", "Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "ReturnData": False},
        ],
        ComparisonOperator="GreaterThanUpperThreshold",
        ThresholdMetricId="ad1",
    )
    del band["Threshold"]
    A.validate_alarm_spec(band)


@pytest.mark.parametrize("stat", ["Avg", "p99", "Mean"])
def test_bad_statistic(stat):
    with pytest.raises(A.AlarmSpecError, match="Statistic"):
        A.validate_alarm_spec(_only_statistic(stat))


def _only_statistic(stat: str) -> dict:
    spec = single_metric_spec(Statistic=stat)
    del spec["ExtendedStatistic"]
    return spec


@pytest.mark.parametrize("ext", ["p999", "99p", "P99", "p99.999", "median", "tm(10:90)"])
def test_bad_extended_statistic(ext):
    with pytest.raises(A.AlarmSpecError, match="ExtendedStatistic"):
        A.validate_alarm_spec(single_metric_spec(ExtendedStatistic=ext))


@pytest.mark.parametrize(
    "ext",
    [
        "p99",
        "p50",
        "p99.9",
        "p99.99",
        "p100",
        "tm90",
        "wm99",
        "tc90",
        "ts90",
        "IQM",
        "TM(10%:90%)",
        "PR(:300)",
        "PR(100:2000)",
    ],
)
def test_valid_extended_statistics(ext, botocore_errors):
    out = A.validate_alarm_spec(single_metric_spec(ExtendedStatistic=ext))
    assert botocore_errors(out) == ""


def test_statistic_and_extended_statistic_together_or_neither():
    with pytest.raises(A.AlarmSpecError, match="both"):
        A.validate_alarm_spec(single_metric_spec(Statistic="Average"))
    spec = single_metric_spec()
    del spec["ExtendedStatistic"]
    with pytest.raises(A.AlarmSpecError, match="neither"):
        A.validate_alarm_spec(spec)


@pytest.mark.parametrize("period", [10, 20, 30, 60, 120, 300, 3600])
def test_valid_periods(period):
    A.validate_alarm_spec(single_metric_spec(Period=period, EvaluationPeriods=1))


@pytest.mark.parametrize("period", [1, 5, 15, 45, 90, 301, 0])
def test_invalid_periods(period):
    with pytest.raises(A.AlarmSpecError, match="10, 20, 30 or a multiple of 60"):
        A.validate_alarm_spec(single_metric_spec(Period=period, EvaluationPeriods=1))


def test_evaluation_range_over_one_day_is_rejected():
    A.validate_alarm_spec(single_metric_spec(Period=300, EvaluationPeriods=288))  # exactly 86,400 s
    with pytest.raises(A.AlarmSpecError) as err:
        A.validate_alarm_spec(single_metric_spec(Period=300, EvaluationPeriods=289))
    assert "86,400 seconds" in str(err.value)
    assert "at most 288" in str(err.value)


def test_evaluation_range_for_hourly_periods_is_seven_days():
    A.validate_alarm_spec(single_metric_spec(Period=3600, EvaluationPeriods=168))  # 604,800 s
    with pytest.raises(A.AlarmSpecError, match="604,800"):
        A.validate_alarm_spec(single_metric_spec(Period=3600, EvaluationPeriods=169))


@pytest.mark.parametrize("m", [0, 4])
def test_datapoints_to_alarm_out_of_range(m):
    with pytest.raises(A.AlarmSpecError, match="DatapointsToAlarm"):
        A.validate_alarm_spec(single_metric_spec(DatapointsToAlarm=m))


@pytest.mark.parametrize("treat", ["Missing", "not_breaching", "zero"])
def test_bad_treat_missing_data(treat):
    with pytest.raises(A.AlarmSpecError, match="breaching, notBreaching, ignore, missing"):
        A.validate_alarm_spec(single_metric_spec(TreatMissingData=treat))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"Dimensions": {"EndpointName": "ep"}}, "Dimensions"),
        ({"Threshold": "500"}, "Threshold"),
        ({"AlarmActions": "arn:aws:sns:us-east-1:123456789012:topic"}, "AlarmActions"),
        ({"ActionsEnabled": "yes"}, "ActionsEnabled"),
    ],
)
def test_shape_errors_are_caught_like_botocore(overrides, field, botocore_errors):
    spec = single_metric_spec(**overrides)
    assert field in botocore_errors(spec)  # the reference rejects it too
    with pytest.raises(A.AlarmSpecError, match=field):
        A.validate_alarm_spec(spec)


def test_metric_math_valid_and_matches_botocore(botocore_errors):
    spec = math_spec(
        [
            stat_query("m1"),
            stat_query("m2", "Invocation5XXErrors"),
            {"Id": "e1", "Expression": "m2 / m1", "ReturnData": True},
        ]
    )
    out = A.validate_alarm_spec(spec)
    assert botocore_errors(out) == ""
    assert "Period" not in out


@pytest.mark.parametrize(
    ("metrics", "needle"),
    [
        (
            [stat_query("m1", return_data=True), {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True}],
            "2 queries return data",
        ),
        (
            [stat_query("m1", return_data=False), {"Id": "e1", "Expression": "m1 * 2", "ReturnData": False}],
            "0 queries return data",
        ),
        (
            [stat_query("m1", return_data=None), {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True}],
            "omitted ReturnData means true",
        ),
        ([stat_query("M1"), {"Id": "e1", "Expression": "M1 * 2", "ReturnData": True}], "start with a lowercase letter"),
        ([stat_query("1m"), {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True}], "not a valid Id"),
        (
            [stat_query("m1"), stat_query("m1"), {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True}],
            "duplicate Id 'm1'",
        ),
        ([stat_query("m1"), {"Id": "e1", "Expression": "(m1 + m2) / m1", "ReturnData": True}], "undefined Id 'm2'"),
        ([stat_query("m1"), {"Id": "e1", "Expression": "e1 + m1", "ReturnData": True}], "its own Id"),
        (
            [stat_query(f"m{i}") for i in range(11)] + [{"Id": "e1", "Expression": "m0", "ReturnData": True}],
            "at most 10",
        ),
        ([{"Id": "e1", "ReturnData": True}], "exactly one of Expression or MetricStat"),
        ([stat_query("m1", "ModelErrorRate", return_data=True)], "ModelErrorRate"),
    ],
)
def test_metric_math_errors(metrics, needle):
    with pytest.raises(A.AlarmSpecError) as err:
        A.validate_alarm_spec(math_spec(metrics))
    assert needle in str(err.value)
    assert "ep-math" in str(err.value)


def test_metric_math_ignores_strings_and_functions_in_reference_check():
    metrics = [stat_query("errors_4xx"), {"Id": "e1", "Expression": 'SUM(METRICS("errors")) * 1e2', "ReturnData": True}]
    A.validate_alarm_spec(math_spec(metrics))


def test_metric_math_forbids_single_metric_fields():
    spec = math_spec([stat_query("m1", return_data=True)], Namespace="AWS/SageMaker")
    with pytest.raises(A.AlarmSpecError, match="Namespace.*not allowed together with Metrics"):
        A.validate_alarm_spec(spec)


def test_metric_math_query_period_is_checked():
    query = stat_query("m1", return_data=True)
    query["MetricStat"]["Period"] = 45
    with pytest.raises(A.AlarmSpecError, match=r"Metrics\[0\] \(m1\)\.MetricStat\.Period"):
        A.validate_alarm_spec(math_spec([query]))
    query["MetricStat"]["Period"] = 300
    with pytest.raises(A.AlarmSpecError, match="86,400"):
        A.validate_alarm_spec(math_spec([query], EvaluationPeriods=289))


# --------------------------------------------------------------------------- error-rate alarm


@pytest.fixture()
def error_alarm() -> dict:
    return A.error_rate_alarm(
        "msd-error-rate",
        "msd-year-endpoint",
        "AllTraffic",
        threshold=0.05,
        actions=("arn:aws:sns:us-east-1:123456789012:oncall",),
    )


def test_error_rate_alarm_is_valid_for_us_and_botocore(error_alarm, botocore_errors):
    assert botocore_errors(error_alarm) == ""
    assert A.validate_alarm_spec(error_alarm) == error_alarm
    assert (
        A.validate_alarm_spec(error_alarm, known_metrics={("AWS/SageMaker", m) for m in A.SAGEMAKER_ENDPOINT_METRICS})
        == error_alarm
    )
    assert error_alarm["AlarmActions"] == error_alarm["OKActions"] == ["arn:aws:sns:us-east-1:123456789012:oncall"]
    assert (error_alarm["EvaluationPeriods"], error_alarm["DatapointsToAlarm"]) == (3, 2)


def test_error_rate_alarm_queries(error_alarm):
    stats = {
        q["MetricStat"]["Metric"]["MetricName"]: q["MetricStat"] for q in error_alarm["Metrics"] if "MetricStat" in q
    }
    assert set(stats) == {"Invocations", "Invocation4XXErrors", "Invocation5XXErrors"}
    for stat in stats.values():
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
        assert stat["Metric"]["Namespace"] == "AWS/SageMaker"
        assert stat["Metric"]["Dimensions"] == [
            {"Name": "EndpointName", "Value": "msd-year-endpoint"},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
    assert [q["Id"] for q in error_alarm["Metrics"] if q.get("ReturnData", True)] == ["error_rate"]


def test_error_rate_expression_values(error_alarm):
    (expression,) = [q["Expression"] for q in error_alarm["Metrics"] if "Expression" in q]
    ids = {q["MetricStat"]["Metric"]["MetricName"]: q["Id"] for q in error_alarm["Metrics"] if "MetricStat" in q}
    series = {
        ids["Invocations"]: [200, 0, 50, None, 40],
        ids["Invocation4XXErrors"]: [6, 0, 1, None, None],
        ids["Invocation5XXErrors"]: [4, 0, None, None, 2],
    }
    # By hand: 10/200, zero invocations -> 0 (not a division by zero), 1/50, no Invocations point -> missing, 2/40.
    assert A.evaluate_expression(expression, series) == [0.05, 0.0, 0.02, None, 0.05]


def test_error_rate_alarm_datapoints_and_evaluation(error_alarm):
    data = {"Invocations": [100, 100, 100], "Invocation4XXErrors": [1, 8, 3], "Invocation5XXErrors": [0, 2, 4]}
    rates = A.alarm_datapoints(error_alarm, lambda stat: data[stat["Metric"]["MetricName"]])
    assert rates == [0.01, 0.10, 0.07]
    assert A.evaluate(error_alarm, rates) == ALARM  # 0.10 and 0.07 > 0.05: 2 of 3
    assert A.evaluate(error_alarm, [0.01, 0.10, 0.05]) == OK  # 0.05 is not greater than 0.05


def test_alarm_datapoints_single_metric():
    spec = single_metric_spec()
    seen = []
    values = A.alarm_datapoints(spec, lambda stat: seen.append(stat) or [1.0, None])
    assert values == [1.0, None]
    assert seen == [
        {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": spec["Dimensions"]},
            "Period": 300,
            "Stat": "p99",
        }
    ]


# --------------------------------------------------------------------------- metric math
# Expected values below are the worked examples of the CloudWatch User Guide page "Using metric math"
# ("Comparison and logical operators" and "Using IF expressions"), with - as None.

DOC_IF = {"metric1": [1, 1, 0, 0, None], "metric2": [30, None, 0, 0, 30], "metric3": [0, 0, 20, None, 20]}
DOC_CMP = {"metric1": [30, 20, 0, 0], "metric2": [20, None, 20, None]}


@pytest.mark.parametrize(
    ("series", "expression", "expected"),
    [
        (DOC_CMP, "(metric1 < metric2)", [0, 0, 1, 0]),
        (DOC_CMP, "(metric1 >= 30)", [1, 0, 0, 0]),
        (DOC_CMP, "(metric1 > 15 AND metric2 > 15)", [1, 0, 0, 0]),
        (DOC_IF, "IF(metric1, metric2, metric3)", [30, 0, 20, None, None]),
        (DOC_IF, "IF(metric1, 5, metric3)", [5, 5, 20, None, None]),
        (DOC_IF, "IF(metric1, metric2, 5)", [30, 0, 5, 5, None]),
    ],
)
def test_metric_math_doc_examples(series, expression, expected):
    assert A.evaluate_expression(expression, series) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a + b", [5.0, 2.0, 4.0, None]),  # missing on one side counts as 0; both missing stays missing
        ("a / b", [pytest.approx(2 / 3), None, 0.0, None]),  # a division by zero drops the point
        ("a * 10", [20.0, 20.0, None, None]),  # a missing value against a scalar stays missing
        ("-a + 2 * 3 ^ 2", [16.0, 16.0, None, None]),
        ("(a + b) / 2", [2.5, 1.0, 2.0, None]),
        ("FILL(a, 0) - FILL(b, a)", [-1.0, 2.0, -4.0, 0.0]),  # FILL(b, a) has no point at 3; 0 - (missing as 0)
        ("FILL(a, REPEAT)", [2.0, 2.0, 2.0, 2.0]),
        ("FILL(c, LINEAR)", [None, 1.0, 2.0, 3.0]),
        ("IF(b > 1, a, 0)", [2.0, 0.0, 0.0, None]),  # FALSE -> 0; TRUE with no `a` point -> 0; no condition -> dropped
        ("IF(a >= 2 || b == 4, 1, 0)", [1.0, 1.0, 1.0, None]),
        ("ABS(a - b)", [1.0, 2.0, 4.0, None]),
    ],
)
def test_metric_math_by_hand(expression, expected):
    series = {"a": [2, 2, None, None], "b": [3, 0, 4, None], "c": [None, 1, None, 3]}
    assert A.evaluate_expression(expression, series) == expected


@pytest.mark.parametrize(
    ("expression", "series", "needle"),
    [
        ("m1 + m9", {"m1": [1.0]}, "unknown Id 'm9'"),
        ("RATE(m1)", {"m1": [1.0]}, "not supported"),
        ("AVG(m1) + 1", {"m1": [1.0]}, "not supported"),
        ("2 * 3", {"m1": [1.0]}, "scalar"),
        ("m1 + m2", {"m1": [1.0], "m2": [1.0, 2.0]}, "different lengths"),
        ("m1 +", {"m1": [1.0]}, "unexpected end"),
        ("m1 $ 2", {"m1": [1.0]}, "unexpected character"),
    ],
)
def test_metric_math_errors_are_reported(expression, series, needle):
    with pytest.raises(A.ExpressionError, match=needle):
        A.evaluate_expression(expression, series)


# --------------------------------------------------------------------------- backtest

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
BACKTEST_ALARM = {
    "AlarmName": "bt",
    "MetricName": "ModelLatency",
    "Namespace": "AWS/SageMaker",
    "Statistic": "Average",
    "Period": 60,
    "EvaluationPeriods": 3,
    "DatapointsToAlarm": 2,
    "Threshold": 10.0,
    "ComparisonOperator": "GreaterThanThreshold",
    "TreatMissingData": "missing",
}
# Index 7 is an explicit None; index 10 is a gap (its timestamp is absent); index 11 is None.
BACKTEST_VALUES = [1, 20, 20, 1, 1, 1, 20, None, 20, 1, "gap", None]


def backtest_rows() -> list[tuple[datetime, float | None]]:
    return [(T0 + timedelta(minutes=i), v) for i, v in enumerate(BACKTEST_VALUES) if v != "gap"]


def at(i: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + timedelta(minutes=i))


def test_backtest_transitions_by_hand():
    # Evaluation range 5 (the default N + 2). Windows end at each minute; most recent on the right.
    #  i0 [1]            1 real, 0 breaching                    -> OK     (from INSUFFICIENT_DATA)
    #  i1 [1 20]         2 real, 1 breaching, a 0 blocks early   -> OK
    #  i2 [1 20 20]      last 3 real 0 X X                      -> ALARM
    #  i3 [1 20 20 1]    X X 0                                  -> ALARM
    #  i4 [1 20 20 1 1]  X 0 0                                  -> OK
    #  i5, i6                                                  -> OK
    #  i7 [1 1 1 20 -]   4 real; last 3 real 0 0 X              -> OK
    #  i8 [1 1 20 - 20]  last 3 real 0 X X                      -> ALARM
    #  i9 [1 20 - 20 1]  X X 0                                  -> ALARM
    # i10 [20 - 20 1 -]  3 real X X 0                           -> ALARM
    # i11 [- 20 1 - -]   2 real (X 0): 1 breaching < 2          -> OK
    result = A.backtest(BACKTEST_ALARM, backtest_rows())
    assert result.transitions == [
        {"timestamp": at(0), "from": INSUFFICIENT_DATA, "to": OK},
        {"timestamp": at(2), "from": OK, "to": ALARM},
        {"timestamp": at(4), "from": ALARM, "to": OK},
        {"timestamp": at(8), "from": OK, "to": ALARM},
        {"timestamp": at(11), "from": ALARM, "to": OK},
    ]
    assert result.times_fired == 2
    assert list(result.timeline.columns) == ["timestamp", "value", "state"]
    assert len(result.timeline) == 12
    assert result.timeline["value"].isna().tolist() == [v in (None, "gap") for v in BACKTEST_VALUES]


def test_backtest_without_look_back():
    # Evaluation range 3 (= N): i9 [- 20 1] has 2 real with one breaching, so the alarm clears one period earlier.
    result = A.backtest(BACKTEST_ALARM, backtest_rows(), evaluation_range=3)
    assert [(t["timestamp"], t["to"]) for t in result.transitions] == [
        (at(0), OK),
        (at(2), ALARM),
        (at(4), OK),
        (at(8), ALARM),
        (at(9), OK),
    ]
    assert result.times_fired == 2


def test_backtest_series_input_matches_rows_input():
    rows = backtest_rows()
    series = pd.Series([v for _, v in rows], index=pd.DatetimeIndex([t for t, _ in rows]), dtype="float64")
    from_rows = A.backtest(BACKTEST_ALARM, rows)
    from_series = A.backtest(BACKTEST_ALARM, series.sample(frac=1.0, random_state=0))  # order does not matter
    pd.testing.assert_frame_equal(from_rows.timeline, from_series.timeline)
    assert from_rows.transitions == from_series.transitions


@pytest.mark.parametrize("treat", ["missing", "ignore", "breaching", "notBreaching"])
@pytest.mark.parametrize("evaluation_range", [None, 3, 6])
def test_backtest_timeline_equals_evaluate_at_each_step(treat, evaluation_range):
    alarm = dict(BACKTEST_ALARM, TreatMissingData=treat)
    result = A.backtest(alarm, backtest_rows(), start_state=OK, evaluation_range=evaluation_range)
    span = 5 if evaluation_range is None else evaluation_range
    values = [None if v == "gap" else v for v in BACKTEST_VALUES]
    state, expected = OK, []
    for i in range(len(values)):
        state = A.evaluate(alarm, values[max(0, i - span + 1) : i + 1], current_state=state)
        expected.append(state)
    assert result.timeline["state"].tolist() == expected
    assert result.times_fired == sum(t["to"] == ALARM for t in result.transitions)


def test_backtest_rejects_off_grid_and_duplicate_timestamps():
    rows = backtest_rows() + [(T0 + timedelta(minutes=20, seconds=30), 5.0)]
    with pytest.raises(ValueError, match="60 s periods"):
        A.backtest(BACKTEST_ALARM, rows)
    with pytest.raises(ValueError, match="duplicate"):
        A.backtest(BACKTEST_ALARM, backtest_rows() + [(T0, 3.0)])


def test_backtest_plot_draws_threshold_and_alarm_spans():
    result = A.backtest(BACKTEST_ALARM, backtest_rows())
    ax = result.plot()
    assert any(list(line.get_ydata()) == [10.0, 10.0] for line in ax.get_lines())  # threshold line
    assert result.alarm_spans() == [(at(1), at(3)), (at(7), at(10))]
    assert len(ax.patches) == 2  # one shaded span per ALARM run
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_backtest_error_rate_alarm_keeps_alarm_while_data_stops(error_alarm):
    # 5-minute error rates; 2 of 3 above 0.05, missing treated as notBreaching, evaluation range 5.
    # i0 [0] -> OK; i1 [0 .1] 2 real, 1 breaching + 1 filled not breaching -> OK; i2 [0 .1 .1] -> ALARM;
    # i3 [0 .1 .1 0] last 3 real .1 .1 0 -> ALARM; i4, i5: still 3+ real points in the range -> ALARM
    # (the docs' note: alarms re-evaluate the last data points for a while after the metric stops flowing).
    rows = [(T0 + timedelta(minutes=5 * i), v) for i, v in enumerate([0.0, 0.1, 0.1, 0.0, None, None])]
    result = A.backtest(error_alarm, rows)
    assert result.timeline["state"].tolist() == [OK, OK, ALARM, ALARM, ALARM, ALARM]
    assert [(t["timestamp"], t["from"], t["to"]) for t in result.transitions] == [
        (at(0), INSUFFICIENT_DATA, OK),
        (at(10), OK, ALARM),
    ]
    assert result.times_fired == 1
    assert result.period == 300
