"""Retraining stage: decide from alarm states, recent metrics and drift whether to retrain, with the reasons."""

from __future__ import annotations

import datetime as dt

from .. import alerting, history, model, retraining, workflow
from ..aws import Aws, ensure_topic
from ..config import Params
from ..results import StageResult, Verdict


def run(cfg: Params, aws: Aws, now: dt.datetime) -> StageResult:
    """Gather the evidence, decide, and (unless dry-run) retrain, compare and deploy a better model."""
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    specs = alerting.alarm_specs(cfg, topic_arn)
    states = {n: a["StateValue"] for n, a in alerting.describe(aws, [s["AlarmName"] for s in specs]).items()}
    metric_history, _ = history.load_metrics(aws, cfg)
    drift_history, _ = history.load_drift(aws, cfg)
    evidence = retraining.Evidence(alarm_states=states, metrics=metric_history, drift=drift_history,
                                   last_retrain=retraining.last_retrain(aws, cfg))
    decision = retraining.decide(cfg, evidence, now)
    champion_url = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    outcome = retraining.act(cfg, aws, decision, now) if decision.retrain else {}
    if outcome.get("deployed") and aws.mode == "local":
        from .. import world  # the simulator exists only in local mode

        outcome["after_deploy"] = world.quality_after_deploy(aws, cfg, now, champion_url)
    defn = workflow.definition(cfg, topic_arn, local_training=aws.mode == "local")
    role = cfg.retraining["state_machine_role_arn"] or (
        f"arn:aws:iam::{aws.account_id}:role/msd-monitoring-states" if aws.mode == "local" else "")
    if role:
        sm_arn, sm_change = workflow.ensure_state_machine(aws, cfg, defn, role)
    else:
        sm_arn, sm_change = None, "not created: set retraining.state_machine_role_arn"
    schedule = "not scheduled"
    if aws.mode == "aws" and sm_arn and cfg.retraining["schedule"] and cfg.retraining["scheduler_role_arn"]:
        schedule = workflow.ensure_schedule(aws, cfg, sm_arn, cfg.retraining["schedule"],
                                            cfg.retraining["scheduler_role_arn"])
    record = {"retrain": decision.retrain, "deployed": bool(outcome.get("deployed")), "reasons": decision.reasons,
              "evidence": decision.evidence, **outcome, "state_machine_definition": defn,
              "state_machine": {"arn": sm_arn, "change": sm_change, "schedule": schedule}, "topic_arn": topic_arn}
    return StageResult(record, headline={"retrain": record["retrain"], "deployed": record["deployed"]},
                       verdict=verdict(record))


def verdict(record: dict) -> Verdict:
    """Whether a model was retrained and deployed, and why, in sentences."""
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
