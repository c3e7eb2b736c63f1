"""Bench: peak memory of the per-window work per million records, each figure in a process doing only that thing.

The emulator serves a simulated world of ``--records`` single-record CSV invocations a day in a process of its
own (``python -m monitor_utils emulator``: it builds the world, then serves it); the setup stage runs once, in
aws mode against it, in another. Then each figure is measured in a fresh process (aws mode: the production
keeper, nothing kept on disk or between runs), as its peak resident memory (``VmHWM``, read by that process
itself) above its own baseline after its imports. VmHWM belongs to the process's address space and exec
starts a new one, so a child's VmHWM is its own; ``ru_maxrss`` is kept across exec and starts at the parent's
size (the previous bench measured its parent that way); ``bench/procmem.py`` has the details:

- bytes: the raw size of the capture objects one window reads (its hourly partitions and the hour either side);
- fetch: fetching those objects into memory, all held at once (8 at a time, as ``read_capture`` fetches);
- read_capture: reading the window (fetch, parse, records frame);
- metrics: ``engine.metrics_window`` with labels and the loss estimator, as the metrics stage calls it (read,
  parse, join, metrics with bootstrap intervals, the window's label-free estimate);
- drift: ``engine.drift_window`` (read, parse, join, the drift tests, target drift);
- labels: ``capture.read_labels`` of the whole backlog (peak while reading, and what the result holds);
- the whole metrics stage and the whole drift stage (``stages.run('10_metrics')``, ``stages.run('20_drift')``, aws mode)
  each over a backlog of 3 windows, then of 12, and
  the ratio of the two peaks with the growth beside what the compact labels the two runs read hold (their
  ``nbytes``): the peak should follow the window, growing by no more than the labels.

The per-window children first read the labels the window's records get (those collected from its start to
``--label-days`` after its end) and reset their high water mark after that (``/proc/self/clear_refs``): the
labels' own cost is the labels figure. Their baseline is taken after imports and one call of the same work
on an empty window (which imports what the work imports lazily and loads botocore's S3 model).

Stage runs use ``label_wait_days: 0`` so that a backlog of N windows is exactly N windows read (scored and
estimated); the second run starts where the first published, so it has a backlog of its own.

``--regress`` applies a deliberate regression in the measured children, to show the bench sees it:
``bootstrap-at-once`` (``metrics.bootstrap_intervals`` draws all n_boot x n indices at once) or ``hold-windows``
(every window's records are kept until the process ends).

Run: python bench/memory.py [--records 20000] [--backlogs 3 12] [--regress bootstrap-at-once]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procmem  # noqa: E402  (bench/procmem.py)

WORLD_END = "2026-01-20T00:00:00Z"  # the pinned clock of the world (no wall clock)
BUCKET = "bench-memory"
REGRESSIONS = ("none", "bootstrap-at-once", "hold-windows")
STAGES = ("10_metrics", "20_drift")  # the stages measured over two backlogs
_HELD: list = []


# --- what a child measures --------------------------------------------------------------------------------

def apply_regression(name: str) -> None:
    """Make the per-window work worse on purpose (see the module's docstring)."""
    from monitor_utils import capture, metrics

    if name == "bootstrap-at-once":
        original = metrics.bootstrap_intervals

        def at_once(actuals, predictions, **kw):
            return original(actuals, predictions, **{**kw, "chunk_values": 1 << 62})

        metrics.bootstrap_intervals = at_once
    elif name == "hold-windows":
        read = capture.read_capture

        def holding(*a, **kw):
            batch = read(*a, **kw)
            _HELD.append(batch)
            return batch

        capture.read_capture = holding  # the module engine reads windows through


def window_labels(batch):
    """What the per-window functions take as ``labels`` from what :func:`capture.read_labels` returns (read with
    ``compact=True``, as the metrics and drift stages read them: :class:`labels.CompactLabels`)."""
    return batch.labels


def label_count(labels) -> int:
    return int(len(labels))


def child(args) -> None:
    """One measurement, in this fresh process; prints its result (:func:`procmem.report`)."""
    from concurrent.futures import ThreadPoolExecutor

    from monitor_utils import capture, config, engine, keeping, stages, windows  # noqa: F401
    from monitor_utils.aws import connect, split_s3_uri
    from monitor_utils.baseline import feature_names, load_baseline, load_target_baseline
    from monitor_utils.stages import drift as drift_stage

    cfg = config.load([args.params], args.param or [])
    aws = connect(cfg)
    assert aws.mode == "aws" and type(keeping.current()) is keeping.Keeper  # production: nothing kept
    apply_regression(args.regress)
    uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
    what = args.child
    if what == "setup":
        res = stages.run("00_setup", cfg, aws, config.parse_time(cfg.now))
        return procmem.report({"changes": len(res.record["changes"])})
    if what.startswith("stage:"):  # stage:10_metrics or stage:20_drift
        now = config.parse_time(cfg.now)
        read, got = capture.read_labels, []

        def counting(*a, **kw):  # the labels the stage reads (count, and bytes held compactly)
            batch = read(*a, **kw)
            got.append((len(batch.labels), getattr(batch.labels, "nbytes", 0)))
            return batch

        capture.read_labels = counting
        peak = procmem.Peak()
        res = stages.run(what.partition(":")[2], cfg, aws, now)
        done = res.record.get("windows_published", res.record.get("windows_checked", []))
        return procmem.report(peak.result(windows=len(done), estimated=len(res.record.get("windows_estimated", [])),
                                          labels=sum(n for n, _ in got), labels_mb=sum(b for _, b in got) / 1e6))
    w = windows.containing(config.parse_time(args.window or cfg.now), "daily")
    empty = windows.Window(w.start - dt.timedelta(days=400), w.start - dt.timedelta(days=399))  # no data there
    features = feature_names(aws, cfg)
    if what in ("metrics", "drift"):
        shared = {"capture_uri": uri, "features": features}
        fn = engine.metrics_window
        if what == "metrics":  # the stage's work: with the label-free estimate of the window (setup fitted it)
            from monitor_utils import estimates

            estimator = estimates.load_estimator(aws, cfg)
            assert estimator is not None, "setup stored no loss estimator: the metrics figure would leave it out"
            shared.update(estimator=estimator, estimate={w.label, empty.label})
        if what == "drift":
            baseline, _ = load_baseline(aws, cfg)
            shared.update(baseline=baseline, opts=drift_stage.detector_options(cfg),
                          target_baseline=load_target_baseline(aws, cfg))
            fn = engine.drift_window
        fn(aws, empty, labels=window_labels(capture.read_labels(aws, cfg.ground_truth_uri, empty.start, empty.end, compact=True)),
           **shared)  # warm-up: lazy imports, botocore's model
        labels = window_labels(capture.read_labels(aws, cfg.ground_truth_uri, w.start,
                                                   w.end + dt.timedelta(days=args.label_days), compact=True))
        peak = procmem.Peak()
        labels_mb = peak.rebase()
        res = fn(aws, w, labels=labels, **shared)
        records = res["row"]["captured"] if what == "metrics" else res["rows"]
        estimated = (res["estimate"] or {}).get("records") if what == "metrics" else None
        return procmem.report(peak.result(records=records, labels=label_count(labels), labels_held_mb=labels_mb,
                                          estimated=estimated))
    if what == "labels":
        capture.read_labels(aws, cfg.ground_truth_uri, empty.start, empty.end, compact=True)  # warm-up
        end = config.parse_time(cfg.now)
        peak = procmem.Peak()
        labels = window_labels(capture.read_labels(aws, cfg.ground_truth_uri, end - dt.timedelta(days=args.days), end,
                                                   compact=True))
        return procmem.report(peak.result(labels=label_count(labels)))
    capture.read_capture(aws, uri, empty, features)  # warm-up
    peak = procmem.Peak()
    if what == "fetch":
        bucket, _ = split_s3_uri(uri)
        objects = capture.window_objects(aws, uri, w)
        with ThreadPoolExecutor(capture.FETCH_WORKERS) as pool:
            bodies = list(pool.map(lambda o: keeping.fetch(aws, bucket, o), objects))
        return procmem.report(peak.result(bytes=sum(len(b) for b in bodies), objects=len(bodies),
                                          listed_bytes=sum(o.size for o in objects)))
    batch = capture.read_capture(aws, uri, w, features)
    return procmem.report(peak.result(records=int(len(batch.records)), lines=batch.lines))


# --- the parent: serve the world, run the children, print ------------------------------------------------------

def world_params(records: int, days: int) -> dict:
    return {"aws_mode": "local", "bucket": BUCKET, "now": WORLD_END, "days": days, "scenario": "stable", "seed": 7,
            "label_wait_days": 0,
            "world": {"requests_per_day": records, "capture_formats": ["csv"], "train_rows": 20000, "test_rows": 5000}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000, help="single-record CSV invocations a day (at most 200,000)")
    ap.add_argument("--backlogs", type=int, nargs=2, default=(3, 12), metavar=("FIRST", "SECOND"),
                    help="windows in the metrics stage's first run, then in the second")
    ap.add_argument("--label-days", type=float, default=3.0,
                    help="days after a window whose labels the per-window children join")
    ap.add_argument("--regress", choices=REGRESSIONS, default="none", help="a deliberate regression (see above)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("-p", "--param", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--window", help=argparse.SUPPRESS)
    ap.add_argument("--days", type=float, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    first, second = args.backlogs
    if first < 2 or second < 1:
        ap.error("--backlogs: the first run's backlog is its 'days' parameter, at least 2; the second at least 1")
    days = first + second
    end = dt.datetime.fromisoformat(WORLD_END.replace("Z", "+00:00"))
    start = end - dt.timedelta(days=days)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        (folder / "world.yaml").write_text(yaml.safe_dump(world_params(args.records, days)))
        served_params = folder / "aws.yaml"
        print(f"building and serving a world of {days} days x {args.records:,} single-record CSV invocations "
              "(python -m monitor_utils emulator, a process of its own) ...", flush=True)
        with procmem.Served(["-m", "monitor_utils", "emulator", "-f", str(folder / "world.yaml"),
                             "--write-params", str(served_params)]) as served:
            env = procmem.aws_environment(served.url)
            base = [__file__, "--params", str(served_params), "-p", f"outbox_dir={folder / 'outbox'}",
                    "--regress", args.regress]

            def measure(what: str, *extra: str) -> dict:
                return procmem.run_child([*base, "--child", what, *extra], env=env)

            measure("setup")
            window = (start + dt.timedelta(days=1)).isoformat()  # a window with full days on both sides
            per_window = {what: measure(what, "--window", window, "--label-days", str(args.label_days))
                          for what in ("fetch", "read", "metrics", "drift")}
            labels = measure("labels", "--days", str(days))
            stage_now = [start + dt.timedelta(days=first), start + dt.timedelta(days=days)]
            stages = {stage: [measure(f"stage:{stage}", "-p", f"now={now.isoformat()}", "-p", f"days={first}")
                              for now in stage_now] for stage in STAGES}
    print_figures(args, per_window, labels, stages, days)


def print_figures(args, per_window: dict, labels: dict, stages: dict[str, list[dict]], days: int) -> None:
    n = per_window["read"]["records"]
    raw = per_window["fetch"]["bytes"] / 1e6
    per_m = 1e6 / n

    def line(name: str, run: dict, extra: str = "") -> None:
        mb = run["peak_mb"]
        print(f"  {name:<44} {mb * per_m:9,.0f} MB per million records   {mb / raw:5.2f}x the bytes{extra}"
              f"   (VmRSS sampled every 20 ms: {run['sampled_mb'] * per_m:,.0f})")

    print(f"\nper window ({n:,} records, {per_window['fetch']['objects']} capture objects; each figure in a fresh "
          f"process, peak resident memory (VmHWM) above its own baseline; regression: {args.regress}):")
    print(f"  {'raw capture bytes the window reads':<44} {raw * per_m:9,.0f} MB per million records "
          f"({raw * 1e6 / n:,.0f} bytes a record)")
    line("fetch floor (the objects held at once)", per_window["fetch"])
    line("capture.read_capture", per_window["read"],
         f"   {n / per_window['read']['seconds']:,.0f} records/s")
    line("engine.metrics_window (labels, estimate)", per_window["metrics"],
         f"   {n / per_window['metrics']['seconds']:,.0f} records/s; {per_window['metrics']['estimated']:,} estimated")
    line("engine.drift_window (with labels)", per_window["drift"],
         f"   {n / per_window['drift']['seconds']:,.0f} records/s")
    k = labels["labels"]
    print(f"labels: capture.read_labels of the {days}-day backlog ({k:,} labels): peak "
          f"{labels['peak_mb'] * 1e6 / k:,.0f} MB per million labels, the result holds "
          f"{labels['held_mb'] * 1e6 / k:,.0f} MB per million ({labels['held_mb'] * 1e6 / k:,.0f} bytes a label); "
          f"{k / labels['seconds']:,.0f} labels/s")
    for stage, runs in stages.items():
        print(f"the whole {stage[3:]} stage (stages.run('{stage}'), aws mode, first run then the next backlog):")
        for backlog, run in zip(args.backlogs, runs):
            print(f"  backlog of {backlog:>2} windows ({run['windows']} done, {run['estimated']} estimated): peak "
                  f"{run['peak_mb']:8,.0f} MB above its baseline ({run['base_mb']:,.0f} MB after imports) = "
                  f"{run['peak_mb'] * per_m:7,.0f} MB per million records a window; {run['seconds']:.1f} s")
        growth = runs[1]["peak_mb"] - runs[0]["peak_mb"]
        labels_growth = runs[1]["labels_mb"] - runs[0]["labels_mb"]
        print(f"  backlog {args.backlogs[1]} / backlog {args.backlogs[0]}: {runs[1]['peak_mb'] / runs[0]['peak_mb']:.2f}x "
              f"({growth:+,.0f} MB; the compact labels read: {runs[0]['labels']:,} then {runs[1]['labels']:,}, "
              f"{runs[0]['labels_mb']:,.1f} then {runs[1]['labels_mb']:,.1f} MB, {labels_growth:+,.1f} MB)")


if __name__ == "__main__":
    main()
