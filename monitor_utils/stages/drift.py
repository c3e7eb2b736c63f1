"""Drift stage: each complete window against the baseline (drift tests, Model Monitor's data-quality checks), published once."""

from __future__ import annotations

import datetime as dt
import json
from typing import Sequence

import pandas as pd

from .. import attribution, capture, drift, engine, heap, model_monitor, outbox, publish, traffic, watermark, windows
from .. import history as history_store
from ..aws import Aws, get_bytes, put_bytes, put_json
from ..baseline import (PREDICTION, feature_names, find_baseline, load_explainer, load_own_constraints,
                        load_target_baseline, no_reference_error, store_drift_settings)
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


def attribution_datums(cfg: Params, w: windows.Window, check: attribution.AttributionDrift) -> list[dict]:
    """FeatureAttributionDrift (1 when the window's nDCG is below ``model_monitor.attribution_ndcg_min``, else 0)
    and AttributionNDCG (the nDCG itself) for one window."""
    return [publish.datum("FeatureAttributionDrift", int(check.violated), w.end, cfg.metric_dimensions()),
            publish.datum("AttributionNDCG", check.ndcg, w.end, cfg.metric_dimensions())]


def write_attribution_files(aws: Aws, cfg: Params, w: windows.Window, values: pd.Series, method: str,
                            check: attribution.AttributionDrift) -> str:
    """The window's Clarify-shaped ``analysis.json`` (its global attributions) and ``constraint_violations.json``
    under ``PREFIX/monitoring/<endpoint>/<schedule>-model-explainability/<yyyy>/<mm>/<dd>/<hh>/`` (the window's end);
    returns that key prefix."""
    schedule = model_monitor.schedule_name(cfg) + "-model-explainability"
    key = model_monitor.execution_prefix(cfg.prefix, cfg.endpoint_name, schedule, w.end)
    put_json(aws, cfg.bucket, f"{key}/analysis.json", {**attribution.analysis_document(values, None, method), "ndcg": check.ndcg})
    put_json(aws, cfg.bucket, f"{key}/constraint_violations.json", attribution.violation_document(check))
    return key


target_drift = engine.target_drift  # kept importable from here


load_history = history_store.load_drift  # the stage's own record in S3 (kept under its old name)


def window_records(aws: Aws, cfg: Params, w: windows.Window, baseline: drift.Baseline | Sequence[str]) -> pd.DataFrame:
    """Captured features and predictions of one window (for plots), features named by the baseline (or given)."""
    names = baseline.feature_names if isinstance(baseline, drift.Baseline) else baseline
    features = [f for f in names if f != PREDICTION]
    batch = capture.read_capture(aws, capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name),
                                 w, features)
    return batch.records


def model_monitor_inputs(aws: Aws, cfg: Params, mm_baseline: model_monitor.ModelMonitorBaseline) -> list[str]:
    """The window's input features in request order when a Model Monitor baseline is the only reference: its
    statistics' feature names (less the prediction) when they name columns, else, for a headerless baseline
    (``_c0, _c1, ...``, matched by position), the served model's features (:func:`baseline.feature_names`)."""
    names = mm_baseline.feature_names
    if all(n.startswith("_c") and n[2:].isdigit() for n in names):
        return feature_names(aws, cfg)
    return [n for n in names if n != PREDICTION]


