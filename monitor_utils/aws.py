"""boto3 sessions and clients with retries, S3 helpers and idempotent ensure-helpers."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError, ProfileNotFound
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from dateutil.tz import tzutc

from .config import Params, ParamsError

LOCAL_ENDPOINT_ENV = "MONITOR_UTILS_LOCAL_ENDPOINT"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Aws:
    """One boto3 session and its clients, all with the configured retry behaviour."""

    session: boto3.Session
    mode: str
    region: str
    endpoint_url: str | None = None
    retry_config: Config | None = None
    faults_injected: dict = field(default_factory=dict)
    kms_key_id: str = ""
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str):
        """Return a cached client for ``service`` (local mode: pointed at the emulator)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.retry_config
            )
        return self._clients[service]

    @property
    def account_id(self) -> str:
        """The caller's account id (the emulator answers with its fixed test account)."""
        return self.client("sts").get_caller_identity()["Account"]


_LOADER: list = []  # one botocore data loader per process: each service model is parsed once, whatever the sessions
SERVICES = ("s3", "sts", "cloudwatch", "logs", "sns", "sqs", "sagemaker", "stepfunctions", "scheduler", "iam", "kms")


def _loader():
    import botocore.loaders

    if not _LOADER:
        _LOADER.append(botocore.loaders.create_loader())
    return _LOADER[0]


def parse_timestamp(value: Any) -> dt.datetime:
    """botocore's response timestamp parser, with a fast path for the ISO 8601 UTC form (``...T...Z``) that S3
    listings, CloudWatch and SNS answer in: the same datetime (``tzutc``) as botocore's, parsed without dateutil
    (which took a fifth of a listing's time). Anything else goes to botocore's own parser."""
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=tzutc())
        except ValueError:
            pass
    return botocore_parse_timestamp(value)


def new_session(**kwargs: Any) -> boto3.Session:
    """``boto3.Session(**kwargs)`` sharing this process's service models with every other session it opens, and
    parsing response timestamps with :func:`parse_timestamp`."""
    import botocore.session

    core = botocore.session.Session()
    core.register_component("data_loader", _loader())
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return boto3.Session(botocore_session=core, **kwargs)


def service_model(service: str):
    """botocore's model of ``service`` (a ``botocore.model.ServiceModel``), parsed once per process."""
    from botocore.model import ServiceModel

    return ServiceModel(_loader().load_service_model(service, "service-2"), service_name=service)


def preload_service_models(services: tuple[str, ...] = SERVICES, region: str = "us-east-1") -> None:
    """Parse the service models of ``services`` now (about 50 ms each), so the sessions opened later start fast."""
    session = new_session(region_name=region, **DUMMY_CREDENTIALS)
    for service in services:
        session.client(service, endpoint_url="http://127.0.0.1:9")  # never called: only the model is loaded


def inject_throttling(session: boto3.Session, fraction: float, seed: int) -> dict:
    """Local fault injection: answer a share of AWS calls with a throttling 503 on their first attempt,
    before it leaves the process, so botocore's retry logic must absorb them. (Throttling every attempt at
    that rate would also drain botocore's per-client retry quota, which then stops retrying.)"""
    import random

    from botocore.awsrequest import AWSResponse

    rng = random.Random(seed)
    injected = {"throttled": 0}

    class _Raw:
        def stream(self, **kwargs):
            yield b""

    def maybe_throttle(request, **kwargs):
        first = b"attempt=1;" in (request.headers.get("amz-sdk-request") or b"") or \
            "attempt=1;" in str(request.headers.get("amz-sdk-request") or "")
        if first and rng.random() < fraction:
            injected["throttled"] += 1
            return AWSResponse(request.url, 503, {"x-amzn-errortype": "ThrottlingException"}, _Raw())
        return None

    session.events.register("before-send", maybe_throttle)  # boto3's public handle on botocore's event system
    return injected


class CredentialsError(ParamsError):
    """aws mode found no credentials (or not the named profile): the message says where they come from."""


