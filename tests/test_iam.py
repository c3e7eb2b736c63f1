"""IAM policy: every AWS call of the stages (local run, aws-mode code on the emulator) is allowed, nothing wider."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from botocore.awsrequest import AWSResponse

from monitor_utils import alerting, cli, config, context, iam, registry, stages, workflow
from monitor_utils.local import world
from monitor_utils.aws import connect

ACCOUNT = "123456789012"  # the emulator's account
PARAMS = {"now": "2026-11-28T00:00:00Z", "days": 14, "bucket": "iam-test-bucket", "endpoint_name": "ep-iam",
          "sns_topic_name": "alerts-iam", "dashboard_name": "dash-iam", "log_group": "/test/iam",
          "world": {"requests_per_day": 600, "train_rows": 6000, "test_rows": 1500, "drift_start_fraction": 0.5},
          "retraining": {"recent_days": 7}}
AWS_PARAMS = {**PARAMS, "aws_mode": "aws", "bucket": "iam-aws-bucket", "endpoint_name": "ep-iam-aws",
              "sns_topic_name": "alerts-iam-aws", "dashboard_name": "dash-iam-aws", "log_group": "/test/iam-aws",
              "metrics_transport": "emf", "test_fire": "never", "alert_emails": ["oncall@example.com"],
              "role_arn": f"arn:aws:iam::{ACCOUNT}:role/monitoring", "retries": {"max_attempts": 2},
              "retraining": {"recent_days": 7, "state_machine_role_arn": f"arn:aws:iam::{ACCOUNT}:role/states",
                             "schedule": "cron(0 7 * * ? *)",
                             "scheduler_role_arn": f"arn:aws:iam::{ACCOUNT}:role/sched"}}


# --- a small policy evaluator: Allow statements, exact actions, glob resources, the conditions the policy uses ---

def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        set_op, _, op = operator.rpartition(":")
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        match = {"StringEquals": lambda v, w: v == w, "StringLike": fnmatch.fnmatchcase}[op]
        for key, wanted in tests.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if key not in context:
                if if_exists or set_op == "ForAllValues":
                    continue
                return False
            values = context[key] if isinstance(context[key], list) else [context[key]]
            hits = [any(match(str(v), w) for w in wanted) for v in values]
            if not (all(hits) if set_op == "ForAllValues" else hits and all(hits)):
                return False
    return True


def allowed(policy: dict, need: iam.Need) -> bool:
    """True when an Allow statement grants ``need`` (no Deny statements exist in these policies)."""
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if (st["Effect"] == "Allow" and need.action in actions
                and any(fnmatch.fnmatchcase(need.resource, r) for r in resources)
                and _condition_holds(st.get("Condition", {}), need.context)):
            return True
    return False


def unique_needs(calls: list[iam.Call], region: str) -> list[iam.Need]:
    seen = {}
    for call in calls:
        for need in iam.needs(call, region, ACCOUNT):
            seen.setdefault(json.dumps(need, sort_keys=True, default=str), need)
    return list(seen.values())


def denied(policy: dict, calls: list[iam.Call], region: str = "us-east-1") -> list[iam.Need]:
    return [n for n in unique_needs(calls, region) if not allowed(policy, n)]


def operations(calls: list[iam.Call]) -> set[str]:
    return {f"{c.service}:{c.operation}" for c in calls}


# --- recorded runs ----------------------------------------------------------------------------------

class Run(NamedTuple):
    cfg: config.Params
    calls: list
    results: dict
    sagemaker_role: str


def _with_outbox(values: dict, folder: Path) -> dict:
    return {**values, "outbox_dir": str(folder)}


@pytest.fixture(scope="module")
def local_run(emulator, tmp_path_factory) -> Run:
    """A full local run of the six stages' package code, recorded after the world was built."""
    cfg = config.validate(_with_outbox(PARAMS, tmp_path_factory.mktemp("outbox")))
    aws = connect(cfg, emulator.url)
    world.build(aws, cfg, progress=lambda m: None)
    role = registry.live_container(aws, cfg)[1]  # the live model's execution role, before recording
    now = context.run_clock(cfg, aws)
    with iam.record_calls(aws) as calls:
        results = {s: stages.run(s, cfg, aws, now) for s in context.STAGES}
    return Run(cfg, calls, results, role)


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def _canned_ok(request, **_):
    """The emulator lacks these operations: answer as CloudWatch does (after before-call has recorded them)."""
    return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw(b"{}"))


