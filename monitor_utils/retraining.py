"""Champion/challenger retraining: the decision with its reasons, retrain and compare, deploy only a better model, and the same logic as Step Functions ASL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import alerting, capture, data, history, keeping, metrics, model, registry, windows
from .aws import Aws, ensure_topic, get_bytes, get_json, put_json, split_s3_uri
from .baseline import feature_names, training_data
from .config import Params, parse_time
from .workflow import result_key

STATE_KEY = "state/retraining.json"
QUALITY_ALARMS = ("rmse", "r2")
MIN_SEGMENT_ROWS = 30


@dataclass
class Evidence:
    """What the decision looks at."""

    alarm_states: dict[str, str]
    metrics: pd.DataFrame
    drift: pd.DataFrame
    last_retrain: dt.datetime | None = None


@dataclass
class Decision:
    """Whether to retrain, why, and the evidence summarised for the report."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)


def last_retrain(aws: Aws, cfg: Params) -> dt.datetime | None:
    """When a challenger was last trained (from the stage's state in S3)."""
    state = get_json(aws, cfg.bucket, cfg.key(STATE_KEY)) or {}
    return parse_time(state["last_retrain"]) if state.get("last_retrain") else None


def gather_evidence(cfg: Params, aws: Aws) -> Evidence:
    """Alarm states, metric and drift histories and the last retrain, read from AWS (what ``decide`` looks at)."""
    specs = alerting.alarm_specs(cfg, ensure_topic(aws, cfg.sns_topic_name))
    states = {n: a["StateValue"] for n, a in alerting.describe(aws, [s["AlarmName"] for s in specs]).items()}
    metric_history, _ = history.load_metrics(aws, cfg)
    drift_history, _ = history.load_drift(aws, cfg)
    return Evidence(alarm_states=states, metrics=metric_history, drift=drift_history,
                    last_retrain=last_retrain(aws, cfg))


def decide(cfg: Params, ev: Evidence, now: dt.datetime) -> Decision:
    """Retrain when a quality alarm is in ALARM, or when drift persists (2 of the last 3 windows); respect the minimum interval.

    The label-free ``estimated-rmse`` alarm is cited as evidence but never triggers a retrain on its own: a challenger
    trained before the drop's labels land could not beat the champion on labelled data, and the minimum interval
    would then hold back the retrain that the labels justify.
    """
    reasons, triggers = [], []
    for key in QUALITY_ALARMS:
        name = f"{cfg.endpoint_name}-{key}"
        state = ev.alarm_states.get(name, "missing")
        (triggers if state == "ALARM" else reasons).append(f"alarm {name} is {state}")
    recent = ev.drift.dropna(subset=["drift_detected"]).tail(3) if len(ev.drift) else ev.drift
    drifted = int(recent["drift_detected"].astype(bool).sum()) if len(recent) else 0
    drift_msg = f"dataset drift in {drifted} of the last {len(recent)} windows"
    if drifted >= 2:
        top = recent.iloc[-1].get("top_features") or []
        triggers.append(drift_msg + (f" (top features: {', '.join(top[:3])})" if top else ""))
    else:
        reasons.append(drift_msg)
    estimated = f"{cfg.endpoint_name}-estimated-rmse"  # label-free: cited, never a trigger (see the docstring)
    if ev.alarm_states.get(estimated) == "ALARM":
        (triggers if triggers else reasons).append(
            f"alarm {estimated} is ALARM (label-free estimate; labels have not confirmed it yet)")
    labelled = ev.metrics.dropna(subset=["rmse"]) if len(ev.metrics) and "rmse" in ev.metrics else ev.metrics.iloc[0:0]
    latest = labelled.iloc[-1].to_dict() if len(labelled) else None
    evidence = {"alarm_states": ev.alarm_states, "drift_windows_recent": drifted,
                "latest_window": latest.get("window") if latest else None,
                "latest_rmse": latest.get("rmse") if latest else None, "latest_r2": latest.get("r2") if latest else None,
                "last_retrain": ev.last_retrain.isoformat() if ev.last_retrain else None}
    if latest is None:  # nothing to retrain on or compare with: say what is missing
        return Decision(False, [NOT_ENOUGH + missing_history(cfg, ev.metrics)], evidence)
    if not triggers:
        return Decision(False, ["no retraining needed: " + "; ".join(reasons)], evidence)
    if ev.last_retrain and now - ev.last_retrain < dt.timedelta(days=cfg.retraining["min_interval_days"]):
        return Decision(False, [f"retraining wanted ({'; '.join(triggers)}) but the last retrain was "
                                f"{ev.last_retrain:%Y-%m-%d %H:%M}, within the minimum interval of "
                                f"{cfg.retraining['min_interval_days']:g} days"], evidence)
    return Decision(True, triggers, evidence)


