"""Bad parameters stop `python -m monitor_utils run` before anything runs: exit 2, a message naming the key, the file
that set it, the value and the fix; records keep error codes and messages, never HTML bodies."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from papermill.exceptions import PapermillExecutionError

from monitor_utils import alerting, cli, config, runner
from monitor_utils.aws import connect

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / "params" / "local.yaml"
_ids = itertools.count(1)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["run", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("text, key, value, fix", [
    ("now: 2026-02-30\n", "now", "2026-02-30", "ISO 8601"),
    ("now: 2026-02-30T06:00:00Z\n", "now", "2026-02-30T06:00:00Z", "ISO 8601"),
    ("alarm_overrides:\n  rmse_max: {Threshold: 8}\n", "alarm_overrides", "rmse_max",
     "alarms are " + ", ".join(s["AlarmName"].removeprefix("msd-year-predictor-")
                               for s in alerting.alarm_specs(config.validate({}), "arn:aws:sns:us-east-1:1:t"))),
    ("alarm_overrides:\n  rmse: {Period: 7}\n", "alarm_overrides", "'Period': 7", "multiple of 60"),
    ("segment_columns: [genre]\n", "segment_columns", "genre", "use prediction or a feature: timbre_avg_01"),
    ("world:\n  broken_feature: timbre_avg_13\n", "world.broken_feature", "timbre_avg_13", "timbre_avg_01..timbre_avg_12"),
    ("data_path: /nowhere/YearPredictionMSD.txt\n", "data_path", "/nowhere/YearPredictionMSD.txt", "or leave it empty"),
])
def test_a_bad_value_in_a_params_file_exits_2_naming_key_file_value_and_fix(tmp_path, capsys, text, key, value, fix):
    bad = tmp_path / "prod.yaml"
    bad.write_text(text)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "-f", str(LOCAL), "-f", str(bad), "--output", str(out))
    assert code == 2, err
    assert f"{bad}: parameter '{key}'" in err  # the file that set it, not the files merged before it
    assert str(LOCAL) not in err
    assert value in err and fix in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("override, key, value", [("now=2026-13-01", "now", "2026-13-01"),
                                                  ("now=2026-02-29", "now", "2026-02-29"),
                                                  ("segment_columns=[year]", "segment_columns", "year"),
                                                  ("world.broken_feature=tempo", "world.broken_feature", "tempo")])
def test_a_bad_override_exits_2_naming_p(tmp_path, capsys, override, key, value):
    code, err = run_cli(capsys, "-f", str(LOCAL), "-p", override, "--output", str(tmp_path / "run"))
    assert code == 2
    assert f"-p: parameter '{key}'" in err and value in err
    assert not (tmp_path / "run").exists()


def test_the_alarms_params_know_are_the_alarms_the_suite_puts():
    from monitor_utils.alarms.constants import SUITE_ALARMS

    cfg = config.validate({"endpoint_name": "ep"})
    assert [s["AlarmName"] for s in alerting.alarm_specs(cfg, "arn:aws:sns:us-east-1:1:t")] == \
        [f"ep-{k}" for k in SUITE_ALARMS]


@pytest.mark.parametrize("overrides, why", [({"rmse_max": {"Threshold": 8}}, "unknown alarm 'rmse_max'; alarms are rmse, r2"),
                                             ({"rmse": {"Statistic": "Average"}}, "field 'Statistic' of alarm 'rmse'"),
                                             ({"rmse": 8}, "alarm 'rmse' must map PutMetricAlarm fields")])
def test_notebook_parameters_check_alarm_names_and_fields_too(overrides, why):
    with pytest.raises(config.ParamsError, match=f"notebook parameters: parameter 'alarm_overrides' is .*{why}"):
        config.from_namespace({"alarm_overrides": overrides})


def test_an_overridden_alarm_is_checked_by_cloudwatchs_rules_before_a_run(tmp_path, capsys):
    f = tmp_path / "prod.yaml"
    f.write_text("alarm_overrides:\n  error-rate: {Period: 60, EvaluationPeriods: 1441}\n")
    assert config.load([f]).alarm_overrides  # names and fields are fine: only CloudWatch's rules reject it
    code, err = run_cli(capsys, "-f", str(f), "--output", str(tmp_path / "run"))
    assert code == 2
    assert f"{f}: parameter 'alarm_overrides'" in err and "exceeds 86400 s" in err
    assert not (tmp_path / "run").exists()


def test_valid_dates_and_feature_segments_still_pass(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("now: 2028-02-29\nsegment_columns: [timbre_avg_01, prediction]\nworld:\n  broken_feature: "
                 "timbre_cov_12_12\nalarm_overrides:\n  latency-p99: {Threshold: 300000}\n")
    p = config.load([f], ["now=2026-11-28T06:30:00Z"])
    assert p.now == "2026-11-28T06:30:00Z" and p.origin("now") == "-p" and p.origin("segment_columns") == str(f)
    assert config.parse_time(p.now).hour == 6


def test_a_local_data_path_is_checked_when_loaded_not_when_a_job_validates_the_runs_params(tmp_path):
    data = tmp_path / "YearPredictionMSD.txt"
    data.write_text("2001,0.5\n")
    assert config.load(overrides=[f"data_path={data}"]).data_path == str(data)
    # the workflow's jobs validate the run's params elsewhere (where the runner's local path need not exist)
    assert config.validate({"data_path": str(tmp_path / "gone.txt")}).data_path.endswith("gone.txt")
    with pytest.raises(config.ParamsError, match="notebook parameters: parameter 'data_path'"):
        config.from_namespace({"data_path": str(tmp_path / "gone.txt")})


# --- aws mode, against the emulator ---------------------------------------------------------------------------------

def account_state(aws, bucket: str) -> dict:
    return {"keys": sorted(o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])),
            "buckets": sorted(b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]),
            "log_groups": sorted(g["logGroupName"] for page in aws.client("logs").get_paginator(
                "describe_log_groups").paginate() for g in page["logGroups"]),
            "topics": sorted(t["TopicArn"] for page in aws.client("sns").get_paginator("list_topics").paginate()
                             for t in page["Topics"])}


def test_an_s3_data_path_that_does_not_exist_stops_aws_mode_before_anything_is_created(emulator, tmp_path, capsys):
    n = f"perr{next(_ids)}"
    values = {"aws_mode": "aws", "bucket": f"{n}-bucket", "endpoint_name": f"ep-{n}", "sns_topic_name": f"t-{n}",
              "log_group": f"/perr/{n}", "now": "2026-11-28T00:00:00Z", "retries": {"max_attempts": 2},
              "data_path": f"s3://{n}-bucket/data/YearPredictionMSD.txt"}
    params = tmp_path / "prod.yaml"
    params.write_text(yaml.safe_dump(values))
    cfg = config.load([params])
    aws = connect(cfg)
    aws.client("s3").create_bucket(Bucket=cfg.bucket)  # the bucket exists; the data set does not
    before = account_state(aws, cfg.bucket)
    code, err = run_cli(capsys, "-f", str(params), "--output", str(tmp_path / "run"))
    assert code == 2
    assert f"{params}: parameter 'data_path' is '{cfg.data_path}': no such object; nothing was created" in err
    assert account_state(aws, cfg.bucket) == before


# --- credentials ----------------------------------------------------------------------------------------------------

@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """An environment in which botocore's chain finds nothing: no variables, no files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("extra", [[], ["-p", "role_arn=arn:aws:iam::123456789012:role/monitoring"]],
                         ids=["chain", "role_arn"])
