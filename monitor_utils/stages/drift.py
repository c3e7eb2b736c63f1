"""Drift stage: each complete window's features and predictions against the stored baseline, published once."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .. import capture, drift, engine, model_monitor, outbox, publish, traffic, watermark, windows
from .. import history as history_store
from ..aws import Aws, put_json
from ..baseline import PREDICTION, load_baseline, load_target_baseline, store_drift_settings
from ..config import Params
from ..results import Series, StageResult, Verdict

STAGE = "drift"
WINDOW_COUNTS = ("lines", "lines_read", "lines_quarantined", "lines_outside", "missing_values")  # per window record


def detector_options(cfg: Params) -> dict:
    """detect_drift keyword options from the ``drift`` params section."""
    return drift.detector_options(cfg.drift)


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
    start = mark.first_open(traffic.window_start(cfg)) or windows.floor(now - dt.timedelta(days=cfg.days), cfg.window)
    todo = [w for w in windows.windows_between(start, now, cfg.window) if w.label not in set(mark.published)]
    baseline, info = load_baseline(aws, cfg)
    history, feature_history = load_history(aws, cfg)
    opts = detector_options(cfg)
    store_drift_settings(aws, cfg, opts)  # the settings this run really checks with, beside the baseline
    mm_baseline = model_monitor.load_configured_baseline(aws, cfg)
    mm_columns = None if mm_baseline is None else model_monitor.align_columns(
        mm_baseline.feature_names, [f for f in baseline.feature_names if f != PREDICTION], PREDICTION)
    stats = publish.PublishStats()
    reports: dict[str, drift.DriftReport] = {}
    mm_tables: dict[str, pd.DataFrame] = {}
    quarantined = 0
    busy: dict[str, float] = {}
    quiet: list[str] = []
    elsewhere: list[str] = []
    if todo:
        span = windows.Window(todo[0].start, todo[-1].end)
        features = [f for f in baseline.feature_names if f != PREDICTION]
        target_baseline = load_target_baseline(aws, cfg)
        labels = None
        if target_baseline is not None:  # target drift where labels have arrived
            labels = capture.read_labels(aws, cfg.ground_truth_uri, span.start, now + dt.timedelta(hours=1),
                                         compact=True).labels  # read once, held compactly
        uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
        datums, rows, feature_rows = [], [], []
        results = engine.run_windows(cfg, aws, engine.drift_window, todo, capture_uri=uri, features=features,
                                     baseline=baseline, opts=opts, labels=labels, target_baseline=target_baseline,
                                     mm_baseline=mm_baseline, mm_columns=mm_columns)
        # a window where nothing was captured closes only if the endpoint had no traffic then
        no_traffic, busy = traffic.split_empty(aws, cfg, [w for w, res in zip(todo, results) if res["read_nothing"]])
        held = {label: f"{int(n)} invocation(s) but no Data Capture under {uri}/ (check capture_prefix)"
                for label, n in busy.items()}
        closing = []
        for w, res in zip(todo, results):  # one window at a time: memory follows the window, not the backlog
            if w.label in busy:
                continue
            closing.append(w)
            quarantined += res["quarantined"]
            lines = {k: res[k] for k in WINDOW_COUNTS}
            if res["report"] is None:
                rows.append({"window": w.label, "end": w.end, "rows": 0, "drift_detected": None,
                             "closed_as": "no traffic" if w.label in no_traffic else "nothing readable",
                             "reason": "no traffic in this window (the endpoint's Invocations were 0)"
                             if w.label in no_traffic else "no readable captured record in this window", **lines})
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
            mm_drift = res.get("baseline_drift")
            if mm_drift is not None:  # Model Monitor's check against its baseline, beside the exact tests
                mm_tables[w.label] = mm_drift
                over = mm_drift[mm_drift["drifted"]].sort_values("distance", ascending=False)
                rows[-1].update(baseline_drift_features=int(len(over)), baseline_drift_top=list(over.index[:5]))
                per_feature["baseline_drift"] = mm_drift["distance"].reindex(per_feature.index)
            feature_rows += per_feature.rename_axis("feature").reset_index().assign(window=w.label).to_dict("records")
        stats, mine = watermark.publish_once(aws, cfg, mark, closing, datums, now, STAGE, held)
        reports = {label: r for label, r in reports.items() if label in set(mine)}
        quiet = [label for label in no_traffic if label in set(mine)]
        elsewhere = [w.label for w in closing if w.label not in set(mine)]  # published or claimed by another run
        if mine:  # added to the history as stored now: another runner may have added to it meanwhile
            history, feature_history = history_store.add_drift(
                aws, cfg, pd.DataFrame([r for r in rows if r["window"] in set(mine)]),
                pd.DataFrame([r for r in feature_rows if r["window"] in set(mine)]))
    if busy:  # published what was read; the rest waits for the right capture_prefix
        raise traffic.capture_missing(cfg, capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name,
                                                                  cfg.variant_name), busy, STAGE)
    if todo:
        if reports:
            last_label = list(reports)[-1]
            doc = reports[last_label].to_dict()
            if last_label in mm_tables:
                doc["model_monitor_baseline_drift"] = mm_tables[last_label].reset_index().to_dict("records")
            put_json(aws, cfg.bucket, cfg.key("drift", "windows", f"{last_label}.json"), doc)
    checked = history.dropna(subset=["drift_detected"]) if len(history) else history
    latest = checked.iloc[-1].to_dict() if len(checked) else None
    latest_report, latest_current, latest_mm = None, None, None
    if latest is not None:  # the newest window's full report and data, for the notebook's ECDFs and table
        w = windows.from_label(latest["window"], cfg.window)
        latest_current = window_records(aws, cfg, w, baseline)
        features = [f for f in baseline.feature_names if f != PREDICTION]
        latest_report = reports.get(w.label) or drift.detect_drift(
            baseline, latest_current[features + [PREDICTION]], **opts)
        if mm_baseline is not None:
            latest_mm = mm_tables[w.label] if w.label in mm_tables else model_monitor.baseline_drift(
                mm_baseline, latest_current, mm_columns)
    record = {"windows_checked": list(reports), "windows_no_traffic": quiet, "windows_held_open": {**mark.held},
              "windows_left_to_another_run": elsewhere,
              "put_metric_data_calls": stats.calls, "datums_published": stats.datums,
              "datums_dropped_too_old": stats.dropped_too_old,
              "datums_outboxed": stats.outboxed, "outbox_delivered": backlog["delivered"],
              "quarantined": quarantined, "options": opts, "baseline": info, "history": history, "latest": latest,
              "model_monitor": None if mm_baseline is None else mm_baseline.describe()}
    artefacts = {"feature_history": feature_history, "baseline_profile": baseline, "latest_report": latest_report,
                 "latest_current": latest_current, "latest_baseline_drift": latest_mm}
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
    mm = record.get("model_monitor")
    mm_n = latest.get("baseline_drift_features")
    if mm and mm_n is not None and not pd.isna(mm_n):
        top = latest.get("baseline_drift_top")
        top = ", ".join(str(f) for f in top) if isinstance(top, (list, tuple)) or hasattr(top, "tolist") else ""
        text += (f" Against the Model Monitor baseline ({mm['comparison_method']} CDF distance over "
                 f"{mm['comparison_threshold']}): {int(mm_n)} feature(s)" + (f", led by {top}." if mm_n else "."))
    if record["quarantined"]:
        text += f" {int(record['quarantined'])} capture line(s) were quarantined."
    return Verdict(text, bool(latest.get("drift_detected")) or bool(record["quarantined"]))