def run(cfg: Params, aws: Aws, now: dt.datetime) -> dict:
    """Check every complete, unchecked window against the baseline; publish and record the verdicts.

    The reference: the suite's own baseline (exact tests) when the served model's ``baseline.bin`` is stored, else
    the configured Model Monitor baseline alone (its KLL CDF distance check decides); neither is an error naming
    both."""
    backlog = outbox.deliver_outbox(aws, cfg)
    mark = watermark.load(aws, cfg, STAGE)
    start = mark.first_open(traffic.window_start(cfg)) or windows.floor(now - dt.timedelta(days=cfg.days), cfg.window)
    todo = [w for w in windows.windows_between(start, now, cfg.window) if w.label not in set(mark.published)]
    baseline, info = find_baseline(aws, cfg)
    history, feature_history = load_history(aws, cfg)
    opts = detector_options(cfg)
    mm_baseline = model_monitor.load_configured_baseline(aws, cfg)
    if baseline is None and mm_baseline is None:
        raise no_reference_error(aws, cfg)
    if baseline is not None:
        store_drift_settings(aws, cfg, opts)  # the settings this run really checks with, beside the baseline
        inputs = [f for f in baseline.feature_names if f != PREDICTION]
        reference = model_monitor.EXACT_REFERENCE
    else:
        inputs = model_monitor_inputs(aws, cfg, mm_baseline)
        reference = model_monitor.KLL_REFERENCE
    quality_constraints, quality_uri, quality_match = quality_reference(aws, cfg, mm_baseline, inputs)
    mm_columns = None if mm_baseline is None else quality_match.columns  # missing/extra columns are violations
    schedule = model_monitor.schedule_name(cfg)
    explainer, base_attributions = load_explainer(aws, cfg)  # None before setup stored them
    target_baseline = load_target_baseline(aws, cfg)  # None before setup stored it
    ndcg_min = cfg["model_monitor"]["attribution_ndcg_min"]
    attr_tables: dict[str, pd.DataFrame] = {}
    stats = publish.PublishStats()
    reports: dict[str, drift.DriftReport] = {}
    mm_tables: dict[str, pd.DataFrame] = {}
    quality_lists: dict[str, list[dict]] = {}
    quarantined = 0
    busy: dict[str, float] = {}
    quiet: list[str] = []
    elsewhere: list[str] = []
    if todo:
        span = windows.Window(todo[0].start, todo[-1].end)
        features = inputs
        labels = None
        if target_baseline is not None:  # target drift where labels have arrived
            labels = capture.read_labels(aws, cfg.ground_truth_uri, span.start, now + dt.timedelta(hours=1),
                                         compact=True).labels  # read once, held compactly
            heap.release()  # what parsing them freed goes back before the first window
        uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
        datums, rows, feature_rows = [], [], []
        results = engine.run_windows(cfg, aws, engine.drift_window, todo, capture_uri=uri, features=features,
                                     baseline=baseline, opts=opts, labels=labels, target_baseline=target_baseline,
                                     mm_baseline=mm_baseline, mm_columns=mm_columns,
                                     quality_constraints=quality_constraints, quality_match=quality_match,
                                     explainer=explainer if base_attributions is not None else None,
                                     then=lambda w, res: quality_written(aws, cfg, schedule, quality_match, w, res))
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
            if res.get("attributions") is not None:  # Clarify's feature-attribution drift check
                check = attribution.attribution_drift(base_attributions, res["attributions"], ndcg_min)
                datums += attribution_datums(cfg, w, check)
                rows[-1].update(check.record())
                attr_tables[w.label] = check.table
                write_attribution_files(aws, cfg, w, res["attributions"], explainer.method, check)
                per_feature["attribution"] = res["attributions"].reindex(per_feature.index)
            written = res.get("quality_written")
            if written is not None:  # Model Monitor's files were written for the window: its count (and metrics)
                rows[-1].update(written["record"])
                quality_lists[w.label] = written["violations"]
                datums.append(publish.datum("DataQualityViolations", written["count"], w.end,
                                            cfg.metric_dimensions(), "Count"))
                datums += written["datums"]
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
            if last_label in quality_lists:
                doc["data_quality_violations"] = quality_lists[last_label]
            if last_label in mm_tables:
                doc["model_monitor_baseline_drift"] = mm_tables[last_label].reset_index().to_dict("records")
            if last_label in attr_tables:
                doc["feature_attributions"] = attr_tables[last_label].reset_index().to_dict("records")
            put_json(aws, cfg.bucket, cfg.key("drift", "windows", f"{last_label}.json"), doc)
    checked = history.dropna(subset=["drift_detected"]) if len(history) else history
    latest = checked.iloc[-1].to_dict() if len(checked) else None
    latest_report, latest_current, latest_mm = None, None, None
    if latest is not None:  # the newest window's full report and data, for the notebook's ECDFs and table
        w = windows.from_label(latest["window"], cfg.window)
        latest_current = window_records(aws, cfg, w, inputs)
        if mm_baseline is not None:
            latest_mm = mm_tables[w.label] if w.label in mm_tables else model_monitor.baseline_drift(
                mm_baseline, latest_current, mm_columns)
        latest_report = reports.get(w.label) or (
            drift.detect_drift(baseline, latest_current[inputs + [PREDICTION]], **opts) if baseline is not None
            else engine.kll_report(mm_baseline, latest_mm, opts, len(latest_current)))
    record = {"windows_checked": list(reports), "windows_no_traffic": quiet, "windows_held_open": {**mark.held},
              "windows_left_to_another_run": elsewhere,
              "put_metric_data_calls": stats.calls, "datums_published": stats.datums,
              "datums_dropped_too_old": stats.dropped_too_old,
              "datums_outboxed": stats.outboxed, "outbox_delivered": backlog["delivered"],
              "quarantined": quarantined, "options": opts, "baseline": info if baseline is not None else None,
              "reference": reference, "skipped": skipped_checks(baseline, target_baseline is not None, base_attributions),
              "history": history, "latest": latest,
              "model_monitor": None if mm_baseline is None else mm_baseline.describe(),
              "data_quality": None if quality_constraints is None else {
                  "constraints_uri": quality_uri, "schedule": schedule,
                  "output": f"s3://{cfg.bucket}/{model_monitor.monitoring_prefix(cfg.prefix, cfg.endpoint_name, schedule)}/",
                  "latest_violations": latest_violations(aws, cfg, schedule, latest, quality_lists)},
              "attribution": None if base_attributions is None else {
                  "method": explainer.method, "ndcg_min": ndcg_min,
                  "windows_violated": [r["window"] for r in rows if r.get("attribution_violated")
                                       and r["window"] in set(reports)] if todo else []}}
    artefacts = {"feature_history": feature_history, "baseline_profile": baseline, "latest_report": latest_report,
                 "latest_attributions": attr_tables.get(latest["window"]) if latest is not None else None,
                 "latest_current": latest_current, "latest_baseline_drift": latest_mm}
    threshold = opts["dataset_threshold"] if opts["dataset_rule"] == "count" else None
    return StageResult(record, artefacts, headline=headline(record), verdict=verdict(record),
                       series=Series.from_history(history, "drifted_features", "drifted features", threshold))


