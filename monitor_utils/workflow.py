"""The retraining decision as a Step Functions state machine: its ASL and input, create/update, schedule, and a local runner."""

from __future__ import annotations

import json
import time
from typing import Callable

from . import registry
from .aws import Aws, error_code, partition
from .config import Params

POLL_FIRST_S, POLL_MAX_S = 0.02, 0.2  # local executions: polled quickly after a step, backing off while idle
JOB_STEPS = ("decide", "train", "compare")
END_STATES = {"Deployed": "deployed", "RolledBack": "rolled back", "Kept": "kept", "NotNeeded": "not needed",
              "Failed": "failed"}
# the state machine's own ARN is arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME: names derive from it at run time
_ARN_PART = "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), {})"


def state_machine_name(cfg: Params) -> str:
    """Name of the retraining state machine."""
    return f"{cfg.endpoint_name}-retraining"


def worker_queue_name(cfg: Params) -> str:
    """SQS queue through which a local execution hands its job steps to the local worker (local mode)."""
    return f"{cfg.endpoint_name}-retraining-steps"[:80]


def result_key(cfg: Params, execution: str, name: str) -> str:
    """S3 key of one execution's step result (the workflow reads ``decision.json`` and ``comparison.json``)."""
    return cfg.key("workflow", "executions", execution, name)


def params_key(cfg: Params) -> str:
    """S3 key of the params the workflow's jobs run with (written by the retraining stage)."""
    return cfg.key("workflow", "params.json")


def execution_input(cfg: Params) -> dict:
    """The input every execution receives (the schedule's and the stage's alike), from params alone.

    What the workflow needs from the live endpoint (config, variants, image, role) it reads itself when it runs.
    """
    r = cfg.retraining
    out = {"endpointName": cfg.endpoint_name, "bucket": cfg.bucket, "prefix": cfg.prefix.strip("/"),
           "topicName": cfg.sns_topic_name, "paramsUri": f"s3://{cfg.bucket}/{params_key(cfg)}",
           "jobPrefix": cfg.endpoint_name[:20].rstrip("-"), "deploymentConfig": registry.deployment_config(cfg),
           "pollSeconds": 0 if cfg.aws_mode == "local" else 60}  # the emulator updates at once
    if cfg.aws_mode == "local":
        out["workerQueueName"] = worker_queue_name(cfg)
    else:
        code = r["code_uri"] or f"s3://{cfg.bucket}/{cfg.key('code')}"
        out["jobs"] = {"roleArn": r["job_role_arn"], "image": r["image_uri"], "instanceType": r["instance_type"],
                       "codeUri": code.rstrip("/") + "/", "sourceDir": code.rstrip("/") + "/sourcedir.tar.gz"}
    return out


def _job_args(step: str) -> str:
    """``States.Array`` of the step's command-line arguments (``python -m monitor_utils retraining-step ...``)."""
    extra = ", '--challenger', $.training.modelDataUrl" if step == "compare" else ""
    return (f"States.Array('--step', '{step}', '--params', $.paramsUri, '--execution', $$.Execution.Name{extra})")


def _integration(cfg: Params, name: str) -> str:
    """ARN of a Step Functions service integration in the params' partition."""
    return f"arn:{partition(cfg.region)}:states:::{name}"


def _local_job(cfg: Params, step: str) -> dict:
    """A job step served by the local worker: a message with the task token on the worker queue."""
    body = {"taskToken.$": "$$.Task.Token", "step": step, "execution.$": "$$.Execution.Name"}
    if step == "compare":
        body["challenger.$"] = "$.training.modelDataUrl"
    return {"Type": "Task", "Resource": _integration(cfg, "sqs:sendMessage.waitForTaskToken"),
            "Parameters": {"QueueUrl.$": "$.run.workerQueueUrl", "MessageBody": body}, "TimeoutSeconds": 3600}


