"""The suite scheduled in the account: the EventBridge Scheduler schedule and the Processing job it starts (requests
checked by botocore's model), idempotent deploys, a dry run that calls nothing, the job's IAM, and a firing rehearsed
against the emulator that leaves the run's records in S3."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from botocore.validate import ParamValidator

from monitor_utils import alarms, alerting, api_model, cli, config, iam_schedule, iam_workflow, records
from monitor_utils import preflight, runner
from monitor_utils import suite_schedule as ss
from monitor_utils.local import processing as local_processing
from monitor_utils.local import world
from monitor_utils.aws import connect, service_model

ACCOUNT = "123456789012"  # the emulator's account
JOB_SETTINGS = {"scheduler_role_arn": f"arn:aws:iam::{ACCOUNT}:role/suite-scheduler",
                "job_role_arn": f"arn:aws:iam::{ACCOUNT}:role/suite-job",
                "image_uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/python-framework:3.11"}
NOW = "2026-11-28T00:00:00Z"


def aws_params(**overrides) -> config.Params:
    values = {"aws_mode": "aws", "bucket": "sched-unit", "endpoint_name": "ep-sched-unit", "now": NOW,
              "suite_schedule": dict(JOB_SETTINGS)}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return config.validate(values)


def botocore_errors(service: str, operation: str, request: dict) -> str:
    """botocore's own validation of a request against the service model ('' when valid)."""
    shape = service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else ""


def firing(request: dict, execution_id: str) -> dict:
    """The CreateProcessingJob request of one firing: the schedule's Input with the execution id substituted."""
    return json.loads(request["Target"]["Input"].replace("<aws.scheduler.execution-id>", execution_id))


# --- the requests -------------------------------------------------------------------------------------------------

