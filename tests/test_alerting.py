"""Alarm specs from params (overrides, aws-only composite and anomaly alarms) against botocore's own model."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.validate import ParamValidator

from monitor_utils import alarms, alerting, config

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
CW = botocore.session.get_session().get_service_model("cloudwatch")


def _valid(operation: str, request: dict) -> None:
    report = ParamValidator().validate(request, CW.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_every_spec_is_accepted_by_the_local_server_as_sent_on_real_metric_names(emulator):
    from monitor_utils.aws import connect

    cfg = config.validate({"endpoint_name": "alerting-specs-ep"})
    specs = alerting.alarm_specs(cfg, TOPIC)
    assert {s["AlarmName"].split("alerting-specs-ep-")[1] for s in specs} == {
        "rmse", "r2", "estimated-rmse", "data-drift", "heartbeat", "error-rate", "latency-p99"}
    cw = connect(cfg, emulator.url).client("cloudwatch")
    for spec in specs:  # serialised by botocore, parsed by another implementation, read back
        cw.put_metric_alarm(**spec)
        got = cw.describe_alarms(AlarmNames=[spec["AlarmName"]])["MetricAlarms"][0]
        for key in ("Threshold", "ComparisonOperator", "EvaluationPeriods", "TreatMissingData", "MetricName",
                    "Namespace", "Statistic", "ExtendedStatistic", "Period"):
            if key in spec:
                assert got[key] == spec[key], (spec["AlarmName"], key)
        if "Metrics" in spec:
            assert [q["Id"] for q in got["Metrics"]] == [q["Id"] for q in spec["Metrics"]]
        if spec.get("Namespace") == "AWS/SageMaker":
            assert spec["MetricName"] in alarms.SAGEMAKER_ENDPOINT_METRICS
    heartbeat = next(s for s in specs if s["AlarmName"].endswith("heartbeat"))
    assert heartbeat["TreatMissingData"] == "breaching"  # the suite stopped running = someone is told


def test_overrides_from_params_change_the_spec():
    cfg = config.validate({"alarm_overrides": {"rmse": {"EvaluationPeriods": 3, "DatapointsToAlarm": 3},
                                               "error-rate": {"Period": 300}}})
    specs = {s["AlarmName"]: s for s in alerting.alarm_specs(cfg, TOPIC)}
    assert specs["msd-year-predictor-rmse"]["EvaluationPeriods"] == 3
    assert all(q["MetricStat"]["Period"] == 300 for q in specs["msd-year-predictor-error-rate"]["Metrics"] if "MetricStat" in q)


@pytest.mark.parametrize("overrides, message", [
    ({"rmsee": {"Threshold": 1}}, "unknown alarm 'rmsee'; alarms are rmse"),
    ({"rmse": {"Namespace": "x"}}, "field 'Namespace' cannot be overridden"),
    ({"rmse": {"EvaluationPeriods": 300}}, "exceeds 604800 s"),
    ({"error-rate": {"Period": 60, "EvaluationPeriods": 1441}}, "exceeds 86400 s"),
    ({"r2": {"TreatMissingData": "sometimes"}}, "TreatMissingData"),
])
def test_bad_overrides_fail_before_any_call(overrides, message):
    cfg = config.validate({})
    cfg["alarm_overrides"] = overrides  # past the params checks (tests/test_params_errors.py): the specs reject it too
    with pytest.raises(alarms.AlarmSpecError, match=message):
        alerting.alarm_specs(cfg, TOPIC)


def test_aws_only_alarms_are_valid_requests():
    cfg = config.validate({})
    _valid("PutMetricAlarm", alerting.anomaly_spec(cfg, TOPIC))
    composite = alerting.composite_spec(cfg, TOPIC)
    _valid("PutCompositeAlarm", composite)
    assert composite["AlarmRule"].count("ALARM(") == 4
    assert 'ALARM("msd-year-predictor-estimated-rmse")' in composite["AlarmRule"]


def test_composite_state_follows_its_children():
    cfg = config.validate({})
    assert alerting.composite_state(cfg, {"msd-year-predictor-rmse": "OK", "msd-year-predictor-r2": "OK",
                                          "msd-year-predictor-error-rate": "ALARM"}) == "ALARM"
    assert alerting.composite_state(cfg, {"msd-year-predictor-rmse": "OK", "msd-year-predictor-r2": "OK",
                                          "msd-year-predictor-error-rate": "OK"}) == "OK"
    assert alerting.composite_state(cfg, {"msd-year-predictor-rmse": "OK", "msd-year-predictor-r2": "OK",
                                          "msd-year-predictor-estimated-rmse": "ALARM",
                                          "msd-year-predictor-error-rate": "OK"}) == "ALARM"


def test_the_estimated_rmse_alarm_defaults_to_the_rmse_threshold_and_pages_on_one_window():
    specs = {s["AlarmName"]: s for s in alerting.alarm_specs(config.validate({"thresholds": {"rmse_max": 8.5}}), TOPIC)}
    est = specs["msd-year-predictor-estimated-rmse"]
    assert (est["MetricName"], est["Threshold"], est["DatapointsToAlarm"]) == ("EstimatedRMSE", 8.5, 1)
    own = config.validate({"thresholds": {"rmse_max": 8.5, "estimated_rmse_max": 10.0}})
    assert {s["AlarmName"]: s for s in alerting.alarm_specs(own, TOPIC)}["msd-year-predictor-estimated-rmse"][
        "Threshold"] == 10.0


def test_pages_are_known_when_their_datapoint_could_first_exist():
    import datetime as dt

    cfg = config.validate({"label_wait_days": 3})
    specs = {s["AlarmName"].split("msd-year-predictor-")[1]: s for s in alerting.alarm_specs(cfg, TOPIC)}
    t = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    assert alerting.known_at(specs["rmse"], t, cfg.label_wait_days) == t + dt.timedelta(days=3)  # labels wait
    assert alerting.known_at(specs["r2"], t, 0) == t
    assert alerting.known_at(specs["data-drift"], t, 3) == t  # label-free: the window's end
    assert alerting.known_at(specs["estimated-rmse"], t, 3) == t
    assert alerting.known_at(specs["latency-p99"], t, 3) == t + dt.timedelta(hours=1)  # AWS metric: its period's end
    assert alerting.known_at(specs["error-rate"], t, 3) == t + dt.timedelta(hours=1)  # metric math over AWS metrics
