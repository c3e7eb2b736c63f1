"""`python -m monitor_utils migrate` against Model Monitor schedules created in the emulator with botocore-valid
requests (a data-quality schedule with a job definition, a model-quality one, an older inline one), and the
emulator's monitoring schedules checked against botocore's output shapes."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import itertools

import pytest
import yaml
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from monitor_utils import cli, config, iam, migrate
from monitor_utils.aws import connect, service_model

_ids = itertools.count(1)
ROLE = "arn:aws:iam::123456789012:role/model-monitor"  # the emulator's test account
IMAGE = "registry.example/sagemaker-model-monitor-analyzer:latest"
RESOURCES = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}}
HOURLY = "cron(0 * ? * * *)"


@pytest.fixture
def sm(emulator):
    aws = connect(config.validate({}), emulator.url, faults=False)
    return aws.client("sagemaker")


@pytest.fixture
def aws(emulator):
    return connect(config.validate({}), emulator.url, faults=False)


def endpoint(sm, name: str, capture: bool = True) -> str:
    """A served endpoint whose config captures to s3://mm-capture/<name>/datacapture."""
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://mm-models/{name}/model.tar.gz"})
    extra = {"DataCaptureConfig": {
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://mm-capture/{name}/datacapture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}} if capture else {}
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{name}-model", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}], **extra)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    return name


def endpoint_input(name: str) -> dict:
    return {"EndpointName": name, "LocalPath": "/opt/ml/processing/input/endpoint", "S3InputMode": "File"}


def output(uri: str) -> dict:
    return {"MonitoringOutputs": [{"S3Output": {"S3Uri": uri, "LocalPath": "/opt/ml/processing/output"}}]}


def baseline(name: str) -> tuple[str, str]:
    return f"s3://mm-baselines/{name}/statistics.json", f"s3://mm-baselines/{name}/constraints.json"


def data_quality_schedule(sm, ep: str, name: str, publish: str | None = "Enabled", cron: str = HOURLY,
                          with_baseline: bool = True) -> str:
    stats, cons = baseline(name)
    env = {"publish_cloudwatch_metrics": publish} if publish else {}
    baseline_config = {"DataQualityBaselineConfig": {"ConstraintsResource": {"S3Uri": cons},
                                                     "StatisticsResource": {"S3Uri": stats}}} if with_baseline else {}
    sm.create_data_quality_job_definition(
        JobDefinitionName=f"{name}-dq", RoleArn=ROLE, JobResources=RESOURCES, **baseline_config,
        DataQualityAppSpecification={"ImageUri": IMAGE, "Environment": env},
        DataQualityJobInput={"EndpointInput": endpoint_input(ep)},
        DataQualityJobOutputConfig=output(f"s3://mm-reports/{name}"),
        StoppingCondition={"MaxRuntimeInSeconds": 3600})
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": cron}, "MonitoringJobDefinitionName": f"{name}-dq",
        "MonitoringType": "DataQuality"})
    return name


def model_quality_schedule(sm, ep: str, name: str, problem: str = "Regression", cron: str = HOURLY) -> str:
    sm.create_model_quality_job_definition(
        JobDefinitionName=f"{name}-mq", RoleArn=ROLE, JobResources=RESOURCES,
        ModelQualityBaselineConfig={"ConstraintsResource": {"S3Uri": f"s3://mm-baselines/{name}/mq-constraints.json"}},
        ModelQualityAppSpecification={"ImageUri": IMAGE, "ProblemType": problem,
                                      "Environment": {"publish_cloudwatch_metrics": "Enabled"}},
        ModelQualityJobInput={"EndpointInput": {**endpoint_input(ep), "InferenceAttribute": "0"},
                              "GroundTruthS3Input": {"S3Uri": f"s3://mm-labels/{name}/ground-truth"}},
        ModelQualityJobOutputConfig=output(f"s3://mm-reports/{name}"))
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": cron}, "MonitoringJobDefinitionName": f"{name}-mq",
        "MonitoringType": "ModelQuality"})
    return name