NOT_ENOUGH = "not enough labelled history: "


def missing_history(cfg: Params, metrics_history: pd.DataFrame) -> str:
    """What the metrics history lacks for a retraining decision, and where to look."""
    if not len(metrics_history):
        return ("the metrics stage has published no window yet (run it first; a window is published "
                f"label_wait_days={cfg.label_wait_days} day(s) after it ends)")
    return (f"none of the {len(metrics_history)} published window(s) has a labelled record; labels are read from "
            f"ground_truth_prefix {cfg.ground_truth_uri} (check it, and that labels land there as ground-truth JSONL)")


def labelled_recent(aws: Aws, cfg: Params, now: dt.datetime, days: int) -> pd.DataFrame:
    """Captured records of the last ``days`` days that have a label and their full input, read a day at a time.

    Local mode keeps the result (:func:`keeping.parsed`), keyed by every capture and ground-truth object the
    days touch: the train and compare steps of one workflow execution, and the next run, read it once.
    """
    features = feature_names(aws, cfg)
    span = windows.Window(windows.floor(now - dt.timedelta(days=days), "daily"), now)
    uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
    label_end = now + dt.timedelta(hours=1)

    def read() -> pd.DataFrame:
        labels, _ = capture.read_ground_truth(aws, cfg.ground_truth_uri, span.start, label_end)
        parts = []
        start = span.start
        while start < span.end:
            end = min(start + dt.timedelta(days=1), span.end)
            batch = capture.read_capture(aws, uri, windows.Window(start, end), features)
            start = end
            parts.append(capture.join_ground_truth(batch.records, labels).dropna(subset=["year", *features]))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    with capture.shared_listings(span.start, label_end):  # each partition listed once for the labels and all the days
        objects = (capture.objects_between(aws, cfg.ground_truth_uri, windows.floor(span.start, "hourly"), label_end)
                   + capture.objects_between(aws, uri, windows.floor(span.start, "hourly") - dt.timedelta(hours=1),
                                             span.end + dt.timedelta(hours=1)))
        detail = f"{uri}|{cfg.ground_truth_uri}|{windows.iso(span.start)}|{windows.iso(now)}|{','.join(features)}"
        return keeping.parsed(aws, "labelled_recent", objects, detail, read, capture.PARSER_CODE)