def _aws_job(cfg: Params, step: str) -> dict:
    """A job step in AWS: SageMaker training (train) or processing (decide, compare) with the package's entry point."""
    name = f"States.Format('{{}}-{step[:3]}-{{}}', $.jobPrefix, $$.Execution.Name)"
    if step == "train":
        return {"Type": "Task", "Resource": _integration(cfg, "sagemaker:createTrainingJob.sync"),
                "Parameters": {
                    "TrainingJobName.$": name, "RoleArn.$": "$.jobs.roleArn",
                    "AlgorithmSpecification": {"TrainingImage.$": "$.jobs.image", "TrainingInputMode": "File"},
                    "HyperParameters": {"sagemaker_program": "monitor_utils/sagemaker_entry.py",
                                        "sagemaker_submit_directory.$": "$.jobs.sourceDir",
                                        "step": "train", "params.$": "$.paramsUri",
                                        "execution.$": "$$.Execution.Name"},
                    "OutputDataConfig": {"S3OutputPath.$": "States.Format('s3://{}/{}/training', $.bucket, "
                                                           "$.run.keyPrefix)"},
                    "ResourceConfig": {"InstanceCount": 1, "InstanceType.$": "$.jobs.instanceType",
                                       "VolumeSizeInGB": 30},
                    "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}}
    return {"Type": "Task", "Resource": _integration(cfg, "sagemaker:createProcessingJob.sync"),
            "Parameters": {
                "ProcessingJobName.$": name, "RoleArn.$": "$.jobs.roleArn",
                "AppSpecification": {"ImageUri.$": "$.jobs.image",
                                     "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/monitor_utils/"
                                                                        "sagemaker_entry.py"],
                                     "ContainerArguments.$": _job_args(step)},
                "ProcessingInputs": [{"InputName": "code", "S3Input": {
                    "S3Uri.$": "$.jobs.codeUri", "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
                    "S3InputMode": "File"}}],
                "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType.$": "$.jobs.instanceType",
                                                          "VolumeSizeInGB": 30}},
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}}


