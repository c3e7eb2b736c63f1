"""Metrics stage: model-quality metrics per complete window from capture joined with ground truth, published exactly once."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from .. import capture, engine, estimates, heap, model_monitor, outbox, publish, traffic, watermark, windows
from .. import history as history_store
from ..aws import Aws, get_json, put_bytes
from ..baseline import feature_names, load_model_quality_constraints, served_prefix
from ..config import Params
from ..metrics import MIN_SEGMENT_ROWS, evaluate_window, segment_labels  # noqa: F401 - kept importable from here
from ..model_monitor import model_quality
from ..results import Series, StageResult, Verdict

STAGE = "metrics"
ESTIMATES = "estimates"  # the label-free estimates keep their own exactly-once watermark
PUBLISHED = {"count": ("Count", "Count"), "mse": ("MSE", "None"), "rmse": ("RMSE", "None"), "mae": ("MAE", "None"),
             "r2": ("R2", "None"), "median_ae": ("MedianAE", "None"), "bias": ("Bias", "None")}
MAX_REPORTED_LINES = 200  # quarantined lines named in the stage record; all of them are kept in S3


def dimensions(cfg: Params, **extra: str) -> dict[str, str]:
    """The suite's metric dimensions for this endpoint (plus e.g. Segment or Feature)."""
    return cfg.metric_dimensions(**extra)


def complete_windows(cfg: Params, mark: watermark.Watermark, now: dt.datetime, wait: dt.timedelta) -> list[windows.Window]:
    """Windows closed by ``now - wait`` and not yet published, from the earliest window held open or the newest
    published one (or ``days`` back on a first run)."""
    start = mark.first_open(traffic.window_start(cfg)) or windows.floor(now - dt.timedelta(days=cfg.days), cfg.window)
    done = set(mark.published)
    return [w for w in windows.windows_between(start, now - wait, cfg.window) if w.label not in done]


def window_datums(cfg: Params, w: windows.Window, row: dict, segments: pd.DataFrame) -> list[dict]:
    """MetricData for one window: overall metrics, label coverage, per-segment count and RMSE; timestamp = window end."""
    out = []
    if row["count"] > 0:
        for key, (name, unit) in PUBLISHED.items():
            if row.get(key) is not None and pd.notna(row[key]):
                out.append(publish.datum(name, row[key], w.end, dimensions(cfg), unit))
    out.append(publish.datum("LabelCoverage", row["label_coverage"], w.end, dimensions(cfg), "None"))
    out.append(publish.datum("CapturedInvocations", row["captured"], w.end, dimensions(cfg), "Count"))
    for _, seg in segments.iterrows():
        dims = dimensions(cfg, Segment=str(seg["segment"]))
        # own metric names: the local emulator matches dimension subsets, so 'RMSE' with a Segment would mix in
        out.append(publish.datum("SegmentCount", seg["count"], w.end, dims, "Count"))
        out.append(publish.datum("SegmentRMSE", seg["rmse"], w.end, dims, "None"))
    return out


def write_model_quality(aws: Aws, cfg: Params, w: windows.Window, statistics: dict,
                        constraints: dict | None) -> list | None:
    """Write the window's Model Monitor model-quality files at Model Monitor's layout
    (:func:`model_quality.output_key`; the execution hour is the window's end): ``statistics.json`` and, when there
    are constraints, ``constraint_violations.json``; return the violations (None without constraints)."""
    key = model_quality.output_key(cfg["prefix"], cfg.endpoint_name, model_monitor.schedule_name(cfg), w.end)
    put_bytes(aws, cfg.bucket, f"{key}/statistics.json", model_monitor.dumps(statistics).encode(), "application/json")
    if constraints is None:
        return None
    found = model_quality.check_regression(statistics, constraints)
    doc = model_quality.model_quality_violations_document(found)
    put_bytes(aws, cfg.bucket, f"{key}/constraint_violations.json", model_monitor.dumps(doc).encode(),
              "application/json")
    return found