def test_no_credentials_exits_2_saying_where_credentials_come_from(no_credentials, tmp_path, capsys, extra):
    code, err = run_cli(capsys, "-p", "aws_mode=aws", *extra, "--output", str(tmp_path / "run"))
    assert code == 2
    assert "no AWS credentials" in err
    for where in ("`profile`", "`role_arn`", "AWS_ACCESS_KEY_ID", "~/.aws/credentials", "instance or task role"):
        assert where in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_an_unknown_profile_is_named(no_credentials, tmp_path, capsys):
    f = tmp_path / "prod.yaml"
    f.write_text("aws_mode: aws\nprofile: monitoring-typo\n")
    code, err = run_cli(capsys, "-f", str(f))
    assert code == 2
    assert f"{f}: parameter 'profile' is 'monitoring-typo'" in err and "standard chain" in err


ACCESS_DENIED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                 b'<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message>'
                 b'</Error><RequestId>1</RequestId></ErrorResponse>')


def test_a_role_that_cannot_be_assumed_is_named(monkeypatch, tmp_path, capsys):
    from monitor_utils import aws as aws_module

    real = aws_module.new_session

    def refusing_sts(**kwargs):  # STS answers AssumeRole as it does for a caller the role does not trust
        session = real(**kwargs)
        session.events.register("before-send.sts.AssumeRole", lambda request, **_: AWSResponse(
            request.url, 403, {"Content-Type": "text/xml"}, _Raw(ACCESS_DENIED)))
        return session

    monkeypatch.setattr(aws_module, "new_session", refusing_sts)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    f = tmp_path / "prod.yaml"
    f.write_text("aws_mode: aws\nrole_arn: arn:aws:iam::123456789012:role/monitoring\n")
    code, err = run_cli(capsys, "-f", str(f), "-p", "retries.max_attempts=1")
    assert code == 2
    assert f"{f}: parameter 'role_arn' is 'arn:aws:iam::123456789012:role/monitoring'" in err
    assert "AccessDenied" in err and "trust policy" in err


