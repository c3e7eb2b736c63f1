"""What must hold in the account before setup creates anything: the bucket (or create_bucket), the key alias, data_path's object."""

from __future__ import annotations

from botocore.exceptions import ClientError

from .aws import Aws, bucket_exists, error_code, kms_key_arn, split_s3_uri
from .config import Params, ParamsError

SECURE_SETTINGS = "Block Public Access, default encryption, a TLS-only bucket policy and versioning"


def check_alarm_overrides(cfg: Params) -> None:
    """Each alarm ``alarm_overrides`` changes is still a valid PutMetricAlarm request by CloudWatch's rules (and
    botocore's model), checked without AWS before anything runs.

    Raises
    ------
    ParamsError
        Naming ``alarm_overrides``, where it was set, its value, the alarm, the field and the fix.
    """
    if not cfg.alarm_overrides:
        return
    from . import alarms, alerting

    try:
        alerting.alarm_specs(cfg, "arn:aws:sns:us-east-1:000000000000:check")  # a placeholder: only the fields count
    except alarms.AlarmSpecError as exc:
        reason = str(exc).removeprefix("alarm_overrides: ")
        raise ParamsError(f"{cfg.origin('alarm_overrides')}: parameter 'alarm_overrides' is "
                          f"{dict(cfg.alarm_overrides)!r}: {reason}") from None


def may_create_bucket(cfg: Params) -> bool:
    """Setup may create a missing bucket: ``create_bucket`` in aws mode, always in local mode (its simulated account)."""
    return cfg.create_bucket or cfg.aws_mode == "local"


def check_account(cfg: Params, aws: Aws) -> bool:
    """Check with read-only requests (HeadBucket, HeadObject, DescribeKey for a key alias: nothing is created) that
    the run can start in this account.

    Parameters
    ----------
    cfg : Params
        ``bucket``, ``create_bucket``, ``kms_key_id``, ``data_path`` and ``aws_mode`` are read.
    aws : Aws
        Session of the account.

    Returns
    -------
    bool
        True when the bucket exists; False when it is missing and setup may create it.

    Raises
    ------
    ParamsError
        The bucket is missing and ``create_bucket`` is false (aws mode), the bucket is another account's, a key
        alias names no key, or an ``s3://`` ``data_path`` names no object: naming the key, where it was set, the value
        and the fix.
    """
    try:
        exists = bucket_exists(aws, cfg.bucket)
    except ClientError as exc:
        raise ParamsError(f"{cfg.origin('bucket')}: parameter 'bucket' is {cfg.bucket!r}, which this identity may not "
                          f"use (HeadBucket answered {error_code(exc) or exc}: the bucket belongs to another account, "
                          "the role lacks s3:ListBucket on it, or the credentials have expired). Fix: check the name "
                          "for a typo, renew the credentials, or grant access (python -m monitor_utils iam-policy)"
                          ) from None
    if not exists and not may_create_bucket(cfg):
        raise ParamsError(f"{cfg.origin('bucket')}: parameter 'bucket' is {cfg.bucket!r}, and no such bucket exists "
                          f"(HeadBucket answered 404; nothing was created). Fix: check the name for a typo; create the "
                          f"bucket yourself; or set create_bucket: true to let setup create it with {SECURE_SETTINGS}")
    if cfg.kms_key_id:
        try:  # an alias is resolved (DescribeKey) before anything is encrypted with it
            kms_key_arn(aws, cfg.kms_key_id)
        except ClientError as exc:
            raise ParamsError(f"{cfg.origin('kms_key_id')}: parameter 'kms_key_id' is {cfg.kms_key_id!r}, which KMS "
                              f"does not know in region {cfg.region} ({error_code(exc) or exc}); nothing was created. "
                              "Fix: give the key's ARN, id or alias (aws kms list-aliases), or leave it empty for "
                              "SSE-S3 and the services' own keys") from None
    if cfg.data_path.startswith("s3://"):
        _check_object(cfg, aws, "data_path", cfg.data_path,
                      "give the S3 URI of YearPredictionMSD.txt or its .zip, or leave data_path empty to read "
                      f"s3://{cfg.bucket}/{cfg.key('data', 'train.npz')}")
    return exists


def _check_object(cfg: Params, aws: Aws, key: str, uri: str, fix: str) -> None:
    bucket, object_key = split_s3_uri(uri)
    try:
        aws.client("s3").head_object(Bucket=bucket, Key=object_key)
    except ClientError as exc:
        code = error_code(exc)
        what = "no such object" if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket") else \
            f"not readable (HeadObject answered {code or exc})"
        raise ParamsError(f"{cfg.origin(key)}: parameter '{key}' is {uri!r}: {what}; nothing was created. "
                          f"Fix: {fix}") from None
