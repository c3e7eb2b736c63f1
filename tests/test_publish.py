"""Tests for monitor_utils.publish: CloudWatch limits, batching, and the data that reaches CloudWatch (moto)."""

from __future__ import annotations

import datetime as dt
import math

import botocore.session
import pytest
from botocore.validate import ParamValidator

from monitor_utils import aws, config, publish as P
from monitor_utils.local import emulator as E
from monitor_utils.publish import MetricDataError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- references and fixtures


@pytest.fixture(scope="module")
def put_metric_data_shape():
    model = botocore.session.get_session().get_service_model("cloudwatch")
    return model.operation_model("PutMetricData").input_shape


def botocore_errors(shape, params: dict) -> str:
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else ""


@pytest.fixture(scope="session")
def publish_local_aws(emulator):
    """The session's local AWS emulator (tests/conftest.py)."""
    return emulator


class Recorder:
    """Counts PutMetricData calls on a client and keeps each request's serialized (uncompressed) body size."""

    def __init__(self, client):
        self.calls: list[dict] = []
        self.body_sizes: list[int] = []
        client.meta.events.register("before-call.cloudwatch.PutMetricData", self._before_call)
        client.meta.events.register("provide-client-params.cloudwatch.PutMetricData", self._params)

    def _params(self, params, **kwargs):
        self.calls.append(params)

    def _before_call(self, params, **kwargs):
        body = params.get("body")
        self.body_sizes.append(len(body) if isinstance(body, (bytes, str)) else 0)


@pytest.fixture()
def local_mode(publish_local_aws):
    a = aws.connect(config.validate({}), publish_local_aws.url)
    a.recorder = Recorder(a.client("cloudwatch"))
    return a


@pytest.fixture()
def aws_mode(publish_local_aws):
    """An Aws in 'aws' mode (so CloudWatch's timestamp window applies) whose client still talks to moto."""
    local_cfg = config.validate({})
    a = aws.connect(local_cfg, publish_local_aws.url)
    fake = aws.Aws(a.session, "aws", a.region, publish_local_aws.url, a.retry_config)
    fake.recorder = Recorder(fake.client("cloudwatch"))
    return fake


def read_back(a, namespace: str, name: str, dims: dict | None = None, start=NOW - dt.timedelta(days=20),
              end=NOW + dt.timedelta(days=1)) -> dict:
    resp = a.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in (dims or {}).items()],
        StartTime=start, EndTime=end, Period=60 * 60 * 24 * 30, Statistics=["SampleCount", "Sum", "Minimum", "Maximum"])
    pts = resp["Datapoints"]
    return {"SampleCount": sum(p["SampleCount"] for p in pts), "Sum": sum(p["Sum"] for p in pts),
            "Minimum": min((p["Minimum"] for p in pts), default=None),
            "Maximum": max((p["Maximum"] for p in pts), default=None)}


def ok(**overrides) -> dict:
    d = P.datum("Rmse", 7.5, NOW, {"EndpointName": "ep", "VariantName": "AllTraffic"})
    d.update(overrides)
    return d


# --------------------------------------------------------------------------- datum / validate_datum


def test_datum_shape(put_metric_data_shape):
    d = P.datum("R2", 1, NOW, {"EndpointName": "ep", "Window": 3}, unit="Count")
    assert d == {"MetricName": "R2", "Timestamp": NOW, "Value": 1.0, "Unit": "Count",
                 "Dimensions": [{"Name": "EndpointName", "Value": "ep"}, {"Name": "Window", "Value": "3"}]}
    assert type(d["Value"]) is float
    assert botocore_errors(put_metric_data_shape, {"Namespace": "N", "MetricData": [d]}) == ""
    P.validate_datum(d)


@pytest.mark.parametrize("d", [
    ok(),
    ok(Dimensions=[{"Name": f"d{i}", "Value": "v"} for i in range(30)]),
    ok(MetricName="m" * 255),
    ok(Value=2.0**359),
    ok(Value=-(2.0**359)),
    ok(Value=0),
    {k: v for k, v in ok(Values=[1.0] * 150, Counts=[2.0] * 150).items() if k != "Value"},
    {k: v for k, v in ok(Values=[1.0, 2.0]).items() if k != "Value"},
    {k: v for k, v in ok(StatisticValues={"SampleCount": 3, "Sum": 6.0, "Minimum": 1.0, "Maximum": 3.0}).items()
     if k != "Value"},
])
def test_valid_datums_pass_ours_and_botocore(d, put_metric_data_shape):
    P.validate_datum(d)
    assert botocore_errors(put_metric_data_shape, {"Namespace": "N", "MetricData": [d]}) == ""


