"""The emulator's CloudWatch answers as CloudWatch documents it where moto does not: percentile statistics, composite
alarms, anomaly detectors, DescribeAlarms' AlarmTypes, and alarms evaluated at the emulator's clock."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from botocore.exceptions import ClientError
from conftest import subscribe_queue

from monitor_utils import alarms, alerting, config
from monitor_utils.aws import connect
from monitor_utils.local import cloudwatch as CW

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def cw(emulator):
    aws = connect(config.validate({}), emulator.url, faults=False)
    yield aws.client("cloudwatch")
    CW.evaluate_alarms_at(None)  # the session's emulator goes back to local mode's behaviour


@pytest.fixture
def aws_session(emulator):
    return connect(config.validate({}), emulator.url, faults=False)


def put_values(cw, namespace: str, when: dt.datetime, values: np.ndarray) -> None:
    distinct, counts = np.unique(values, return_counts=True)
    cw.put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": "Latency", "Timestamp": when, "Values": [float(v) for v in distinct],
        "Counts": [float(c) for c in counts]}])


@pytest.mark.parametrize("p", [50.0, 90.0, 99.0, 99.9, 100.0])
def test_percentiles_are_the_nearest_rank_of_the_raw_values(cw, p):
    rng = np.random.default_rng(int(p * 10))
    namespace = f"Unit/Percentile{int(p * 10)}"
    hours = [rng.gamma(2.0, 30.0, size=n).round() for n in (7, 480, 1)]
    for i, values in enumerate(hours):
        put_values(cw, namespace, T0 + i * HOUR + dt.timedelta(minutes=10), values)
    got = cw.get_metric_data(MetricDataQueries=[{"Id": "q", "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": "Latency"}, "Period": 3600, "Stat": f"p{p:g}"}}],
        StartTime=T0, EndTime=T0 + 3 * HOUR, ScanBy="TimestampAscending")["MetricDataResults"][0]
    expected = [float(np.percentile(v, p, method="inverted_cdf")) for v in hours]  # numpy's nearest rank
    assert got["Values"] == expected
    stats = cw.get_metric_statistics(Namespace=namespace, MetricName="Latency", StartTime=T0, EndTime=T0 + 3 * HOUR,
                                     Period=3600, ExtendedStatistics=[f"p{p:g}"])["Datapoints"]
    assert sorted(d["ExtendedStatistics"][f"p{p:g}"] for d in stats) == sorted(expected)


def test_percentiles_of_statistic_sets_only_where_cloudwatch_has_them(cw):
    namespace = "Unit/PercentileSets"
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Latency", "Timestamp": T0, "StatisticValues": {"SampleCount": 3, "Sum": 30, "Minimum": 10,
                                                                       "Maximum": 10}},
        {"MetricName": "Latency", "Timestamp": T0 + HOUR, "StatisticValues": {"SampleCount": 2, "Sum": 30,
                                                                              "Minimum": 10, "Maximum": 20}}])
    got = cw.get_metric_data(MetricDataQueries=[{"Id": "q", "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": "Latency"}, "Period": 3600, "Stat": "p90"}}],
        StartTime=T0, EndTime=T0 + 2 * HOUR, ScanBy="TimestampAscending")["MetricDataResults"][0]
    assert got["Values"][0] == 10.0 and len(got["Values"]) == 1  # the second set has no percentiles


def test_an_unknown_extended_statistic_is_refused(cw):
    with pytest.raises(ClientError, match="ExtendedStatistics"):
        cw.get_metric_statistics(Namespace="Unit/X", MetricName="Latency", StartTime=T0, EndTime=T0 + HOUR,
                                 Period=3600, ExtendedStatistics=["q99"])


@pytest.mark.parametrize("rule, expected", [
    ('ALARM("a") OR ALARM("b")', "ALARM"),
    ('ALARM("a") AND ALARM("b")', "OK"),
    ('ALARM(a) AND NOT OK("b")', "OK"),
    ('(ALARM("a") OR FALSE) AND INSUFFICIENT_DATA("c")', "ALARM"),
    ('OK("missing")', "OK"),  # an alarm that does not exist is in none of the states
    ("TRUE", "ALARM"),
])
def test_composite_rules_read_as_cloudwatch_reads_them(rule, expected):
    assert CW.rule_state(rule, {"a": "ALARM", "b": "OK", "c": "INSUFFICIENT_DATA"}) == expected


@pytest.mark.parametrize("rule", ['ALARM("a") OR __import__("os")', 'ALARM("a") XOR ALARM("b")', "1 + 1"])
def test_a_rule_outside_the_grammar_is_refused(rule):
    with pytest.raises(ValueError, match="AlarmRule"):
        CW.rule_state(rule, {"a": "ALARM"})


def test_composite_alarms_and_alarm_types(cw):
    cw.put_metric_alarm(AlarmName="unit-types-child", Namespace="Unit/Types", MetricName="M", Statistic="Maximum",
                        Period=3600, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    cw.put_composite_alarm(AlarmName="unit-types-composite", AlarmRule='ALARM("unit-types-child")',
                           AlarmActions=[], AlarmDescription="unit")
    names = ["unit-types-child", "unit-types-composite"]
    plain = cw.describe_alarms(AlarmNames=names)
    assert [a["AlarmName"] for a in plain["MetricAlarms"]] == ["unit-types-child"] and plain["CompositeAlarms"] == []
    composite = cw.describe_alarms(AlarmNames=names, AlarmTypes=["CompositeAlarm"])
    assert composite["MetricAlarms"] == []
    assert [(a["AlarmName"], a["AlarmRule"]) for a in composite["CompositeAlarms"]] == [
        ("unit-types-composite", 'ALARM("unit-types-child")')]
    with pytest.raises(ClientError, match="AlarmRule"):
        cw.put_composite_alarm(AlarmName="unit-types-bad", AlarmRule='ALARM("x") XOR OK("y")')


def test_anomaly_detectors_are_stored(cw):
    detector = {"Namespace": "Unit/Anomaly", "MetricName": "Invocations", "Stat": "Sum",
                "Dimensions": [{"Name": "EndpointName", "Value": "ep"}]}
    cw.put_anomaly_detector(SingleMetricAnomalyDetector=detector)
    cw.put_anomaly_detector(SingleMetricAnomalyDetector=detector)  # the same detector again: still one
    found = cw.describe_anomaly_detectors(Namespace="Unit/Anomaly")["AnomalyDetectors"]
    assert [d["SingleMetricAnomalyDetector"] for d in found] == [detector]


def test_alarms_are_evaluated_at_the_emulators_clock_as_the_suite_evaluates_them(cw, aws_session):
    """A p99 alarm over hours of latency: the emulator's state equals the suite's own replay (alerting.evaluated over
    the history it reads through the API), in ALARM at one clock and OK at another; the composite follows it; without
    a clock (local mode) nothing is evaluated."""
    namespace = "Unit/Evaluated"
    rng = np.random.default_rng(5)
    for i in range(12):  # hours 6-8 are slow
        put_values(cw, namespace, T0 + i * HOUR, rng.normal(400 if 6 <= i <= 8 else 100, 10, 200).round())
    spec = alarms.validate_alarm_spec({
        "AlarmName": "unit-evaluated-p99", "Namespace": namespace, "MetricName": "Latency", "ExtendedStatistic": "p99",
        "Period": 3600, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 300.0,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "missing"})
    topic = aws_session.client("sns").create_topic(Name="unit-evaluated")["TopicArn"]
    queue = subscribe_queue(aws_session, topic, "unit-evaluated")
    cw.put_metric_alarm(**spec, AlarmActions=[topic], OKActions=[topic])
    cw.put_composite_alarm(AlarmName="unit-evaluated-any", AlarmRule='ALARM("unit-evaluated-p99")')
    states = {}
    for label, clock in (("unevaluated", None), ("slow", T0 + 8 * HOUR), ("recovered", T0 + 11 * HOUR)):
        CW.evaluate_alarms_at(clock, dt.timedelta(hours=12))
        described = cw.describe_alarms(AlarmNames=["unit-evaluated-p99", "unit-evaluated-any"],
                                       AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        states[label] = (described["MetricAlarms"][0]["StateValue"], described["CompositeAlarms"][0]["StateValue"])
        if clock is not None:
            history = alerting.alarm_history(aws_session, spec, clock - dt.timedelta(hours=12), clock + dt.timedelta(seconds=1))
            assert states[label][0] == alerting.evaluated(spec, history)[1]
    assert states == {"unevaluated": ("OK", "OK"), "slow": ("ALARM", "ALARM"), "recovered": ("OK", "OK")}
    sqs, sent = aws_session.client("sqs"), []
    for _ in range(3):
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            sent.append(json.loads(json.loads(m["Body"])["Message"]))
    assert [(m["AlarmName"], m["OldStateValue"], m["NewStateValue"]) for m in sent] == [
        ("unit-evaluated-p99", "OK", "ALARM"), ("unit-evaluated-p99", "ALARM", "OK")]  # as CloudWatch notifies


def test_set_alarm_state_notifies_only_when_served_for_aws_mode(cw, aws_session):
    """CloudWatch notifies a state's actions on SetAlarmState (what test-fire checks in aws mode); in local mode the
    suite's driver notifies, so the emulator must not notify a second time."""
    topic = aws_session.client("sns").create_topic(Name="unit-set-state")["TopicArn"]
    queue = subscribe_queue(aws_session, topic, "unit-set-state")
    cw.put_metric_alarm(AlarmName="unit-set-state", Namespace="Unit/SetState", MetricName="M", Statistic="Sum",
                        Period=3600, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[topic])
    sqs = aws_session.client("sqs")

    def received() -> list[str]:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(json.loads(m["Body"])["Message"])["NewStateValue"] for m in got]

    cw.set_alarm_state(AlarmName="unit-set-state", StateValue="ALARM", StateReason="local mode")
    assert received() == []
    cw.set_alarm_state(AlarmName="unit-set-state", StateValue="OK", StateReason="back")
    CW.evaluate_alarms_at(T0, dt.timedelta(hours=1))
    cw.set_alarm_state(AlarmName="unit-set-state", StateValue="ALARM", StateReason="test-fire")
    assert received() == ["ALARM"]