def test_schedule_and_job_requests_pass_botocores_validation_and_say_what_the_issue_asks():
    cfg = aws_params(suite_schedule={"expression": "cron(30 5 * * ? *)", "timezone": "Europe/Berlin",
                                     "max_runtime_minutes": 90})
    request = ss.schedule_request(cfg)
    assert botocore_errors("scheduler", "CreateSchedule", request) == ""
    assert request["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    assert request["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert request["ScheduleExpression"] == "cron(30 5 * * ? *)"
    assert request["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert request["Target"]["RoleArn"] == JOB_SETTINGS["scheduler_role_arn"]
    job = firing(request, "d32c5kddcf5bb8c3")
    assert botocore_errors("sagemaker", "CreateProcessingJob", job) == ""
    assert job["ProcessingJobName"] == "ep-sched-unit-suite-d32c5kddcf5bb8c3"
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 90 * 60}
    assert job["RoleArn"] == JOB_SETTINGS["job_role_arn"]
    assert job["AppSpecification"]["ImageUri"] == JOB_SETTINGS["image_uri"]
    assert job["AppSpecification"]["ContainerArguments"] == [
        "run", "-f", "/opt/ml/processing/input/params/params.yaml", "--output", "s3://sched-unit/msd-year/runs/"]
    script = job["AppSpecification"]["ContainerEntrypoint"][2]
    assert "--no-index" in script and "python3 -m monitor_utils" in script
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["wheelhouse"]["S3Uri"] == "s3://sched-unit/msd-year/code/wheelhouse/"
    assert inputs["params"]["S3Uri"] == "s3://sched-unit/msd-year/schedule/params/"
    ss.check_requests(cfg)  # the model's max lengths and patterns too


def test_every_firing_gets_a_unique_valid_job_name_even_for_the_longest_endpoint_name():
    cfg = aws_params(endpoint_name="e" * 63)
    request = ss.schedule_request(cfg)
    names = {firing(request, eid)["ProcessingJobName"] for eid in ("a1b2c3d4e5f60718", "0123456789abcdef", "f" * 36)}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    ss.check_requests(cfg)


def test_the_check_refuses_what_the_api_would_refuse():
    cfg = aws_params()
    request = ss.schedule_request(cfg)
    job = firing(request, "d32c5kddcf5bb8c3")
    job["AppSpecification"]["ContainerEntrypoint"][2] = "x" * 257  # botocore checks no max; SageMaker does
    assert botocore_errors("sagemaker", "CreateProcessingJob", job) == ""
    with pytest.raises(api_model.RequestError, match="ContainerEntrypoint\\[2\\]: 257 characters, at most 256"):
        api_model.validate_request("sagemaker", "CreateProcessingJob", job)
    unsubstituted = json.loads(request["Target"]["Input"])
    with pytest.raises(api_model.RequestError, match="ProcessingJobName"):
        api_model.validate_request("sagemaker", "CreateProcessingJob", unsubstituted)
    del job["RoleArn"]
    with pytest.raises(api_model.RequestError, match="RoleArn"):
        api_model.validate_request("sagemaker", "CreateProcessingJob", job)


def test_other_partitions_get_their_own_target_arn():
    cfg = aws_params(region="cn-north-1", suite_schedule={
        "scheduler_role_arn": f"arn:aws-cn:iam::{ACCOUNT}:role/s", "job_role_arn": f"arn:aws-cn:iam::{ACCOUNT}:role/j"})
    assert ss.schedule_request(cfg)["Target"]["Arn"] == "arn:aws-cn:scheduler:::aws-sdk:sagemaker:createProcessingJob"


def test_stages_of_the_scheduled_run_reach_the_container_command():
    cfg = aws_params(suite_schedule={"stages": "setup, metrics"})
    assert ss.processing_job_request(cfg)["AppSpecification"]["ContainerArguments"][-2:] == ["--stages", "setup,metrics"]


# --- bad settings, dry run ----------------------------------------------------------------------------------------

def test_empty_roles_and_image_are_errors_naming_each_key(capsys):
    assert cli.main(["schedule", "-f", "params/aws.example.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    for key in ("suite_schedule.scheduler_role_arn", "suite_schedule.job_role_arn", "suite_schedule.image_uri"):
        assert f"parameter '{key}' is empty" in err


@pytest.mark.parametrize("override, named", [
    ("suite_schedule.timezone=Mars/Olympus", "suite_schedule.timezone"),
    ("suite_schedule.expression=every day", "suite_schedule.expression"),
    ("suite_schedule.max_runtime_minutes=0", "suite_schedule.max_runtime_minutes"),
    ("suite_schedule.stages=setup,nightly", "suite_schedule.stages"),
    ("aws_mode=local", "aws_mode: aws"),
])
def test_bad_schedule_params_stop_with_exit_2_naming_the_key(override, named, capsys):
    args = ["schedule", "-f", "params/aws.example.yaml", "--dry-run"]
    args += [a for k, v in JOB_SETTINGS.items() for a in ("-p", f"suite_schedule.{k}={v}")] + ["-p", override]
    assert cli.main(args) == 2
    assert named in capsys.readouterr().err


def test_dry_run_builds_nothing_and_calls_no_aws_api(monkeypatch, capsys):
    import botocore.client

    calls = []
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call",
                        lambda self, name, params: calls.append(name) or pytest.fail(f"AWS call {name}"))
    monkeypatch.setattr(ss, "build_wheelhouse", lambda *a, **k: pytest.fail("built a wheelhouse"))
    args = ["schedule", "-f", "params/aws.example.yaml", "--dry-run"]
    args += [a for k, v in JOB_SETTINGS.items() for a in ("-p", f"suite_schedule.{k}={v}")]
    assert cli.main(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert calls == []
    assert plan["schedule"]["Name"] == "msd-year-predictor-suite"
    assert plan["uploads"] == {"wheelhouse": "s3://my-ml-monitoring-bucket/msd-year/code/wheelhouse/",
                               "params": "s3://my-ml-monitoring-bucket/msd-year/schedule/params/params.yaml"}
    assert not any(r.startswith("moto") for r in plan["requirements"])


# --- the wheelhouse -----------------------------------------------------------------------------------------------

def test_runtime_requirements_leave_out_local_only_and_extras():
    reqs = ss.runtime_requirements()
    names = {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in reqs}
    assert {"boto3", "numpy", "pandas", "papermill", "pyyaml"} <= names
    assert "moto" not in names and "pytest" not in names and "playwright" not in names
    declared = ["boto3>=1.34", "moto[server]<6,>=5.0.20", 'moto[server]>=5; extra == "local"',
                'pytest>=8; extra == "dev"', "pyarrow>=15"]
    assert ss.runtime_requirements(declared) == ["boto3>=1.34", "pyarrow>=15"]


def test_dependencies_are_downloaded_as_wheels_for_the_images_python(monkeypatch, tmp_path):
    seen = {}

    class Done:
        returncode, stderr = 0, ""

    def fake_run(args, **kwargs):
        seen["args"] = args
        seen["requirements"] = Path(args[args.index("-r") + 1]).read_text().split()
        return Done()

    monkeypatch.setattr(ss.subprocess, "run", fake_run)
    ss.download_dependencies(["numpy>=1.26", "pandas>=2.1"], tmp_path, "3.12")
    args = seen["args"]
    assert args[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.12" and "manylinux2014_x86_64" in args
    assert args[args.index("-d") + 1] == str(tmp_path) and seen["requirements"] == ["numpy>=1.26", "pandas>=2.1"]


# --- ensure_schedule ----------------------------------------------------------------------------------------------

def test_ensure_schedule_creates_then_leaves_alone_then_updates_what_changed(emulator):
    cfg = aws_params(endpoint_name="ep-sched-ensure")
    aws = connect(cfg)
    request = ss.schedule_request(cfg)
    assert ss.ensure_schedule(aws, request) == "created"
    before = aws.client("scheduler").get_schedule(Name=request["Name"])
    assert ss.ensure_schedule(aws, request) == "unchanged"
    assert aws.client("scheduler").get_schedule(Name=request["Name"])["LastModificationDate"] == \
        before["LastModificationDate"]
    changed = ss.schedule_request(aws_params(endpoint_name="ep-sched-ensure",
                                             suite_schedule={"max_runtime_minutes": 45}))
    assert ss.ensure_schedule(aws, changed) == "updated"
    now = aws.client("scheduler").get_schedule(Name=request["Name"])
    assert json.loads(now["Target"]["Input"])["StoppingCondition"]["MaxRuntimeInSeconds"] == 45 * 60
    assert ss.ensure_schedule(aws, changed) == "unchanged"


def test_a_missing_bucket_stops_the_schedule_before_anything_is_built(emulator, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ss, "build_wheelhouse", lambda *a, **k: pytest.fail("built a wheelhouse"))
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"aws_mode": "aws", "bucket": "no-such-bucket-here",
                                      "suite_schedule": JOB_SETTINGS}))
    assert cli.main(["schedule", "-f", str(params)]) == 2
    assert "parameter 'bucket': bucket 'no-such-bucket-here' does not exist" in capsys.readouterr().err
    aws = connect(config.load([str(params)]))
    assert "no-such-bucket-here-suite" not in str(aws.client("scheduler").list_schedules())


def test_processing_outputs_are_uploaded_where_the_request_says(emulator, tmp_path):
    cfg = aws_params(bucket="sched-outputs")
    aws = connect(cfg)
    aws.client("s3").create_bucket(Bucket="sched-outputs")
    request = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
        "S3Uri": "s3://sched-outputs/out/report", "LocalPath": "/opt/ml/processing/output/report",
        "S3UploadMode": "EndOfJob"}}]}}
    folder = tmp_path / "opt/ml/processing/output/report"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    assert local_processing.upload_outputs(aws, request, tmp_path) == [
        "s3://sched-outputs/out/report/a.txt", "s3://sched-outputs/out/report/sub/b.txt"]
    body = aws.client("s3").get_object(Bucket="sched-outputs", Key="out/report/sub/b.txt")["Body"].read()
    assert body == b"b"
    with pytest.raises(local_processing.FireError, match="not under /opt/ml/processing"):
        local_processing.upload_outputs(aws, {"ProcessingOutputConfig": {"Outputs": [{"S3Output": {
            "S3Uri": "s3://sched-outputs/x", "LocalPath": "/tmp/elsewhere"}}]}}, tmp_path)