def skipped_checks(baseline: drift.Baseline | None, target_present: bool, base_attributions) -> list[str]:
    """Sentences naming the checks that need the suite's own files and did not run (empty with them all)."""
    out = []
    if baseline is None:
        out.append("The exact drift tests and the notebook's ECDF figures need the suite's own baseline "
                   "(baseline.bin, written by setup): Model Monitor's KLL CDF distance check decided instead.")
    if not target_present:
        out.append("Target drift skipped: it needs the training labels' profile (target_baseline.bin, written by "
                   "setup).")
    if base_attributions is None:
        out.append("Feature-attribution drift skipped: it needs the served model's baseline attributions "
                   "(analysis.json, written by setup).")
    return out


def quality_reference(aws: Aws, cfg: Params, mm_baseline: model_monitor.ModelMonitorBaseline | None,
                      inputs: list[str]) -> tuple[model_monitor.Constraints | None, str, model_monitor.ColumnMatch]:
    """The constraints every window is checked against (the configured Model Monitor baseline's, else the suite's own
    ``constraints.json`` written at setup; None when neither exists), their URI, and how the window's columns (the
    inputs, then the prediction) meet their features."""
    if mm_baseline is not None:
        return (mm_baseline.constraints, mm_baseline.constraints_uri,
                model_monitor.match_columns(mm_baseline.feature_names, inputs, PREDICTION))
    own = load_own_constraints(aws, cfg)
    if own is None:
        return None, "", model_monitor.match_columns(inputs + [PREDICTION], inputs, PREDICTION)
    constraints, uri = own
    return constraints, uri, model_monitor.match_columns(list(constraints.features), inputs, PREDICTION)


def quality_written(aws: Aws, cfg: Params, schedule: str, match: model_monitor.ColumnMatch | None, w: windows.Window,
                    res: dict) -> dict:
    """A window's drift result once its data quality is written (:func:`write_quality_files`): its ``quality``
    (the statistics document, whose sketches are megabytes of floats) replaced by ``quality_written``: the
    window record's entries, the violations, their count and, with ``model_monitor.publish_metrics``, Model
    Monitor's metrics. Called on each result as it arrives (:func:`engine.run_windows`' ``then``), so the stage
    holds no window's statistics while it reads the next."""
    quality = res.get("quality")
    if quality is None:
        return res
    datums = []
    if cfg.model_monitor["publish_metrics"]:
        datums = model_monitor.data_metrics_datums(
            quality.statistics, baseline_distances(res["report"], res.get("baseline_drift"), match), w.end,
            cfg.endpoint_name, schedule, statistic_values=cfg.metrics_transport != "emf")
    written = {"record": write_quality_files(aws, cfg, schedule, w, quality), "count": len(quality.violations),
               "violations": model_monitor.violations_document(quality.violations)["violations"], "datums": datums}
    return {**res, "quality": None, "quality_written": written}