def model_quality_datums(cfg: Params, w: windows.Window, statistics: dict) -> list[dict]:
    """Model Monitor's own model-quality metrics of the window (``mae``, ``mse``, ``rmse``, ``r2`` in
    ``aws/sagemaker/Endpoints/model-metrics``, dimensions ``Endpoint`` and ``MonitoringSchedule``), read from its
    regression ``statistics`` document; none unless ``model_monitor.publish_metrics``."""
    if not cfg["model_monitor"]["publish_metrics"]:
        return []
    values = {name: entry.get("value") for name, entry in statistics.get("regression_metrics", {}).items()}
    return model_monitor.model_metrics_datums(values, w.end, cfg.endpoint_name, model_monitor.schedule_name(cfg))


def datum_exists(aws: Aws, cfg: Params, w_end: dt.datetime, metric: str = "LabelCoverage") -> bool:
    """True when the window's ``metric`` datum is already in CloudWatch (resolves a publish a crashed run left
    unconfirmed; every window publishes LabelCoverage, every estimated window EstimatedRMSE)."""
    dims = [{"Name": k, "Value": v} for k, v in dimensions(cfg).items()]
    got = aws.client("cloudwatch").get_metric_statistics(
        Namespace=cfg.namespace, MetricName=metric, Dimensions=dims, StartTime=w_end - dt.timedelta(seconds=1),
        EndTime=w_end + dt.timedelta(seconds=1), Period=60, Statistics=["SampleCount"])
    return bool(got["Datapoints"])


load_history = history_store.load_metrics  # the stage's own record in S3 (kept under its old name)


def _resolve_pending(aws: Aws, cfg: Params, mark: watermark.Watermark, metric: str) -> None:
    """Commit windows a crashed run published but did not record (their datum is in CloudWatch)."""
    for label in list(mark.pending):
        end = windows.from_label(label, cfg.window).end
        if datum_exists(aws, cfg, end, metric):
            mark.commit(aws, cfg, [label], end)


