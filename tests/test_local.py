"""Tests for monitor_utils.local.server (the embedded moto server) and monitor_utils.local.emulator (UpdateEndpoint)."""

from __future__ import annotations

import json
import os
import urllib.request
import zlib

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from monitor_utils import aws, config
from monitor_utils.local import emulator, server as local
from monitor_utils.aws import DUMMY_CREDENTIALS, LOCAL_ENDPOINT_ENV
from monitor_utils.local import LocalAwsError

ROLE = "arn:aws:iam::123456789012:role/unit-test-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/unit-test-image:latest"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def local_local_aws(emulator):
    """The session's local AWS emulator (tests/conftest.py)."""
    return emulator


@pytest.fixture()
def keep_environ():
    """Put os.environ back after a test whose code under test rewrites it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def conn(local_local_aws):
    return aws.connect(config.validate({}), local_local_aws.url)


def dead_url() -> str:
    return f"http://127.0.0.1:{local._free_port()}"


# --------------------------------------------------------------------------- start / find / stop


def test_start_returns_a_reachable_loopback_server(local_local_aws):
    loc = local_local_aws
    assert loc.url.startswith("http://127.0.0.1:")
    assert loc.owned
    assert local.is_reachable(loc.url)
    # the config endpoint answers in constant time; data.json serialises every world the session built so far
    # and outlasted a 5 s timeout on a loaded machine
    with urllib.request.urlopen(f"{loc.url}/moto-api/config", timeout=30) as resp:
        assert 200 <= resp.status < 300  # moto answers 201
        assert isinstance(json.loads(resp.read()), dict)
    assert os.environ[LOCAL_ENDPOINT_ENV] == loc.url
    assert os.environ["AWS_ENDPOINT_URL"] == loc.url
    assert os.environ["AWS_ACCESS_KEY_ID"] == DUMMY_CREDENTIALS["aws_access_key_id"]


def test_plain_boto3_in_this_process_reaches_the_emulator(local_local_aws, conn):
    aws.ensure_bucket(conn, "unit-test-local-bucket")
    plain = boto3.client("s3", region_name="us-east-1")  # no endpoint, no credentials given: the environment's
    names = [b["Name"] for b in plain.list_buckets()["Buckets"]]
    assert "unit-test-local-bucket" in names
    assert plain.meta.endpoint_url == local_local_aws.url


def test_connect_local_needs_url():
    with pytest.raises(RuntimeError, match="local.start"):
        aws.connect(config.validate({}), None)


def test_find_running_through_environment(local_local_aws, keep_environ):
    found = local.find_running()
    assert found is not None and found.url == local_local_aws.url
    assert not found.owned
    found.stop()                                   # not ours: a no-op
    assert local.is_reachable(local_local_aws.url)


def test_find_running_none_when_unset_or_dead(local_local_aws, keep_environ, monkeypatch):
    monkeypatch.delenv(LOCAL_ENDPOINT_ENV, raising=False)
    assert local.find_running() is None
    monkeypatch.setenv(LOCAL_ENDPOINT_ENV, dead_url())
    assert local.find_running() is None


def test_context_manager_stops_owned_server(local_local_aws, keep_environ):
    with local.start(configure_step_functions=False) as second:
        assert second.owned and second.url != local_local_aws.url
        assert local.is_reachable(second.url)
    assert not second.owned
    assert not local.is_reachable(second.url, timeout=1)
    assert local.is_reachable(local_local_aws.url)  # the other server is untouched


# --------------------------------------------------------------------------- credentials


def test_apply_local_environment_removes_real_credentials():
    key_id = "AKIA" + "Q" * 16
    secret = "s" * 40
    env = {
        "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "t" * 300,
        "AWS_SECURITY_TOKEN": "t" * 300, "AWS_PROFILE": "production", "AWS_DEFAULT_PROFILE": "production",
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/admin", "AWS_WEB_IDENTITY_TOKEN_FILE": "token-file",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds",
        "AWS_DEFAULT_REGION": "eu-west-1", "LANG": "C.UTF-8",
    }
    before = dict(os.environ)
    out = local.apply_local_environment("http://127.0.0.1:5999", env)
    assert out is env
    assert dict(os.environ) == before                        # a dict was given: os.environ untouched
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        assert name not in env, name
    assert env["AWS_ACCESS_KEY_ID"] == DUMMY_CREDENTIALS["aws_access_key_id"]
    assert env["AWS_SECRET_ACCESS_KEY"] == DUMMY_CREDENTIALS["aws_secret_access_key"]
    assert key_id not in env.values() and secret not in env.values()
    assert not any(v.startswith("AKIA") for v in env.values())
    assert env["AWS_ENDPOINT_URL"] == env[LOCAL_ENDPOINT_ENV] == "http://127.0.0.1:5999"
    assert env["LANG"] == "C.UTF-8" and env["AWS_DEFAULT_REGION"] == "eu-west-1"   # the rest is kept


def test_dummy_credentials_resolve_in_a_session_from_that_environment(monkeypatch):
    env = local.apply_local_environment("http://127.0.0.1:5999", {
        "AWS_ACCESS_KEY_ID": "AKIA" + "Z" * 16, "AWS_SECRET_ACCESS_KEY": "x" * 40, "AWS_SESSION_TOKEN": "tok"})
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    creds = boto3.Session().get_credentials().get_frozen_credentials()
    assert creds.access_key == "testing" and creds.secret_key == "testing" and creds.token is None


# --------------------------------------------------------------------------- start failures


def test_start_raises_helpful_error_when_server_cannot_start(monkeypatch, keep_environ):
    import moto.server

    attempts = []

    class Refused:
        def __init__(self, ip_address, port, verbose=True):
            attempts.append((ip_address, port))

        def start(self):
            raise OSError("[Errno 98] Address already in use")

        def stop(self):
            pass

    monkeypatch.setattr(moto.server, "ThreadedMotoServer", Refused)
    before = dict(os.environ)
    with pytest.raises(LocalAwsError) as e:
        local.start()
    msg = str(e.value)
    assert "could not start" in msg and "Address already in use" in msg
    assert "aws_mode: aws" in msg and "127.0.0.1" in msg
    assert len(attempts) == 3 and all(ip == "127.0.0.1" for ip, _ in attempts)
    assert dict(os.environ) == before                 # nothing pointed at a server that is not there


def test_start_raises_when_server_never_answers(monkeypatch, keep_environ):
    import moto.server

    stopped = []

    class Silent:
        def __init__(self, ip_address, port, verbose=True):
            self.port = port

        def start(self):
            pass  # claims to start but nothing listens

        def stop(self):
            stopped.append(self.port)

    monkeypatch.setattr(moto.server, "ThreadedMotoServer", Silent)
    with pytest.raises(LocalAwsError, match="no answer from http://127.0.0.1:"):
        local.start()
    assert len(stopped) == 3                          # every half-started server is stopped


def test_is_reachable_false_for_dead_port():
    assert local.is_reachable(dead_url(), timeout=1) is False


# --------------------------------------------------------------------------- emulator: UpdateEndpoint


@pytest.fixture()
def endpoint(conn, request):
    """A model, two endpoint configs and an endpoint on the first one; names unique to the test."""
    sm = conn.client("sagemaker")
    tag = f"t{zlib.crc32(request.node.name.encode()):08x}"
    sm.create_model(ModelName=f"{tag}-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://unit-test-local-bucket/model.tar.gz"})
    for n, count in ((1, 1), (2, 2)):
        sm.create_endpoint_config(
            EndpointConfigName=f"{tag}-config-{n}",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{tag}-model",
                                 "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-1")
    return sm, tag


DEPLOYMENT = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE",
                                                                        "WaitIntervalInSeconds": 0},
                                        "TerminationWaitInSeconds": 0}}


def test_update_endpoint_switches_config(endpoint):
    sm, tag = endpoint
    before = sm.describe_endpoint(EndpointName=f"{tag}-ep")
    assert before["EndpointConfigName"] == f"{tag}-config-1" and "LastDeploymentConfig" not in before
    arn = sm.update_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-2",
                             DeploymentConfig=DEPLOYMENT)["EndpointArn"]
    assert arn == before["EndpointArn"]
    after = sm.describe_endpoint(EndpointName=f"{tag}-ep")
    assert after["EndpointConfigName"] == f"{tag}-config-2"
    assert after["EndpointStatus"] == "InService"
    assert after["LastDeploymentConfig"] == DEPLOYMENT
    assert after["LastModifiedTime"] >= before["LastModifiedTime"]


def test_update_endpoint_with_existing_rollback_alarm(endpoint, conn):
    sm, tag = endpoint
    conn.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{tag}-rollback", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold")
    dc = {**DEPLOYMENT, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"{tag}-rollback"}]}}
    sm.update_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-2", DeploymentConfig=dc)
    after = sm.describe_endpoint(EndpointName=f"{tag}-ep")
    assert after["EndpointConfigName"] == f"{tag}-config-2" and after["LastDeploymentConfig"] == dc


def test_update_endpoint_missing_rollback_alarm_is_validation_error(endpoint):
    sm, tag = endpoint
    dc = {**DEPLOYMENT, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"{tag}-no-such-alarm"}]}}
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-2", DeploymentConfig=dc)
    assert aws.error_code(e.value) == "ValidationException"
    assert f"{tag}-no-such-alarm" in str(e.value)
    assert sm.describe_endpoint(EndpointName=f"{tag}-ep")["EndpointConfigName"] == f"{tag}-config-1"


def test_update_endpoint_unknown_config_is_an_error(endpoint):
    sm, tag = endpoint
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-9")
    assert aws.error_code(e.value) == "ValidationException" and f"{tag}-config-9" in str(e.value)
    assert sm.describe_endpoint(EndpointName=f"{tag}-ep")["EndpointConfigName"] == f"{tag}-config-1"


def test_update_unknown_endpoint_is_an_error(endpoint):
    sm, tag = endpoint
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=f"{tag}-no-such-ep", EndpointConfigName=f"{tag}-config-2")
    assert aws.error_code(e.value) == "ValidationException" and f"{tag}-no-such-ep" in str(e.value)


def test_emulator_install_is_idempotent(endpoint):
    emulator.install()
    emulator.install()
    sm, tag = endpoint
    sm.update_endpoint(EndpointName=f"{tag}-ep", EndpointConfigName=f"{tag}-config-2")
    out = sm.describe_endpoint(EndpointName=f"{tag}-ep")
    assert out["EndpointConfigName"] == f"{tag}-config-2"
    assert "LastDeploymentConfig" not in out  # no DeploymentConfig given, none reported


# --------------------------------------------------------------------------- emulator: objects written in this process

DIRECT_BUCKET = "unit-test-local-direct"


def listed(conn, bucket: str, prefix: str) -> dict[str, tuple[str, int]]:
    """Key -> (ETag, Size) as ListObjectsV2 answers."""
    pages = conn.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["Size"]) for page in pages for o in page.get("Contents", [])}


def test_objects_written_in_process_read_back_through_the_api_as_put_objects(local_local_aws, conn):
    import hashlib

    aws.ensure_bucket(conn, DIRECT_BUCKET)
    bodies = {"a.jsonl": b'{"a":1}\n{"a":2}\n', "b.bin": bytes(range(256)) * 5, "c/deeper/empty": b""}
    objects = [(DIRECT_BUCKET, f"direct/{name}", body) for name, body in bodies.items()]
    assert emulator.put_objects_here(local_local_aws.url, conn.account_id, objects, "application/x-unit-test") is True
    for name, body in bodies.items():  # the reference: the same bytes PUT through the API
        aws.put_bytes(conn, DIRECT_BUCKET, f"api/{name}", body, "application/x-unit-test")
    direct, api = listed(conn, DIRECT_BUCKET, "direct/"), listed(conn, DIRECT_BUCKET, "api/")
    assert sorted(direct) == sorted(f"direct/{n}" for n in bodies)
    s3 = conn.client("s3")
    for name, body in bodies.items():
        assert direct[f"direct/{name}"] == api[f"api/{name}"] == (f'"{hashlib.md5(body).hexdigest()}"', len(body))
        got = s3.get_object(Bucket=DIRECT_BUCKET, Key=f"direct/{name}")
        assert got["Body"].read() == body
        assert got["ContentType"] == "application/x-unit-test"
        assert got["ETag"] == direct[f"direct/{name}"][0]


def test_objects_written_in_process_are_encrypted_with_the_key_given(local_local_aws, conn):
    aws.ensure_bucket(conn, DIRECT_BUCKET)
    key_id = conn.client("kms").create_key(Description="unit test direct writes")["KeyMetadata"]["KeyId"]
    body = b'{"x":1}\n'
    assert emulator.put_objects_here(local_local_aws.url, conn.account_id, [(DIRECT_BUCKET, "kms/direct", body)],
                                     "application/jsonl", key_id)
    encrypted = aws.Aws(conn.session, "local", conn.region, conn.endpoint_url, kms_key_id=key_id)
    aws.put_bytes(encrypted, DIRECT_BUCKET, "kms/api", body, "application/jsonl")  # SSE-KMS through the API
    s3 = conn.client("s3")
    heads = [s3.head_object(Bucket=DIRECT_BUCKET, Key=k) for k in ("kms/direct", "kms/api")]
    for head in heads:
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)
    assert heads[0]["ETag"] == heads[1]["ETag"] and heads[0]["ContentType"] == heads[1]["ContentType"]
    plain = emulator.put_objects_here(local_local_aws.url, conn.account_id, [(DIRECT_BUCKET, "kms/none", body)],
                                      "application/jsonl")
    assert plain and "ServerSideEncryption" not in s3.head_object(Bucket=DIRECT_BUCKET, Key="kms/none")


def test_nothing_is_written_for_a_url_served_elsewhere(local_local_aws, conn):
    aws.ensure_bucket(conn, DIRECT_BUCKET)
    objects = [(DIRECT_BUCKET, "elsewhere/a", b"a")]
    for url in (dead_url(), local_local_aws.url + "/", None):
        assert emulator.put_objects_here(url, conn.account_id, objects, "text/plain") is False
    assert listed(conn, DIRECT_BUCKET, "elsewhere/") == {}


def test_nothing_is_written_when_a_bucket_is_missing(local_local_aws, conn):
    aws.ensure_bucket(conn, DIRECT_BUCKET)
    objects = [(DIRECT_BUCKET, "missing/first", b"1"), ("unit-test-local-no-such-bucket", "missing/second", b"2")]
    assert emulator.put_objects_here(local_local_aws.url, conn.account_id, objects, "text/plain") is False
    assert listed(conn, DIRECT_BUCKET, "missing/") == {}  # not even the object whose bucket exists
    with pytest.raises(ClientError) as e:
        conn.client("s3").head_bucket(Bucket="unit-test-local-no-such-bucket")
    assert aws.error_code(e.value) in ("404", "NoSuchBucket")


def test_a_server_started_here_is_served_here_until_it_stops(local_local_aws, conn, keep_environ):
    aws.ensure_bucket(conn, DIRECT_BUCKET)
    with local.start(configure_step_functions=False) as second:
        assert emulator.put_objects_here(second.url, conn.account_id, [(DIRECT_BUCKET, "second/while", b"w")],
                                         "text/plain")
    assert not emulator.put_objects_here(second.url, conn.account_id, [(DIRECT_BUCKET, "second/after", b"a")],
                                         "text/plain")
    assert sorted(listed(conn, DIRECT_BUCKET, "second/")) == ["second/while"]  # moto's store is the process's


# --------------------------------------------------------------------------- emulator: metrics written in this process


def metric_points(conn, namespace: str, name: str, dims: list[dict], start, end) -> list[tuple]:
    """(timestamp, sample count, sum, min, max) per hour as GetMetricStatistics answers."""
    got = conn.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=dims, StartTime=start, EndTime=end, Period=3600,
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum"])["Datapoints"]
    return sorted((p["Timestamp"], p["SampleCount"], p["Sum"], p["Minimum"], p["Maximum"]) for p in got)


def test_metric_datums_written_in_process_read_back_as_put_metric_data(local_local_aws, conn):
    import datetime as dt

    hour = dt.datetime(2026, 11, 3, 5, tzinfo=dt.timezone.utc)
    dims = [{"Name": "EndpointName", "Value": "unit-direct"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    datums = [{"MetricName": "Invocations", "Value": 3.0, "Unit": "Count", "Timestamp": hour, "Dimensions": dims},
              {"MetricName": "Invocations", "Value": 5.0, "Unit": "Count", "Dimensions": dims,
               "Timestamp": (hour + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=2)))},
              {"MetricName": "ModelLatency", "Unit": "Microseconds", "Timestamp": hour, "Dimensions": dims,
               "Values": [1000.0, 2500.0], "Counts": [2.0, 1.0]}]
    assert emulator.put_metric_data_here(local_local_aws.url, conn.account_id, conn.region, "Unit/Direct", datums)
    conn.client("cloudwatch").put_metric_data(Namespace="Unit/Api", MetricData=datums)  # the reference
    start, end = hour - dt.timedelta(hours=1), hour + dt.timedelta(hours=3)
    for name in ("Invocations", "ModelLatency"):
        direct = metric_points(conn, "Unit/Direct", name, dims, start, end)
        assert direct and direct == metric_points(conn, "Unit/Api", name, dims, start, end)
    assert [p[1:3] for p in metric_points(conn, "Unit/Direct", "Invocations", dims, start, end)] == [(1, 3.0), (1, 5.0)]
    assert metric_points(conn, "Unit/Direct", "ModelLatency", dims, start, end)[0][1:] == (3, 4500.0, 1000.0, 2500.0)


def test_no_metric_datum_is_written_for_a_url_served_elsewhere(local_local_aws, conn):
    import datetime as dt

    datum = {"MetricName": "Elsewhere", "Value": 1.0, "Timestamp": dt.datetime(2026, 11, 3, tzinfo=dt.timezone.utc)}
    for url in (dead_url(), None):
        assert emulator.put_metric_data_here(url, conn.account_id, conn.region, "Unit/Elsewhere", [datum]) is False
    assert conn.client("cloudwatch").list_metrics(Namespace="Unit/Elsewhere")["Metrics"] == []


# --------------------------------------------------------------------------- emulator: preloading, shared models


def test_preload_knows_every_service_the_suite_calls(conn):
    import sys

    emulator.preload(conn.account_id)  # a service name moto does not know raises here
    assert "moto.stepfunctions.parser.models" in sys.modules  # the interpreter that executes state machines


def test_a_failed_preload_is_logged_and_the_run_goes_on(monkeypatch, caplog):
    def broken(account_id):
        raise KeyError("no-such-service")

    monkeypatch.setattr(emulator, "preload", broken)
    with caplog.at_level("WARNING", logger="monitor_utils.local.emulator"):
        emulator.preload_in_background("123456789012").join(timeout=30)
    assert "no-such-service" in caplog.text and "load on first use" in caplog.text


def test_moto_lists_regions_with_the_shared_models_as_with_its_own(local_local_aws):
    from moto.core.base_backend import AccountSpecificBackend

    shared = AccountSpecificBackend.get_session()
    assert shared._session.get_component("data_loader") is aws.new_session()._session.get_component("data_loader")
    own = boto3.Session()  # what moto made before: a session and loader of its own
    for service in ("sagemaker", "s3", "stepfunctions"):
        assert shared.get_available_regions(service) == own.get_available_regions(service)


# --------------------------------------------------------------------------- response timestamps (aws.parse_timestamp)

LISTING = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           b"<Name>b</Name><Prefix></Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
           b"<Contents><Key>a</Key><LastModified>2026-11-03T05:06:07.000Z</LastModified><Size>1</Size></Contents>"
           b"<Contents><Key>b</Key><LastModified>2026-11-03T05:06:07.123456Z</LastModified><Size>1</Size></Contents>"
           b"<Contents><Key>c</Key><LastModified>2026-11-03T05:06:07+02:00</LastModified><Size>1</Size></Contents>"
           b"</ListBucketResult>")


@pytest.mark.parametrize("value", ["2026-11-03T05:06:07.000Z", "2026-11-03T05:06:07Z", "2026-11-03T05:06:07.123456Z",
                                   "2026-11-03T05:06:07.1Z", "2026-11-03T05:06:07.123456789Z", "2026-11-03T05:06:07+02:00",
                                   "Tue, 03 Nov 2026 05:06:07 GMT", "2026-11-03", 1793595967, 1793595967.25, "1793595967"])
def test_response_timestamps_parse_as_botocore_parses_them(value):
    from botocore.utils import parse_timestamp as botocore_parse

    ours, theirs = aws.parse_timestamp(value), botocore_parse(value)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()


def test_a_session_parses_a_listing_with_the_fast_parser_and_the_same_result():
    import botocore.session

    shape = aws.service_model("s3").operation_model("ListObjectsV2").output_shape
    response = {"body": LISTING, "headers": {}, "status_code": 200}
    ours = aws.new_session()._session.get_component("response_parser_factory").create_parser("rest-xml")
    theirs = botocore.session.Session().get_component("response_parser_factory").create_parser("rest-xml")
    assert ours._timestamp_parser is aws.parse_timestamp
    got, want = ours.parse(response, shape), theirs.parse(response, shape)
    assert [o["LastModified"] for o in got["Contents"]] == [o["LastModified"] for o in want["Contents"]]
    assert [o["LastModified"].utcoffset() for o in got["Contents"]] == [o["LastModified"].utcoffset()
                                                                        for o in want["Contents"]]


# --------------------------------------------------------------------------- frames read again (aws.get_frame)


def test_a_frame_read_again_is_served_until_its_object_changes(conn):
    bucket = "unit-test-frames"
    aws.ensure_bucket(conn, bucket)
    first = pd.DataFrame({"a": [1.0, 2.0], "b": [3.5, -1.0]})
    aws.put_frame(conn, bucket, "f.npz", first)
    gets = []

    def count(**_):
        gets.append(1)

    conn.client("s3").meta.events.register("before-call.s3.GetObject", count)
    try:
        got = aws.get_frame(conn, bucket, "f.npz")
        got.loc[0, "a"] = 99.0  # a caller's change never reaches the next reader
        again = aws.get_frame(conn, bucket, "f.npz")
        assert len(gets) == 1
        pd.testing.assert_frame_equal(again, first)
        aws.put_frame(conn, bucket, "f.npz", first * 2)  # rewritten: a new ETag, read again
        pd.testing.assert_frame_equal(aws.get_frame(conn, bucket, "f.npz"), first * 2)
        assert len(gets) == 2
        assert aws.get_frame(conn, bucket, "missing.npz") is None
    finally:
        conn.client("s3").meta.events.unregister("before-call.s3.GetObject", count)
