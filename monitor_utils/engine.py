"""One function per window (read, parse, join labels, compute) and the engines that run it: a local loop or Dask tasks."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Collection, Iterator, Sequence

import pandas as pd

from . import attribution, capture, data, drift, estimates, heap, keeping, model_monitor, payloads, windows
from .aws import Aws, connect
from .baseline import PREDICTION
from .config import Params
from .estimation import LossEstimator
from .labels import CompactLabels
from .metrics import evaluate_window
from .model_monitor import model_quality

ENGINES = ("local", "dask")
MIN_LABELLED_FOR_TARGET = 50

# --- the per-window work: a function of (window, its objects, the baseline) returning a small result ----------
# (each :func:`heap.releasing`: what a window freed goes back to the system once it returns, so a stage's peak
# follows the window, not the backlog)


def read_window(aws: Aws, capture_uri: str, w: windows.Window, features: Sequence[str],
                labels: pd.DataFrame | CompactLabels | None) -> tuple[pd.DataFrame, capture.CaptureBatch]:
    """The window's records (read from its capture objects, parsed, joined with ``labels`` when given) and its batch."""
    batch = capture.read_capture(aws, capture_uri, w, features)
    rows = batch.records if labels is None else capture.join_ground_truth(batch.records, labels)
    return rows, batch


@heap.releasing
def metrics_window(aws: Aws, w: windows.Window, *, capture_uri: str, features: Sequence[str],
                   labels: pd.DataFrame | CompactLabels | None = None, label_faults: dict[str, int] | None = None,
                   segment_columns: Sequence[str] = (), score: Collection[str] | None = None,
                   estimator: LossEstimator | None = None, estimate: Collection[str] = ()) -> dict:
    """Quality of one window: its row (metrics, intervals, coverage, counts), segments and unreadable lines when
    ``w`` is to be scored (its label in ``score``; None means every window), and its label-free estimate when its
    label is in ``estimate`` (``label_faults``: unreadable label lines per window label, counted with the window's
    own). The window's objects are read once for both. ``read_nothing`` says no capture line at all was found
    (neither readable nor quarantined): the stage then asks whether the endpoint had traffic. ``model_quality`` is
    the scored window's regression ``statistics.json`` document (Model Monitor's; None without a labelled record)."""
    batch = capture.read_capture(aws, capture_uri, w, features)
    out: dict[str, Any] = {"row": None, "segments": None, "quarantined": [], "estimate": None, "model_quality": None,
                           "read_nothing": batch.read_nothing}  # nothing captured at all
    if estimator is not None and w.label in estimate:  # the day it closes, before any label
        out["estimate"] = estimates.estimate_window(estimator, w, batch.records)
    if score is not None and w.label not in score:
        return out
    keep = [c for c in batch.records.columns if c not in set(features) or c in segment_columns]
    rows = capture.join_ground_truth(batch.records[keep], labels)  # the metrics need no feature they do not cut by
    faults = len(batch.quarantined) + (label_faults or {}).get(w.label, 0)
    row, segments = evaluate_window(w, rows, faults, list(segment_columns))
    row.update(requests=batch.requests, input_only=batch.input_only, output_only=batch.output_only,
               **batch.line_counts())
    labelled = rows.dropna(subset=["year", "prediction"])
    quality = None if not len(labelled) else model_quality.regression_statistics(
        labelled["year"], labelled["prediction"], seed=int(w.start.timestamp()) % 2**31, evaluation_time=w.end)
    return {**out, "row": row, "segments": segments, "quarantined": batch.quarantined, "model_quality": quality}


def target_drift(target_baseline: drift.Baseline | None, current: pd.DataFrame, opts: dict) -> dict | None:
    """KS test of the window's labels against the training labels (None when too few labels have arrived)."""
    if target_baseline is None or data.TARGET not in current:
        return None
    labelled = current[[data.TARGET]].dropna().astype(float)
    if len(labelled) < MIN_LABELLED_FOR_TARGET:
        return None
    rep = drift.detect_drift(target_baseline, labelled, **{k: v for k, v in opts.items() if not k.startswith("dataset")})
    row = rep.table.loc[data.TARGET]
    return {"drifted": bool(row["drifted"]), "rows": int(len(labelled)), "statistic": float(row["statistic"]),
            "reason": row["reason"]}