# --- errors in the run's records ------------------------------------------------------------------------------------

HTML_500 = (b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
            b"<p>The server encountered an internal error and was unable to complete your request.</p>\n")


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def html_client_error(service: str, call) -> ClientError:
    """The ClientError botocore itself makes of an HTML 500 page (what a proxy or a failing server answers)."""
    aws = connect(config.validate({"retries": {"max_attempts": 1}}), "http://127.0.0.1:9")
    client = aws.client(service)
    client.meta.events.register("before-send", lambda request, **_: AWSResponse(
        request.url, 500, {"Content-Type": "text/html; charset=utf-8"}, _Raw(HTML_500)))
    with pytest.raises(ClientError) as info:
        call(client)
    return info.value


@pytest.mark.parametrize("service, call, operation", [
    ("cloudwatch", lambda c: c.put_composite_alarm(AlarmName="a", AlarmRule='ALARM("b")'), "PutCompositeAlarm"),
    ("sagemaker", lambda c: c.describe_endpoint(EndpointName="ep"), "DescribeEndpoint"),
    ("s3", lambda c: c.get_object(Bucket="b", Key="k"), "GetObject"),
])
def test_records_keep_the_error_code_and_message_never_an_html_body(service, call, operation):
    exc = html_client_error(service, call)
    assert "<title>" in str(exc) or "<html" in str(exc) or service == "s3"  # botocore keeps the page in the message
    for error in (runner._error_of(exc),
                  runner._error_of(PapermillExecutionError(3, 1, "setup()", "ClientError", str(exc), []))):
        assert error.startswith("ClientError: An error occurred (")
        assert operation in error
        assert "<" not in error and "doctype" not in error.lower()
        if "<title>" in str(exc):
            assert error.endswith(": 500 Internal Server Error (HTML body left out)")


def test_plain_messages_are_kept_whole_and_long_ones_cut():
    message = "ParamsError: prod.yaml: parameter 'bucket' is 'x' (see <docs>)"
    assert runner.plain_error(message) == message
    assert len(runner.plain_error("x" * 10_000)) < 2100


# --- workflow -------------------------------------------------------------------------------------------------------

def test_workflow_warns_about_empty_job_settings_in_aws_mode(tmp_path, capsys):
    f = tmp_path / "prod.yaml"
    f.write_text("aws_mode: aws\nretraining:\n  job_role_arn: arn:aws:iam::123456789012:role/jobs\n")
    assert cli.main(["workflow", "-f", str(f)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert sorted(line.split()[1] for line in err) == ["retraining.image_uri", "retraining.state_machine_role_arn"]
    assert all(line.startswith("warning: ") and line.endswith(f"set it in {f}") for line in err)
    full = ["-p", "retraining.state_machine_role_arn=arn:aws:iam::123456789012:role/states",
            "-p", "retraining.image_uri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/sklearn:1.2-1-cpu-py3"]
    assert cli.main(["workflow", "-f", str(f), *full]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["workflow"]) == 0  # local mode: the workflow runs on the emulator without them
    assert capsys.readouterr().err == ""