def _without_value(d):
    return {k: v for k, v in d.items() if k != "Value"}


@pytest.mark.parametrize("d, match", [
    (ok(Value=float("nan")), "not finite"),
    (ok(Value=float("inf")), "not finite"),
    (ok(Value=-float("inf")), "not finite"),
    (ok(Value=2.0**361), "outside CloudWatch's range"),
    (ok(Value=-(2.0**361)), "outside CloudWatch's range"),
    (ok(Value="7.5"), "not a number"),
    (ok(Value=True), "not a number"),
    (_without_value(ok(Values=[1.0, float("nan")])), "not finite"),
    (_without_value(ok(Values=[1.0, 2.0], Counts=[1.0, float("inf")])), "not finite"),
    (_without_value(ok(Values=[1.0] * 151)), "151 values"),
    (_without_value(ok(Values=[])), "0 values"),
    (_without_value(ok(Values=[1.0, 2.0, 3.0], Counts=[1.0, 1.0])), "3 values but 2 counts"),
    (ok(Dimensions=[{"Name": f"d{i}", "Value": "v"} for i in range(31)]), "31 dimensions"),
    (ok(Dimensions=[{"Name": "", "Value": "v"}]), "non-empty Name and Value"),
    (ok(Dimensions=[{"Name": "EndpointName", "Value": ""}]), "non-empty Name and Value"),
    (ok(MetricName=""), "1-255 characters"),
    (ok(MetricName="m" * 256), "1-255 characters"),
    ({k: v for k, v in ok().items() if k != "MetricName"}, "1-255 characters"),
    (ok(Values=[1.0]), "exactly one of"),
    (_without_value(ok()), "exactly one of"),
    (_without_value(ok(StatisticValues={"SampleCount": 0, "Sum": 0.0, "Minimum": 0.0, "Maximum": 0.0})),
     "SampleCount > 0"),
    (_without_value(ok(StatisticValues={"SampleCount": 2, "Sum": 3.0, "Minimum": 2.0, "Maximum": 1.0})),
     "Minimum <= Maximum"),
    (_without_value(ok(StatisticValues={"SampleCount": 2, "Sum": 2.0**361, "Minimum": 1.0, "Maximum": 2.0})),
     "outside CloudWatch's range"),
])
def test_invalid_datums_rejected(d, match):
    with pytest.raises(MetricDataError, match=match):
        P.validate_datum(d)


# --------------------------------------------------------------------------- batches


def many(n: int, *, values: int = 0, dims: int = 1, prefix: str = "m") -> list[dict]:
    out = []
    for i in range(n):
        d = P.datum(f"{prefix}{i % 7}", float(i), NOW - dt.timedelta(seconds=i),
                    {f"Dimension{k:02d}": f"value-{k}-{i}" for k in range(dims)})
        if values:
            del d["Value"]
            d["Values"] = [i + j / 7 for j in range(values)]
            d["Counts"] = [1.0 + j for j in range(values)]
        out.append(d)
    return out


def serialized_sizes(client, batches) -> list[int]:
    """Size of each batch as this botocore would put it on the wire (before optional gzip)."""
    rec = Recorder.__new__(Recorder)
    rec.calls, rec.body_sizes = [], []
    handler = rec._before_call
    client.meta.events.register("before-call.cloudwatch.PutMetricData", handler)
    # stop each call after serialization: answer it ourselves so nothing is sent
    stub = lambda **kw: (type("R", (), {"status_code": 200, "headers": {}})(), {})  # noqa: E731
    client.meta.events.register_last("before-call.cloudwatch.PutMetricData", stub, unique_id="stop-call")
    try:
        for b in batches:
            client.put_metric_data(Namespace="SizeProbe", MetricData=b)
    finally:
        client.meta.events.unregister("before-call.cloudwatch.PutMetricData", handler)
        client.meta.events.unregister("before-call.cloudwatch.PutMetricData", unique_id="stop-call")
    return rec.body_sizes


