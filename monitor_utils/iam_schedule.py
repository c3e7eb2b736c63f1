"""Least-privilege IAM policies of the scheduled suite: its Processing job's role, and what its scheduler role adds."""

from __future__ import annotations

import re

from . import iam, suite_schedule
from .aws import split_s3_uri
from .config import Params, ParamsError

_PASSED_TO_SAGEMAKER = {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([^:@]+)")


def _check(cfg: Params, account: str) -> None:
    if account != "*" and not (account.isdigit() and len(account) == 12):
        raise ParamsError(f"account id {account!r} must be 12 digits")
    s = cfg.suite_schedule
    iam.check_literal({"suite_schedule.job_role_arn": s["job_role_arn"], "endpoint_name": cfg.endpoint_name,
                       "suite_schedule.image_uri": s["image_uri"], "retraining.code_uri": cfg.retraining["code_uri"]})


def scheduler_statements(cfg: Params, account: str = "*") -> tuple[list[dict], list[str]]:
    """What ``suite_schedule.scheduler_role_arn`` needs for the suite's target: CreateProcessingJob on the schedule's
    job names only, and ``iam:PassRole`` of the job role to SageMaker only."""
    _check(cfg, account)
    p = iam.partition(cfg.region)
    job_role = cfg.suite_schedule["job_role_arn"]
    notes = [] if job_role else ["suite_schedule.job_role_arn is empty: PassRole allows any role of the account "
                                 "(to SageMaker only); set it to narrow the policy"]
    notes.append("the scheduler role's trust policy must let scheduler.amazonaws.com assume it (condition "
                 f"aws:SourceAccount {account if account != '*' else '<account-id>'})")
    prefix = suite_schedule.job_name_prefix(cfg).lower()  # SageMaker ARNs hold lower-case names
    return [
        {"Sid": "StartSuiteProcessingJobs", "Effect": "Allow", "Action": ["sagemaker:CreateProcessingJob"],
         "Resource": [f"arn:{p}:sagemaker:{cfg.region}:{account}:processing-job/{prefix}-*"]},
        {"Sid": "PassSuiteJobRoleToSageMaker", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [job_role or f"arn:{p}:iam::{account}:role/*"], "Condition": _PASSED_TO_SAGEMAKER},
    ], notes


def suite_job_policy(cfg: Params, account: str = "*", sagemaker_role_arn: str = "",
                     model_data_urls: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """The policy of ``suite_schedule.job_role_arn``: what the suite's own policy grants (:func:`iam.policy`), plus
    reading the wheelhouse and the params file, writing the run records, the job's logs and pulling its image.

    Returns
    -------
    tuple[dict, list[str]]
        The policy document and notes for the person attaching it.
    """
    _check(cfg, account)
    document, notes = iam.policy(cfg, account, sagemaker_role_arn, model_data_urls)
    p, region = iam.partition(cfg.region), cfg.region
    statements = list(document["Statement"])
    reads = [suite_schedule.wheelhouse_uri(cfg), suite_schedule.params_uri(cfg)]
    statements.append({"Sid": "ReadSuitePackageAndParams", "Effect": "Allow", "Action": ["s3:GetObject"],
                       "Resource": [f"arn:{p}:s3:::{b}/{k}*" for b, k in map(split_s3_uri, reads)]})
    listed: dict[str, list[str]] = {}
    for b, k in map(split_s3_uri, reads):
        listed.setdefault(b, []).append(f"{k}*")
    for i, (bucket, keys) in enumerate(sorted(listed.items())):
        statements.append({"Sid": f"ListSuitePackageAndParams{i or ''}", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": [f"arn:{p}:s3:::{bucket}"], "Condition": {"StringLike": {"s3:prefix": keys}}})
    b, k = split_s3_uri(suite_schedule.records_uri(cfg))
    statements.append({"Sid": "WriteRunRecords", "Effect": "Allow", "Action": ["s3:PutObject"],
                       "Resource": [f"arn:{p}:s3:::{b}/{k}*"]})
    statements.append({"Sid": "ProcessingJobLogs", "Effect": "Allow",
                       "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": [f"arn:{p}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs",
                                    f"arn:{p}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:*"]})
    image = _ECR_IMAGE.match(cfg.suite_schedule["image_uri"])
    if image:
        registry, image_region, _, repository = image.groups()
        statements.append({"Sid": "PullJobImage", "Effect": "Allow",
                           "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                                      "ecr:GetDownloadUrlForLayer"],
                           "Resource": [f"arn:{p}:ecr:{image_region}:{registry}:repository/{repository}"]})
        statements.append({"Sid": "EcrAuthorizationTokenHasNoResourceLevel", "Effect": "Allow",
                           "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"})
    else:
        notes.append("suite_schedule.image_uri is not an ECR image URI: no image pull statement")
    notes.append("the role's trust policy must let sagemaker.amazonaws.com assume it")
    return {"Version": "2012-10-17", "Statement": statements}, notes


def deployer_policy(cfg: Params, account: str = "*") -> tuple[dict, list[str]]:
    """The policy of whoever runs ``schedule`` (a person or a CI role): upload the wheelhouse and the params file,
    create or update the suite's schedule, and pass ``suite_schedule.scheduler_role_arn`` to EventBridge Scheduler."""
    _check(cfg, account)
    iam.check_literal({"suite_schedule.scheduler_role_arn": cfg.suite_schedule["scheduler_role_arn"]})
    p, region = iam.partition(cfg.region), cfg.region
    uploads = [split_s3_uri(suite_schedule.wheelhouse_uri(cfg)), split_s3_uri(suite_schedule.params_uri(cfg))]
    role = cfg.suite_schedule["scheduler_role_arn"]
    notes = [] if role else ["suite_schedule.scheduler_role_arn is empty: PassRole allows any role of the account "
                             "(to EventBridge Scheduler only); set it to narrow the policy"]
    statements = [
        # HeadBucket (the check that the buckets exist, no prefix) and listing the wheelhouse need s3:ListBucket
        {"Sid": "CheckUploadBucketsListWheelhouse", "Action": ["s3:ListBucket"],
         "Resource": sorted({f"arn:{p}:s3:::{b}" for b, _ in uploads}),
         "Condition": {"StringLikeIfExists": {"s3:prefix": [f"{uploads[0][1]}*"]}}},
        # HeadObject (is the object already there, with the same content?) needs s3:GetObject
        {"Sid": "UploadSuitePackageAndParams", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [f"arn:{p}:s3:::{b}/{k}*" for b, k in uploads]},
        # wheels of an earlier deploy that the new wheelhouse no longer holds
        {"Sid": "RemoveStaleWheels", "Action": ["s3:DeleteObject"],
         "Resource": [f"arn:{p}:s3:::{b}/{k}*" for b, k in uploads[:1]]},
        {"Sid": "SuiteSchedule", "Action": ["scheduler:CreateSchedule", "scheduler:GetSchedule",
                                            "scheduler:UpdateSchedule"],
         "Resource": [f"arn:{p}:scheduler:{region}:{account}:schedule/default/{suite_schedule.schedule_name(cfg)}"]},
        {"Sid": "PassSuiteSchedulerRole", "Action": ["iam:PassRole"],
         "Resource": [role or f"arn:{p}:iam::{account}:role/*"],
         "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}},
    ]
    for st in statements:
        st["Effect"] = "Allow"
    if cfg.kms_key_id:
        notes.append(f"kms_key_id is set: the uploads are SSE-KMS; allow kms:GenerateDataKey on {cfg.kms_key_id}")
    return {"Version": "2012-10-17", "Statement": statements}, notes
