"""The suite scheduled in the account: an EventBridge Scheduler schedule starting it as a SageMaker Processing job."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .api_model import RequestError, validate_request  # noqa: F401 - RequestError is what check_requests raises
from .aws import Aws, error_code, partition, split_s3_uri
from .config import Params, ParamsError

PACKAGE = "monitor_utils"
EXECUTION_ID = "<aws.scheduler.execution-id>"  # EventBridge Scheduler puts each firing's unique id here
CONTAINER_INPUT = "/opt/ml/processing/input"  # where SageMaker downloads a Processing job's S3 inputs
WHEELHOUSE_PATH = f"{CONTAINER_INPUT}/wheelhouse"
PARAMS_PATH = f"{CONTAINER_INPUT}/params"
PARAMS_FILE = "params.yaml"
REQUIREMENTS_FILE = "requirements.txt"
# the runtime dependencies only local mode needs (the emulator); the job goes without them
LOCAL_ONLY_REQUIREMENTS = frozenset({"moto"})
MANYLINUX_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


# --- names and places ---------------------------------------------------------------------------

def schedule_name(cfg: Params) -> str:
    """Name of the suite's schedule (in the ``default`` schedule group)."""
    return f"{cfg.endpoint_name}-suite"[:64]


def job_name_prefix(cfg: Params) -> str:
    """Processing jobs of the schedule are ``<prefix>-<execution id>``: at most 26 characters before the id, which
    EventBridge Scheduler keeps short (16 characters in its documentation), so the name stays under 63."""
    return f"{cfg.endpoint_name[:20].rstrip('-')}-suite"


def target_arn(cfg: Params) -> str:
    """EventBridge Scheduler's universal target for SageMaker CreateProcessingJob, in the params' partition."""
    return f"arn:{partition(cfg.region)}:scheduler:::aws-sdk:sagemaker:createProcessingJob"


def code_uri(cfg: Params) -> str:
    """S3 prefix of the package the jobs run (``retraining.code_uri``, default ``s3://BUCKET/PREFIX/code/``)."""
    return (cfg.retraining["code_uri"] or f"s3://{cfg.bucket}/{cfg.key('code')}").rstrip("/") + "/"


def wheelhouse_uri(cfg: Params) -> str:
    """S3 prefix of the wheelhouse: the package's wheel, its runtime dependencies' wheels and requirements.txt."""
    return code_uri(cfg) + "wheelhouse/"


def params_uri(cfg: Params) -> str:
    """S3 prefix holding the params file the scheduled job runs with."""
    return f"s3://{cfg.bucket}/{cfg.key('schedule', 'params')}/"


def records_uri(cfg: Params) -> str:
    """Where the scheduled runs leave their records (``run --output``): ``s3://BUCKET/PREFIX/runs/``."""
    return f"s3://{cfg.bucket}/{cfg.key('runs')}/"


def check_settings(cfg: Params) -> None:
    """The job settings a schedule cannot do without.

    Raises
    ------
    ParamsError
        ``aws_mode`` is not aws, or a role or the image is empty, naming the key and what to put there.
    """
    if cfg.aws_mode != "aws":
        raise ParamsError("schedule needs aws_mode: aws (the schedule and its job live in an account; rehearse "
                          "against an emulator with AWS_ENDPOINT_URL and `schedule --fire`)")
    s = cfg.suite_schedule
    empty = [(k, why) for k, why in (
        ("scheduler_role_arn", "the role EventBridge Scheduler assumes (policy: iam-policy --role scheduler)"),
        ("job_role_arn", "the role the Processing job runs with (policy: iam-policy --role suite-job)"),
        ("image_uri", "a Python framework image of your region whose python3 is suite_schedule.python_version"))
        if not s[k]]
    if empty:
        raise ParamsError("; ".join(f"parameter 'suite_schedule.{k}' is empty: set it to {why}" for k, why in empty))


def package_version() -> str:
    """The installed package's version (the wheel the job installs)."""
    return importlib.metadata.version(PACKAGE)


# --- the requests -------------------------------------------------------------------------------