# --- run --output s3:// and the pages -----------------------------------------------------------------------------

def test_output_to_s3_needs_aws_mode_and_an_s3_prefix():
    with pytest.raises(runner.RunnerError, match="needs aws_mode: aws"):
        runner.run([], ["now=" + NOW], output="s3://bucket-x/runs/")
    with pytest.raises(runner.RunnerError, match="not an S3 prefix"):
        runner.run([], ["aws_mode=aws", "now=" + NOW], output="s3://Bad_Bucket/runs/")


def test_a_failed_upload_keeps_the_records_on_disk(monkeypatch, tmp_path, capsys):
    def fake_run(cfg, files, overrides, stages, output, notebooks_dir, progress, *lease):
        folder = Path(output)
        (folder / "summary.json").write_text(json.dumps({"run_id": "20261128T000000Z-abcd", "status": "ok"}))
        return 0, folder

    def failing_upload(*args):
        raise OSError("connection reset")

    monkeypatch.setattr(runner, "_run", fake_run)
    monkeypatch.setattr(records, "upload_run", failing_upload)
    monkeypatch.setattr(runner, "connect", lambda cfg: None)
    monkeypatch.setattr(preflight, "check_account", lambda cfg, aws: None)  # no account behind this test
    monkeypatch.setattr(runner, "run_lease", lambda *a: contextlib.nullcontext(None))
    monkeypatch.chdir(tmp_path)
    code, folder = runner.run([], ["aws_mode=aws", "now=" + NOW], output="s3://bucket-x/runs/")
    assert code == 1 and (folder / "summary.json").exists()
    assert f"they are kept in {folder}" in capsys.readouterr().out