@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1001, 2500, 5000])
def test_batches_count_limit_and_order(n):
    ds = many(n)
    out = P.batches(ds)
    assert all(1 <= len(b) <= P.MAX_DATUMS_PER_REQUEST for b in out)
    assert [d for b in out for d in b] == ds
    assert all(x is y for x, y in zip([d for b in out for d in b], ds))
    assert len(out) == math.ceil(n / 1000)


def test_batches_split_heavy_datums_under_one_megabyte(local_mode, put_metric_data_shape):
    ds = many(700, values=150, dims=30)          # each datum ~10 kB: the size limit binds before the count
    out = P.batches(ds)
    assert len(out) > 1
    assert [d for b in out for d in b] == ds
    assert all(len(b) <= 1000 for b in out)
    sizes = serialized_sizes(local_mode.client("cloudwatch"), out)
    assert len(sizes) == len(out) and all(s > 0 for s in sizes)
    assert max(sizes) <= 1_000_000
    assert sum(sizes) / len(sizes) > 300_000    # batches are filled, not one datum each
    for b in out:
        assert botocore_errors(put_metric_data_shape, {"Namespace": "N", "MetricData": b}) == ""


def test_batches_many_dimensions_under_one_megabyte(local_mode):
    ds = many(3000, dims=30)
    out = P.batches(ds)
    assert [d for b in out for d in b] == ds
    sizes = serialized_sizes(local_mode.client("cloudwatch"), out)
    assert max(sizes) <= 1_000_000 and all(len(b) <= 1000 for b in out)


# --------------------------------------------------------------------------- publish on the emulator


def test_publish_2500_datums_three_calls_and_data_reads_back(local_mode, put_metric_data_shape):
    ns = "UnitTest/Publish2500"
    ds = [P.datum("Rmse" if i % 2 else "Mae", 1.0 + (i % 50) / 4, NOW - dt.timedelta(minutes=i),
                  {"EndpointName": "ep-a" if i % 3 else "ep-b"}) for i in range(2500)]
    stats = P.publish(local_mode, ns, ds, now=NOW)
    assert stats.calls == 3 and stats.datums == 2500 and stats.values == 2500 and stats.dropped_too_old == 0
    rec = local_mode.recorder
    assert len(rec.calls) == 3                                   # counted on the client itself
    assert [len(c["MetricData"]) for c in rec.calls] == [1000, 1000, 500]
    for call in rec.calls:
        assert call["Namespace"] == ns
        assert botocore_errors(put_metric_data_shape, call) == ""
    for name in ("Rmse", "Mae"):
        for ep in ("ep-a", "ep-b"):
            sent = [d["Value"] for d in ds if d["MetricName"] == name and d["Dimensions"][0]["Value"] == ep]
            got = read_back(local_mode, ns, name, {"EndpointName": ep})
            assert got["SampleCount"] == len(sent)
            assert got["Sum"] == pytest.approx(sum(sent), rel=1e-12)
            assert got["Minimum"] == min(sent) and got["Maximum"] == max(sent)


def test_publish_values_and_counts_read_back(local_mode):
    ns = "UnitTest/Distribution"
    d = _without_value(ok(Values=[1.0, 2.0, 3.0], Counts=[2.0, 1.0, 5.0]))
    stats = P.publish(local_mode, ns, [d], now=NOW)
    assert stats.calls == 1 and stats.values == 3
    got = read_back(local_mode, ns, "Rmse", {"EndpointName": "ep", "VariantName": "AllTraffic"})
    assert got["SampleCount"] == 8 and got["Sum"] == pytest.approx(1 * 2 + 2 * 1 + 3 * 5)


def test_publish_nothing_makes_no_call(local_mode):
    stats = P.publish(local_mode, "UnitTest/Empty", [], now=NOW)
    assert stats == P.PublishStats() and local_mode.recorder.calls == []


@pytest.mark.parametrize("ns", ["AWS/SageMaker", "AWS/", ""])
def test_reserved_or_empty_namespace_rejected(local_mode, ns):
    with pytest.raises(MetricDataError, match="AWS/"):
        P.publish(local_mode, ns, [ok()], now=NOW)
    assert local_mode.recorder.calls == []