def container_command(cfg: Params) -> tuple[list[str], list[str]]:
    """(ContainerEntrypoint, ContainerArguments): install the wheelhouse without an index, then
    ``python3 -m monitor_utils run -f <params> --output s3://BUCKET/PREFIX/runs/ [--stages ...]``."""
    install = (f"(cd {WHEELHOUSE_PATH} && python3 -m pip install -q --no-index -f . -r {REQUIREMENTS_FILE} && "
               f"python3 -m pip install -q --no-index --no-deps -f . {PACKAGE}=={package_version()}) && "
               f'exec python3 -m {PACKAGE} "$@"')
    arguments = ["run", "-f", f"{PARAMS_PATH}/{PARAMS_FILE}", "--output", records_uri(cfg)]
    if cfg.suite_schedule["stages"].strip():
        arguments += ["--stages", cfg.suite_schedule["stages"].replace(" ", "")]
    return ["/bin/sh", "-c", install, PACKAGE], arguments


def processing_job_request(cfg: Params) -> dict:
    """The CreateProcessingJob request (API field names) one firing sends, its job name ending in
    ``<aws.scheduler.execution-id>`` (EventBridge Scheduler substitutes it: a unique job per firing)."""
    s = cfg.suite_schedule
    entrypoint, arguments = container_command(cfg)

    def s3_input(name: str, uri: str, path: str) -> dict:
        return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": path, "S3DataType": "S3Prefix",
                                               "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}

    return {
        "ProcessingJobName": f"{job_name_prefix(cfg)}-{EXECUTION_ID}",
        "RoleArn": s["job_role_arn"],
        "AppSpecification": {"ImageUri": s["image_uri"], "ContainerEntrypoint": entrypoint,
                             "ContainerArguments": arguments},
        "ProcessingInputs": [s3_input("wheelhouse", wheelhouse_uri(cfg), WHEELHOUSE_PATH),
                             s3_input("params", params_uri(cfg), PARAMS_PATH)],
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": s["instance_type"],
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60 * s["max_runtime_minutes"]},
        "Environment": {"PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                        "AWS_DEFAULT_REGION": cfg.region},
    }


def schedule_request(cfg: Params) -> dict:
    """The CreateSchedule (and UpdateSchedule) request: the expression in its time zone, the universal target with
    the CreateProcessingJob request as its input, no retries (the next firing catches up), no flexible window."""
    s = cfg.suite_schedule
    return {
        "Name": schedule_name(cfg), "GroupName": "default",
        "ScheduleExpression": s["expression"], "ScheduleExpressionTimezone": s["timezone"],
        "FlexibleTimeWindow": {"Mode": "OFF"}, "State": "ENABLED",
        "Description": f"monitor_utils suite for {cfg.endpoint_name}: a SageMaker Processing job per firing"[:512],
        "Target": {"Arn": target_arn(cfg), "RoleArn": s["scheduler_role_arn"],
                   "Input": json.dumps(processing_job_request(cfg), sort_keys=True),
                   "RetryPolicy": {"MaximumRetryAttempts": 0}},
    }


def _differs(wanted: Any, current: Any) -> bool:
    """True when ``current`` (what AWS answers, defaults filled in) lacks or changes something of ``wanted``."""
    if isinstance(wanted, dict):
        return not isinstance(current, dict) or any(_differs(v, current.get(k)) for k, v in wanted.items())
    return wanted != current


def ensure_schedule(aws: Aws, request: dict) -> str:
    """Create the schedule, or update it when it differs from ``request``; 'created', 'updated' or 'unchanged'."""
    scheduler = aws.client("scheduler")
    try:
        current = scheduler.get_schedule(Name=request["Name"], GroupName=request["GroupName"])
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "ResourceNotFoundException":
            raise
        scheduler.create_schedule(**request)
        return "created"
    wanted = {**request, "Target": {**request["Target"], "Input": json.loads(request["Target"]["Input"])}}
    have = {**current, "Target": {**current.get("Target", {}),
                                  "Input": json.loads(current.get("Target", {}).get("Input") or "null")}}
    if not _differs(wanted, have):
        return "unchanged"
    scheduler.update_schedule(**request)  # UpdateSchedule replaces every field: the request carries them all
    return "updated"