def test_pages_name_the_newest_runs_index_in_s3_only_when_records_go_there(monkeypatch):
    cfg = aws_params()
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    monkeypatch.delenv(records.RECORDS_URI_ENV, raising=False)
    assert not any("Reports:" in s["AlarmDescription"] for s in alerting.alarm_specs(cfg, topic))
    monkeypatch.setenv(records.RECORDS_URI_ENV, "s3://sched-unit/msd-year/runs/")
    specs = alerting.alarm_specs(cfg, topic)
    for spec in specs + [alerting.composite_spec(cfg, topic)]:
        assert spec["AlarmDescription"].endswith("Reports: s3://sched-unit/msd-year/runs/latest/index.html")
    for spec in specs:
        alarms.validate_alarm_spec(spec)  # still what PutMetricAlarm accepts (botocore's model, 1024 characters)


# --- IAM ----------------------------------------------------------------------------------------------------------

def _grants(policy: dict, action: str, resource: str) -> bool:
    return any(action in st["Action"] and any(fnmatch.fnmatchcase(resource, r) for r in
                                               (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]))
               for st in policy["Statement"] if st["Effect"] == "Allow")


def test_scheduler_role_starts_the_suites_jobs_and_passes_only_the_job_role_to_sagemaker():
    cfg = aws_params()
    policy, _ = iam_workflow.scheduler_policy(cfg, ACCOUNT)
    job = firing(ss.schedule_request(cfg), "d32c5kddcf5bb8c3")
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:processing-job/{job['ProcessingJobName'].lower()}"
    assert _grants(policy, "sagemaker:CreateProcessingJob", arn)
    assert not _grants(policy, "sagemaker:CreateProcessingJob",
                       f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:processing-job/someone-elses-job")
    passing = [st for st in policy["Statement"] if "iam:PassRole" in st["Action"]]
    assert passing == [{"Sid": "PassSuiteJobRoleToSageMaker", "Effect": "Allow", "Action": ["iam:PassRole"],
                        "Resource": [JOB_SETTINGS["job_role_arn"]],
                        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}}]
    assert _grants(policy, "states:StartExecution",
                   f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:ep-sched-unit-retraining")


def test_scheduler_role_gets_nothing_for_the_suite_until_its_roles_are_set():
    policy, notes = iam_workflow.scheduler_policy(config.load(["params/aws.example.yaml"]), ACCOUNT)
    assert [a for st in policy["Statement"] for a in st["Action"]] == ["states:StartExecution"]
    assert any("suite_schedule.scheduler_role_arn" in n for n in notes)


def test_job_role_reads_the_jobs_inputs_writes_records_and_keeps_the_suites_own_policy(capsys):
    cfg = aws_params()
    policy, notes = iam_schedule.suite_job_policy(cfg, ACCOUNT)
    suite = __import__("monitor_utils.iam", fromlist=["policy"]).policy(cfg, ACCOUNT)[0]
    assert all(st in policy["Statement"] for st in suite["Statement"])
    job = firing(ss.schedule_request(cfg), "d32c5kddcf5bb8c3")
    for item in job["ProcessingInputs"]:
        bucket, _, key = item["S3Input"]["S3Uri"][5:].partition("/")
        assert _grants(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}file.whl")
        listing = [st for st in policy["Statement"] if st["Action"] == ["s3:ListBucket"]
                   and f"{key}*" in st.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])]
        assert listing and listing[0]["Resource"] == [f"arn:aws:s3:::{bucket}"]
    assert _grants(policy, "s3:PutObject", "arn:aws:s3:::sched-unit/msd-year/runs/20261128T000000Z-abcd/index.html")
    assert _grants(policy, "ecr:BatchGetImage", f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/python-framework")
    assert _grants(policy, "logs:PutLogEvents",
                   f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/ProcessingJobs:log-stream:x")
    assert not any("*" in st["Action"] or any(a.endswith(":*") for a in st["Action"]) for st in policy["Statement"])
    assert cli.main(["iam-policy", "-f", "params/aws.example.yaml", "--role", "suite-job", "--account-id", ACCOUNT]) == 0
    assert json.loads(capsys.readouterr().out)["Statement"]


# --- local firing -------------------------------------------------------------------------------------------------

def test_a_schedule_whose_target_is_not_a_processing_job_is_not_fired():
    schedule = {"Name": "x", "Arn": "arn", "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:sqs:sendMessage", "Input": "{}"}}
    with pytest.raises(local_processing.FireError, match="not SageMaker CreateProcessingJob"):
        local_processing.target_request(schedule, "abc", __import__("datetime").datetime(2026, 11, 28))


def test_fire_needs_an_emulator(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"aws_mode": "aws", "suite_schedule": JOB_SETTINGS}))
    assert cli.main(["schedule", "-f", str(params), "--fire"]) == 2
    assert "needs an emulator (AWS_ENDPOINT_URL)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fired(emulator, tmp_path_factory):
    """A tiny world on the emulator; `schedule` run twice against it in aws mode (the dependencies' wheels stubbed:
    the job's image stand-in has them; no index is reached), then `schedule --fire` runs the job as SageMaker would."""
    tmp = tmp_path_factory.mktemp("schedule")
    base = {"now": NOW, "bucket": "sched-fire", "endpoint_name": "ep-sched-fire", "sns_topic_name": "alerts-sched-fire",
            "dashboard_name": "dash-sched-fire", "log_group": "/test/sched-fire", "days": 3,
            "world": {"requests_per_day": 100, "train_rows": 2000, "test_rows": 500}}
    local_cfg = config.validate(base)
    world.build(connect(local_cfg, emulator.url), local_cfg, progress=lambda m: None)
    params = tmp / "aws.yaml"
    params.write_text(yaml.safe_dump({**base, "aws_mode": "aws", "test_fire": "never",
                                      "suite_schedule": {**JOB_SETTINGS, "stages": "setup"}}))
    downloads = []
    patch = pytest.MonkeyPatch()
    patch.setattr(ss, "download_dependencies", lambda reqs, dest, version: downloads.append((reqs, version)))
    codes, printed = {}, {}
    try:
        for name, extra in (("first", []), ("second", []), ("fire", ["--fire", "--execution-id", "0123456789abcdef"])):
            with contextlib.redirect_stdout(io.StringIO()) as buf:
                codes[name] = cli.main(["schedule", "-f", str(params), *extra])
            printed[name] = json.loads(buf.getvalue())
    finally:
        patch.undo()
    return {"cfg": config.load([str(params)]), "codes": codes, "printed": printed, "downloads": downloads}


