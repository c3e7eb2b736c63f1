"""The retraining workflow's ASL executes on the local server along both branches."""

from __future__ import annotations

import pytest

from monitor_utils import model, registry, stages, workflow
from monitor_utils.aws import get_frame
from monitor_utils.stages.setup import deployment_config


@pytest.fixture(scope="module")
def prepared(emulator):
    """One stable world for the module; tests run in file order (no alarm first, then alarm branches)."""
    from conftest import small_world_params

    from monitor_utils import config, world
    from monitor_utils.aws import connect
    from monitor_utils.context import run_clock

    cfg = config.validate(small_world_params("workflow", scenario="stable"))
    aws = connect(cfg, emulator.url)
    world.build(aws, cfg, progress=lambda m: None)
    now = run_clock(cfg, aws)
    for s in ("00_setup", "10_metrics", "20_drift", "30_alerting"):
        stages.run(s, cfg, aws, now)
    result = stages.run("50_retraining", cfg, aws, now)
    return cfg, aws, now, result


def _serving(aws, cfg):
    return aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)["EndpointConfigName"]


def _trainer(aws, cfg):
    calls = []

    def train(message: dict) -> str:  # the local worker: trains a challenger and registers it
        calls.append(message)
        frame = get_frame(aws, cfg.bucket, cfg.key("data", "train.npz"))
        rec = registry.register(aws, cfg, registry.next_version(aws, cfg),
                                model.to_artifact(model.train_model(frame.assign(year=frame["year"].astype(int)))),
                                {"parent": None, "note": "trained by the workflow's local worker"})
        return rec["model_data_url"]

    return train, calls


def test_stage_creates_the_state_machine_once(prepared):
    cfg, aws, now, result = prepared
    assert result["state_machine"]["change"] == "created"
    again = stages.run("50_retraining", cfg, aws, now)
    assert again["state_machine"]["change"] == "unchanged"


def test_no_alarm_branch_succeeds_without_touching_the_endpoint(prepared):
    cfg, aws, now, result = prepared
    before = _serving(aws, cfg)
    queue = aws.client("sqs").create_queue(QueueName=f"train-{cfg.endpoint_name}")["QueueUrl"]
    train, calls = _trainer(aws, cfg)
    out = workflow.execute_locally(aws, result["state_machine"]["arn"],
                                   workflow.execution_input(aws, cfg, "v0099", deployment_config(cfg), queue),
                                   name="no-alarm", train=train)
    assert out["status"] == "SUCCEEDED" and out["output"]["check"]["anyInAlarm"] is False
    assert calls == [] and _serving(aws, cfg) == before


def test_alarm_branch_trains_creates_and_deploys(prepared):
    cfg, aws, now, result = prepared
    cw = aws.client("cloudwatch")
    cw.set_alarm_state(AlarmName=f"{cfg.endpoint_name}-rmse", StateValue="ALARM", StateReason="test")
    queue = aws.client("sqs").create_queue(QueueName=f"train2-{cfg.endpoint_name}")["QueueUrl"]
    train, calls = _trainer(aws, cfg)
    out = workflow.execute_locally(aws, result["state_machine"]["arn"],
                                   workflow.execution_input(aws, cfg, "v0042", deployment_config(cfg), queue),
                                   name="alarm", train=train)
    assert out["status"] == "SUCCEEDED", out
    assert len(calls) == 1
    desc = aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)
    assert desc["EndpointConfigName"] == f"{cfg.endpoint_name}-config-v0042"
    assert desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    served = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    assert served == out["output"]["training"]["modelDataUrl"]


def test_a_failing_step_takes_the_fail_path_and_notifies(prepared):
    cfg, aws, now, result = prepared
    cw = aws.client("cloudwatch")
    cw.set_alarm_state(AlarmName=f"{cfg.endpoint_name}-r2", StateValue="ALARM", StateReason="test")
    queue = aws.client("sqs").create_queue(QueueName=f"train3-{cfg.endpoint_name}")["QueueUrl"]

    def broken(message):
        raise RuntimeError("training data unreadable")

    sqs = aws.client("sqs")
    inbox = sqs.create_queue(QueueName=f"inbox-{cfg.endpoint_name}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=result["topic_arn"], Protocol="sqs", Endpoint=inbox_arn)
    out = workflow.execute_locally(aws, result["state_machine"]["arn"],
                                   workflow.execution_input(aws, cfg, "v0043", deployment_config(cfg), queue),
                                   name="fails", train=broken)
    assert out["status"] == "FAILED" and out["error"] == "RetrainingFailed"
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])]
    # the emulator drops SendTaskFailure's cause, so check the error name the notification carries
    assert any("TrainingFailed" in b for b in bodies), bodies


def test_definition_never_deploys_by_default():
    from monitor_utils import config

    defn = workflow.definition(config.validate({}), "arn:aws:sns:us-east-1:123456789012:t", local_training=False)
    choice = defn["States"]["NeedsRetraining"]
    assert defn["States"][choice["Default"]]["Type"] == "Succeed"
    assert defn["States"]["TrainChallenger"]["Resource"].endswith("createTrainingJob.sync")
    assert not any("lambda" in s.get("Resource", "") for s in defn["States"].values())