def test_one_bad_datum_sends_nothing(local_mode):
    ds = many(1500) + [ok(Value=float("nan"))]
    with pytest.raises(MetricDataError, match="not finite"):
        P.publish(local_mode, "UnitTest/Atomic", ds, now=NOW)
    assert local_mode.recorder.calls == []


def test_local_mode_backfills_old_datums(local_mode):
    ns = "UnitTest/Backfill"
    ds = [ok(Timestamp=NOW - dt.timedelta(days=30)), ok(Timestamp=NOW - dt.timedelta(days=1))]
    stats = P.publish(local_mode, ns, ds, now=NOW)
    assert stats.dropped_too_old == 0 and stats.datums == 2
    got = read_back(local_mode, ns, "Rmse", {"EndpointName": "ep", "VariantName": "AllTraffic"},
                    start=NOW - dt.timedelta(days=40))
    assert got["SampleCount"] == 2


def test_aws_mode_drops_datums_older_than_14_days(aws_mode):
    ns = "UnitTest/AwsModeAge"
    ds = [ok(Timestamp=NOW - dt.timedelta(days=15), Value=100.0),
          ok(Timestamp=NOW - dt.timedelta(days=14, minutes=1), Value=200.0),
          ok(Timestamp=NOW - dt.timedelta(days=13), Value=1.0),
          ok(Timestamp=NOW - dt.timedelta(hours=1), Value=2.0),
          ok(Timestamp=NOW + dt.timedelta(hours=1), Value=4.0)]
    stats = P.publish(aws_mode, ns, ds, now=NOW)
    assert stats.dropped_too_old == 2 and stats.datums == 3 and stats.calls == 1
    assert [d["Value"] for d in aws_mode.recorder.calls[0]["MetricData"]] == [1.0, 2.0, 4.0]
    got = read_back(aws_mode, ns, "Rmse", {"EndpointName": "ep", "VariantName": "AllTraffic"},
                    start=NOW - dt.timedelta(days=40))
    assert got["SampleCount"] == 3 and got["Sum"] == 7.0


def test_aws_mode_rejects_more_than_two_hours_ahead(aws_mode):
    ds = [ok(), ok(Timestamp=NOW + dt.timedelta(hours=2, minutes=1))]
    with pytest.raises(MetricDataError, match="2 hours ahead"):
        P.publish(aws_mode, "UnitTest/AwsModeFuture", ds, now=NOW)
    assert aws_mode.recorder.calls == []


def test_enforce_age_overrides_mode(local_mode, aws_mode):
    old = [ok(Timestamp=NOW - dt.timedelta(days=20))]
    assert P.publish(local_mode, "UnitTest/Override", old, now=NOW, enforce_age=True).dropped_too_old == 1
    assert local_mode.recorder.calls == []
    assert P.publish(aws_mode, "UnitTest/Override", old, now=NOW, enforce_age=False).datums == 1


def test_publish_aws_namespace_local_only(local_mode, aws_mode):
    ns = "AWS/SageMaker"
    d = P.datum("Invocations", 5.0, NOW, {"EndpointName": "ep-ns", "VariantName": "AllTraffic"}, unit="Count")
    stats = E.publish_aws_namespace(local_mode, ns, [d] * 3)
    assert stats.calls == 1 and stats.datums == 3
    got = read_back(local_mode, ns, "Invocations", {"EndpointName": "ep-ns", "VariantName": "AllTraffic"})
    assert got["SampleCount"] == 3 and got["Sum"] == 15.0
    with pytest.raises(MetricDataError, match="local simulation"):
        E.publish_aws_namespace(aws_mode, ns, [d])
    assert aws_mode.recorder.calls == []


def test_publish_stats_add():
    s = P.PublishStats(1, 2, 3, 4)
    s += P.PublishStats(10, 20, 30, 40)
    assert s == P.PublishStats(11, 22, 33, 44)


# --------------------------------------------------------------------------- EMF log events: what CloudWatch Logs accepted

SERVICE_NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)   # a log service's clock in the pure tests below


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _stamps(*ages: dt.timedelta, now: dt.datetime = SERVICE_NOW) -> list[int]:
    return [_ms(now - a) for a in ages]


