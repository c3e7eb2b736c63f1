"""The retraining decision as a Step Functions state machine: its ASL, idempotent create/update, a local training worker, and its schedule."""

from __future__ import annotations

import json
import time
from typing import Callable

from .aws import Aws, error_code
from .config import Params

QUALITY_ALARMS = ("rmse", "r2")


def state_machine_name(cfg: Params) -> str:
    """Name of the retraining state machine."""
    return f"{cfg.endpoint_name}-retraining"


def definition(cfg: Params, topic_arn: str, local_training: bool) -> dict:
    """Amazon States Language for: check the quality alarms, retrain only when one is in ALARM, create the model
    and endpoint config, deploy blue/green; any failure notifies SNS and fails.

    AWS SDK integrations serve every step but training: on AWS a SageMaker training job runs synchronously
    (``createTrainingJob.sync``); locally a ``.waitForTaskToken`` message asks a worker to train. The seed
    deployed when no retraining was needed; here that branch ends without touching the endpoint.
    """
    alarm_names = [f"{cfg.endpoint_name}-{k}" for k in QUALITY_ALARMS]
    retry = [{"ErrorEquals": ["States.TaskFailed", "States.Timeout"], "IntervalSeconds": 5, "MaxAttempts": 3,
              "BackoffRate": 2.0}]
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]
    if local_training:
        train = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                 "Parameters": {"QueueUrl.$": "$.trainingQueueUrl",
                                "MessageBody": {"taskToken.$": "$$.Task.Token", "modelName.$": "$.modelName"}},
                 "TimeoutSeconds": 3600}
        artifact = "$.training.modelDataUrl"
    else:
        train = {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                 "Parameters": {"TrainingJobName.$": "$.modelName", "AlgorithmSpecification.$": "$.algorithm",
                                "RoleArn.$": "$.roleArn", "InputDataConfig.$": "$.inputDataConfig",
                                "OutputDataConfig.$": "$.outputDataConfig", "ResourceConfig.$": "$.resourceConfig",
                                "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}}
        artifact = "$.training.ModelArtifacts.S3ModelArtifacts"
    return {
        "Comment": f"Retrain and safely redeploy {cfg.endpoint_name} when its quality alarms fire",
        "StartAt": "CheckQualityAlarms",
        "States": {
            "CheckQualityAlarms": {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudwatch:describeAlarms",
                "Parameters": {"AlarmNames": alarm_names},
                "ResultSelector": {"states.$": "$.MetricAlarms[*].StateValue"},
                "ResultPath": "$.check", "Retry": retry, "Catch": catch, "Next": "SummariseAlarms"},
            "SummariseAlarms": {
                "Type": "Pass", "Parameters": {"anyInAlarm.$": "States.ArrayContains($.check.states, 'ALARM')"},
                "ResultPath": "$.check", "Next": "NeedsRetraining"},
            "NeedsRetraining": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.check.anyInAlarm", "BooleanEquals": True, "Next": "TrainChallenger"}],
                "Default": "NoRetrainingNeeded"},
            "NoRetrainingNeeded": {"Type": "Succeed"},
            "TrainChallenger": {**train, "ResultPath": "$.training", "Retry": retry, "Catch": catch,
                                "Next": "CreateModel"},
            "CreateModel": {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sagemaker:createModel",
                "Parameters": {"ModelName.$": "$.modelName", "ExecutionRoleArn.$": "$.roleArn",
                               "PrimaryContainer": {"Image.$": "$.image", "ModelDataUrl.$": artifact}},
                "ResultPath": "$.model", "Retry": retry, "Catch": catch, "Next": "CreateEndpointConfig"},
            "CreateEndpointConfig": {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sagemaker:createEndpointConfig",
                "Parameters": {"EndpointConfigName.$": "$.endpointConfigName",
                               "ProductionVariants.$": "$.productionVariants",
                               "DataCaptureConfig.$": "$.dataCaptureConfig"},
                "ResultPath": "$.endpointConfig", "Retry": retry, "Catch": catch, "Next": "DeployBlueGreen"},
            "DeployBlueGreen": {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sagemaker:updateEndpoint",
                "Parameters": {"EndpointName": cfg.endpoint_name, "EndpointConfigName.$": "$.endpointConfigName",
                               "DeploymentConfig.$": "$.deploymentConfig"},
                "ResultPath": "$.deploy", "Retry": retry, "Catch": catch, "Next": "Deployed"},
            "Deployed": {"Type": "Succeed"},
            "NotifyFailure": {
                "Type": "Task", "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic_arn, "Subject": f"{cfg.endpoint_name}: retraining workflow failed"[:99],
                               "Message.$": "States.JsonToString($.error)"},
                "Next": "Failed"},
            "Failed": {"Type": "Fail", "Error": "RetrainingFailed", "Cause": "see the SNS notification"},
        },
    }


