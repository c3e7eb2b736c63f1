"""The retraining workflow: every branch executed on the local server with the stage's own step code, the stage's
in-process runner agreeing with it, every JSONPath it reads provided, and its role policies covering its calls."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import yaml

from monitor_utils import cli, config, iam, iam_workflow, model, retraining, steps, workflow

ACCOUNT = "123456789012"  # the emulator's account


@pytest.fixture(scope="module")
def drifted(retraining_world):
    """The shared drift world as alerting left it (conftest's retraining_world, restored to its snapshot), for the
    tests of this module in turn; no minimum interval so each test may retrain again."""
    cfg, aws, now, snapshot = retraining_world
    snapshot.restore()
    values = {**cfg.to_dict(), "retraining": {**cfg.retraining, "min_interval_days": 0.0}}
    role = f"arn:aws:iam::{ACCOUNT}:role/msd-monitoring-states"
    arn, _ = workflow.ensure_state_machine(aws, cfg, workflow.definition(cfg), role)
    yield values, aws, now, arn
    snapshot.restore()  # for whoever retrains on it next


def _run(drifted, fail_step: str | None = None, **retraining_params):
    values, aws, now, arn = drifted
    cfg = config.validate({**values, "retraining": {**values["retraining"], **retraining_params}})

    def serve(step, message):
        if step == fail_step:
            raise RuntimeError(f"{step} job failed: training data unreadable")
        return steps.run_step(step, cfg, aws, now, message["execution"], message.get("challenger", ""))

    out = workflow.execute_locally(aws, cfg, arn, workflow.execution_input(cfg), f"t-{uuid.uuid4().hex[:12]}", serve)
    return cfg, out


def _serving(aws, cfg) -> str:
    return aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)["EndpointConfigName"]


def _comparison(aws, cfg, out) -> dict:
    return steps.get_json(aws, cfg.bucket, steps.result_key(cfg, out["execution_arn"].rsplit(":", 1)[1],
                                                             "comparison.json"))


DEPLOY = ["DescribeLiveEndpoint", "DescribeLiveConfig", "DescribeLiveModel", "NewVariants", "CreateModel",
          "CreateEndpointConfig", "DeployBlueGreen", "WaitForEndpoint", "DescribeEndpointAfterDeploy", "EndpointSettled"]
TO_COMPARE = ["Prepare", "Decide", "ReadDecision", "NeedsRetraining", "TrainChallenger", "CompareWithChampion",
              "ReadComparison", "Promote"]


def test_retrain_and_keep_the_champion_with_a_large_margin(drifted):
    values, aws, now, arn = drifted
    before = _serving(aws, config.validate(values))
    cfg, out = _run(drifted, rmse_margin=0.9)
    assert out["states"] == TO_COMPARE + ["NotifyKept", "Kept"] and out["status"] == "SUCCEEDED"
    assert not out["deployed"] and _serving(aws, cfg) == before
    cmp = _comparison(aws, cfg, out)
    assert cmp["promote"] is False and "is not 90% better" in cmp["reasons"][0]
    # the stage's in-process runner decides the same from the same state
    champion = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    decision = retraining.decide(cfg, retraining.gather_evidence(cfg, aws), now)
    assert decision.retrain
    stage = retraining.act(cfg, aws, decision, now, champion)
    assert stage["deployed"] is False and stage["comparison"]["scores"] == cmp["scores"]


def test_training_failed_notifies_and_the_champion_keeps_serving(drifted):
    values, aws, now, arn = drifted
    cfg = config.validate(values)
    sqs = aws.client("sqs")
    inbox = sqs.create_queue(QueueName=f"inbox-{cfg.endpoint_name}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:{cfg.sns_topic_name}", Protocol="sqs",
                                Endpoint=inbox_arn)
    before = _serving(aws, cfg)
    cfg, out = _run(drifted, fail_step="train")
    assert out["status"] == "FAILED" and out["error"] == "RetrainingFailed"
    assert out["states"][-3:] == ["TrainChallenger", "NotifyFailure", "Failed"] and not out["deployed"]
    assert _serving(aws, cfg) == before
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])]
    assert any("TrainStepFailed" in b and "retraining workflow failed" in b for b in bodies), bodies


def test_deploy_rolled_back_by_an_alarm(drifted):
    values, aws, now, arn = drifted
    cfg = config.validate(values)
    cw = aws.client("cloudwatch")
    before = _serving(aws, cfg)
    cw.set_alarm_state(AlarmName=f"{cfg.endpoint_name}-error-rate", StateValue="ALARM", StateReason="5XX spike")
    try:
        cfg, out = _run(drifted)
    finally:
        cw.set_alarm_state(AlarmName=f"{cfg.endpoint_name}-error-rate", StateValue="OK", StateReason="test over")
    assert out["states"] == TO_COMPARE + DEPLOY + ["NotifyRolledBack", "RolledBack"]
    assert out["status"] == "FAILED" and out["error"] == "DeploymentRolledBack" and not out["deployed"]
    assert _serving(aws, cfg) == before


def test_retrain_and_promote_deploys_the_compared_version(drifted):
    values, aws, now, arn = drifted
    cfg, out = _run(drifted)
    assert out["states"] == TO_COMPARE + DEPLOY + ["NotifyDeployed", "Deployed"] and out["deployed"]
    cmp = _comparison(aws, cfg, out)
    assert cmp["promote"] and _serving(aws, cfg) == cmp["config_name"]
    served = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    assert served == cmp["model_data_url"]
    desc = aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)
    assert desc["LastDeploymentConfig"] == workflow.execution_input(cfg)["deploymentConfig"]
    record = steps.get_json(aws, cfg.bucket, cfg.key("models", cmp["version"], "record.json"))
    assert record["comparison"]["promote"] and record["decision_reasons"]  # lineage in the registry
    # the state machine's role policy allows every call its tasks made in these executions
    policy, _ = iam_workflow.state_machine_policy(cfg, ACCOUNT)
    executions = aws.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    calls = [c for e in executions for c in iam_workflow.execution_calls(aws, e["executionArn"])]
    assert {"sagemaker:UpdateEndpoint", "sagemaker:CreateModel", "s3:GetObject", "sns:Publish"} <= {
        f"{c.service}:{c.operation}" for c in calls}
    from test_iam import denied

    assert denied(policy, calls) == []


def test_no_retraining_needed_within_the_minimum_interval(drifted):
    values, aws, now, arn = drifted
    cfg, out = _run(drifted, min_interval_days=7.0)  # the earlier tests retrained just now
    assert out["states"] == ["Prepare", "Decide", "ReadDecision", "NeedsRetraining", "NotifyNotNeeded", "NotNeeded"]
    assert out["status"] == "SUCCEEDED" and not out["deployed"]
    assert not retraining.decide(cfg, retraining.gather_evidence(cfg, aws), now).retrain


def test_the_job_entry_point_runs_the_same_decision(drifted, tmp_path):
    values, aws, now, arn = drifted
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    assert cli.main(["retraining-step", "decide", "--params", str(path), "--execution", "cli-run"]) == 0
    cfg = config.validate(values)
    stored = steps.get_json(aws, cfg.bucket, steps.result_key(cfg, "cli-run", "decision.json"))
    assert stored == json.loads(json.dumps(steps.decide_step(cfg, aws, now, "in-process")))
    with pytest.raises(SystemExit):
        cli.main(["retraining-step", "--step", "score", "--params", str(path), "--execution", "x"])


# --- every JSONPath the definition reads is provided by the input or an earlier state ------------------------

_PATH = re.compile(r"(?<![$\w])\$(\.[A-Za-z_][\w]*(?:\[[^\]]*\])?)+")


def _reads(value) -> set[str]:
    """Paths into the state's input (``$.a.b``) in a ``.$`` value, a Choice variable or an intrinsic's arguments."""
    return {m.group(0) for m in _PATH.finditer(value)} if isinstance(value, str) else set()


def _walk_reads(node, in_map_selector: bool = False) -> set[str]:
    out = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k.endswith(".$") or k in ("Variable", "ItemsPath", "SecondsPath") or k.endswith("Path") and k not in (
                    "ResultPath", "InputPath", "OutputPath"):
                out |= _reads(v)
            elif isinstance(v, (dict, list)) and k not in ("ResultSelector", "ItemProcessor", "Catch", "Retry"):
                out |= _walk_reads(v)
    elif isinstance(node, list):
        for v in node:
            out |= _walk_reads(v)
    return out


def _provided(available: set[str], path: str) -> bool:
    """``path`` is an exact key provided, or lies under a value provided whole (marked ``name.*``)."""
    parts = re.sub(r"\[[^\]]*\]", "", path).split(".")[1:]
    return ".".join(parts) in available or any(".".join(parts[:i]) + ".*" in available for i in range(1, len(parts)))


def _keys(obj, prefix="") -> set[str]:
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            name = f"{prefix}.{k.removesuffix('.$')}".lstrip(".")
            out |= {name} | _keys(v, name)
    return out


STEP_RESULTS = {"decision": ("retrain", "reasons"),  # what steps.decide_step / compare_step write (checked below)
                "comparison": ("promote", "deploy", "reasons", "version", "model_name", "config_name", "model_data_url")}


def _adds(state: dict) -> set[str]:
    """What a state puts at its ResultPath: a ResultSelector's or Pass's keys exactly, a whole response otherwise."""
    result_path = state.get("ResultPath", "$")
    if state["Type"] not in ("Task", "Pass", "Map") or result_path in (None, "$"):
        return set()
    base = result_path[2:]
    shape = state.get("ResultSelector") or (state.get("Parameters") if state["Type"] == "Pass" else None)
    if shape is None:
        return {base, base + ".*"}
    out = {base} | {f"{base}.{k}" for k in _keys(shape)}
    if base in STEP_RESULTS:  # the step's stored JSON, parsed by States.StringToJson
        out |= {f"{base}.result.{k}" for k in STEP_RESULTS[base]}
    return out


@pytest.mark.parametrize("params", ["params/local.yaml", "params/aws.example.yaml"])
def test_every_path_the_definition_reads_is_provided(params):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = config.load([root / params])
    defn, given = workflow.definition(cfg), workflow.execution_input(cfg)
    states = defn["States"]
    pending, seen = [(defn["StartAt"], frozenset(_keys(given) | {"deploymentConfig.*"}))], set()
    while pending:  # every path through the states, with what the input and the states before provide
        name, available = pending.pop()
        if (name, available) in seen:
            continue
        seen.add((name, available))
        state = states[name]
        missing = sorted(p for p in _walk_reads(state) if not _provided(set(available), p))
        assert not missing, f"{params}: state {name} reads {missing}, which nothing before it provides"
        after = available | _adds(state)
        nexts = [c["Next"] for c in state.get("Choices", [])] + [state[k] for k in ("Next", "Default") if k in state]
        pending += [(n, frozenset(after)) for n in nexts]
        pending += [(c["Next"], frozenset(available | {"error", "error.*"})) for c in state.get("Catch", [])]
    assert {n for n, _ in seen} == set(states)  # every state reached and checked


def test_the_walker_finds_a_path_nothing_provides():
    state = {"Type": "Task", "Parameters": {"ModelName.$": "$.liveModel.nmae"}}
    assert _walk_reads(state) == {"$.liveModel.nmae"}
    assert not _provided({"liveModel", "liveModel.name"}, "$.liveModel.nmae")
    assert _provided({"live", "live.*"}, "$.live.EndpointConfigName")


def test_the_step_results_hold_what_the_definition_reads():
    """The keys the definition reads from decision.json and comparison.json are those the steps write."""
    import inspect

    source = inspect.getsource(steps.compare_step) + inspect.getsource(steps.decide_step)
    for key in {k for keys in STEP_RESULTS.values() for k in keys}:
        assert f'"{key}"' in source, key


def test_definition_shape_in_aws_mode():
    cfg = config.load(["params/aws.example.yaml"])
    states = workflow.definition(cfg)["States"]
    assert states["TrainChallenger"]["Resource"].endswith("sagemaker:createTrainingJob.sync")
    assert states["CompareWithChampion"]["Resource"].endswith("sagemaker:createProcessingJob.sync")
    assert not any("lambda" in s.get("Resource", "") for s in states.values())
    for name, s in states.items():
        if s["Type"] == "Task":
            assert s.get("Catch") and s.get("Retry"), name
    ends = {n for n, s in states.items() if s["Type"] in ("Succeed", "Fail")}
    assert ends == {"Deployed", "RolledBack", "Kept", "NotNeeded", "Failed"}
    for end in ends - {"Failed"}:  # every outcome is announced by the state that leads to it
        assert any(s.get("Next") == end and s.get("Resource", "").endswith("sns:publish") for s in states.values())
    assert states["NeedsRetraining"]["Default"] == "NotifyNotNeeded"  # never deploys by default
    assert "ARN" not in json.dumps(states) and ACCOUNT not in json.dumps(states)


def test_cli_prints_definition_and_input(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"aws_mode": "aws", "endpoint_name": "ep-cli", "retraining": {"rmse_margin": 0.05}}))
    assert cli.main(["workflow", "-f", str(params), "-p", "bucket=b-cli"]) == 0
    out = json.loads(capsys.readouterr().out)
    cfg = config.load([params], ["bucket=b-cli"])
    assert out == {"definition": workflow.definition(cfg), "input": workflow.execution_input(cfg)}
    assert out["input"]["paramsUri"] == "s3://b-cli/msd-year/workflow/params.json"
    assert cli.main(["workflow", "-p", "no_such=1"]) == 2


def test_iam_policy_cli_prints_the_workflow_roles(capsys):
    arn = f"arn:aws:iam::{ACCOUNT}:role/jobs"
    assert cli.main(["iam-policy", "-f", "params/aws.example.yaml", "--role", "state-machine", "--account-id", ACCOUNT,
                     "-p", f"retraining.job_role_arn={arn}", "-p", "retraining.dry_run=false"]) == 0
    policy = json.loads(capsys.readouterr().out)
    passed = [s for s in policy["Statement"] if s["Sid"] == "PassJobRoleToSageMaker"]
    assert passed[0]["Resource"] == [arn]
    assert all(":" in a and "*" not in a for s in policy["Statement"] for a in s["Action"])
    assert cli.main(["iam-policy", "-f", "params/aws.example.yaml", "--role", "scheduler", "--account-id", ACCOUNT]) == 0
    sched = json.loads(capsys.readouterr().out)
    start = iam.Need("states:StartExecution",
                     f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:msd-year-predictor-retraining", {})
    from test_iam import allowed

    assert allowed(sched, start) and [a for s in sched["Statement"] for a in s["Action"]] == ["states:StartExecution"]