@pytest.fixture(scope="module")
def aws_mode_run(emulator, tmp_path_factory) -> Run:
    """The aws-mode code paths on the emulator: EMF metrics, e-mail paging, composite and anomaly alarms,
    the state machine with its configured role, and the schedule (created, then updated)."""
    folder = tmp_path_factory.mktemp("outbox-aws")
    local_cfg = config.validate(_with_outbox({k: v for k, v in AWS_PARAMS.items() if k in PARAMS}, folder))
    world.build(connect(local_cfg, emulator.url), local_cfg, progress=lambda m: None)
    cfg = config.validate(_with_outbox(AWS_PARAMS, folder))
    aws = connect(cfg)  # aws mode (assuming role_arn), pointed at the emulator by the environment
    cw = aws.client("cloudwatch")
    for op in ("PutCompositeAlarm", "PutAnomalyDetector"):
        cw.meta.events.register(f"before-send.cloudwatch.{op}", _canned_ok)
    now = context.run_clock(cfg, aws)
    with iam.record_calls(aws) as calls:
        results = {s: stages.run(s, cfg, aws, now) for s in ("00_setup", "10_metrics", "20_drift")}
        topic, _ = alerting.ensure_paging(aws, cfg)  # the alerting stage's aws branch needs p99 from CloudWatch
        alerting.put_alarms(aws, alerting.alarm_specs(cfg, topic))
        alerting.put_aws_only_alarms(aws, cfg, topic)
        results |= {s: stages.run(s, cfg, aws, now) for s in ("40_dashboard", "50_retraining")}
        arn = results["50_retraining"]["state_machine"]["arn"]
        workflow.ensure_schedule(aws, cfg, arn, "cron(0 8 * * ? *)", cfg.retraining["scheduler_role_arn"])
    return Run(cfg, calls, results, "")


# --- tests ------------------------------------------------------------------------------------------

def test_every_call_of_a_full_local_run_is_allowed(local_run):
    assert local_run.results["50_retraining"]["deployed"], "the drift world should retrain and deploy"
    ops = operations(local_run.calls)
    assert {"s3:GetObject", "s3:PutObject", "cloudwatch:PutMetricData", "cloudwatch:PutMetricAlarm",
            "stepfunctions:CreateStateMachine", "stepfunctions:StartExecution", "sqs:CreateQueue",
            "sns:Subscribe"} <= ops
    # locally the workflow deploys (its calls: the next test); the stage reports it and deploys nothing itself
    assert not ops & {"sagemaker:CreateModel", "sagemaker:UpdateEndpoint"}
    policy, _ = iam.policy(local_run.cfg, sagemaker_role_arn=local_run.sagemaker_role)
    assert denied(policy, local_run.calls) == []
    pinned, _ = iam.policy(local_run.cfg, account=ACCOUNT, sagemaker_role_arn=local_run.sagemaker_role)
    assert denied(pinned, local_run.calls) == []
    wrong_account, _ = iam.policy(local_run.cfg, account="210987654321", sagemaker_role_arn=local_run.sagemaker_role)
    assert any(n.resource.startswith("arn:aws:sagemaker") for n in denied(wrong_account, local_run.calls))


def test_the_workflow_of_the_local_run_is_allowed_by_its_role_policy(local_run, emulator):
    from monitor_utils import iam_workflow

    flow = local_run.results["50_retraining"]["workflow_execution"]
    assert flow["deployed"] is True
    calls = iam_workflow.execution_calls(connect(local_run.cfg, emulator.url), flow["execution_arn"])
    assert {"sagemaker:UpdateEndpoint", "sqs:SendMessage", "s3:GetObject", "sns:Publish"} <= operations(calls)
    policy, _ = iam_workflow.state_machine_policy(local_run.cfg, sagemaker_role_arn=local_run.sagemaker_role)
    assert denied(policy, calls) == []
    other, _ = iam_workflow.state_machine_policy(config.validate({**PARAMS, "endpoint_name": "ep-other"}),
                                                 sagemaker_role_arn=local_run.sagemaker_role)
    assert {n.action for n in denied(other, calls)} >= {"sagemaker:UpdateEndpoint", "sagemaker:CreateModel"}