def credentials_help(cfg: Params) -> str:
    """Where aws mode takes credentials from, for an error message."""
    return ("aws mode takes credentials from the params key `profile` (a named profile in ~/.aws/config), else the "
            "standard chain: the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), "
            "~/.aws/credentials and ~/.aws/config, then the instance or task role (EC2, ECS, SageMaker); with "
            "`role_arn` set, those credentials assume that role. Fix: configure one of them (e.g. `aws configure` "
            f"or `aws sso login`), or set `profile` in {cfg.origin('profile')}")


def _aws_session(cfg: Params, retry: Config) -> boto3.Session:
    """The aws-mode session: ``profile`` or the standard chain, then ``role_arn`` assumed; missing credentials raise
    :class:`CredentialsError` here, not at a stage's first call."""
    try:
        session = new_session(profile_name=cfg.profile or None, region_name=cfg.region)
        credentials = session.get_credentials()
    except ProfileNotFound:
        raise CredentialsError(f"{cfg.origin('profile')}: parameter 'profile' is {cfg.profile!r}, which no AWS "
                               f"config file defines. {credentials_help(cfg)}") from None
    if credentials is None:
        raise CredentialsError(f"no AWS credentials found (profile {cfg.profile or '(none)'}, role_arn "
                               f"{cfg.role_arn or '(none)'}). {credentials_help(cfg)}")
    if cfg.role_arn:
        try:
            creds = session.client("sts", config=retry).assume_role(
                RoleArn=cfg.role_arn, RoleSessionName="msd-monitoring")["Credentials"]
        except NoCredentialsError:
            raise CredentialsError(f"no AWS credentials to assume role_arn {cfg.role_arn} with. "
                                   f"{credentials_help(cfg)}") from None
        except ClientError as exc:
            raise CredentialsError(
                f"{cfg.origin('role_arn')}: parameter 'role_arn' is {cfg.role_arn!r}, which these credentials could "
                f"not assume ({error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}). Fix: allow "
                "sts:AssumeRole on it in the caller's policy (python -m monitor_utils iam-policy notes the statement) "
                "and trust the caller in the role's trust policy, or check the ARN for a typo") from None
        assumed = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                   "aws_session_token": creds["SessionToken"]}
        session = new_session(region_name=cfg.region, **assumed)
    return session


def connect(cfg: Params, endpoint_url: str | None = None, *, faults: bool = True) -> Aws:
    """Open a session for ``cfg``: dummy credentials on the local emulator, the credential chain in aws mode.

    In local mode ``faults.throttle_fraction`` injects throttling into every client (``faults=False`` opts
    out, e.g. for building the simulated world, which stands in for AWS itself).

    Parameters
    ----------
    cfg : Params
        Validated parameters (``aws_mode``, ``region``, ``profile``, ``role_arn``, ``retries``).
    endpoint_url : str, optional
        Local emulator URL; required in local mode.
    """
    retry = Config(retries={"mode": cfg.retries["mode"], "max_attempts": cfg.retries["max_attempts"]})
    if cfg.aws_mode == "local":
        if not endpoint_url:
            raise RuntimeError("local mode needs the emulator's URL: start it with monitor_utils.local.start()")
        session = new_session(region_name=cfg.region, **DUMMY_CREDENTIALS)
        aws = Aws(session, "local", cfg.region, endpoint_url, retry, kms_key_id=cfg.kms_key_id)
        if faults and cfg.faults["throttle_fraction"] > 0:
            aws.faults_injected = inject_throttling(session, cfg.faults["throttle_fraction"], cfg.seed)
        return aws
    session = _aws_session(cfg, retry)
    return Aws(session, "aws", cfg.region, os.environ.get("AWS_ENDPOINT_URL") or None, retry, kms_key_id=cfg.kms_key_id)


def partition(region: str) -> str:
    """AWS partition of ``region`` (aws, aws-cn, aws-us-gov)."""
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if "-gov-" in region else "aws"


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


# --- S3 -----------------------------------------------------------------------------------------

def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/part`` -> (bucket, 'key/part')."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def bucket_exists(aws: Aws, bucket: str) -> bool:
    """True when ``bucket`` exists and this session may use it (HeadBucket); False when it does not exist.

    Raises
    ------
    ClientError
        Any other answer, e.g. 403 for a bucket that exists but is not this account's.
    """
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def create_bucket(aws: Aws, bucket: str) -> None:
    """CreateBucket in the session's region (no settings of its own: see :func:`create_secure_bucket`)."""
    kwargs = {} if aws.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws.region}}
    aws.client("s3").create_bucket(Bucket=bucket, **kwargs)