def compare(cfg: Params, champion, challenger, holdout: pd.DataFrame) -> dict:
    """Score both models on the same holdout: overall and per decade; promote only a clear, even improvement."""
    y = holdout[data.TARGET].to_numpy()
    frame = holdout.assign(segment=data.decade(y))
    scores, per_decade = {}, {}
    for label, m in (("champion", champion), ("challenger", challenger)):
        pred = model.predict(m, holdout)
        scores[label] = metrics.regression_metrics(y, pred)
        per_decade[label] = metrics.metrics_by_segment(frame.assign(prediction=pred), "segment",
                                                       min_count=MIN_SEGMENT_ROWS).set_index("segment")["rmse"]
    table = pd.DataFrame(per_decade)
    table["relative_change"] = table["challenger"] / table["champion"] - 1
    share = frame["segment"].value_counts(normalize=True)
    table["holdout_share"] = share.reindex(table.index).to_numpy()
    table["gating"] = table["holdout_share"] >= cfg.retraining["min_segment_share"]
    margin, tol = cfg.retraining["rmse_margin"], cfg.retraining["segment_tolerance"]
    gain = 1 - scores["challenger"]["rmse"] / scores["champion"]["rmse"]
    gating = table[table["gating"]]
    worst = gating["relative_change"].max() if len(gating) else 0.0
    reasons = []
    if gain < margin:
        reasons.append(f"challenger RMSE {scores['challenger']['rmse']:.3f} is not {margin:.0%} better than the "
                       f"champion's {scores['champion']['rmse']:.3f} (gain {gain:.1%})")
    if worst > tol:
        seg = gating["relative_change"].idxmax()
        reasons.append(f"challenger regresses the {seg} segment by {worst:.1%} (tolerance {tol:.0%})")
    promote = not reasons
    if promote:
        reasons.append(f"challenger RMSE {scores['challenger']['rmse']:.3f} beats the champion's "
                       f"{scores['champion']['rmse']:.3f} by {gain:.1%} with no decade worse than {tol:.0%}")
    return {"promote": promote, "reasons": reasons, "scores": scores, "per_decade_rmse": table.reset_index(),
            "holdout_rows": int(len(holdout)), "rmse_gain": gain}


@dataclass
class Split:
    """The rows a challenger learns from (training data plus older recent traffic) and the newest holdout."""

    fit: pd.DataFrame
    weights: np.ndarray
    fit_new: pd.DataFrame
    holdout: pd.DataFrame


MIN_RECENT_ROWS = 200


def split_recent(aws: Aws, cfg: Params, now: dt.datetime) -> Split:
    """Training data plus the recent labelled traffic, and the newest ``holdout_fraction`` held out (deterministic).

    Raises
    ------
    ValueError
        Fewer than 200 labelled invocations in the last ``recent_days`` days.
    """
    r = cfg.retraining
    recent = labelled_recent(aws, cfg, now, r["recent_days"])
    if len(recent) < MIN_RECENT_ROWS:
        raise ValueError(f"only {len(recent)} labelled invocations in the last {r['recent_days']} days; "
                         "not enough to retrain and compare")
    recent = recent.sort_values("inference_time").reset_index(drop=True)
    cut = int(len(recent) * (1 - r["holdout_fraction"]))
    fit_new, holdout = recent.iloc[:cut], recent.iloc[cut:]
    train, _ = training_data(aws, cfg)
    fit = pd.concat([train[data.COLUMNS], fit_new[data.COLUMNS]], ignore_index=True)
    weights = np.r_[np.ones(len(train)), np.full(len(fit_new), r["recent_weight"])]
    return Split(fit, weights, fit_new, holdout)


def train_challenger(split: Split):
    """The challenger: the served pipeline refitted on the split's rows (the one training code of both runners)."""
    return model.make_pipeline_fitted(split.fit, sample_weight=split.weights)


def register_challenger(aws: Aws, cfg: Params, now: dt.datetime, split: Split, comparison: dict, parent: str,
                        decision_reasons: list[str], artifact: bytes) -> dict:
    """Store the challenger as the next registry version with its lineage, and remember when it was trained."""
    lineage = {"parent": parent, "trained_at": now.isoformat(), "training_rows": int(len(split.fit)),
               "new_labelled_rows": int(len(split.fit_new)),
               "data_windows": [str(split.fit_new["inference_time"].min()), str(split.fit_new["inference_time"].max())],
               "holdout_windows": [str(split.holdout["inference_time"].min()), str(split.holdout["inference_time"].max())],
               "params": {"retraining": cfg.retraining},
               "comparison": {k: comparison[k] for k in ("promote", "reasons", "scores")},
               "decision_reasons": decision_reasons}
    rec = registry.register(aws, cfg, registry.next_version(aws, cfg), artifact, lineage)
    put_json(aws, cfg.bucket, cfg.key(STATE_KEY), {"last_retrain": now.isoformat(), "last_version": rec["version"],
                                                   "promoted": comparison["promote"]})
    return rec


