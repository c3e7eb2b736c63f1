"""Retraining stage: decide from alarm states, recent metrics and drift whether to retrain, with the reasons."""

from __future__ import annotations

import datetime as dt
import uuid

from .. import model, retraining, steps, workflow
from ..aws import Aws, ensure_topic, get_json, put_json
from ..config import Params
from ..results import StageResult, Verdict


def run(cfg: Params, aws: Aws, now: dt.datetime) -> StageResult:
    """Gather the evidence, decide, and (unless dry-run) retrain, compare and deploy a better model.

    Locally the Step Functions workflow runs the same decision first, from the same state of the world (its job
    steps served in this process by :mod:`monitor_utils.steps`); the stage reports what the workflow did (one
    challenger trained, compared, registered and deployed) and acts itself only when the workflow reached no
    comparison. In aws mode the stage creates the workflow and its schedule (AWS runs it) and acts on the
    evidence it gathered.
    """
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    decision = retraining.decide(cfg, retraining.gather_evidence(cfg, aws), now)
    champion_url = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    defn = workflow.definition(cfg)
    role = cfg.retraining["state_machine_role_arn"] or (
        f"arn:aws:iam::{aws.account_id}:role/msd-monitoring-states" if aws.mode == "local" else "")
    if role:
        sm_arn, sm_change = workflow.ensure_state_machine(aws, cfg, defn, role)
        if get_json(aws, cfg.bucket, workflow.params_key(cfg)) != cfg.to_dict():
            put_json(aws, cfg.bucket, workflow.params_key(cfg), cfg.to_dict())  # what the workflow's jobs run with
    else:
        sm_arn, sm_change = None, "not created: set retraining.state_machine_role_arn"
    schedule = "not scheduled"
    if aws.mode == "aws" and sm_arn and cfg.retraining["schedule"] and cfg.retraining["scheduler_role_arn"]:
        schedule = workflow.ensure_schedule(aws, cfg, sm_arn, cfg.retraining["schedule"],
                                            cfg.retraining["scheduler_role_arn"])
    execution = None
    if aws.mode == "local" and sm_arn:
        name = f"retrain-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

        def serve(step: str, message: dict) -> dict:
            return steps.run_step(step, cfg, aws, now, message["execution"], message.get("challenger", ""))

        execution = workflow.execute_locally(aws, cfg, sm_arn, workflow.execution_input(cfg), name, serve)
    outcome = {}
    if decision.retrain:
        outcome = ((retraining.workflow_outcome(cfg, aws, name, execution) if execution else None)
                   or retraining.act(cfg, aws, decision, now, champion_url))
    if outcome.get("deployed") and aws.mode == "local":
        from ..local import world  # local mode only

        outcome["after_deploy"] = world.quality_after_deploy(aws, cfg, now, champion_url)
    record = {"retrain": decision.retrain, "deployed": bool(outcome.get("deployed")), "reasons": decision.reasons,
              "evidence": decision.evidence, **outcome, "state_machine_definition": defn,
              "state_machine": {"arn": sm_arn, "change": sm_change, "schedule": schedule}, "topic_arn": topic_arn,
              "workflow_execution": ({k: execution[k] for k in ("status", "states", "deployed", "error")}
                                     if execution else None)}
    if execution:
        record["workflow_execution"].update({k: execution[k] for k in ("end_state", "step_errors", "execution_arn")})
    return StageResult(record, headline={"retrain": record["retrain"], "deployed": record["deployed"]},
                       verdict=verdict(record))


def verdict(record: dict) -> Verdict:
    """Whether a model was retrained and deployed, and why, and whether the workflow agreed, in sentences."""
    base = _stage_verdict(record)
    flow = record.get("workflow_execution")
    if not flow:
        return base
    if flow["deployed"] == record["deployed"]:
        return Verdict(f"{base.text} The Step Functions workflow, run on the same state, agrees (it ended "
                       f"{flow.get('end_state') or flow['status']}).", base.attention)
    return Verdict(f"{base.text} The Step Functions workflow disagrees: it ended {flow.get('end_state') or flow['status']}"
                   f" ({flow.get('error') or 'no error'}).", True)


def _stage_verdict(record: dict) -> Verdict:
    """The stage's own outcome in sentences."""
    reasons = "; ".join(record["reasons"])
    if not record["retrain"]:
        return Verdict(f"No retraining: {reasons}.".replace("..", "."), False)
    if record["deployed"]:
        cmp = record.get("comparison") or {}
        scores = cmp.get("scores") or {}
        gain = ""
        if scores.get("champion") and scores.get("challenger"):
            gain = (f" Holdout RMSE {scores['champion']['rmse']:.2f} -> {scores['challenger']['rmse']:.2f} years.")
        return Verdict(f"Retrained ({reasons}) and deployed {record.get('challenger_version', 'the challenger')} "
                       f"with blue/green and auto-rollback.{gain}", True)
    return Verdict(f"Retraining was needed ({reasons}) but the champion keeps serving: "
                   f"{record.get('outcome', 'the challenger was not better')}.".replace("..", "."), True)