def test_schedule_uploads_then_a_second_run_changes_nothing(fired):
    assert fired["codes"]["first"] == 0 and fired["codes"]["second"] == 0
    assert fired["downloads"] and all(v == "3.11" for _, v in fired["downloads"])
    first, second = fired["printed"]["first"], fired["printed"]["second"]
    wheel = f"s3://sched-fire/msd-year/code/wheelhouse/monitor_utils-{ss.package_version()}-py3-none-any.whl"
    assert first["schedule"] == "created" and first["unchanged"] == []
    assert sorted(first["uploaded"]) == sorted([wheel, "s3://sched-fire/msd-year/code/wheelhouse/requirements.txt",
                                                "s3://sched-fire/msd-year/schedule/params/params.yaml"])
    # the wheel is built again, byte for byte the same: nothing is uploaded, the schedule is left alone
    assert second["schedule"] == "unchanged" and second["uploaded"] == [] and second["removed"] == []
    assert sorted(second["unchanged"]) == sorted(first["uploaded"])
    cfg = fired["cfg"]
    aws = connect(cfg)
    schedule = aws.client("scheduler").get_schedule(Name="ep-sched-fire-suite")
    assert json.loads(schedule["Target"]["Input"]) == json.loads(ss.schedule_request(cfg)["Target"]["Input"])
    params = aws.client("s3").get_object(Bucket="sched-fire", Key="msd-year/schedule/params/params.yaml")["Body"].read()
    assert config.validate(yaml.safe_load(params)) == cfg  # the job runs with exactly the validated params