def ensure_state_machine(aws: Aws, cfg: Params, defn: dict, role_arn: str) -> tuple[str, str]:
    """Create the state machine, or update it when its definition changed; return (arn, 'created'|'updated'|'unchanged')."""
    sfn = aws.client("stepfunctions")
    name = state_machine_name(cfg)
    for page in sfn.get_paginator("list_state_machines").paginate():
        for sm in page["stateMachines"]:
            if sm["name"] == name:
                current = json.loads(sfn.describe_state_machine(stateMachineArn=sm["stateMachineArn"])["definition"])
                if current == defn:
                    return sm["stateMachineArn"], "unchanged"
                sfn.update_state_machine(stateMachineArn=sm["stateMachineArn"], definition=json.dumps(defn), roleArn=role_arn)
                return sm["stateMachineArn"], "updated"
    arn = sfn.create_state_machine(name=name, definition=json.dumps(defn), roleArn=role_arn, type="STANDARD")["stateMachineArn"]
    return arn, "created"


def execute_locally(aws: Aws, arn: str, execution_input: dict, name: str,
                    train: Callable[[dict], str] | None = None, timeout_s: float = 60.0) -> dict:
    """Run one execution on the local emulator, serving ``.waitForTaskToken`` training requests with ``train``
    (given the message, returns the model artifact's S3 URI). Returns status, output and error."""
    sfn, sqs = aws.client("stepfunctions"), aws.client("sqs")
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input))["executionArn"]
    queue = execution_input.get("trainingQueueUrl")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING":
            return {"status": desc["status"], "output": json.loads(desc["output"]) if desc.get("output") else None,
                    "error": desc.get("error"), "cause": desc.get("cause"), "execution_arn": execution}
        for msg in (sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) if queue else []):
            body = json.loads(msg["Body"])
            try:
                url = train(body) if train else None
                if url is None:
                    raise RuntimeError("no local training worker")
                sfn.send_task_success(taskToken=body["taskToken"], output=json.dumps({"modelDataUrl": url}))
            except Exception as exc:  # noqa: BLE001 - the workflow's Catch path reports it
                sfn.send_task_failure(taskToken=body["taskToken"], error="TrainingFailed", cause=str(exc)[:250])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"])
        time.sleep(0.2)
    sfn.stop_execution(executionArn=execution, error="Timeout", cause="local execution timed out")
    return {"status": "TIMED_OUT", "output": None, "error": "Timeout", "cause": None, "execution_arn": execution}


def ensure_schedule(aws: Aws, cfg: Params, state_machine_arn: str, expression: str, role_arn: str) -> str:
    """EventBridge Scheduler schedule starting the workflow (aws mode); created once, updated when it changed."""
    scheduler = aws.client("scheduler")
    name = f"{state_machine_name(cfg)}-schedule"
    target = {"Arn": state_machine_arn, "RoleArn": role_arn, "Input": "{}"}
    try:
        current = scheduler.get_schedule(Name=name)
        if current["ScheduleExpression"] == expression and current["Target"]["Arn"] == state_machine_arn:
            return "unchanged"
        scheduler.update_schedule(Name=name, ScheduleExpression=expression, Target=target,
                                  FlexibleTimeWindow={"Mode": "OFF"})
        return "updated"
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "ResourceNotFoundException":
            raise
    scheduler.create_schedule(Name=name, ScheduleExpression=expression, Target=target, FlexibleTimeWindow={"Mode": "OFF"})
    return "created"


def execution_input(aws: Aws, cfg: Params, version_tag: str, deployment_config: dict,
                    training_queue_url: str | None = None) -> dict:
    """Input of one execution: names of the new version's model and config, and what to copy from the live one."""
    from .registry import live_container

    image, role, live_config = live_container(aws, cfg)
    model_name = f"{cfg.endpoint_name}-{version_tag}"
    variants = [{k: v for k, v in pv.items() if k in ("VariantName", "InitialInstanceCount", "InstanceType",
                                                     "InitialVariantWeight")} | {"ModelName": model_name}
                for pv in live_config["ProductionVariants"]]
    out = {"modelName": model_name, "endpointConfigName": f"{cfg.endpoint_name}-config-{version_tag}",
           "roleArn": role, "image": image, "productionVariants": variants,
           "dataCaptureConfig": live_config.get("DataCaptureConfig"), "deploymentConfig": deployment_config}
    if training_queue_url:
        out["trainingQueueUrl"] = training_queue_url
    return out