def definition(cfg: Params, local: bool | None = None) -> dict:
    """Amazon States Language of the retraining workflow: decide -> train -> compare -> deploy only a promoted
    challenger (blue/green with auto-rollback) -> wait for the endpoint; ends deployed, rolled back, kept or
    not needed, each notifying SNS; any task failure notifies and fails (the champion keeps serving).

    The decide, train and compare steps run the package's own code (:mod:`monitor_utils.steps`): in AWS as
    SageMaker processing and training jobs (``.sync``), locally through ``.waitForTaskToken`` messages that a
    worker serves with the same functions. Every other step is an AWS SDK integration; no Lambda.
    """
    local = cfg.aws_mode == "local" if local is None else local
    job = _local_job if local else _aws_job
    sdk_retry = [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}]
    job_retry = [{"ErrorEquals": ["SageMaker.AmazonSageMakerException", "States.Timeout"], "IntervalSeconds": 30,
                  "MaxAttempts": 2, "BackoffRate": 2.0}]
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]
    ep, sdk = cfg.endpoint_name, _integration(cfg, "aws-sdk:")

    def task(resource: str, params: dict, nxt: str, result_path: str | None, selector: dict | None = None,
             retry=sdk_retry, catch_to=catch) -> dict:
        state = {"Type": "Task", "Resource": resource, "Parameters": params, "ResultPath": result_path,
                 "Retry": retry, "Catch": catch_to, "Next": nxt}
        if selector:
            state["ResultSelector"] = selector
        return state

    def job_state(step: str, nxt: str, result_path: str | None) -> dict:
        selector = ({"modelDataUrl.$": "$.ModelArtifacts.S3ModelArtifacts"} if step == "train"
                    else {"status.$": "$.ProcessingJobStatus"})  # the .sync integrations' output (served alike locally)
        return {**job(cfg, step), "ResultSelector": selector, "ResultPath": result_path, "Retry": job_retry,
                "Catch": catch, "Next": nxt}

    def read(name: str, nxt: str, result_path: str) -> dict:
        return task(sdk + "s3:getObject", {"Bucket.$": "$.bucket",
                                            "Key.$": f"States.Format('{{}}/{name}', $.run.keyPrefix)"},
                    nxt, result_path, {"result.$": "States.StringToJson($.Body)"})

    def notify(subject: str, message: str, nxt: str) -> dict:
        return task(_integration(cfg, "sns:publish"),
                    {"TopicArn.$": "$.run.topicArn", "Subject": f"{ep}: {subject}"[:99], "Message.$": message}, nxt,
                    None, catch_to=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}])

    p = _ARN_PART
    states = {
        "Prepare": {"Type": "Pass", "ResultPath": "$.run", "Next": "Decide", "Parameters": {
            "topicArn.$": f"States.Format('arn:{{}}:sns:{{}}:{{}}:{{}}', {p.format(1)}, {p.format(3)}, {p.format(4)}, "
                          "$.topicName)",
            "keyPrefix.$": "States.Format('{}/workflow/executions/{}', $.prefix, $$.Execution.Name)",
            **({"workerQueueUrl.$": f"States.Format('https://sqs.{{}}.amazonaws.com/{{}}/{{}}', {p.format(3)}, "
                                    f"{p.format(4)}, $.workerQueueName)"} if local else {})}},
        "Decide": job_state("decide", "ReadDecision", None),
        "ReadDecision": read("decision.json", "NeedsRetraining", "$.decision"),
        "NeedsRetraining": {"Type": "Choice", "Default": "NotifyNotNeeded", "Choices": [
            {"Variable": "$.decision.result.retrain", "BooleanEquals": True, "Next": "TrainChallenger"}]},
        "NotifyNotNeeded": notify("no retraining needed", "States.JsonToString($.decision.result.reasons)", "NotNeeded"),
        "NotNeeded": {"Type": "Succeed"},
        "TrainChallenger": job_state("train", "CompareWithChampion", "$.training"),
        "CompareWithChampion": job_state("compare", "ReadComparison", None),
        "ReadComparison": read("comparison.json", "Promote", "$.comparison"),
        "Promote": {"Type": "Choice", "Default": "NotifyKept", "Choices": [
            {"Variable": "$.comparison.result.deploy", "BooleanEquals": True, "Next": "DescribeLiveEndpoint"}]},
        "NotifyKept": notify("champion kept", "States.JsonToString($.comparison.result.reasons)", "Kept"),
        "Kept": {"Type": "Succeed"},
        "DescribeLiveEndpoint": task(sdk + "sagemaker:describeEndpoint", {"EndpointName.$": "$.endpointName"},
                                     "DescribeLiveConfig", "$.live", {"configName.$": "$.EndpointConfigName"}),
        "DescribeLiveConfig": task(sdk + "sagemaker:describeEndpointConfig",
                                   {"EndpointConfigName.$": "$.live.configName"}, "DescribeLiveModel", "$.liveConfig",
                                   {"variants.$": "$.ProductionVariants", "dataCapture.$": "$.DataCaptureConfig",
                                    "firstModel.$": "States.ArrayGetItem($.ProductionVariants[*].ModelName, 0)"}),
        "DescribeLiveModel": task(sdk + "sagemaker:describeModel", {"ModelName.$": "$.liveConfig.firstModel"},
                                  "NewVariants", "$.liveModel",
                                  {"image.$": "$.PrimaryContainer.Image", "role.$": "$.ExecutionRoleArn"}),
        "NewVariants": {  # the live variants' capacity, serving the challenger
            "Type": "Map", "ItemsPath": "$.liveConfig.variants", "ResultPath": "$.newVariants", "Next": "CreateModel",
            "ItemSelector": {"VariantName.$": "$$.Map.Item.Value.VariantName",
                             "InitialInstanceCount.$": "$$.Map.Item.Value.InitialInstanceCount",
                             "InstanceType.$": "$$.Map.Item.Value.InstanceType",
                             "InitialVariantWeight.$": "$$.Map.Item.Value.InitialVariantWeight",
                             "ModelName.$": "$.comparison.result.model_name"},
            "ItemProcessor": {"StartAt": "Variant", "States": {"Variant": {"Type": "Pass", "End": True}}},
            "Catch": catch},
        "CreateModel": task(sdk + "sagemaker:createModel", {
            "ModelName.$": "$.comparison.result.model_name", "ExecutionRoleArn.$": "$.liveModel.role",
            "PrimaryContainer": {"Image.$": "$.liveModel.image",
                                 "ModelDataUrl.$": "$.comparison.result.model_data_url"}},
            "CreateEndpointConfig", None),
        "CreateEndpointConfig": task(sdk + "sagemaker:createEndpointConfig", {
            "EndpointConfigName.$": "$.comparison.result.config_name", "ProductionVariants.$": "$.newVariants",
            "DataCaptureConfig.$": "$.liveConfig.dataCapture"}, "DeployBlueGreen", None),
        "DeployBlueGreen": task(sdk + "sagemaker:updateEndpoint", {
            "EndpointName.$": "$.endpointName", "EndpointConfigName.$": "$.comparison.result.config_name",
            "DeploymentConfig.$": "$.deploymentConfig"}, "WaitForEndpoint", None),
        "WaitForEndpoint": {"Type": "Wait", "SecondsPath": "$.pollSeconds", "Next": "DescribeEndpointAfterDeploy"},
        "DescribeEndpointAfterDeploy": task(sdk + "sagemaker:describeEndpoint", {"EndpointName.$": "$.endpointName"},
                                            "EndpointSettled", "$.endpoint",
                                            {"status.$": "$.EndpointStatus", "configName.$": "$.EndpointConfigName"}),
        "EndpointSettled": {"Type": "Choice", "Default": "NotifyRolledBack", "Choices": [
            {"Or": [{"Variable": "$.endpoint.status", "StringEquals": s} for s in ("Updating", "SystemUpdating")],
             "Next": "WaitForEndpoint"},
            {"And": [{"Variable": "$.endpoint.status", "StringEquals": "InService"},
                     {"Variable": "$.endpoint.configName", "StringEqualsPath": "$.comparison.result.config_name"}],
             "Next": "NotifyDeployed"}]},
        "NotifyDeployed": notify("challenger deployed", "States.Format('deployed {} to {}', "
                                 "$.comparison.result.version, $.endpointName)", "Deployed"),
        "Deployed": {"Type": "Succeed"},
        "NotifyRolledBack": notify("deployment rolled back", "States.Format('deployment of {} did not complete "
                                   "(endpoint {} serves {}); the champion keeps serving', $.comparison.result.version, "
                                   "$.endpoint.status, $.endpoint.configName)", "RolledBack"),
        "RolledBack": {"Type": "Fail", "Error": "DeploymentRolledBack", "Cause": "see the SNS notification"},
        "NotifyFailure": notify("retraining workflow failed", "States.JsonToString($.error)", "Failed"),
        "Failed": {"Type": "Fail", "Error": "RetrainingFailed", "Cause": "see the SNS notification"},
    }
    return {"Comment": f"Retrain {ep} when the suite's decision says so, deploy only a better challenger safely",
            "StartAt": "Prepare", "TimeoutSeconds": 6 * 3600 + 10 * cfg.retraining["shift_wait_seconds"],
            "States": states}


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