def run(cfg: Params, aws: Aws, now: dt.datetime) -> dict:
    """Publish every complete, unpublished window since the watermark, and the label-free estimate of every closed,
    unestimated window (labelled or not); return the histories and this run's counts."""
    backlog = outbox.deliver_outbox(aws, cfg)
    mark = watermark.load(aws, cfg, STAGE)
    est_mark = watermark.load(aws, cfg, ESTIMATES)
    wait = dt.timedelta(days=cfg.label_wait_days)
    _resolve_pending(aws, cfg, mark, "LabelCoverage")
    _resolve_pending(aws, cfg, est_mark, "EstimatedRMSE")
    todo = complete_windows(cfg, mark, now, wait)
    est_todo = complete_windows(cfg, est_mark, now, dt.timedelta(0))
    estimator = estimates.load_estimator(aws, cfg) if est_todo else None  # 0.7 MB: only when there is work
    if estimator is None:
        est_todo = []
    history, seg_history = load_history(aws, cfg)
    est_history = history_store.load_estimates(aws, cfg)
    stats, est_stats = publish.PublishStats(), publish.PublishStats()
    quarantined_total = 0
    busy: dict[str, float] = {}
    held: dict[str, str] = {}
    est_held: dict[str, str] = {}
    quiet: list[str] = []
    unlabelled: list[str] = []
    elsewhere: list[str] = []
    bad: list[dict] = []
    new_rows: list[dict] = []
    est_rows: list[dict] = []
    mq_written: list[str] = []
    mq_uri = ""
    if todo or est_todo:
        scored = {w.label for w in todo}
        estimated = {w.label for w in est_todo}
        every = sorted({w.label: w for w in todo + est_todo}.values(), key=lambda w: w.start)
        features = feature_names(aws, cfg)
        uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
        labels, gt_bad_by_window, label_lines = None, {}, {}
        if todo:
            label_batch = capture.read_labels(aws, cfg.ground_truth_uri, todo[0].start, now + dt.timedelta(hours=1),
                                              compact=True)  # the backlog's labels read once, held compactly
            labels, bad = label_batch.labels, list(label_batch.quarantined)
            gt_bad_by_window = _count_by_window(cfg, bad)
            label_lines = label_batch.by_window(cfg.window)
            del label_batch
            heap.release()  # what parsing the labels freed goes back before the first window
        datums, est_datums = [], []
        if todo:
            mq_constraints, mq_uri = load_model_quality_constraints(aws, cfg)
        results = engine.run_windows(cfg, aws, engine.metrics_window, every, capture_uri=uri, features=features,
                                     labels=labels, label_faults=gt_bad_by_window, segment_columns=cfg.segment_columns,
                                     score=scored, estimator=estimator, estimate=estimated)
        # a window where nothing was captured closes only if the endpoint had no traffic then
        no_traffic, busy = traffic.split_empty(aws, cfg, [w for w, res in zip(every, results) if res["read_nothing"]])
        rows_by, segs_by, closing, est_closing, est_by = {}, {}, [], [], {}
        for w, res in zip(every, results):  # one window at a time: memory follows the window, not the backlog
            if w.label in busy:
                reason = (f"{int(busy[w.label])} invocation(s) but no Data Capture under {uri}/ "
                          "(check capture_prefix)")
                held.update({w.label: reason} if w.label in scored else {})
                est_held.update({w.label: reason} if w.label in estimated else {})
                continue
            if res["estimate"] is not None:
                est_by[w.label] = res["estimate"]
                est_closing.append(w)
                est_datums += estimates.window_datums(cfg, w, res["estimate"])
            if w.label not in scored:
                continue
            row, segments = res["row"], res["segments"]
            if row["captured"] and not row["count"]:  # records, but not one label
                deadline = traffic.label_deadline(cfg, w)
                if now < deadline:
                    held[w.label] = (f"no labels at all under ground_truth_prefix {cfg.ground_truth_uri} after "
                                     f"{cfg.label_wait_days} day(s); waits until {windows.iso(deadline)} "
                                     f"(max_label_wait_days {cfg.max_label_wait_days})")
                    continue
                unlabelled.append(w.label)
            if w.label in no_traffic:
                quiet.append(w.label)
            bad += res["quarantined"]
            row.update(label_lines.get(w.label) or dict.fromkeys(capture.LABEL_KEYS.values(), 0))
            rows_by[w.label] = {**row, "closed_as": "no traffic" if w.label in no_traffic else
                                "unlabelled" if w.label in unlabelled else "published"}
            segs_by[w.label] = segments
            closing.append(w)
            datums += window_datums(cfg, w, row, segments)
            if res.get("model_quality") is not None:
                found = write_model_quality(aws, cfg, w, res["model_quality"], mq_constraints)
                rows_by[w.label]["model_quality_violations"] = None if found is None else len(found)
                mq_written.append(w.label)
                datums += model_quality_datums(cfg, w, res["model_quality"])
        if todo:
            _store_quarantine(aws, cfg, bad, todo)
            quarantined_total = len(bad)
            stats, mine = watermark.publish_once(aws, cfg, mark, closing, datums, now, STAGE, held)
            new_rows = [rows_by[label] for label in mine]
            elsewhere = [w.label for w in closing if w.label not in set(mine)]  # published or claimed by another run
            quiet = [label for label in quiet if label in set(mine)]
            unlabelled = [label for label in unlabelled if label in set(mine)]
            if mine:  # added to the history as stored now: another runner may have added to it meanwhile
                history, seg_history = history_store.add_metrics(
                    aws, cfg, pd.DataFrame(new_rows), pd.concat([segs_by[label] for label in mine], ignore_index=True))
        if est_todo:
            est_stats, est_mine = watermark.publish_once(aws, cfg, est_mark, est_closing, est_datums, now, ESTIMATES, est_held)
            est_rows = [est_by[label] for label in est_mine]
            if est_mine:
                est_history = history_store.add_estimates(aws, cfg, pd.DataFrame(est_rows))
    if busy:  # published what was read; the rest waits for the right capture_prefix (no heartbeat: not healthy)
        raise traffic.capture_missing(cfg, capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name,
                                                                  cfg.variant_name), busy, STAGE)
    hb = outbox.send(aws, cfg, [publish.datum("SuiteHeartbeat", 1, now, {"EndpointName": cfg.endpoint_name})],
                      now, stream="heartbeat")
    baseline_info = _baseline_test_metrics(aws, cfg)
    estimate_list = estimates.with_realized(est_history, history)
    record = {"windows_published": [r["window"] for r in new_rows], "windows_pending_labels": _waiting(cfg, now, wait),
              "windows_estimated": [r["window"] for r in est_rows],
              "windows_no_traffic": quiet, "windows_unlabelled": unlabelled, "windows_left_to_another_run": elsewhere,
              "windows_held_open": {**mark.held}, "estimates_held_open": {**est_mark.held},
              "put_metric_data_calls": stats.calls + est_stats.calls, "datums_published": stats.datums + est_stats.datums,
              "heartbeat_calls": hb.calls,
              "datums_dropped_too_old": stats.dropped_too_old + est_stats.dropped_too_old + hb.dropped_too_old,
              "datums_outboxed": stats.outboxed + est_stats.outboxed + hb.outboxed,
              "outbox_delivered": backlog["delivered"],
              "outbox_still_pending": backlog["still_pending"], "quarantined": quarantined_total,
              "quarantined_lines": [{k: b[k] for k in ("key", "line", "reason")} for b in bad[:MAX_REPORTED_LINES]],
              "history": history, "segments": seg_history, "baseline_test_metrics": baseline_info,
              "latest": history.iloc[-1].to_dict() if len(history) else None,
              "estimates": estimate_list, "estimate_accuracy": estimates.accuracy(estimate_list),
              "estimator": estimates.load_summary(aws, cfg),
              "model_quality": {"constraints_uri": mq_uri, "windows_written": mq_written,
                                "violations": int(sum(r.get("model_quality_violations") or 0 for r in new_rows)),
                                "output": f"s3://{cfg.bucket}/" + model_quality.output_root(
                                    cfg["prefix"], cfg.endpoint_name, model_monitor.schedule_name(cfg))}}
    return StageResult(record, headline=headline(record), verdict=verdict(cfg, record),
                       series=Series.from_history(history, "rmse", "RMSE (years)", cfg.thresholds["rmse_max"]))