def test_aws_mode_calls_are_allowed(aws_mode_run):
    ops = operations(aws_mode_run.calls)
    assert {"scheduler:GetSchedule", "scheduler:CreateSchedule", "scheduler:UpdateSchedule", "logs:PutLogEvents",
            "cloudwatch:PutCompositeAlarm", "cloudwatch:PutAnomalyDetector", "sns:Subscribe"} <= ops
    assert "cloudwatch:PutMetricData" not in ops  # EMF transport
    # in aws mode the stage retrains and deploys itself: the suite's own policy must allow it
    assert aws_mode_run.results["50_retraining"]["deployed"]
    assert {"sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint"} <= ops
    policy, notes = iam.policy(aws_mode_run.cfg, account=ACCOUNT)
    assert denied(policy, aws_mode_run.calls) == []
    # connect() assumes role_arn with its own STS client (not recorded): the caller's statement covers it
    assume = iam.Call("sts", "AssumeRole", {"RoleArn": aws_mode_run.cfg.role_arn, "RoleSessionName": "msd-monitoring"})
    assert denied(policy, [assume]) == []
    assert any("ForTheCallerNotThisRoleAssumeMonitoringRole" in n for n in notes)
    assert any("--sagemaker-role-arn" in n for n in notes)
    passed = {st["Sid"]: st["Resource"] for st in policy["Statement"] if st["Action"] == ["iam:PassRole"]}
    assert passed["PassStateMachineRole"] == [aws_mode_run.cfg.retraining["state_machine_role_arn"]]
    assert passed["PassSchedulerRole"] == [aws_mode_run.cfg.retraining["scheduler_role_arn"]]
    other_role = iam.Call("scheduler", "CreateSchedule", {"Name": "ep-iam-aws-retraining-schedule",
                                                          "Target": {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/admin"}})
    assert [n.action for n in denied(policy, [other_role])] == ["iam:PassRole"]


@pytest.mark.parametrize("values", [PARAMS, AWS_PARAMS, {**AWS_PARAMS, "retraining": {"dry_run": True},
                                                         "metrics_transport": "api", "role_arn": ""}])
def test_no_wildcard_actions_and_star_only_without_resource_level(values):
    policy, _ = iam.policy(config.validate(values))
    star_sids = {r.sid for r in iam.TABLE if r.resource == "*"}
    for st in policy["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"])
        for action in st["Action"]:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), action
        if st["Resource"] == "*":
            assert st["Sid"] in star_sids
    assert len(json.dumps(policy, separators=(",", ":"))) < 6144  # a managed policy's size limit


def test_dry_run_and_mode_leave_out_what_does_not_run():
    dry, _ = iam.policy(config.validate({**AWS_PARAMS, "retraining": {"dry_run": True}, "test_fire": "never"}))
    actions = {a for st in dry["Statement"] for a in st["Action"]}
    assert not actions & {"sagemaker:CreateModel", "sagemaker:UpdateEndpoint", "sqs:CreateQueue", "sns:Unsubscribe",
                          "cloudwatch:SetAlarmState", "states:CreateStateMachine"}


def test_s3_statements_are_scoped_to_the_bucket_and_prefix(local_run):
    cfg = local_run.cfg
    policy, _ = iam.policy(cfg)
    s3 = [st for st in policy["Statement"] if any(a.startswith("s3:") for a in st["Action"])]
    assert s3
    for st in s3:
        for arn in st["Resource"]:
            if st["Sid"] in ("S3ListSuiteBucketUnderItsPrefixes", "S3CreateSuiteBucketWhenMissing"):
                assert arn == f"arn:aws:s3:::{cfg.bucket}"
            else:
                assert arn.startswith(f"arn:aws:s3:::{cfg.bucket}/{cfg.prefix}/"), arn
    listing = next(st for st in s3 if st["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": [f"{cfg.prefix}/*"]}}


@pytest.mark.parametrize("change", [{"bucket": "other-bucket"}, {"prefix": "other-prefix"}])
def test_a_policy_for_other_params_denies_the_runs_s3_calls(local_run, change):
    other, _ = iam.policy(config.validate({**PARAMS, **change}), sagemaker_role_arn=local_run.sagemaker_role)
    s3_needs = unique_needs([c for c in local_run.calls if c.service == "s3"], "us-east-1")
    if "prefix" in change:  # HeadBucket (no prefix) on the same bucket stays allowed
        s3_needs = [n for n in s3_needs if n.action != "s3:ListBucket" or "s3:prefix" in n.context]
    assert s3_needs and all(not allowed(other, n) for n in s3_needs)


def test_params_cannot_widen_the_policy():
    for values in ({"capture_prefix": "s3://b/*"}, {"alert_emails": ["*@example.com"]},
                   {"retraining": {"state_machine_role_arn": f"arn:aws:iam::{ACCOUNT}:role/*"}}):
        with pytest.raises(config.ParamsError, match="widen"):
            iam.policy(config.validate(values))


def test_unknown_operations_are_not_silently_allowed():
    with pytest.raises(KeyError, match="iam.TABLE"):
        iam.needs(iam.Call("s3", "DeleteBucket", {"Bucket": "b"}), "us-east-1", ACCOUNT)


def test_record_calls_restores_the_session(emulator):
    aws = connect(config.validate({}), emulator.url)
    with iam.record_calls(aws) as calls:
        aws.client("sts").get_caller_identity()
    aws.client("sts").get_caller_identity()
    assert [c.operation for c in calls] == ["GetCallerIdentity"] and "client" not in vars(aws)


def test_cli_prints_the_policy_as_json(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    assert cli.main(["iam-policy", "-f", str(params), "-p", "drift.alpha=0.005", "--account-id", ACCOUNT]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == iam.policy(config.load([params], ["drift.alpha=0.005"]), ACCOUNT)[0]
    assert "--sagemaker-role-arn" in out.err


def test_cli_rejects_bad_params_with_exit_2(capsys):
    assert cli.main(["iam-policy", "-p", "capture_prefix=s3://b/*"]) == 2
    assert "widen the IAM policy" in capsys.readouterr().err
    assert cli.main(["iam-policy", "--resolve-account"]) == 2  # local mode has no account to resolve
    done = subprocess.run([sys.executable, "-m", "monitor_utils", "iam-policy", "-p", "no_such_key=1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "unknown parameter 'no_such_key'" in done.stderr