@pytest.mark.parametrize("stat", ["Sum", "Average", "Maximum", "SampleCount", "p90"])
@pytest.mark.parametrize("scan_by", ["TimestampAscending", "TimestampDescending"])
def test_one_metric_stat_answers_what_motos_get_metric_data_answers(emulator, stat, scan_by):
    """The one-pass GetMetricData gives moto's own answer (moto's function is the reference): datums of other
    names, namespaces, dimensions and units, on period edges and at the range's end."""
    from moto.cloudwatch.models import cloudwatch_backends

    aws = connect(config.validate({}), emulator.url, faults=False)
    cw, rng = aws.client("cloudwatch"), np.random.default_rng(11)
    namespace, dims = f"Unit/OnePass{stat}{scan_by}", [{"Name": "EndpointName", "Value": "ep"}]
    start = T0 + dt.timedelta(minutes=7)  # not on a period boundary: periods start at StartTime, as moto's do
    for i in range(60):
        when = start + dt.timedelta(minutes=int(rng.integers(0, 6 * 60)))
        cw.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "Latency", "Timestamp": when, "Value": float(rng.normal(100, 20)), "Dimensions": dims,
             "Unit": "Milliseconds"},
            {"MetricName": "Latency", "Timestamp": when, "Value": 1.0, "Unit": "Milliseconds"},  # no dimensions
            {"MetricName": "Other", "Timestamp": when, "Value": 5.0, "Dimensions": dims}])
    cw.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "Latency", "Timestamp": start + 5 * HOUR,
                                                         "Value": 7.0, "Dimensions": dims}])  # the end: left out
    backend = cloudwatch_backends[aws.account_id][aws.region]
    end = start + 5 * HOUR
    answers = []
    for metric, unit in (({"Namespace": namespace, "MetricName": "Latency", "Dimensions": dims}, None),
                         ({"Namespace": namespace, "MetricName": "Latency"}, "Milliseconds"),
                         ({"Namespace": namespace, "MetricName": "Latency", "Dimensions": dims}, "Count")):
        query = {"Id": "q", "MetricStat": {"Metric": metric, "Period": 3600, "Stat": stat, **({"Unit": unit} if unit else {})}}
        naive = {"start_time": start.replace(tzinfo=None), "end_time": end.replace(tzinfo=None)}
        fast = CW.one_metric_stat(backend, query, naive["start_time"], naive["end_time"], scan_by)
        reference = CW.MOTO_GET_METRIC_DATA(backend, [query], naive["start_time"], naive["end_time"], scan_by)
        assert fast == reference
        answers.append(fast[0]["values"])
    assert len(answers[0]) == 5 and len(answers[1]) == 5 and answers[2] == []  # a unit no datum has: nothing