def headline(record: dict) -> dict:
    """Windows published, the newest RMSE and R2, lines quarantined."""
    latest = record.get("latest") or {}
    newest = (record.get("estimates") or [{}])[-1]
    return {"windows published": len(record["windows_published"]), "latest RMSE": _round(latest.get("rmse")),
            "latest R2": _round(latest.get("r2")), "latest estimated RMSE": _round(newest.get("estimated_rmse")),
            "quarantined": int(record["quarantined"])}


def verdict(cfg: Params, record: dict) -> Verdict:
    """The newest window's quality against the alarm thresholds, the newest label-free estimate, and any unreadable
    input, in sentences."""
    latest = record.get("latest") or {}
    t = cfg.thresholds
    parts, attention = [], False
    if latest.get("rmse") is None:
        parts.append("No window with labelled traffic has been published yet.")
    else:
        bad = latest["rmse"] > t["rmse_max"] or (latest.get("r2") is not None and latest["r2"] < t["r2_min"])
        attention = bool(bad)
        parts.append(f"Newest published window {latest['window']}: RMSE {latest['rmse']:.2f} years "
                     f"(alarm above {t['rmse_max']:g}), R² {latest['r2']:.3f} (alarm below {t['r2_min']:g}), "
                     f"{int(latest['count'])} labelled records; "
                     + ("model quality is below target." if bad else "model quality is within target."))
    n_mq = latest.get("model_quality_violations")
    if n_mq is not None and not pd.isna(n_mq):
        attention = attention or bool(n_mq)
        parts.append(f"Model Monitor's model-quality check of that window: {int(n_mq)} violation(s) of "
                     f"{(record.get('model_quality') or {}).get('constraints_uri') or 'the constraints'}.")
    newest = (record.get("estimates") or [None])[-1]
    if newest and newest.get("estimated_rmse") is not None:
        limit = cfg.estimated_rmse_max
        high = newest["estimated_rmse"] > limit
        attention = attention or high
        parts.append(f"Newest closed window {newest['window']}, estimated without labels: RMSE "
                     f"{newest['estimated_rmse']:.2f} years (interval {newest['estimated_rmse_low']:.2f}-"
                     f"{newest['estimated_rmse_high']:.2f}; alarm above {limit:g})"
                     + ("; quality has probably dropped." if high else "; quality looks within target."))
    if record["quarantined"]:
        attention = True
        parts.append(f"{int(record['quarantined'])} capture or label line(s) could not be read and were quarantined.")
    waiting = record["windows_pending_labels"]
    if waiting:
        parts.append(f"{len(waiting)} newer window(s) still wait for labels.")
    held = record.get("windows_held_open") or {}
    if held:
        attention = True
        first = sorted(held)[0]
        parts.append(f"{len(held)} window(s) held open, from {first}: {held[first]}.")
    if record.get("windows_unlabelled"):
        attention = True
        parts.append(f"{len(record['windows_unlabelled'])} window(s) closed as unlabelled after max_label_wait_days "
                     f"({cfg.max_label_wait_days}): no label ever arrived under ground_truth_prefix "
                     f"{cfg.ground_truth_uri}.")
    if record.get("windows_left_to_another_run"):
        parts.append(f"{len(record['windows_left_to_another_run'])} window(s) were left to another run that published "
                     "or claimed them meanwhile (see the watermark's claims).")
    if record.get("windows_no_traffic"):
        parts.append(f"{len(record['windows_no_traffic'])} window(s) closed as no traffic (the endpoint's "
                     "Invocations were 0): " + ", ".join(record["windows_no_traffic"][:5]) + ".")
    return Verdict(" ".join(parts), attention)