SAMPLE_EXECUTION_IDS = ("d32c5kddcf5bb8c3", "0" * 36)  # the documented example, and a UUID's length to be safe


def check_requests(cfg: Params) -> None:
    """Validate the schedule request and the job request of a firing (:func:`validate_request`), the job name with
    execution ids as long as EventBridge Scheduler's and longer.

    Raises
    ------
    RequestError
    """
    request = schedule_request(cfg)
    validate_request("scheduler", "CreateSchedule", request)
    for sample in SAMPLE_EXECUTION_IDS:
        validate_request("sagemaker", "CreateProcessingJob",
                         json.loads(request["Target"]["Input"].replace(EXECUTION_ID, sample)))


# --- the wheelhouse -----------------------------------------------------------------------------

def runtime_requirements(declared: list[str] | None = None) -> list[str]:
    """The package's runtime requirements (``declared``: Requires-Dist lines, default the installed package's), without
    extras and without what only local mode needs (moto: the emulator)."""
    out = []
    for req in (importlib.metadata.requires(PACKAGE) or []) if declared is None else declared:
        spec, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        name = re.split(r"[\[<>=!~ ]", spec.strip(), maxsplit=1)[0]
        if name.lower().replace("_", "-") in LOCAL_ONLY_REQUIREMENTS:
            continue
        out.append(req.strip())
    return out


@dataclass
class Wheelhouse:
    """A folder of wheels the job installs with ``pip install --no-index``: the package's and its dependencies'."""

    folder: Path
    package_wheel: Path
    files: list[Path] = field(default_factory=list)


_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist", "runs", "__pycache__",
                                     ".pytest_cache", ".ipynb_checkpoints", "bench", "tests")


def build_package_wheel(dest: Path) -> Path:
    """Build the package's wheel from its checkout (copied first: the build never writes into the checkout), with
    fixed timestamps (``SOURCE_DATE_EPOCH``), so the same source gives the same bytes and a second ``schedule``
    uploads nothing."""
    from . import assets

    root = assets.checkout_root()
    if root is None:
        raise ParamsError("schedule builds the package's wheel from a checkout of the repository; run it from one "
                          "(an installed wheel carries no build files)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="monitor-utils-build-") as tmp:
        source = Path(tmp) / "source"
        shutil.copytree(root, source, ignore=_NOT_SOURCE)
        env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}  # 1980-01-01, the earliest a zip can hold
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", *isolation,
                               "--quiet", "--disable-pip-version-check", "-w", str(dest)],
                              capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"building the package's wheel failed:\n{done.stderr[-2000:]}")
    (wheel,) = dest.glob(f"{PACKAGE}-{package_version()}-*.whl")
    return wheel


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    import email.parser
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        metadata = email.parser.Parser().parsestr(zf.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def download_dependencies(requirements: list[str], dest: Path, python_version: str) -> None:
    """``pip download`` the runtime requirements (and theirs) as binary wheels for the image: manylinux x86_64 and
    CPython ``python_version``. Needs a package index now, so the job needs none when it runs."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(requirements) + "\n")
    try:
        platforms = [a for p in MANYLINUX_PLATFORMS for a in ("--platform", p)]
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary=:all:", *platforms,
                               "--python-version", python_version, "--implementation", "cp", "--quiet",
                               "--disable-pip-version-check", "-d", str(dest), "-r", fh.name],
                              capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"downloading the dependencies' wheels for Python {python_version} failed (a package "
                           f"with no wheel for manylinux x86_64?):\n{done.stderr[-2000:]}")


def build_wheelhouse(dest: Path, python_version: str) -> Wheelhouse:
    """The package's wheel, its runtime dependencies' wheels (:func:`download_dependencies`) and ``requirements.txt``
    (what the job installs first) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    wheel = build_package_wheel(dest)
    requirements = runtime_requirements(wheel_requirements(wheel))  # what the wheel itself declares
    download_dependencies(requirements, dest, python_version)
    (dest / REQUIREMENTS_FILE).write_text("\n".join(requirements) + "\n")
    files = sorted(p for p in dest.iterdir() if p.is_file())
    return Wheelhouse(dest, wheel, files)


# --- uploads ------------------------------------------------------------------------------------

def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def upload_if_changed(aws: Aws, uri: str, body: bytes, content_type: str) -> bool:
    """Put ``body`` at ``uri`` unless the object there already holds it (its ``sha256`` metadata, which this
    function writes; SSE-KMS ETags are no content hash); True when it was written."""
    bucket, key = split_s3_uri(uri)
    s3, digest = aws.client("s3"), _sha256(body)
    try:
        if s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256") == digest:
            return False
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": aws.kms_key_id} if aws.kms_key_id else {}
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata={"sha256": digest}, **sse)
    return True