KEPT, DRY_RUN = "champion kept: ", "dry run: the challenger would be deployed; nothing changed on the endpoint"


def act(cfg: Params, aws: Aws, decision: Decision, now: dt.datetime, champion_url: str | None = None) -> dict:
    """Retrain on the training data plus newly labelled traffic, compare on the newest labelled holdout, deploy if better.

    ``champion_url`` is the artefact the endpoint served when the evidence was gathered (default: what it serves now).
    """
    try:
        split = split_recent(aws, cfg, now)
    except ValueError as exc:
        return {"deployed": False, "outcome": str(exc)}
    challenger = train_challenger(split)
    parent = champion_url or model.served_model_data_url(aws, cfg.endpoint_name, cfg.variant_name)
    champion = model.from_artifact(get_bytes(aws, *split_s3_uri(parent)))
    comparison = compare(cfg, champion, challenger, split.holdout)
    rec = register_challenger(aws, cfg, now, split, comparison, parent, decision.reasons, model.to_artifact(challenger))
    version = int(rec["version"].lstrip("v"))
    result = {"challenger_version": rec["version"], "comparison": comparison, "deployed": False}
    if not comparison["promote"]:
        result["outcome"] = KEPT + "; ".join(comparison["reasons"])
        return result
    if cfg.retraining["dry_run"]:
        result["outcome"] = DRY_RUN
        return result
    image, role, live_config = registry.live_container(aws, cfg)
    n = registry.create_model_and_config(aws, cfg, version, image, role, live_config)
    guardrails = get_json(aws, cfg.bucket, cfg.key("state", "deployment_config.json"))
    if guardrails is None:  # setup has not stored them: the params' own
        guardrails = registry.deployment_config(cfg)
    outcome = registry.deploy(aws, cfg, n["config"], guardrails)
    result.update(outcome, deployed_config=n["config"])
    result["outcome"] = deploy_outcome(rec["version"], outcome)
    if not outcome["deployed"]:
        alerting.notify(aws, cfg, {"TopicArn": ensure_topic(aws, cfg.sns_topic_name),
                                   "Subject": f"{cfg.endpoint_name}: deployment failed"[:99], "Message": result["outcome"]})
    return result


def deploy_outcome(version: str, outcome: dict) -> str:
    """The sentence of a deployment's outcome (``outcome`` as :func:`registry.deploy` returns it)."""
    if outcome["deployed"]:
        return f"deployed {version} with blue/green traffic shifting and auto-rollback"
    return (f"deployment of {version} {'rolled back' if outcome['rolled_back'] else 'failed'}: "
            f"{outcome['failure_reason']}; the champion keeps serving")


def workflow_outcome(cfg: Params, aws: Aws, execution_name: str, execution: dict) -> dict | None:
    """What a local workflow execution did, in the shape :func:`act` returns, so the stage reports it instead of
    training, comparing and deploying a second time; None when the execution reached no comparison.

    Parameters
    ----------
    execution_name : str
        The execution's name (its steps stored their results under it).
    execution : dict
        :func:`workflow.execute_locally`'s answer (``deployed``, ``error``).
    """
    stored = get_json(aws, cfg.bucket, result_key(cfg, execution_name, "comparison.json"))
    if stored is None:
        return None
    comparison = {k: stored.get(k) for k in ("promote", "reasons", "scores", "rmse_gain", "holdout_rows")}
    comparison["per_decade_rmse"] = pd.DataFrame(stored.get("per_decade_rmse") or [])
    result = {"challenger_version": stored["version"], "comparison": comparison, "deployed": False}
    if not stored["promote"]:
        return {**result, "outcome": KEPT + "; ".join(stored["reasons"])}
    if not stored["deploy"]:
        return {**result, "outcome": DRY_RUN}
    outcome = registry.deploy_state(aws, cfg, stored["config_name"], execution.get("error"))
    outcome["deployed"] = outcome["deployed"] and bool(execution["deployed"])
    return {**result, **outcome, "deployed_config": stored["config_name"],
            "outcome": deploy_outcome(stored["version"], outcome)}