def ensure_bucket(aws: Aws, bucket: str) -> bool:
    """Create ``bucket`` when missing, as a plain bucket (the simulated world's, which stands for one the user
    already has; setup creates :func:`create_secure_bucket`); return True when it was created."""
    if bucket_exists(aws, bucket):
        return False
    create_bucket(aws, bucket)
    return True


def tls_only_policy(bucket: str, region: str) -> dict:
    """A bucket policy denying every request to ``bucket`` and its objects that does not come over TLS."""
    arn = f"arn:{partition(region)}:s3:::{bucket}"
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyRequestsWithoutTls", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def create_secure_bucket(aws: Aws, bucket: str) -> list[str]:
    """Create ``bucket`` secured by its own settings, not the account's defaults: Block Public Access (all four),
    default encryption (SSE-KMS with the configured key, else SSE-S3), a TLS-only bucket policy and versioning.

    Returns
    -------
    list[str]
        The settings applied, in order.

    Raises
    ------
    RuntimeError
        A setting could not be applied after the bucket was created: names the bucket, what was applied and what
        is missing (the bucket is left for the user to finish or delete; a rerun finds it and does not create it).
    """
    s3 = aws.client("s3")
    create_bucket(aws, bucket)
    rule = ({"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": aws.kms_key_id},
             "BucketKeyEnabled": True} if aws.kms_key_id else
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})
    steps = [
        ("Block Public Access", lambda: s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})),
        (f"default encryption ({'SSE-KMS' if aws.kms_key_id else 'SSE-S3'})",
         lambda: s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})),
        ("TLS-only bucket policy", lambda: s3.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket, aws.region)))),
        ("versioning", lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})),
    ]
    done: list[str] = []
    for name, apply in steps:
        try:
            apply()
        except Exception as exc:  # noqa: BLE001 - re-raised with what is left to do
            missing = [n for n, _ in steps if n not in done]
            raise RuntimeError(f"created bucket {bucket} but could not apply {name}: {exc}. Applied: "
                               f"{', '.join(done) or 'nothing'}; missing: {', '.join(missing)}. Fix: grant the "
                               f"permission (python -m monitor_utils iam-policy) and apply the missing settings, or "
                               f"delete the empty bucket and rerun") from exc
        done.append(name)
    return done