def _round(v):
    return round(float(v), 3) if isinstance(v, (int, float)) and not isinstance(v, bool) and pd.notna(v) else v


def _waiting(cfg: Params, now: dt.datetime, wait: dt.timedelta) -> list[str]:
    return [w.label for w in windows.windows_between(now - wait, now, cfg.window)]


def _baseline_test_metrics(aws: Aws, cfg: Params) -> dict | None:
    return get_json(aws, cfg.bucket, f"{served_prefix(aws, cfg)[1]}/test_metrics.json")


def _count_by_window(cfg: Params, bad: list[dict]) -> dict[str, int]:
    """Unreadable lines per window, by the hour partition of the file holding them."""
    counts: dict[str, int] = {}
    for b in bad:
        t = capture.partition_hour(b["key"])
        if t is not None:
            lab = windows.containing(t, cfg.window).label
            counts[lab] = counts.get(lab, 0) + 1
    return counts


def _store_quarantine(aws: Aws, cfg: Params, bad: list[dict], todo: list[windows.Window]) -> None:
    """Write unreadable lines aside with their file, line and reason (one object per run of windows)."""
    if bad:
        body = "\n".join(json.dumps(b) for b in bad).encode()
        put_bytes(aws, cfg.bucket, cfg.key("quarantine", STAGE, f"{todo[0].label}_{todo[-1].label}.jsonl"), body,
                  "application/jsonl")


READ_COLUMNS = ["window", "lines", "lines_read", "lines_quarantined", "lines_outside", "requests", "captured",
                "input_only", "output_only", "label_lines", "label_lines_read", "label_lines_quarantined"]


def read_table(history: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """What each window read, by window: its capture lines and how each was accounted for (read, quarantined,
    outside), ``accounted`` (lines == read + quarantined + outside), the requests and records read, and the
    ground-truth lines of its partitions; windows recorded before lines were counted show blanks."""
    frame = pd.DataFrame(history).reindex(columns=READ_COLUMNS).set_index("window")
    counts = frame.astype("Float64").astype("Int64")
    parts = counts["lines_read"] + counts["lines_quarantined"] + counts["lines_outside"]
    counts.insert(4, "accounted", (counts["lines"] == parts).astype("boolean"))
    return counts.rename(columns={"captured": "records"})