@heap.releasing
def drift_window(aws: Aws, w: windows.Window, *, capture_uri: str, features: Sequence[str],
                 baseline: drift.Baseline | None, opts: dict, labels: pd.DataFrame | CompactLabels | None = None,
                 target_baseline: drift.Baseline | None = None,
                 mm_baseline: model_monitor.ModelMonitorBaseline | None = None,
                 mm_columns: dict[str, str] | None = None,
                 quality_constraints: model_monitor.Constraints | None = None,
                 quality_match: model_monitor.ColumnMatch | None = None,
                 explainer: attribution.Explainer | None = None) -> dict:
    """Drift of one window against the baseline: its report (None without traffic), target drift, rows, unreadable
    lines, the line accounting (``lines``, ``lines_read``, ``lines_quarantined``, ``lines_outside``), the feature
    values captured missing (``missing_values``, per feature with any), whether nothing was captured
    (``read_nothing``), and with a Model Monitor baseline (``mm_columns``: its features -> window columns) its
    ``baseline_drift`` table (:func:`model_monitor.baseline_drift`), with ``quality_constraints`` its data
    quality (:func:`window_quality`), and with an ``explainer`` the served model's global attributions on the
    window (``attributions``: mean |SHAP| per feature, :func:`attribution.global_attributions`). Without the
    suite's own ``baseline`` the report is Model Monitor's check alone (:func:`model_monitor.kll_drift_report`)."""
    current, batch = read_window(aws, capture_uri, w, features, labels)
    out = {"rows": int(len(current)), "quarantined": len(batch.quarantined), "report": None, "target": None,
           "read_nothing": batch.read_nothing, "baseline_drift": None,
           "missing_values": dict(batch.missing_values), "attributions": None, **batch.line_counts()}
    if len(current):
        if mm_baseline is not None:
            out["baseline_drift"] = model_monitor.baseline_drift(mm_baseline, current, mm_columns or {})
        out["report"] = drift.detect_drift(baseline, current[list(features) + [PREDICTION]], **opts) \
            if baseline is not None else kll_report(mm_baseline, out["baseline_drift"], opts, len(current))
        out["target"] = target_drift(target_baseline, current, opts)
        if quality_constraints is not None and quality_match is not None:
            out["quality"] = window_quality(quality_constraints, quality_match, current, batch, features,
                                            out["report"], out["baseline_drift"])
        if explainer is not None:
            out["attributions"] = attribution.global_attributions(explainer, current,
                                                                  seed=int(w.start.timestamp()) % 2**31)
    return out


def kll_report(mm_baseline: model_monitor.ModelMonitorBaseline, table: pd.DataFrame, opts: dict,
               n_current: int) -> drift.DriftReport:
    """The window's drift report decided by Model Monitor's check alone (``table``: its ``baseline_drift``)."""
    stats = mm_baseline.statistics
    missing = {name: f.num_missing / (f.num_present + f.num_missing) for name, f in stats.features.items()
               if f.num_present + f.num_missing}
    return model_monitor.kll_drift_report(table, opts, stats.item_count, n_current, PREDICTION, missing)


def window_quality(constraints: model_monitor.Constraints, match: model_monitor.ColumnMatch, current: pd.DataFrame,
                   batch: capture.CaptureBatch, features: Sequence[str], report: drift.DriftReport,
                   mm_drift: pd.DataFrame | None) -> model_monitor.WindowQuality:
    """One window's Model Monitor data-quality checks (:func:`model_monitor.check_window`).

    Values that were not numbers are counted from the window's quarantined lines (one per line whose reason names
    a feature's value as not a number; a header row counts for every feature). Drift: with a Model Monitor
    baseline its ``baseline_drift`` table (``mm_drift``), else the exact tests' drifted features, described by
    their reason."""
    mismatches: dict[str, int] = {}
    for q in batch.quarantined:
        for f in payloads.non_numeric_features(q["reason"], features):
            mismatches[f] = mismatches.get(f, 0) + 1
    if mm_drift is None:
        table = report.table
        mm_drift = pd.DataFrame({"baseline_feature": table.index.astype(str), "drifted": table["drifted"].astype(bool),
                                 "description": ["Exact two-sample test against the suite's baseline: " + str(r)
                                                 for r in table["reason"]]}, index=table.index)
    return model_monitor.check_window(constraints, current, match, type_mismatches=mismatches, drift=mm_drift)


# --- engines ------------------------------------------------------------------------------------------------