def write_quality_files(aws: Aws, cfg: Params, schedule: str, w: windows.Window,
                        quality: model_monitor.WindowQuality) -> dict:
    """Write the window's ``statistics.json`` and ``constraint_violations.json`` at Model Monitor's layout
    (:func:`model_monitor.execution_prefix`, the window's end as the execution hour); return the window record's
    ``data_quality_violations`` (count), ``data_quality_checks`` (count per check type) and
    ``data_quality_features`` (the features named, at most five)."""
    prefix = model_monitor.execution_prefix(cfg.prefix, cfg.endpoint_name, schedule, w.end)
    put_bytes(aws, cfg.bucket, f"{prefix}/statistics.json", model_monitor.dumps(quality.statistics).encode(),
              "application/json")
    put_bytes(aws, cfg.bucket, f"{prefix}/constraint_violations.json",
              model_monitor.dumps(model_monitor.violations_document(quality.violations)).encode(), "application/json")
    named = list(dict.fromkeys(v.feature_name for v in quality.violations))
    return {"data_quality_violations": len(quality.violations), "data_quality_checks": quality.counts,
            "data_quality_features": named[:5]}


def baseline_distances(report: drift.DriftReport, mm_drift: pd.DataFrame | None,
                       match: model_monitor.ColumnMatch) -> dict[str, float]:
    """Per baseline feature, its distance from the baseline for ``feature_baseline_drift_<f>``: Model Monitor's
    (``baseline_drift``'s ``distance``) against its baseline, else the exact KS statistic against the suite's own
    (the largest distance between the two CDFs: Model Monitor's ``Simple`` distance, computed on the raw data)."""
    if mm_drift is not None:
        return {str(r.baseline_feature): float(r.distance) for r in mm_drift.itertuples()}
    table = report.table
    ks = table[table["test"] == "ks"]["statistic"]
    by_column = {col: name for name, col in match.columns.items()}
    return {by_column.get(str(col), str(col)): float(d) for col, d in ks.items() if pd.notna(d)}


def latest_violations(aws: Aws, cfg: Params, schedule: str, latest: dict | None,
                      this_run: dict[str, list[dict]]) -> list[dict] | None:
    """The newest checked window's violations: from this run, else read back from its constraint_violations.json."""
    if latest is None:
        return None
    if latest["window"] in this_run:
        return this_run[latest["window"]]
    w = windows.from_label(latest["window"], cfg.window)
    body = get_bytes(aws, cfg.bucket, model_monitor.execution_prefix(cfg.prefix, cfg.endpoint_name, schedule, w.end)
                     + "/constraint_violations.json")
    return None if body is None else model_monitor.violations_document(
        model_monitor.read_violations(json.loads(body)))["violations"]


def headline(record: dict) -> dict:
    """Windows checked, whether the newest drifted, and how many features."""
    latest = record.get("latest") or {}
    n = latest.get("drifted_features")
    dq = latest.get("data_quality_violations")
    return {"windows checked": len(record["windows_checked"]), "latest drift": latest.get("drift_detected"),
            "latest drifted features": None if n is None or pd.isna(n) else int(n),
            "latest data-quality violations": None if dq is None or pd.isna(dq) else int(dq)}


def verdict(record: dict) -> Verdict:
    """How many features drifted in the newest window and which lead, in sentences."""
    latest = record.get("latest")
    if not latest:
        return Verdict("No window with captured traffic has been checked yet.")
    n = int(latest.get("drifted_features") or 0)
    lead = ", ".join(latest.get("top_features") or [])
    against = ("the Model Monitor baseline (KLL CDF distance)" if record.get("reference") == model_monitor.KLL_REFERENCE
               else "the baseline")
    text = (f"Newest window {latest['window']}: {n} feature(s) drifted from {against}"
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
    score = latest.get("attribution_ndcg")
    attr_bad = False
    if record.get("attribution") and score is not None and not pd.isna(score):
        attr_bad = bool(latest.get("attribution_violated"))
        moved = latest.get("attribution_most_changed")
        moved = ", ".join(str(f) for f in list(moved)[:3]) if moved is not None and len(moved) else ""
        text += (f" Feature attributions (mean |SHAP|): nDCG {float(score):.3f} against the baseline's ranking"
                 + (f", below {record['attribution']['ndcg_min']:g}: attribution drift" if attr_bad else "")
                 + (f"; most changed: {moved}." if moved else "."))
    dq = record.get("data_quality")
    dq_n = latest.get("data_quality_violations")
    dq_n = None if dq_n is None or pd.isna(dq_n) else int(dq_n)
    if dq and dq_n is not None:
        text += f" Data quality against {dq['constraints_uri']}: {dq_n} violation(s)"
        found = dq.get("latest_violations") or []
        shown = list(dict.fromkeys(f"{v['constraint_check_type']} on {v['feature_name']}" for v in found))
        text += (f" ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''})." if shown else ".")
    if record["quarantined"]:
        text += f" {int(record['quarantined'])} capture line(s) were quarantined."
    return Verdict(text, bool(latest.get("drift_detected")) or bool(record["quarantined"]) or attr_bad or bool(dq_n))
