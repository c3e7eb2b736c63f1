"""Local rehearsal only: fire a schedule's SageMaker Processing job on this machine, against an emulator, as AWS would."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from ..aws import DUMMY_CREDENTIALS, Aws, split_s3_uri
from ..api_model import RequestError, validate_request

CONTAINER_ROOT = "/opt/ml/processing"  # what SageMaker mounts in the job's container
PROCESSING_TARGET = re.compile(r"^arn:aws[a-z-]*:scheduler:::aws-sdk:sagemaker:createProcessingJob$")
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
_OWN = re.compile(r"^(__editable__[._]monitor_utils|monitor_utils-.*\.(dist|egg)-info$|monitor_utils$)", re.I)


class FireError(RuntimeError):
    """The schedule cannot be fired locally (not a Processing job target, an invalid request, no emulator)."""


def target_request(schedule: dict, execution_id: str, scheduled_time: dt.datetime) -> dict:
    """The CreateProcessingJob request a firing of ``schedule`` (a GetSchedule answer) sends: the target's Input with
    EventBridge Scheduler's context attributes substituted, checked against SageMaker's API model."""
    target = schedule["Target"]
    if not PROCESSING_TARGET.match(target.get("Arn", "")):
        raise FireError(f"schedule {schedule.get('Name')!r} targets {target.get('Arn')!r}, not SageMaker "
                        "CreateProcessingJob: only that target is fired locally")
    text = target.get("Input") or "{}"
    for attribute, value in {"<aws.scheduler.execution-id>": execution_id,
                             "<aws.scheduler.schedule-arn>": schedule.get("Arn", ""),
                             "<aws.scheduler.scheduled-time>": scheduled_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "<aws.scheduler.attempt-number>": "1"}.items():
        text = text.replace(attribute, value)
    request = json.loads(text)
    try:
        validate_request("sagemaker", "CreateProcessingJob", request)  # as SageMaker would refuse to start it
    except RequestError as exc:
        raise FireError(str(exc)) from None
    return request


def image_environment(folder: Path) -> Path:
    """A Python environment standing in for the job's framework image: a new venv of this interpreter's version whose
    site-packages links every library installed here except this package, which the job installs itself from the
    wheelhouse. Returns its ``bin`` folder (``python3`` and ``pip`` are there)."""
    folder = Path(folder)
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(folder)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(sysconfig.get_paths(vars={"base": str(folder), "platbase": str(folder)})["purelib"])
    theirs.mkdir(parents=True, exist_ok=True)
    for entry in ours.iterdir():
        if not _OWN.match(entry.name) and not (theirs / entry.name).exists():
            (theirs / entry.name).symlink_to(entry)
    data = Path(sys.prefix) / "share"  # the libraries' data files (nbconvert's templates, kernelspecs' resources)
    if data.is_dir():
        (folder / "share").mkdir(exist_ok=True)
        for entry in data.iterdir():
            if not (folder / "share" / entry.name).exists():
                (folder / "share" / entry.name).symlink_to(entry)
    return folder / "bin"


def _local_path(root: Path, path: str) -> Path:
    if not path.startswith(CONTAINER_ROOT):
        raise FireError(f"LocalPath {path!r} is not under {CONTAINER_ROOT}, where SageMaker mounts a job's data")
    return root / path.lstrip("/")


def download_inputs(aws: Aws, request: dict, root: Path) -> list[str]:
    """Copy each S3 ProcessingInput (S3Prefix, File mode) to its LocalPath under ``root``; the local files written."""
    s3, written = aws.client("s3"), []
    for item in request.get("ProcessingInputs", []):
        source = item["S3Input"]
        bucket, prefix = split_s3_uri(source["S3Uri"])
        local = _local_path(root, source["LocalPath"])
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])]
        if not keys:
            raise FireError(f"ProcessingInput {item['InputName']!r}: nothing under {source['S3Uri']}")
        for key in keys:
            rel = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
            path = local / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            written.append(str(path))
    return written


def upload_outputs(aws: Aws, request: dict, root: Path) -> list[str]:
    """Upload each ProcessingOutput's LocalPath to its S3Uri (the job's outputs); the S3 URIs written."""
    written = []
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs", []):
        target = item["S3Output"]
        bucket, prefix = split_s3_uri(target["S3Uri"].rstrip("/") + "/")
        local = _local_path(root, target["LocalPath"])
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = prefix + path.relative_to(local).as_posix()
            aws.client("s3").put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            written.append(f"s3://{bucket}/{key}")
    return written


def fire(aws: Aws, schedule_name: str, workdir: Path, execution_id: str | None = None,
         scheduled_time: dt.datetime | None = None, group: str = "default") -> dict:
    """Fire a schedule once as AWS would: read it back (GetSchedule), take its CreateProcessingJob request, download
    the job's inputs, run its container command in :func:`image_environment` with its Environment plus the emulator's
    endpoint and dummy credentials, then upload its outputs.

    Parameters
    ----------
    aws : Aws
        A session pointed at the emulator (``aws.endpoint_url``): the job's calls go there too.
    schedule_name : str
        The schedule to fire.
    workdir : Path
        Scratch folder: the container's ``/opt/ml/processing`` and the image environment go under it.
    execution_id : str, optional
        ``<aws.scheduler.execution-id>`` of this firing (default: 16 random hex digits, as AWS gives).

    Returns
    -------
    dict
        ``job_name``, ``exit_code``, ``command``, ``inputs``, ``outputs``, ``stdout`` and ``stderr`` (their ends).
    """
    if not aws.endpoint_url:
        raise FireError("firing locally needs an emulator (AWS_ENDPOINT_URL): against AWS the schedule fires itself")
    schedule = aws.client("scheduler").get_schedule(Name=schedule_name, GroupName=group)
    execution_id = execution_id or secrets.token_hex(8)
    request = target_request(schedule, execution_id, scheduled_time or dt.datetime.now(dt.timezone.utc))
    workdir = Path(workdir)
    root = workdir / "container"
    inputs = download_inputs(aws, request, root)
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs", []):
        _local_path(root, item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    bin_dir = image_environment(workdir / "image")
    app = request["AppSpecification"]
    here = str(root / CONTAINER_ROOT.lstrip("/"))
    command = [part.replace(CONTAINER_ROOT, here) for part in
               app.get("ContainerEntrypoint", []) + app.get("ContainerArguments", [])]
    env = {k: v for k, v in os.environ.items()  # none of this process's credentials, pip settings or package path
           if k not in _CREDENTIALS and k != "PYTHONPATH"
           and not k.startswith(("PIP_", "MONITOR_UTILS_", "VIRTUAL_ENV"))}
    env.update({k: v.replace(CONTAINER_ROOT, here) for k, v in (request.get("Environment") or {}).items()})
    env.update({"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "AWS_ENDPOINT_URL": aws.endpoint_url,
                "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
                "PIP_CONFIG_FILE": os.devnull,  # the image's pip: no index, no find-links but the job's own
                "PIP_NO_INPUT": "1"})
    cwd = workdir / "work"
    cwd.mkdir(parents=True, exist_ok=True)
    timeout = request["StoppingCondition"]["MaxRuntimeInSeconds"]
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:  # SageMaker stops the job at MaxRuntimeInSeconds
        code, out, err = -9, str(exc.stdout or ""), f"stopped after MaxRuntimeInSeconds={timeout}"
    outputs = upload_outputs(aws, request, root) if code == 0 else []
    return {"job_name": request["ProcessingJobName"], "exit_code": code, "command": command, "inputs": inputs,
            "outputs": outputs, "stdout": out[-4000:], "stderr": err[-4000:], "python": sys.version.split()[0]}