def test_firing_the_schedule_runs_the_job_and_leaves_the_run_records_in_s3(fired):
    assert fired["codes"]["fire"] == 0
    aws = connect(fired["cfg"])
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sched-fire", Prefix="msd-year/runs/")["Contents"]]
    run_ids = {k.split("/")[2] for k in keys} - {"latest"}
    assert len(run_ids) == 1
    (run_id,) = run_ids
    run = f"msd-year/runs/{run_id}/"
    for name in ("index.html", "summary.json", "00_setup.html", "00_setup.ipynb", "00_setup.json"):
        assert run + name in keys
    summary = json.loads(s3.get_object(Bucket="sched-fire", Key=run + "summary.json")["Body"].read())
    assert summary["status"] == "ok" and summary["aws_mode"] == "aws"
    assert [(s["stage"], s["status"]) for s in summary["stages"]] == [("00_setup", "ok")]
    latest = s3.get_object(Bucket="sched-fire", Key="msd-year/runs/latest/index.html")["Body"].read().decode()
    assert f'<base href="../{run_id}/">' in latest and run_id in latest
    # the job ran the package it installed from the wheelhouse in S3, not this checkout
    executed = json.loads(s3.get_object(Bucket="sched-fire", Key=run + "00_setup.ipynb")["Body"].read())
    input_path = executed["metadata"]["papermill"]["input_path"]
    assert "/image/lib/" in input_path and input_path.endswith("monitor_utils/resources/notebooks/00_setup.ipynb")
    baseline = s3.list_objects_v2(Bucket="sched-fire", Prefix="msd-year/baselines/v0001/")
    assert baseline.get("KeyCount", 0) > 0