AGES = (dt.timedelta(days=20), dt.timedelta(days=15), dt.timedelta(days=3), dt.timedelta(hours=1))


def test_rejected_events_reads_the_documented_exclusive_end_index():
    # AWS: tooOldLogEventEndIndex is exclusive -> events 0 and 1 were rejected
    assert P.rejected_events({"tooOldLogEventEndIndex": 2}, _stamps(*AGES), SERVICE_NOW) == (2, None)
    assert P.rejected_events({"expiredLogEventEndIndex": 1}, _stamps(*AGES), SERVICE_NOW) == (2, None)
    assert P.rejected_events({}, _stamps(*AGES), SERVICE_NOW) == (0, None)
    assert P.rejected_events(None, _stamps(*AGES), SERVICE_NOW) == (0, None)


def test_rejected_events_reads_the_emulators_inclusive_end_index():
    # moto answers with the index of the last too-old event: event 1 is past the limit, so it was rejected too
    assert P.rejected_events({"tooOldLogEventEndIndex": 1}, _stamps(*AGES), SERVICE_NOW) == (2, None)
    every_one_old = _stamps(dt.timedelta(days=30), dt.timedelta(days=20))
    assert P.rejected_events({"tooOldLogEventEndIndex": 1}, every_one_old, SERVICE_NOW) == (2, None)


def test_an_event_at_the_limit_counts_as_dropped_never_as_published():
    # accepted by a service whose clock is a minute behind ours: within the skew allowance, counted dropped
    near = _stamps(dt.timedelta(days=20), dt.timedelta(days=14) - dt.timedelta(minutes=1), dt.timedelta(days=1))
    assert P.rejected_events({"tooOldLogEventEndIndex": 1}, near, SERVICE_NOW) == (2, None)
    clear = _stamps(dt.timedelta(days=20), dt.timedelta(days=14) - dt.timedelta(hours=1), dt.timedelta(days=1))
    assert P.rejected_events({"tooOldLogEventEndIndex": 1}, clear, SERVICE_NOW) == (1, None)


