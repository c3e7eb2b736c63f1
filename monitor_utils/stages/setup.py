"""Setup stage: idempotent provisioning (bucket, log group, topic), the baseline profile, and deployment guardrails."""

from __future__ import annotations

import datetime as dt

from .. import alerting, estimates, preflight
from .. import baseline as baselines
from .. import drift
from ..aws import (Aws, create_secure_bucket, ensure_log_group, ensure_subscription, ensure_topic, get_json, partition,
                   put_json)
from ..config import Params
from ..results import StageResult, Verdict
from ..registry import deployment_config, validate_update_endpoint

GUARDRAILS_KEY = "state/deployment_config.json"


def run(cfg: Params, aws: Aws, now: dt.datetime) -> dict:
    """Provision what the other stages rely on; a rerun changes nothing.

    Returns
    -------
    StageResult
        Record keys: ``changes`` (what this run created; empty on a rerun), ``topic_arn``, ``baseline`` (where and what),
        ``drift_settings`` (the drift checks' settings stored beside the baseline's Model Monitor files),
        ``model_baselines`` (``model_quality_constraints``: the model-quality constraints.json written from the test
        split, None without one; ``attributions``: the served model's global attributions, Clarify's analysis.json),
        ``deployment_config`` (the guardrails every deploy uses), ``loss_estimator`` (where the label-free
        estimator is stored and how it was calibrated; None without a labelled test split).
    """
    changes, topic_arn = provision(cfg, aws)
    profile, created = baselines.ensure_baseline(aws, cfg)
    if created:
        changes.append(f"built baseline {profile['uri']}")
    model_files, written = baselines.ensure_model_baselines(aws, cfg)
    changes += written
    settings, stored = baselines.store_drift_settings(aws, cfg, drift.detector_options(cfg.drift))
    if stored:
        changes.append(f"stored the drift settings (alpha {settings['alpha']}) as {profile['uri']}monitor_utils_drift.json")
    estimator, fitted = estimates.ensure_estimator(aws, cfg, now, baselines.feature_names(aws, cfg))
    if fitted:
        changes.append(f"fitted the label-free loss estimator {estimator['uri']} "
                       f"(calibrated for windows of {estimator['window_size']} records)")
    guardrails = deployment_config(cfg)
    validate_update_endpoint({"EndpointName": cfg.endpoint_name, "EndpointConfigName": "placeholder",
                              "DeploymentConfig": guardrails})
    if get_json(aws, cfg.bucket, cfg.key(GUARDRAILS_KEY)) != guardrails:
        put_json(aws, cfg.bucket, cfg.key(GUARDRAILS_KEY), guardrails)
        changes.append("stored deployment guardrails (used by every deploy of the retraining stage)")
    record = {"changes": changes, "topic_arn": topic_arn, "baseline": profile, "drift_settings": settings,
              "model_baselines": model_files,
              "deployment_config": guardrails,
              "log_group": cfg.log_group, "loss_estimator": estimator}
    return StageResult(record, headline={"changes": len(changes), "model": profile.get("model_version")},
                       verdict=verdict(record))


def provision(cfg: Params, aws: Aws) -> tuple[list[str], str]:
    """The account's side of setup: first the checks that create nothing (:func:`preflight.check_account`), then the
    bucket when missing (created secure: :func:`create_secure_bucket`), the log group (KMS-encrypted with
    ``kms_key_id``), the alert topic with a policy admitting only the suite's alarms, and its e-mail subscriptions.

    Returns
    -------
    tuple[list[str], str]
        What this call created or changed (empty on a rerun), and the topic's ARN.

    Raises
    ------
    ParamsError
        Before anything is created: the bucket is missing and may not be created, or ``data_path`` names no object.
    """
    changes = []
    if not preflight.check_account(cfg, aws):
        applied = create_secure_bucket(aws, cfg.bucket)
        changes.append(f"created bucket {cfg.bucket} ({', '.join(applied)})")
    if ensure_log_group(aws, cfg.log_group):
        changes.append(f"created log group {cfg.log_group}" + (" (KMS-encrypted)" if cfg.kms_key_id else ""))
    expected_arn = f"arn:{partition(aws.region)}:sns:{aws.region}:{aws.account_id}:{cfg.sns_topic_name}"
    try:  # looked up by its own ARN: no account-wide ListTopics permission needed
        aws.client("sns").get_topic_attributes(TopicArn=expected_arn)
        existed = True
    except aws.client("sns").exceptions.NotFoundException:
        existed = False
    topic_arn = ensure_topic(aws, cfg.sns_topic_name)
    if not existed:
        changes.append(f"created SNS topic {cfg.sns_topic_name}")
    if alerting.ensure_topic_policy(aws, cfg, topic_arn):
        changes.append(f"set the policy of SNS topic {cfg.sns_topic_name} (CloudWatch may publish only for the "
                       "suite's alarms in this account)")
    for email in cfg.alert_emails:
        ensure_subscription(aws, topic_arn, "email", email)
    return changes, topic_arn


def verdict(record: dict) -> Verdict:
    """What setup changed (nothing on a rerun) and which model's baseline the other stages use."""
    b = record["baseline"]
    changed = (f"This run made {len(record['changes'])} change(s): {'; '.join(record['changes'])}."
               if record["changes"] else "Everything was already in place; nothing changed.")
    est = record.get("loss_estimator")
    quality = (f" Window quality is estimated without labels by a loss estimator fitted on {est['reference_rows']} "
               f"held-out labelled records." if est else
               " No labelled test split is stored, so window quality is not estimated before labels land.")
    return Verdict(f"{changed} The other stages compare traffic with the baseline of model {b.get('model_version')} "
                   f"({b.get('reference_rows')} reference rows, {b.get('features')} features).{quality}")