_SESSIONS: dict[tuple, Aws] = {}


def worker_session(cfg: Params, endpoint_url: str | None) -> Aws:
    """The AWS session of this worker process for ``cfg`` (opened once): the emulator's URL in local mode,
    the worker's own credential chain (its IAM role) in aws mode."""
    key = (cfg.aws_mode, cfg.region, cfg.profile, cfg.role_arn, endpoint_url)
    if key not in _SESSIONS:
        _SESSIONS[key] = connect(cfg, endpoint_url, faults=False) if cfg.aws_mode == "local" else connect(cfg)
    return _SESSIONS[key]


def _remote(fn: Callable, cfg: Params, endpoint_url: str | None, w: windows.Window, shared: dict,
            keeper: keeping.Keeper) -> Any:
    if type(keeping.current()) is not type(keeper):  # the worker keeps what the submitting process keeps
        keeping.install(keeper)
    return fn(worker_session(cfg, endpoint_url), w, **shared)


@contextlib.contextmanager
def dask_client(address: str = "", workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: to the scheduler at ``address``, or to a local cluster of worker processes
    (one per core, one thread each) started here and closed on exit."""
    from distributed import Client, LocalCluster

    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def run_windows(cfg: Params, aws: Aws, fn: Callable[..., Any], todo: Sequence[windows.Window],
                progress: bool = True, then: Callable[[windows.Window, Any], Any] | None = None,
                **shared: Any) -> list[Any]:
    """``fn(aws, w, **shared)`` for every window of ``todo``, in order, on the engine ``cfg.engine`` names.

    Parameters
    ----------
    cfg : Params
        ``engine`` (local: one window after the other in this process; dask: one Dask task per window on the
        cluster at ``dask_address``, or on a local cluster of worker processes when it is empty).
    aws : Aws
        This process's session (the local engine's; Dask workers open their own from ``cfg``).
    fn : Callable
        A module-level per-window function such as :func:`metrics_window` (Dask ships it by reference).
    todo : Sequence[windows.Window]
        Windows to process.
    progress : bool
        With Dask, show its progress bar (a widget in notebooks, text elsewhere).
    then : Callable, optional
        ``then(w, result)``, called in this process on each window's result as soon as it is here, in the order of
        ``todo`` (before the next window runs, with the local engine); what it returns is kept in the result's
        place. A stage writes a window's large outputs there and keeps a small summary, so that what it holds
        after the loop does not grow with the backlog.
    **shared
        Arguments every window gets (labels, baseline, options); Dask sends them to the workers once.

    Returns
    -------
    list
        One result per window (or what ``then`` made of it), in the order of ``todo``; both engines run the same
        function, so equal results.

    Notes
    -----
    The local engine lists each partition once for the whole backlog (:func:`capture.shared_listings`).
    Local mode's keeper (:mod:`keeping`) also keeps each window's result on disk (without injected faults),
    keyed by the window's capture objects (keys, ETags, sizes), ``fn``, every shared argument's contents and
    the package's source: the same world read again computes nothing, and any change computes again.
    """
    if not todo:
        return []
    if cfg.engine == "local":
        with capture.shared_listings(todo[0].start, todo[-1].end):  # each partition listed once for the backlog
            return keeping.current().each_window(aws, fn, shared, todo,
                                                 lambda w: capture.window_objects(aws, shared["capture_uri"], w), then)
    from distributed import progress as dask_progress

    with dask_client(cfg.dask_address) as client:
        scattered = (pd.DataFrame, CompactLabels, drift.Baseline, LossEstimator, model_monitor.ModelMonitorBaseline,
                     model_monitor.Constraints)
        sent = {k: client.scatter(v, broadcast=True) if isinstance(v, scattered) else v
                for k, v in shared.items()}
        futures = [client.submit(_remote, fn, cfg, aws.endpoint_url, w, sent, keeping.current(), key=f"{fn.__name__}-{w.label}", pure=False)
                   for w in todo]
        if progress:  # a widget in a notebook (shown here: Dask only returns it), a text bar elsewhere
            bar = dask_progress(futures, multi=False)
            if bar is not None:
                from IPython.display import display

                display(bar)
        then = then or (lambda w, res: res)
        out = []
        for w, future in zip(todo, futures):  # in order, each result let go on the cluster once it is here
            out.append(then(w, future.result()))
            future.release()
        return out