def inline_schedule(sm, ep: str, name: str, publish: str = "Disabled", batch: bool = False, kind: str = "") -> str:
    """An older schedule: its MonitoringJobDefinition inline, no MonitoringType (unless ``kind``)."""
    stats, cons = baseline(name)
    inputs = ([{"BatchTransformInput": {"DataCapturedDestinationS3Uri": f"s3://mm-capture/{name}/batch",
                                        "DatasetFormat": {"Csv": {"Header": False}},
                                        "LocalPath": "/opt/ml/processing/input/batch"}}] if batch
              else [{"EndpointInput": endpoint_input(ep)}])
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": "cron(0 0 ? * * *)"},
        "MonitoringJobDefinition": {
            "BaselineConfig": {"ConstraintsResource": {"S3Uri": cons}, "StatisticsResource": {"S3Uri": stats}},
            "MonitoringInputs": inputs, "MonitoringOutputConfig": output(f"s3://mm-reports/{name}"),
            "MonitoringResources": RESOURCES, "MonitoringAppSpecification": {"ImageUri": IMAGE},
            "Environment": {"publish_cloudwatch_metrics": publish}, "RoleArn": ROLE},
        **({"MonitoringType": kind} if kind else {})})
    return name


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


# ---------------------------------------------------------------------------------------------- the emulator's schedules
def assert_valid_output(operation: str, response: dict) -> None:
    """``response`` (without ResponseMetadata) conforms to the operation's output shape in botocore's model:
    required members present, types right, no member the shape lacks."""
    shape = service_model("sagemaker").operation_model(operation).output_shape
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()


def test_emulated_schedules_answer_in_the_apis_output_shapes(sm, emulator):
    ep = endpoint(sm, fresh("mm-shape"))
    dq = data_quality_schedule(sm, ep, fresh("mm-shape-dq"))
    old = inline_schedule(sm, ep, fresh("mm-shape-inline"))
    for name in (dq, old):
        described = sm.describe_monitoring_schedule(MonitoringScheduleName=name)
        assert_valid_output("DescribeMonitoringSchedule", described)
        assert described["MonitoringScheduleStatus"] == "Scheduled" and described["EndpointName"] == ep
        assert described["MonitoringType"] == "DataQuality"
    # moto's own job definitions, which migrate reads, answer in their shapes too
    mq = model_quality_schedule(sm, ep, fresh("mm-shape-mq"))
    assert_valid_output("DescribeDataQualityJobDefinition",
                        sm.describe_data_quality_job_definition(JobDefinitionName=f"{dq}-dq"))
    assert_valid_output("DescribeModelQualityJobDefinition",
                        sm.describe_model_quality_job_definition(JobDefinitionName=f"{mq}-mq"))
    assert sm.describe_monitoring_schedule(MonitoringScheduleName=mq)["MonitoringType"] == "ModelQuality"
    sm.delete_monitoring_schedule(MonitoringScheduleName=mq)
    # what the backend hands the serializer has no member the shape lacks either (the serializer would drop it)
    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends["123456789012"][sm.meta.region_name]
    assert_valid_output("DescribeMonitoringSchedule", backend.describe_monitoring_schedule(dq))
    listed = sm.list_monitoring_schedules(EndpointName=ep, SortBy="Name", SortOrder="Descending")
    assert_valid_output("ListMonitoringSchedules", listed)
    assert [s["MonitoringScheduleName"] for s in listed["MonitoringScheduleSummaries"]] == sorted([dq, old])[::-1]
    summaries = {s["MonitoringScheduleName"]: s for s in listed["MonitoringScheduleSummaries"]}
    assert summaries[dq]["MonitoringJobDefinitionName"] == f"{dq}-dq"
    assert "MonitoringJobDefinitionName" not in summaries[old]  # inline
    page = sm.list_monitoring_schedules(EndpointName=ep, MaxResults=1, SortBy="Name", SortOrder="Ascending")
    rest = sm.list_monitoring_schedules(EndpointName=ep, MaxResults=1, SortBy="Name", SortOrder="Ascending",
                                        NextToken=page["NextToken"])
    assert [s["MonitoringScheduleName"] for s in page["MonitoringScheduleSummaries"] + rest[
        "MonitoringScheduleSummaries"]] == sorted([dq, old]) and "NextToken" not in rest
    assert sm.list_monitoring_schedules(EndpointName=ep, MonitoringJobDefinitionName=f"{dq}-dq")[
        "MonitoringScheduleSummaries"][0]["MonitoringScheduleName"] == dq
    sm.stop_monitoring_schedule(MonitoringScheduleName=old)
    assert [s["MonitoringScheduleName"] for s in sm.list_monitoring_schedules(
        EndpointName=ep, StatusEquals="Stopped")["MonitoringScheduleSummaries"]] == [old]
    sm.delete_monitoring_schedule(MonitoringScheduleName=old)
    with pytest.raises(ClientError) as gone:
        sm.describe_monitoring_schedule(MonitoringScheduleName=old)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFound"