def params_document(cfg: Params) -> bytes:
    """The params file the job runs with: every validated parameter, as YAML."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=True).encode()


def upload(aws: Aws, cfg: Params, wheelhouse: Wheelhouse) -> dict[str, list[str]]:
    """Upload the wheelhouse and the params file, each object only when its content changed.

    Returns
    -------
    dict
        ``uploaded``, ``unchanged`` and ``removed`` (wheels of an earlier deploy no longer in the wheelhouse): S3 URIs.
    """
    out: dict[str, list[str]] = {"uploaded": [], "unchanged": [], "removed": []}
    items = [(wheelhouse_uri(cfg) + f.name, f.read_bytes(),
              "text/plain" if f.suffix == ".txt" else "application/octet-stream") for f in wheelhouse.files]
    items.append((params_uri(cfg) + PARAMS_FILE, params_document(cfg), "application/yaml"))
    for uri, body, content_type in items:
        out["uploaded" if upload_if_changed(aws, uri, body, content_type) else "unchanged"].append(uri)
    # wheels of an earlier deploy (another version) go, once the new ones are all there: the job installs exactly these
    bucket, prefix = split_s3_uri(wheelhouse_uri(cfg))
    current = {split_s3_uri(uri)[1] for uri, _, _ in items}
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] not in current:
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
                out["removed"].append(f"s3://{bucket}/{obj['Key']}")
    return out


# --- the command --------------------------------------------------------------------------------

def plan(cfg: Params) -> dict:
    """What ``schedule`` creates and uploads for ``cfg`` (no AWS access, nothing built): the schedule request, the
    job request, the S3 places and the requirements."""
    check_requests(cfg)
    return {"schedule": schedule_request(cfg), "processing_job": processing_job_request(cfg),
            "uploads": {"wheelhouse": wheelhouse_uri(cfg), "params": params_uri(cfg) + PARAMS_FILE},
            "records": records_uri(cfg), "requirements": runtime_requirements(),
            "python_version": cfg.suite_schedule["python_version"]}


def check_destinations(aws: Aws, cfg: Params) -> None:
    """Fail before anything is built when a bucket the uploads go to does not exist (naming the parameter).

    Raises
    ------
    ParamsError
    """
    for uri, key in ((wheelhouse_uri(cfg), "retraining.code_uri" if cfg.retraining["code_uri"] else "bucket"),
                     (params_uri(cfg), "bucket")):
        bucket, _ = split_s3_uri(uri)
        try:
            aws.client("s3").head_bucket(Bucket=bucket)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise ParamsError(f"parameter '{key}': bucket {bucket!r} does not exist; the schedule's uploads go "
                                  f"to {uri} (run the suite's setup first, or fix the parameter)") from None
            raise


def deploy(aws: Aws, cfg: Params, workdir: Path) -> dict:
    """Build the wheelhouse in ``workdir``, upload what changed, then create or update the schedule.

    Returns
    -------
    dict
        ``schedule`` ('created', 'updated', 'unchanged'), ``schedule_name``, ``uploaded``, ``unchanged``, ``removed``.
    """
    check_settings(cfg)
    check_requests(cfg)
    check_destinations(aws, cfg)
    wheelhouse = build_wheelhouse(Path(workdir) / "wheelhouse", cfg.suite_schedule["python_version"])
    uploads = upload(aws, cfg, wheelhouse)
    return {"schedule_name": schedule_name(cfg), "schedule": ensure_schedule(aws, schedule_request(cfg)), **uploads}
