"""The retraining workflow's job steps (decide, train, compare): the stage's own code, for SageMaker jobs and local workers."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from . import config, model, registry, retraining
from .workflow import result_key  # noqa: F401 - public here too: where the steps store their results
from .aws import Aws, get_bytes, get_json, put_bytes, put_json, split_s3_uri
from .config import Params
from .records import to_jsonable


def decide_step(cfg: Params, aws: Aws, now: dt.datetime, execution: str) -> dict:
    """Gather the evidence and decide with :func:`retraining.decide`; store the decision for the workflow."""
    decision = retraining.decide(cfg, retraining.gather_evidence(cfg, aws), now)
    out = {"retrain": decision.retrain, "reasons": decision.reasons, "evidence": to_jsonable(decision.evidence),
           "champion": model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name), "now": now.isoformat()}
    put_json(aws, cfg.bucket, result_key(cfg, execution, "decision.json"), out)
    return out


def train_step(cfg: Params, aws: Aws, now: dt.datetime, execution: str, model_dir: str | None = None) -> str | None:
    """Train the challenger with :func:`retraining.train_challenger` on :func:`retraining.split_recent`'s rows.

    In a SageMaker training job the model goes to ``model_dir`` (SageMaker packs it into model.tar.gz and
    returns its S3 URI); elsewhere the model.tar.gz is written under the execution's prefix and its URI returned.
    """
    challenger = retraining.train_challenger(retraining.split_recent(aws, cfg, now))
    if model_dir:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        import joblib

        joblib.dump(challenger, Path(model_dir) / model.ARTIFACT_MEMBER)
        return None
    key = result_key(cfg, execution, "model.tar.gz")
    put_bytes(aws, cfg.bucket, key, model.to_artifact(challenger), "application/gzip")
    return f"s3://{cfg.bucket}/{key}"


def compare_step(cfg: Params, aws: Aws, now: dt.datetime, execution: str, challenger_url: str) -> dict:
    """Compare the trained challenger with the champion of the decision (:func:`retraining.compare`), register it with
    its lineage, and store what the workflow deploys: ``promote``, ``deploy`` (promoted and not a dry run), names,
    and the comparison's scores and per-decade table (what the retraining stage reports)."""
    decision = get_json(aws, cfg.bucket, result_key(cfg, execution, "decision.json")) or {}
    champion_url = decision.get("champion") or model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    split = retraining.split_recent(aws, cfg, now)
    blob = get_bytes(aws, *split_s3_uri(challenger_url))
    if blob is None:
        raise FileNotFoundError(f"challenger artifact {challenger_url} is missing")
    champion = model.from_artifact(get_bytes(aws, *split_s3_uri(champion_url)))
    comparison = retraining.compare(cfg, champion, model.from_artifact(blob), split.holdout)
    rec = retraining.register_challenger(aws, cfg, now, split, comparison, champion_url,
                                         decision.get("reasons", []), blob)
    names = registry.names(cfg, int(rec["version"].lstrip("v")))
    out = {"promote": comparison["promote"], "deploy": comparison["promote"] and not cfg.retraining["dry_run"],
           "reasons": comparison["reasons"], "scores": comparison["scores"], "rmse_gain": comparison["rmse_gain"],
           "version": rec["version"], "model_name": names["model"], "config_name": names["config"],
           "model_data_url": rec["model_data_url"], "per_decade_rmse": comparison["per_decade_rmse"],
           "holdout_rows": comparison["holdout_rows"]}
    put_json(aws, cfg.bucket, result_key(cfg, execution, "comparison.json"), to_jsonable(out))
    return out


def run_step(step: str, cfg: Params, aws: Aws, now: dt.datetime, execution: str, challenger: str = "",
             model_dir: str | None = None) -> dict:
    """Run one step and return what the workflow's task receives (the shape SageMaker's ``.sync`` integration returns)."""
    if step == "decide":
        decide_step(cfg, aws, now, execution)
        return {"ProcessingJobStatus": "Completed"}
    if step == "train":
        url = train_step(cfg, aws, now, execution, model_dir)
        return {"TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": url}}
    if step == "compare":
        if not challenger:
            raise ValueError("the compare step needs --challenger (the trained model's S3 URI)")
        compare_step(cfg, aws, now, execution, challenger)
        return {"ProcessingJobStatus": "Completed"}
    raise ValueError(f"unknown step {step!r}; steps are decide, train, compare")


def load_params(uri: str, aws_for_s3: Aws | None = None) -> Params:
    """Params of a job: a local YAML/JSON file, or an S3 object written by the retraining stage."""
    if uri.startswith("s3://"):
        if aws_for_s3 is None:
            import boto3

            body = boto3.client("s3").get_object(Bucket=split_s3_uri(uri)[0], Key=split_s3_uri(uri)[1])["Body"].read()
        else:
            body = get_bytes(aws_for_s3, *split_s3_uri(uri))
        return config.validate(json.loads(body), source=uri)
    return config.load([uri])


def parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m monitor_utils retraining-step`` (SageMaker passes hyperparameters as ``--key value``)."""
    p = argparse.ArgumentParser(prog="python -m monitor_utils retraining-step",
                                description="Run one job step of the retraining workflow with the suite's own code.")
    p.add_argument("step_name", nargs="?", choices=("decide", "train", "compare"), help="the step")
    p.add_argument("--step", choices=("decide", "train", "compare"), help="the step (as a job argument)")
    p.add_argument("--params", required=True, metavar="URI", help="params file (path or s3:// URI)")
    p.add_argument("--execution", required=True, help="the workflow execution's name (where results are stored)")
    p.add_argument("--challenger", default="", metavar="S3URI", help="compare: the trained challenger's model.tar.gz")
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"),
                   help="train: where a SageMaker training job collects the model (default $SM_MODEL_DIR)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the SageMaker jobs: load params, connect with the job's role, run the step."""
    args, _unknown = parser().parse_known_args(argv)  # SageMaker may add hyperparameters of its own
    step = args.step or args.step_name
    if not step:
        print("error: give the step (decide, train or compare)", file=sys.stderr)
        return 2
    from .aws import connect
    from .context import run_clock

    cfg = load_params(args.params)
    cfg.update(profile="", role_arn="")  # a job runs with its own role, not the suite's profile or role to assume
    endpoint = None
    if cfg.aws_mode == "local":
        from . import local

        running = local.find_running()
        if running is None:
            print("error: local mode: no emulator is running (start the suite or a notebook first)", file=sys.stderr)
            return 1
        endpoint = running.url
    aws = connect(cfg, endpoint)
    run_step(step, cfg, aws, run_clock(cfg, aws), args.execution, args.challenger, args.model_dir)
    return 0