def test_emulated_schedules_refuse_what_the_api_refuses(sm):
    ep = endpoint(sm, fresh("mm-refuse"))
    dq = data_quality_schedule(sm, ep, fresh("mm-refuse-dq"))
    with pytest.raises(ClientError) as twice:
        sm.create_monitoring_schedule(MonitoringScheduleName=dq, MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": HOURLY}, "MonitoringJobDefinitionName": f"{dq}-dq"})
    assert twice.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as missing:
        sm.create_monitoring_schedule(MonitoringScheduleName=fresh("mm-refuse-x"), MonitoringScheduleConfig={
            "MonitoringJobDefinitionName": "no-such-definition", "MonitoringType": "ModelQuality"})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as neither:
        sm.create_monitoring_schedule(MonitoringScheduleName=fresh("mm-refuse-y"), MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": HOURLY}})
    assert neither.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as unknown:
        sm.delete_monitoring_schedule(MonitoringScheduleName="no-such-schedule")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFound"


# ---------------------------------------------------------------------------------------------- what migrate reads
def test_a_data_quality_schedule_with_its_job_definition(sm):
    ep = endpoint(sm, fresh("mm-dq"))
    name = data_quality_schedule(sm, ep, fresh("mm-dq-s"))
    plan = migrate.plan(sm, [name])
    stats, cons = baseline(name)
    assert plan.params == {
        "endpoint_name": ep, "variant_name": "AllTraffic", "capture_prefix": f"s3://mm-capture/{ep}/datacapture",
        "model_monitor": {"schedule_name": name, "statistics_uri": stats, "constraints_uri": cons,
                          "publish_metrics": True},
        "suite_schedule": {"expression": HOURLY}}
    assert migrate.check(config.validate({}), plan.params).model_monitor["statistics_uri"] == stats


def test_a_model_quality_schedule_beside_the_data_quality_one(sm):
    ep = endpoint(sm, fresh("mm-mq"))
    dq = data_quality_schedule(sm, ep, fresh("mm-mq-dq"), publish="Disabled")
    mq = model_quality_schedule(sm, ep, fresh("mm-mq-mq"), cron="cron(30 * ? * * *)")
    plan = migrate.plan(sm, [dq, mq])
    assert plan.params["ground_truth_prefix"] == f"s3://mm-labels/{mq}/ground-truth"
    mm = plan.params["model_monitor"]
    assert mm["model_quality_constraints_uri"] == f"s3://mm-baselines/{mq}/mq-constraints.json"
    assert mm["schedule_name"] == dq and mm["publish_metrics"] is True  # the model-quality job publishes
    assert plan.params["suite_schedule"] == {"expression": HOURLY}  # the data-quality schedule's cadence
    assert any(mq in n and "cron(30 * ? * * *)" in n for n in plan.notes)
    alone = migrate.plan(sm, [mq])  # alone: no data-quality baseline, nothing names a DataQuality schedule
    assert "schedule_name" not in alone.params["model_monitor"]
    assert any("MonitoringSchedule dimension then matches no old alarm" in n for n in alone.notes)
    assert alone.params["suite_schedule"] == {"expression": "cron(30 * ? * * *)"}


def test_an_older_schedule_with_its_job_definition_inline(sm):
    ep = endpoint(sm, fresh("mm-inline"))
    name = inline_schedule(sm, ep, fresh("mm-inline-s"), publish="Disabled")
    plan = migrate.plan(sm, [name])
    stats, cons = baseline(name)
    assert plan.params["model_monitor"] == {"schedule_name": name, "statistics_uri": stats, "constraints_uri": cons}
    assert plan.params["suite_schedule"] == {"expression": "cron(0 0 ? * * *)"}
    assert "publish_metrics" not in plan.params["model_monitor"]  # publish_cloudwatch_metrics: Disabled


def test_schedules_migrate_cannot_carry_over_say_why(sm):
    ep, other = endpoint(sm, fresh("mm-bad")), endpoint(sm, fresh("mm-bad-other"))
    batch = inline_schedule(sm, ep, fresh("mm-bad-batch"), batch=True)
    with pytest.raises(migrate.MigrationError, match="batch transform"):
        migrate.plan(sm, [batch])
    a, b = data_quality_schedule(sm, ep, fresh("mm-bad-a")), data_quality_schedule(sm, ep, fresh("mm-bad-b"))
    with pytest.raises(migrate.MigrationError, match="both DataQuality"):
        migrate.plan(sm, [a, b])
    elsewhere = model_quality_schedule(sm, other, fresh("mm-bad-mq"))
    with pytest.raises(migrate.MigrationError, match="different endpoints"):
        migrate.plan(sm, [a, elsewhere])
    classifier = model_quality_schedule(sm, ep, fresh("mm-bad-cls"), problem="BinaryClassification")
    plan = migrate.plan(sm, [classifier])
    assert "model_quality_constraints_uri" not in plan.params.get("model_monitor", {})
    assert any("BinaryClassification" in n for n in plan.notes)
    unbased = migrate.plan(sm, [data_quality_schedule(sm, other, fresh("mm-bad-nobase"), publish=None,
                                                      with_baseline=False)])
    assert "model_monitor" in unbased.params and set(unbased.params["model_monitor"]) == {"publish_metrics"}
    assert any("no baseline" in n and "own (setup's)" in n for n in unbased.notes)
    assert any("publish_cloudwatch_metrics not set" in source for _, source in unbased.sources)
    no_capture = endpoint(sm, fresh("mm-bad-nocap"), capture=False)
    plan = migrate.plan(sm, [data_quality_schedule(sm, no_capture, fresh("mm-bad-nc"))])
    assert "capture_prefix" not in plan.params and any("Data Capture" in n for n in plan.notes)


# ---------------------------------------------------------------------------------------------- the command
@pytest.fixture
def aws_env(emulator, monkeypatch):
    """Aws-mode params pointed at the emulator, as the rehearsal does."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "MONITOR_UTILS_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_migrate_prints_params_that_load_and_the_delete_call_it_does_not_make(sm, aws_env, tmp_path):
    ep = endpoint(sm, fresh("mm-cli"))
    dq = data_quality_schedule(sm, ep, fresh("mm-cli-dq"))
    mq = model_quality_schedule(sm, ep, fresh("mm-cli-mq"))
    params = tmp_path / "aws.yaml"
    params.write_text(yaml.safe_dump({"aws_mode": "aws", "bucket": "mm-suite", "endpoint_name": "placeholder"}))
    code, out, err = run_cli("migrate", "--schedule", dq, "--schedule", mq, "-f", str(params))
    assert code == 0, err
    block = yaml.safe_load(out)  # the comments are YAML comments: the output is a params file
    assert f"names endpoint placeholder; the schedules monitor {ep}" in out
    assert block["endpoint_name"] == ep and block["model_monitor"]["schedule_name"] == dq
    for name, facts in ((dq, "data-quality"), (mq, "model-quality")):
        assert f"aws sagemaker delete-monitoring-schedule --monitoring-schedule-name {name} --region us-east-1" in out
        assert f'delete_monitoring_schedule(MonitoringScheduleName="{name}")' in out
        assert f"aws sagemaker stop-monitoring-schedule --monitoring-schedule-name {name}" in out
        assert f"delete-{facts}-job-definition --job-definition-name {name}-" in out
        # printed, not executed: the schedules still run
        assert sm.describe_monitoring_schedule(MonitoringScheduleName=name)["MonitoringScheduleStatus"] == "Scheduled"
    unknown = migrate.unknown_keys(block)
    assert set(unknown) <= {"model_monitor.model_quality_constraints_uri", "model_monitor.publish_metrics"}
    for key in unknown:
        assert key in out.split("# Not known to this version's params yet")[1].splitlines()[0]
    migrated = tmp_path / "migrated.yaml"
    migrated.write_text(yaml.safe_dump(migrate.known_part(block)))
    cfg = config.load([params, migrated])
    assert (cfg.endpoint_name, cfg.capture_prefix, cfg.ground_truth_prefix) == (
        ep, f"s3://mm-capture/{ep}/datacapture", f"s3://mm-labels/{mq}/ground-truth")
    assert cfg.suite_schedule["expression"] == HOURLY
    assert (cfg.model_monitor["statistics_uri"], cfg.model_monitor["constraints_uri"]) == baseline(dq)


def test_migrate_errors_name_the_problem(sm, aws_env, tmp_path, monkeypatch):
    params = tmp_path / "aws.yaml"
    params.write_text(yaml.safe_dump({"aws_mode": "aws"}))
    code, out, err = run_cli("migrate", "--schedule", "no-such-schedule", "-f", str(params))
    assert (code, out) == (1, "") and "ResourceNotFound" in err and "no-such-schedule" in err
    ep = endpoint(sm, fresh("mm-err"))
    batch = inline_schedule(sm, ep, fresh("mm-err-batch"), batch=True)
    code, out, err = run_cli("migrate", "--schedule", batch, "-f", str(params))
    assert (code, out) == (2, "") and "batch transform" in err
    explain = inline_schedule(sm, ep, fresh("mm-err-explain"), kind="ModelExplainability")
    code, out, err = run_cli("migrate", "--schedule", explain, "-f", str(params))
    assert (code, out) == (2, "") and "ModelExplainability" in err and "FeatureAttributionDrift" in err
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    code, _, err = run_cli("migrate", "--schedule", batch)  # local mode without an emulator named
    assert code == 2 and "aws-mode params" in err


# ---------------------------------------------------------------------------------------------- its policy
ARNS = {"DescribeMonitoringSchedule": ("monitoring-schedule", "MonitoringScheduleName"),
        "DescribeDataQualityJobDefinition": ("data-quality-job-definition", "JobDefinitionName"),
        "DescribeModelQualityJobDefinition": ("model-quality-job-definition", "JobDefinitionName"),
        "DescribeEndpoint": ("endpoint", "EndpointName"),
        "DescribeEndpointConfig": ("endpoint-config", "EndpointConfigName")}


def test_the_migrate_policy_allows_every_call_migrate_makes_and_only_reads(aws, sm):
    ep = endpoint(sm, fresh("mm-iam"))
    names = [data_quality_schedule(sm, ep, fresh("mm-iam-dq")), model_quality_schedule(sm, ep, fresh("mm-iam-mq"))]
    with iam.record_calls(aws) as calls:
        migrate.plan(aws.client("sagemaker"), names)
    cfg = config.validate({"endpoint_name": ep})
    document, notes = migrate.policy(cfg, "123456789012")
    assert {c.operation for c in calls} == set(ARNS)
    for call in calls:  # SageMaker ARNs hold lower-case names
        kind, key = ARNS[call.operation]
        arn = f"arn:aws:sagemaker:{cfg.region}:123456789012:{kind}/{call.params[key].lower()}"
        assert any(f"sagemaker:{call.operation}" in s["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in s["Resource"])
                   for s in document["Statement"]), (call.operation, arn)
    actions = [a for s in document["Statement"] for a in s["Action"]]
    assert all(a.split(":")[1].startswith("Describe") for a in actions) and "*" not in "".join(actions)
    assert not any(fnmatch.fnmatchcase(f"arn:aws:sagemaker:{cfg.region}:123456789012:endpoint/other", r)
                   for s in document["Statement"] for r in s["Resource"])
    code, out, _ = run_cli("iam-policy", "--role", "migrate", "-p", f"endpoint_name={ep}", "--account-id",
                           "123456789012")
    assert code == 0 and yaml.safe_load(out) == document
