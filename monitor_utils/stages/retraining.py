"""Retraining stage: decide from alarm states, recent metrics and drift whether to retrain, with the reasons."""

from __future__ import annotations

import datetime as dt

from .. import alerting, model, retraining, workflow, world
from ..aws import Aws, ensure_topic
from ..config import Params
from . import drift as drift_stage
from . import metrics as metrics_stage


def run(cfg: Params, aws: Aws, now: dt.datetime) -> dict:
    """Gather the evidence, decide, and (unless dry-run) retrain, compare and deploy a better model."""
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    specs = alerting.alarm_specs(cfg, topic_arn)
    states = {n: a["StateValue"] for n, a in alerting.describe(aws, [s["AlarmName"] for s in specs]).items()}
    metric_history, _ = metrics_stage.load_history(aws, cfg)
    drift_history, _ = drift_stage.load_history(aws, cfg)
    evidence = retraining.Evidence(alarm_states=states, metrics=metric_history, drift=drift_history,
                                   last_retrain=retraining.last_retrain(aws, cfg))
    decision = retraining.decide(cfg, evidence, now)
    champion_url = model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    outcome = retraining.act(cfg, aws, decision, now) if decision.retrain else {}
    if outcome.get("deployed") and aws.mode == "local":
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
    return {"retrain": decision.retrain, "deployed": bool(outcome.get("deployed")), "reasons": decision.reasons,
            "evidence": decision.evidence, **outcome, "state_machine_definition": defn,
            "state_machine": {"arn": sm_arn, "change": sm_change, "schedule": schedule}, "topic_arn": topic_arn}