def visited_states(aws: Aws, execution_arn: str) -> list[str]:
    """Names of the states an execution entered, in order (Map iterations left out)."""
    sfn = aws.client("stepfunctions")
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
              for e in page["events"]]
    top, depth = [], 0
    for e in sorted(events, key=lambda e: e["id"]):
        kind = e["type"]
        if kind in ("MapIterationStarted",):
            depth += 1
        elif kind in ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"):
            depth -= 1
        elif kind.endswith("StateEntered") and depth == 0:
            top.append(e["stateEnteredEventDetails"]["name"])
    return top


def execute_locally(aws: Aws, cfg: Params, arn: str, execution_input: dict, name: str,
                    serve: Callable[[str, dict], dict], timeout_s: float = 120.0) -> dict:
    """Run one execution on the local emulator, serving its job steps with ``serve(step, message)`` (which returns
    the step's output as the SageMaker ``.sync`` integration would; an exception fails the task).

    Returns
    -------
    dict
        ``status``, ``states`` (in the order entered), ``deployed``, ``error`` (and ``cause``, ``end_state``,
        ``execution_arn``).
    """
    sfn, sqs = aws.client("stepfunctions"), aws.client("sqs")
    queue = sqs.create_queue(QueueName=worker_queue_name(cfg))["QueueUrl"]
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + timeout_s
    desc, step_errors = {"status": "RUNNING"}, []
    pause = POLL_FIRST_S
    while time.monotonic() < deadline:
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING":
            break
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0, MaxNumberOfMessages=10).get("Messages", [])
        pause = POLL_FIRST_S if messages else min(2 * pause, POLL_MAX_S)  # quick while steps follow each other
        for msg in messages:
            body = json.loads(msg["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"])
            try:
                output = serve(body["step"], body)
            except Exception as exc:  # noqa: BLE001 - the workflow's Catch path notifies and fails
                step_errors.append(f"{body['step']}: {type(exc).__name__}: {exc}")
                sfn.send_task_failure(taskToken=body["taskToken"], error=f"{body['step'].capitalize()}StepFailed",
                                      cause=f"{type(exc).__name__}: {exc}"[:250])
            else:
                sfn.send_task_success(taskToken=body["taskToken"], output=json.dumps(output))
        time.sleep(pause)
    else:
        sfn.stop_execution(executionArn=execution, error="Timeout", cause="local execution timed out")
        desc = {"status": "TIMED_OUT", "error": "Timeout"}
    states = visited_states(aws, execution)
    end = next((s for s in reversed(states) if s in END_STATES), None)
    return {"status": desc["status"], "states": states, "deployed": end == "Deployed",
            "error": desc.get("error"), "cause": desc.get("cause"), "end_state": END_STATES.get(end),
            "step_errors": step_errors,
            "execution_arn": execution}


def ensure_schedule(aws: Aws, cfg: Params, state_machine_arn: str, expression: str, role_arn: str) -> str:
    """EventBridge Scheduler schedule starting the workflow with :func:`execution_input` (aws mode); updated when changed."""
    scheduler = aws.client("scheduler")
    name = f"{state_machine_name(cfg)}-schedule"
    target = {"Arn": state_machine_arn, "RoleArn": role_arn, "Input": json.dumps(execution_input(cfg), sort_keys=True)}
    try:
        current = scheduler.get_schedule(Name=name)
        if (current["ScheduleExpression"] == expression and current["Target"]["Arn"] == state_machine_arn
                and current["Target"].get("Input") == target["Input"]):
            return "unchanged"
        scheduler.update_schedule(Name=name, ScheduleExpression=expression, Target=target,
                                  FlexibleTimeWindow={"Mode": "OFF"})
        return "updated"
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "ResourceNotFoundException":
            raise
    scheduler.create_schedule(Name=name, ScheduleExpression=expression, Target=target, FlexibleTimeWindow={"Mode": "OFF"})
    return "created"
