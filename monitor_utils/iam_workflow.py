"""Least-privilege IAM policies of the retraining workflow's state machine role and of the scheduler role that starts it."""

from __future__ import annotations

import json

from . import iam, registry, steps, workflow
from .aws import Aws
from .config import Params, ParamsError

# the EventBridge rules Step Functions manages for SageMaker ``.sync`` integrations
_SYNC_RULES = ("StepFunctionsGetEventsForSageMakerTrainingJobsRule",
               "StepFunctionsGetEventsForSageMakerProcessingJobsRule")


def _check(cfg: Params, account: str, sagemaker_role_arn: str) -> None:
    if account != "*" and not (account.isdigit() and len(account) == 12):
        raise ParamsError(f"account id {account!r} must be 12 digits")
    iam.check_literal({"endpoint_name": cfg.endpoint_name, "bucket": cfg.bucket, "prefix": cfg.prefix,
                       "sns_topic_name": cfg.sns_topic_name, "retraining.job_role_arn": cfg.retraining["job_role_arn"],
                       "--sagemaker-role-arn": sagemaker_role_arn})


def state_machine_policy(cfg: Params, account: str = "*", sagemaker_role_arn: str = "") -> tuple[dict, list[str]]:
    """The policy of ``retraining.state_machine_role_arn``: exactly what :func:`workflow.definition` calls.

    SageMaker jobs named after the workflow's job prefix, ``iam:PassRole`` of the job role to SageMaker only, the
    execution results under the suite's prefix, the alert topic, and the endpoint with the suite's model versions.
    """
    _check(cfg, account, sagemaker_role_arn)
    p, region, ep = iam.partition(cfg.region), cfg.region, cfg.endpoint_name
    sm = f"arn:{p}:sagemaker:{region}:{account}"
    prefix = workflow.execution_input(cfg)["jobPrefix"].lower()
    model_role = sagemaker_role_arn or f"arn:{p}:iam::{account}:role/*"
    passed_to_sagemaker = {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    statements = [
        {"Sid": "ReadStepResults", "Action": ["s3:GetObject"],
         "Resource": [f"arn:{p}:s3:::{cfg.bucket}/{steps.result_key(cfg, '*', '*').rsplit('/*/*', 1)[0]}/*"]},
        {"Sid": "NotifyAlertTopic", "Action": ["sns:Publish"],
         "Resource": [f"arn:{p}:sns:{region}:{account}:{cfg.sns_topic_name}"]},
        {"Sid": "ReadLiveEndpoint",
         "Action": ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
         "Resource": [f"{sm}:endpoint/{ep.lower()}", f"{sm}:endpoint-config/*", f"{sm}:model/*"]},
    ]
    notes = []
    if cfg.aws_mode == "aws":
        statements += [
            {"Sid": "SageMakerJobsOfTheWorkflow",
             "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                        "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob"],
             "Resource": [f"{sm}:training-job/{prefix}-tra-*", f"{sm}:processing-job/{prefix}-dec-*",
                          f"{sm}:processing-job/{prefix}-com-*"]},
            {"Sid": "SyncIntegrationRules", "Action": ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
             "Resource": [f"arn:{p}:events:{region}:{account}:rule/{r}" for r in _SYNC_RULES]},
            {"Sid": "PassJobRoleToSageMaker", "Action": ["iam:PassRole"],
             "Resource": [cfg.retraining["job_role_arn"] or f"arn:{p}:iam::{account}:role/*"],
             "Condition": passed_to_sagemaker},
        ]
        if not cfg.retraining["job_role_arn"]:
            notes.append("retraining.job_role_arn is empty: the workflow's jobs cannot start; set it to narrow PassRole")
    else:
        statements.append({"Sid": "SendJobStepsToLocalWorker", "Action": ["sqs:SendMessage"],
                           "Resource": [f"arn:{p}:sqs:{region}:{account}:{workflow.worker_queue_name(cfg)}"]})
    if not cfg.retraining["dry_run"]:
        versions = registry.names(cfg, 0)
        statements += [
            {"Sid": "CreateSuiteVersionsAndDeploy",
             "Action": ["sagemaker:CreateEndpointConfig", "sagemaker:CreateModel", "sagemaker:UpdateEndpoint"],
             "Resource": [f"{sm}:endpoint/{ep.lower()}",
                          f"{sm}:endpoint-config/{versions['config'].lower().removesuffix('0000')}*",
                          f"{sm}:model/{versions['model'].lower().removesuffix('0000')}*"]},
            {"Sid": "PassLiveModelRoleToSageMaker", "Action": ["iam:PassRole"], "Resource": [model_role],
             "Condition": passed_to_sagemaker},
        ]
        if not sagemaker_role_arn:
            notes.append("iam:PassRole for CreateModel allows any role of the account (to SageMaker only); "
                         "narrow it with --sagemaker-role-arn (the live model's ExecutionRoleArn)")
    for st in statements:
        st["Effect"] = "Allow"
    return {"Version": "2012-10-17", "Statement": statements}, notes


def scheduler_policy(cfg: Params, account: str = "*", sagemaker_role_arn: str = "") -> tuple[dict, list[str]]:
    """The policy of the scheduler roles (``retraining.scheduler_role_arn``, ``suite_schedule.scheduler_role_arn``):
    start the retraining state machine, and, once ``suite_schedule`` names its roles, start the suite's Processing
    jobs with the job role (:func:`iam_schedule.scheduler_statements`); nothing else."""
    from . import iam_schedule

    _check(cfg, account, sagemaker_role_arn)
    arn = f"arn:{iam.partition(cfg.region)}:states:{cfg.region}:{account}:stateMachine:{workflow.state_machine_name(cfg)}"
    s = cfg.suite_schedule
    if s["scheduler_role_arn"] or s["job_role_arn"]:
        suite, notes = iam_schedule.scheduler_statements(cfg, account)
    else:
        suite, notes = [], ["suite_schedule.scheduler_role_arn and job_role_arn are empty: no statement for the "
                            "suite's scheduled Processing jobs (set them, then print this policy again)"]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "StartRetrainingWorkflow", "Effect": "Allow", "Action": ["states:StartExecution"],
         "Resource": [arn]}, *suite]}, notes


_SERVICES = {"aws-sdk:sagemaker": "sagemaker", "aws-sdk:s3": "s3", "sns": "sns", "sqs": "sqs", "sagemaker": "sagemaker"}


def execution_calls(aws: Aws, execution_arn: str) -> list[iam.Call]:
    """The AWS calls an execution's tasks made, from its history (TaskScheduled events), as :class:`iam.Call`."""
    sfn = aws.client("stepfunctions")
    calls = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for e in page["events"]:
            if e["type"] != "TaskScheduled":
                continue
            d = e["taskScheduledEventDetails"]
            operation = d["resource"].split(".", 1)[0]
            calls.append(iam.Call(_SERVICES[d["resourceType"]], operation[:1].upper() + operation[1:],
                                  json.loads(d["parameters"])))
    return calls