def put_bytes(aws: Aws, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Write one object (SSE-KMS with the configured key, if any)."""
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": aws.kms_key_id} if aws.kms_key_id else {}
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **sse)


def get_bytes(aws: Aws, bucket: str, key: str) -> bytes | None:
    """Read one object; None when it does not exist."""
    try:
        return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def put_json(aws: Aws, bucket: str, key: str, obj: Any) -> None:
    """Write ``obj`` as pretty JSON."""
    put_bytes(aws, bucket, key, json.dumps(obj, indent=2, default=str).encode(), "application/json")


class PreconditionFailed(RuntimeError):
    """A conditional S3 write lost: the object changed (``IfMatch``) or already exists (``IfNoneMatch``)."""


CONFLICT_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def get_json_etag(aws: Aws, bucket: str, key: str) -> tuple[Any | None, str | None]:
    """Read a JSON object and the ETag it was read at; (None, None) when it does not exist."""
    try:
        got = aws.client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None, None
        raise
    return json.loads(got["Body"].read()), got["ETag"]


def put_json_if(aws: Aws, bucket: str, key: str, obj: Any, etag: str | None) -> str:
    """Write ``obj`` as JSON only if the object is still at ``etag`` (``IfMatch``), or, with ``etag`` None, only
    if it does not exist yet (``IfNoneMatch='*'``); return the new ETag.

    Raises
    ------
    PreconditionFailed
        When another writer changed (or created, or deleted) the object since it was read.
    """
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": aws.kms_key_id} if aws.kms_key_id else {}
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    body = json.dumps(obj, indent=2, default=str).encode()
    try:
        got = aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                                          **condition, **sse)
    except ClientError as exc:
        if error_code(exc) in CONFLICT_CODES or (etag and error_code(exc) in ("NoSuchKey", "404")):
            raise PreconditionFailed(f"s3://{bucket}/{key} changed since it was read ({error_code(exc)})") from None
        raise
    return got["ETag"]


def get_json(aws: Aws, bucket: str, key: str) -> Any | None:
    """Read a JSON object; None when it does not exist."""
    raw = get_bytes(aws, bucket, key)
    return None if raw is None else json.loads(raw)


def list_keys(aws: Aws, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` (paginated)."""
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def frame_bytes(df) -> bytes:
    """A numeric DataFrame as a compressed .npz (exact float64, column names kept), as :func:`put_frame` writes it."""
    buf = io.BytesIO()
    np.savez_compressed(buf, columns=np.array(list(df.columns)), values=df.to_numpy(dtype=float))
    return buf.getvalue()


def put_frame(aws: Aws, bucket: str, key: str, df) -> None:
    """Write a numeric DataFrame as a compressed .npz (exact float64, column names kept, fast)."""
    put_bytes(aws, bucket, key, frame_bytes(df), "application/octet-stream")


_FRAMES: dict[tuple[str, str, str], Any] = {}  # local mode: (bucket, key, ETag) -> frame read in this process


def _read_frame(raw: bytes):
    import pandas as pd

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return pd.DataFrame(z["values"], columns=[str(c) for c in z["columns"]])


def get_frame(aws: Aws, bucket: str, key: str):
    """Read a DataFrame written by :func:`put_frame`; None when missing.

    In local mode a frame read before in this process is given again (a copy) while the object's ETag is the
    same: the retraining steps read the training data several times.
    """
    etag = None
    if aws.mode == "local":
        try:
            etag = aws.client("s3").head_object(Bucket=bucket, Key=key)["ETag"]
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise  # missing: get_bytes says None for a key, raises for a bucket, as elsewhere
        if (bucket, key, etag) in _FRAMES:
            return _FRAMES[(bucket, key, etag)].copy()
    raw = get_bytes(aws, bucket, key)
    if raw is None:
        return None
    frame = _read_frame(raw)
    if etag is not None:
        _FRAMES[(bucket, key, etag)] = frame
    return frame.copy() if etag is not None else frame


# --- idempotent ensure-helpers ------------------------------------------------------------------

def kms_key_arn(aws: Aws, key_id: str) -> str:
    """The ARN of a KMS key given as an ARN, a key id or an alias (an alias is resolved with DescribeKey):
    CloudWatch Logs takes only a key ARN."""
    if key_id.startswith("arn:") and ":key/" in key_id:
        return key_id
    if key_id.startswith("alias/") or ":alias/" in key_id:  # an alias is the account's own: asked by its name
        return aws.client("kms").describe_key(KeyId=key_id[key_id.index("alias/"):])["KeyMetadata"]["Arn"]
    return f"arn:{partition(aws.region)}:kms:{aws.region}:{aws.account_id}:key/{key_id}"


def ensure_log_group(aws: Aws, name: str, retention_days: int = 90) -> bool:
    """Create the log group unless it exists (encrypted with the configured KMS key, if any); return True when created."""
    logs = aws.client("logs")
    kms = {"kmsKeyId": kms_key_arn(aws, aws.kms_key_id)} if aws.kms_key_id else {}
    try:
        logs.create_log_group(logGroupName=name, **kms)
        created = True
    except ClientError as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise
        created = False
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
    return created


def ensure_topic(aws: Aws, name: str) -> str:
    """Create (or find: CreateTopic is idempotent) the SNS topic, KMS-encrypted when a key is configured; return its ARN."""
    attrs = {"KmsMasterKeyId": aws.kms_key_id} if aws.kms_key_id else {}
    return aws.client("sns").create_topic(Name=name, Attributes=attrs)["TopicArn"]


def ensure_subscription(aws: Aws, topic_arn: str, protocol: str, endpoint: str) -> str:
    """Subscribe ``endpoint`` unless already subscribed; return the subscription ARN (or 'pending confirmation')."""
    sns = aws.client("sns")
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page["Subscriptions"]:
            if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                return sub["SubscriptionArn"]
    return sns.subscribe(TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint,
                         ReturnSubscriptionArn=True)["SubscriptionArn"]