def test_the_wheel_in_s3_carries_the_package_its_notebooks_and_params(fired, tmp_path):
    aws = connect(fired["cfg"])
    key = f"msd-year/code/wheelhouse/monitor_utils-{ss.package_version()}-py3-none-any.whl"
    wheel = tmp_path / key.rsplit("/", 1)[-1]
    wheel.write_bytes(aws.client("s3").get_object(Bucket="sched-fire", Key=key)["Body"].read())
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"monitor_utils/suite_schedule.py", "monitor_utils/resources/notebooks/00_setup.ipynb",
            "monitor_utils/resources/params/aws.example.yaml"} <= names
    meta = zipfile.ZipFile(wheel).read(f"monitor_utils-{ss.package_version()}.dist-info/METADATA").decode()
    assert "Requires-Dist: boto3" in meta
    listed = aws.client("s3").get_object(Bucket="sched-fire", Key="msd-year/code/wheelhouse/requirements.txt")
    assert listed["Body"].read().decode().split("\n")[:-1] == ss.runtime_requirements(ss.wheel_requirements(wheel))
    assert fired["downloads"][0][0] == ss.runtime_requirements(ss.wheel_requirements(wheel))
    assert fired["printed"]["fire"]["job_name"] == "ep-sched-fire-suite-0123456789abcdef"


def test_scheduling_never_loads_local_only_code():
    import subprocess
    import sys

    settings = ", ".join(f"'-p', 'suite_schedule.{k}={v}'" for k, v in JOB_SETTINGS.items())
    code = ("import contextlib, io, sys; from monitor_utils import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert cli.main(['schedule', '-f', 'params/aws.example.yaml', '--dry-run', {settings}]) == 0\n"
            "import monitor_utils.suite_schedule, monitor_utils.iam_schedule\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto' or m in ('monitor_utils.local', "
            "'monitor_utils.local.processing', 'monitor_utils.local.emulator', 'monitor_utils.local.world')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_call_of_a_schedule_deploy_is_allowed_by_the_deployer_policy(emulator, monkeypatch, tmp_path):
    from test_iam import allowed  # the policy evaluator of the suite's IAM tests

    from monitor_utils import iam

    monkeypatch.setattr(ss, "download_dependencies", lambda reqs, dest, version: None)
    cfg = aws_params(bucket="sched-deployer", endpoint_name="ep-sched-deployer")
    aws = connect(cfg)
    aws.client("s3").create_bucket(Bucket="sched-deployer")
    stale = "msd-year/code/wheelhouse/monitor_utils-0.0.9-py3-none-any.whl"
    aws.client("s3").put_object(Bucket="sched-deployer", Key=stale, Body=b"an earlier deploy's wheel")
    with iam.record_calls(aws) as calls:
        first = ss.deploy(aws, cfg, tmp_path / "first")
        changed = aws_params(bucket="sched-deployer", endpoint_name="ep-sched-deployer",
                             suite_schedule={"expression": "cron(0 7 * * ? *)"})
        ss.deploy(aws, changed, tmp_path / "second")
    assert first["removed"] == [f"s3://sched-deployer/{stale}"]  # the job installs exactly this deploy's wheels
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="sched-deployer")["Contents"]]
    assert stale not in keys and len([k for k in keys if k.endswith(".whl")]) == 1
    operations = {f"{c.service}:{c.operation}" for c in calls}
    assert {"s3:HeadBucket", "s3:HeadObject", "s3:PutObject", "s3:DeleteObject", "s3:ListObjectsV2",
            "scheduler:GetSchedule", "scheduler:CreateSchedule", "scheduler:UpdateSchedule"} <= operations
    policy, _ = iam_schedule.deployer_policy(cfg, ACCOUNT)
    for call in calls:
        for need in iam.needs(call, cfg.region, ACCOUNT):
            assert allowed(policy, need), f"{call.service}:{call.operation} needs {need}, not in the deployer policy"
    other_role = iam.Call("scheduler", "CreateSchedule", {"Name": ss.schedule_name(cfg), "Target": {
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/admin"}})
    assert not all(allowed(policy, n) for n in iam.needs(other_role, cfg.region, ACCOUNT))
