"""Drift stage: each complete window's features and predictions against the stored baseline, published once."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .. import capture, drift, engine, outbox, publish, watermark, windows
from .. import history as history_store
from ..aws import Aws, put_json
from ..baseline import PREDICTION, load_baseline, load_target_baseline
from ..config import Params
from ..results import Series, StageResult, Verdict

STAGE = "drift"
WINDOW_COUNTS = ("lines", "lines_read", "lines_quarantined", "lines_outside", "missing_values")  # per window record


def detector_options(cfg: Params) -> dict:
    """detect_drift keyword options from the ``drift`` params section."""
    d = cfg.drift
    opts = {"threshold": d["alpha"], "correction": d["correction"], "effect_size": d["effect_size"],
            "dataset_rule": d["dataset_rule"],
            "dataset_threshold": max(1, int(round(d["dataset_threshold"]))) if d["dataset_rule"] == "count"
            else d["dataset_threshold"]}
    if d["min_effect"] > 0:
        opts["min_effect"] = d["min_effect"]
    return opts


def window_datums(cfg: Params, w: windows.Window, report: drift.DriftReport) -> list[dict]:
    """DataDrift (0/1), DriftedFeatures, DriftShare and per-feature KS D (Feature dimension) for one window."""
    feats = [f for f in report.drifted_features if f != PREDICTION]
    out = [publish.datum("DataDrift", int(report.drift_detected), w.end, cfg.metric_dimensions()),
           publish.datum("DriftedFeatures", len(feats), w.end, cfg.metric_dimensions(), "Count"),
           publish.datum("DriftShare", report.drift_share, w.end, cfg.metric_dimensions()),
           publish.datum("PredictionDrift", int(bool(report.table.loc[PREDICTION, "drifted"]))
                         if PREDICTION in report.table.index else 0, w.end, cfg.metric_dimensions())]
    ks_rows = report.table[report.table["test"] == "ks"]["statistic"]  # chi-square rows carry a chi2 value
    for feature, d in ks_rows.items():
        if pd.notna(d):
            out.append(publish.datum("KSStatistic", float(d), w.end, cfg.metric_dimensions(Feature=str(feature))))
    return out


target_drift = engine.target_drift  # kept importable from here


load_history = history_store.load_drift  # the stage's own record in S3 (kept under its old name)


def window_records(aws: Aws, cfg: Params, w: windows.Window, baseline: drift.Baseline) -> pd.DataFrame:
    """Captured features and predictions of one window (for plots), features named by the baseline."""
    features = [f for f in baseline.feature_names if f != PREDICTION]
    batch = capture.read_capture(aws, capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name),
                                 w, features)
    return batch.records


def run(cfg: Params, aws: Aws, now: dt.datetime) -> dict:
    """Check every complete, unchecked window against the baseline; publish and record the verdicts."""
    backlog = outbox.deliver_outbox(aws, cfg)
    mark = watermark.load(aws, cfg, STAGE)
    start = mark.last_end_time or windows.floor(now - dt.timedelta(days=cfg.days), cfg.window)
    todo = [w for w in windows.windows_between(start, now, cfg.window) if w.label not in set(mark.published)]
    baseline, info = load_baseline(aws, cfg)
    history, feature_history = load_history(aws, cfg)
    opts = detector_options(cfg)
    stats = publish.PublishStats()
    reports: dict[str, drift.DriftReport] = {}
    quarantined = 0
    if todo:
        span = windows.Window(todo[0].start, todo[-1].end)
        features = [f for f in baseline.feature_names if f != PREDICTION]
        target_baseline = load_target_baseline(aws, cfg)
        labels = None
        if target_baseline is not None:  # target drift where labels have arrived
            labels, _ = capture.read_ground_truth(aws, cfg.ground_truth_uri, span.start, now + dt.timedelta(hours=1))
        uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
        datums, rows, feature_rows = [], [], []
        results = engine.run_windows(cfg, aws, engine.drift_window, todo, capture_uri=uri, features=features,
                                     baseline=baseline, opts=opts, labels=labels, target_baseline=target_baseline)
        for w, res in zip(todo, results):  # one window at a time: memory follows the window, not the backlog
            quarantined += res["quarantined"]
            lines = {k: res[k] for k in WINDOW_COUNTS}
            if res["report"] is None:
                rows.append({"window": w.label, "end": w.end, "rows": 0, "drift_detected": None,
                             "reason": "no captured traffic in this window", **lines})
                continue
            report, target = res["report"], res["target"]
            reports[w.label] = report
            datums += window_datums(cfg, w, report)
            feats = [f for f in report.drifted_features if f != PREDICTION]
            if target is not None:
                datums.append(publish.datum("TargetDrift", int(target["drifted"]), w.end, cfg.metric_dimensions()))
            rows.append({"window": w.label, "end": w.end, "rows": res["rows"],
                         "drift_detected": bool(report.drift_detected), "drifted_features": len(feats),
                         "drift_share": report.drift_share, "top_features": feats[:5],
                         "prediction_drift": bool(report.table.loc[PREDICTION, "drifted"]),
                         "target_drift": None if target is None else target["drifted"],
                         "labelled_rows": 0 if target is None else target["rows"], **lines})
            per_feature = report.table[["statistic", "p_adjusted", "effect", "drifted"]].astype({"drifted": bool})
            feature_rows += per_feature.rename_axis("feature").reset_index().assign(window=w.label).to_dict("records")
        labels = [w.label for w in todo]
        mark.begin(aws, cfg, labels)
        stats = outbox.send(aws, cfg, datums, now, stream=STAGE)
        mark.commit(aws, cfg, labels, todo[-1].end)
        history = pd.concat([history, pd.DataFrame(rows)], ignore_index=True)
        feature_history = pd.concat([feature_history, pd.DataFrame(feature_rows)], ignore_index=True)
        history_store.store_drift(aws, cfg, history, feature_history)
        if reports:
            last_label = list(reports)[-1]
            put_json(aws, cfg.bucket, cfg.key("drift", "windows", f"{last_label}.json"), reports[last_label].to_dict())
    checked = history.dropna(subset=["drift_detected"]) if len(history) else history
    latest = checked.iloc[-1].to_dict() if len(checked) else None
    latest_report, latest_current = None, None
    if latest is not None:  # the newest window's full report and data, for the notebook's ECDFs and table
        w = windows.from_label(latest["window"], cfg.window)
        latest_current = window_records(aws, cfg, w, baseline)
        features = [f for f in baseline.feature_names if f != PREDICTION]
        latest_report = reports.get(w.label) or drift.detect_drift(
            baseline, latest_current[features + [PREDICTION]], **opts)
    record = {"windows_checked": list(reports), "put_metric_data_calls": stats.calls, "datums_published": stats.datums,
              "datums_dropped_too_old": stats.dropped_too_old,
              "datums_outboxed": stats.outboxed, "outbox_delivered": backlog["delivered"],
              "quarantined": quarantined, "options": opts, "baseline": info, "history": history, "latest": latest}
    artefacts = {"feature_history": feature_history, "baseline_profile": baseline, "latest_report": latest_report,
                 "latest_current": latest_current}
    threshold = opts["dataset_threshold"] if opts["dataset_rule"] == "count" else None
    return StageResult(record, artefacts, headline=headline(record), verdict=verdict(record),
                       series=Series.from_history(history, "drifted_features", "drifted features", threshold))


def headline(record: dict) -> dict:
    """Windows checked, whether the newest drifted, and how many features."""
    latest = record.get("latest") or {}
    n = latest.get("drifted_features")
    return {"windows checked": len(record["windows_checked"]), "latest drift": latest.get("drift_detected"),
            "latest drifted features": None if n is None or pd.isna(n) else int(n)}


def verdict(record: dict) -> Verdict:
    """How many features drifted in the newest window and which lead, in sentences."""
    latest = record.get("latest")
    if not latest:
        return Verdict("No window with captured traffic has been checked yet.")
    n = int(latest.get("drifted_features") or 0)
    lead = ", ".join(latest.get("top_features") or [])
    text = (f"Newest window {latest['window']}: {n} feature(s) drifted from the baseline"
            + (f", led by {lead}." if n else "; inputs look like the training data."))
    if latest.get("prediction_drift"):
        text += " The predictions drifted too."
    if latest.get("target_drift"):
        text += " The labels that have arrived drifted (the songs' release years changed)."
    if record["quarantined"]:
        text += f" {int(record['quarantined'])} capture line(s) were quarantined."
    return Verdict(text, bool(latest.get("drift_detected")) or bool(record["quarantined"]))