def test_rejected_events_too_new_start():
    ts = _stamps(dt.timedelta(days=1), dt.timedelta(hours=1), -dt.timedelta(hours=3), -dt.timedelta(hours=4))
    assert P.rejected_events({"tooNewLogEventStartIndex": 2}, ts, SERVICE_NOW) == (0, 2)   # AWS: the first one
    assert P.rejected_events({"tooNewLogEventStartIndex": 3}, ts, SERVICE_NOW) == (0, 2)   # moto: the last one
    both = _stamps(dt.timedelta(days=20), dt.timedelta(days=1), -dt.timedelta(hours=3))
    assert P.rejected_events({"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 2}, both, SERVICE_NOW) == (1, 2)


def test_emf_batches_split_at_24_hours_10000_events_and_one_megabyte():
    t0 = _ms(SERVICE_NOW)
    day = [{"timestamp": t0 + h * 3_600_000, "message": "{}"} for h in range(49)]   # 0 h .. 48 h
    out = P._emf_batches(day)
    assert [len(b) for b in out] == [24, 24, 1]
    assert all(b[-1]["timestamp"] - b[0]["timestamp"] < P.MAX_LOG_BATCH_SPAN_MS for b in out)
    many_events = [{"timestamp": t0, "message": "{}"}] * 25_000
    assert [len(b) for b in P._emf_batches(many_events)] == [10_000, 10_000, 5_000]
    big = [{"timestamp": t0, "message": "x" * 100_000}] * 25
    sizes = [sum(len(e["message"]) + 26 for e in b) for b in P._emf_batches(big)]
    assert len(sizes) == 3 and max(sizes) <= 1_000_000
    assert [e for b in P._emf_batches(day) for e in b] == day


# The emulator, like CloudWatch Logs, judges a log event's age by its own (wall) clock, so the tests that
# send events to it place them relative to the wall clock, explicitly, with hours of margin either way.

def _wall_now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def _log_group(a, name: str) -> str:
    group = f"/unit-test/{name}-{_ms(_wall_now())}"
    a.client("logs").create_log_group(logGroupName=group)
    return group


def _stored(a, group: str, stream: str) -> list[dict]:
    import json

    events = a.client("logs").get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [json.loads(e["message"]) for e in events]


def _emf_datums(now: dt.datetime) -> list[dict]:
    dims = {"EndpointName": "ep", "VariantName": "AllTraffic"}
    out = []
    for age, value in ((dt.timedelta(days=20), 1.0), (dt.timedelta(days=15), 2.0),
                       (dt.timedelta(days=3), 3.0), (dt.timedelta(hours=1), 4.0)):
        out += [P.datum("RMSE", value, now - age, dims), P.datum("MAE", value / 2, now - age, dims)]
    return out


def test_emf_events_the_emulator_rejects_as_too_old_are_dropped_not_published(local_mode):
    now = _wall_now()
    group = _log_group(local_mode, "emf-old")
    stats = P.write_emf(local_mode, group, "s", "UnitTest/Emf", _emf_datums(now), now=now)
    # local mode sends everything (one request per day of events); the emulator rejects the two documents
    # (4 datums) older than 14 days
    assert stats.calls == 4 and stats.datums == 4 and stats.dropped_too_old == 4
    docs = _stored(local_mode, group, "s")
    assert [d["RMSE"] for d in docs] == [3.0, 4.0] and [d["MAE"] for d in docs] == [1.5, 2.0]


def test_emf_request_straddling_the_14_day_limit_counts_each_side(local_mode):
    now = _wall_now()
    group = _log_group(local_mode, "emf-edge")
    limit = now - P.MAX_AGE
    dims = {"EndpointName": "ep"}
    ds = [P.datum("RMSE", float(i), limit + dt.timedelta(hours=h), dims) for i, h in enumerate((-6, -3, 3, 6))]
    stats = P.write_emf(local_mode, group, "s", "UnitTest/Emf", ds, now=now)
    assert stats.calls == 1 and stats.dropped_too_old == 2 and stats.datums == 2   # one request, split by the limit
    assert [d["RMSE"] for d in _stored(local_mode, group, "s")] == [2.0, 3.0]


def test_emf_too_old_in_aws_mode_is_dropped_before_sending(aws_mode):
    now = _wall_now()
    group = _log_group(aws_mode, "emf-aws")
    sent = []
    aws_mode.client("logs").meta.events.register("provide-client-params.logs.PutLogEvents",
                                                 lambda params, **kw: sent.append(params["logEvents"]))
    stats = P.write_emf(aws_mode, group, "s", "UnitTest/Emf", _emf_datums(now), now=now)
    assert stats.calls == 2 and stats.datums == 4 and stats.dropped_too_old == 4
    assert [len(events) for events in sent] == [1, 1]    # the old documents never left
    assert [d["RMSE"] for d in _stored(aws_mode, group, "s")] == [3.0, 4.0]


def test_emf_too_new_for_the_emulator_raises_naming_the_metric(local_mode):
    now = _wall_now()
    group = _log_group(local_mode, "emf-new")
    dims = {"EndpointName": "ep"}
    ahead = now + dt.timedelta(hours=5)
    ds = [P.datum("Count", 10, now - dt.timedelta(hours=1), dims),
          P.datum("RMSE", 7.0, ahead, dims), P.datum("RMSE", 8.0, ahead + dt.timedelta(hours=1), dims)]
    with pytest.raises(MetricDataError, match=rf"RMSE at {ahead:%Y-%m-%dT%H:%M:%S}Z .*2 hours ahead.*1 datum"):
        P.write_emf(local_mode, group, "s", "UnitTest/Emf", ds, now=now)
    assert [d.get("Count") for d in _stored(local_mode, group, "s")] == [10.0]   # the accepted one was written


def test_emf_too_new_in_aws_mode_raises_before_sending(aws_mode):
    now = _wall_now()
    group = _log_group(aws_mode, "emf-aws-new")
    calls = []
    aws_mode.client("logs").meta.events.register("provide-client-params.logs.PutLogEvents",
                                                 lambda params, **kw: calls.append(params))
    ds = [P.datum("RMSE", 1.0, now, {"EndpointName": "ep"}),
          P.datum("RMSE", 2.0, now + dt.timedelta(hours=3), {"EndpointName": "ep"})]
    with pytest.raises(MetricDataError, match="2 hours ahead"):
        P.write_emf(aws_mode, group, "s", "UnitTest/Emf", ds, now=now)
    assert calls == []
