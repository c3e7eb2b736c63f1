"""Bench: a busy endpoint's window (1,000,000 single-record invocations) and a month of its labels, and what a first run over 30 days needs.

A writer process serves the emulator and writes, straight into its store (``emulator.put_objects_here``): one
daily window of ``--records`` single-record CSV invocations (24 hourly capture objects, as SageMaker writes
them), a label for every record landing over the ``--label-days`` days after the window (hourly ground-truth
objects), and a drift baseline (training features and predictions, training labels). Then, each in a fresh
process of its own in aws mode against it (nothing kept, the production keeper):

- the metrics per-window work: ``capture.read_labels`` of the month (timed and measured: the labels figure),
  then, from a high water mark reset after the labels are in memory, ``engine.metrics_window`` on the window
  with the label-free estimate, as the metrics stage runs it (a loss estimator fitted by the writer on a
  labelled reference of 5,000 records);
- the drift per-window work: the same labels, then ``engine.drift_window`` (with target drift).

Each prints its peak resident memory (VmHWM, read by the process itself, above its own baseline after imports
and a call on an empty window; see ``bench/procmem.py``) and records per second. Then what a first run over
``--days`` days at ``--records`` invocations a day needs on one machine, with the metrics and drift stages side
by side (``parallel_stages``, the default): for each stage, its baseline, plus the labels of the whole backlog
(the measured bytes a label, times the backlog's labels), plus its largest window's peak; against the 16 GiB of
an ml.m5.xlarge (the instance Model Monitor's schedules use). The labels are measured for one window's records
and scaled by the backlog's days (linear: one row per label); a window's join against the whole backlog's
labels, rather than its own, is not in the per-window figure.

Run: python bench/scale.py [--records 1000000] [--label-days 30] [--days 30]
     (--records 200000 for a quick run; the writer takes about a minute per 300,000 records)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procmem  # noqa: E402  (bench/procmem.py)

WINDOW_START = "2026-01-05T00:00:00Z"
BUCKET = "bench-scale"
BASELINE_KEY = "bench/baseline.bin"
TARGET_BASELINE_KEY = "bench/target_baseline.bin"
ESTIMATOR_KEY = "bench/loss_estimator.bin"  # the label-free estimator the metrics stage runs on every window
M5_XLARGE_MB = 16 * 1024**3 / 1e6  # 16 GiB


def params(mode: str) -> dict:
    return {"aws_mode": mode, "bucket": BUCKET, "now": WINDOW_START, "region": "us-east-1"}


def serve(records: int, label_days: int) -> None:
    """The writer: serve the emulator here, write the window, its labels and a baseline into it, then serve."""
    import numpy as np

    from monitor_utils import capture, config, data, drift, estimates, windows
    from monitor_utils.aws import put_bytes
    from monitor_utils.baseline import PREDICTION

    with procmem.serving_here(params("local")) as (cfg, aws, local, stop):
        uri = capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name)
        start = config.parse_time(WINDOW_START)
        rng = np.random.default_rng(24)
        seconds = np.sort(rng.uniform(0, 86_400, records))
        delays = rng.uniform(0, label_days * 86_400, records)  # each record's label lands within the month
        label_times, label_lines = [], []
        for hour in range(24):
            first, last = np.searchsorted(seconds, [hour * 3600, (hour + 1) * 3600])
            x = data.generate(int(last - first), seed=1000 + hour)
            predictions = x[data.TARGET].to_numpy() + rng.normal(0, 9, len(x))
            times = [start + dt.timedelta(seconds=float(s)) for s in seconds[first:last]]
            lines = [capture.capture_line(row, float(p), f"ev-{i}", f"inf-{i}", windows.iso(t), "csv")
                     for i, row, p, t in zip(range(first, last), x[data.FEATURES].to_numpy(), predictions, times)]
            procmem.put_here(aws, local.url, capture.hourly_objects(uri, times, lines, "cap"))
            label_times += [t + dt.timedelta(seconds=float(d)) for t, d in zip(times, delays[first:last])]
            label_lines += [capture.ground_truth_line(f"inf-{i}", float(y))
                            for i, y in zip(range(first, last), x[data.TARGET])]
            print(f"  capture hour {hour:02d}: {len(lines):,} records", flush=True)
            del lines, x
        procmem.put_here(aws, local.url, capture.hourly_objects(cfg.ground_truth_uri, label_times, label_lines, "gt"))
        del label_times, label_lines
        train = data.generate(20_000, seed=1)
        reference = train[data.FEATURES].assign(**{PREDICTION: train[data.TARGET] + rng.normal(0, 9, len(train))})
        put_bytes(aws, BUCKET, BASELINE_KEY, drift.build_baseline(reference).to_bytes())
        put_bytes(aws, BUCKET, TARGET_BASELINE_KEY, drift.build_baseline(train[[data.TARGET]].astype(float)).to_bytes())
        test = data.generate(5_000, seed=2)  # the estimator's labelled reference (the served model's test split)
        test[PREDICTION] = test[data.TARGET] + rng.normal(0, 9, len(test))
        put_bytes(aws, BUCKET, ESTIMATOR_KEY, estimates.fit_estimator(test, list(data.FEATURES), records).to_bytes())
        print(f"emulator serving on {local.url}", flush=True)
        stop.wait()


def child(what: str, label_days: int) -> None:
    """Measure the metrics (or drift) per-window work of the window, after reading the month of labels."""
    from monitor_utils import capture, config, data, drift, engine, keeping, windows
    from monitor_utils.aws import connect, get_bytes

    cfg = config.validate(params("aws"))
    aws = connect(cfg)
    assert aws.mode == "aws" and type(keeping.current()) is keeping.Keeper  # production: nothing kept
    w = windows.containing(config.parse_time(WINDOW_START), "daily")
    empty = windows.Window(w.start - dt.timedelta(days=400), w.start - dt.timedelta(days=399))
    shared = {"capture_uri": capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name, cfg.variant_name),
              "features": list(data.FEATURES)}
    fn = engine.metrics_window
    if what == "metrics":  # as the metrics stage calls it: with the window's label-free estimate
        from monitor_utils.estimation import LossEstimator

        shared.update(estimator=LossEstimator.from_bytes(get_bytes(aws, BUCKET, ESTIMATOR_KEY)),
                      estimate={w.label, empty.label})
    if what == "drift":
        shared.update(baseline=drift.Baseline.from_bytes(get_bytes(aws, BUCKET, BASELINE_KEY)),
                      target_baseline=drift.Baseline.from_bytes(get_bytes(aws, BUCKET, TARGET_BASELINE_KEY)),
                      opts=drift.detector_options(cfg.drift))
        fn = engine.drift_window
    fn(aws, empty, labels=capture.read_labels(aws, cfg.ground_truth_uri, empty.start, empty.end, compact=True).labels, **shared)
    peak = procmem.Peak()
    labels = capture.read_labels(aws, cfg.ground_truth_uri, w.start, w.end + dt.timedelta(days=label_days), compact=True).labels
    read = peak.result(labels=int(len(labels)))
    print(f"labels read: {read}", file=sys.stderr)
    peak.rebase()
    res = fn(aws, w, labels=labels, **shared)
    records = res["row"]["captured"] if what == "metrics" else res["rows"]
    procmem.report(peak.result(records=records, labels_read=read))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="single-record CSV invocations in the window")
    ap.add_argument("--label-days", type=int, default=30, help="days over which the window's labels land")
    ap.add_argument("--days", type=int, default=30, help="the first run's backlog (days) the projection is for")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=("metrics", "drift"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.records, args.label_days)
    if args.child:
        return child(args.child, args.label_days)
    print(f"writing one window of {args.records:,} single-record CSV invocations and their labels over "
          f"{args.label_days} days (a writer process serving the emulator) ...", flush=True)
    with procmem.Served([__file__, "--serve", "--records", str(args.records), "--label-days", str(args.label_days)],
                        timeout_s=7200) as served:
        env = procmem.aws_environment(served.url)
        runs = {what: procmem.run_child([__file__, "--child", what, "--label-days", str(args.label_days)], env=env)
                for what in ("metrics", "drift")}
    print_figures(args, runs)


def print_figures(args, runs: dict) -> None:
    m, d = runs["metrics"], runs["drift"]
    n, labels = m["records"], m["labels_read"]
    k = labels["labels"]
    held_per_label = labels["held_mb"] / k
    print(f"\none window of {n:,} records (each stage's per-window work in a fresh process; peak resident memory, "
          "VmHWM, above its own baseline):")
    print(f"  labels: read_labels of {k:,} labels over {args.label_days} days: peak {labels['peak_mb']:,.0f} MB, "
          f"held {labels['held_mb']:,.0f} MB ({held_per_label * 1e6:,.0f} bytes a label), "
          f"{k / labels['seconds']:,.0f} labels/s")
    for name, run in (("metrics (engine.metrics_window)", m), ("drift (engine.drift_window)", d)):
        print(f"  {name:<32} peak {run['peak_mb']:8,.0f} MB above baseline+labels ({run['base_mb']:,.0f} MB), "
              f"{run['records'] / run['seconds']:9,.0f} records/s ({run['seconds']:.1f} s; "
              f"largest 20 ms sample of VmRSS {run['sampled_mb']:,.0f} MB)")
    backlog_labels = args.days * k
    total = 0.0
    print(f"a first run over {args.days} days at {n:,} invocations a day (metrics and drift side by side, "
          f"{backlog_labels:,} labels in the backlog, each stage holding them):")
    for name, run in (("metrics", m), ("drift", d)):
        import_mb = run["labels_read"]["base_mb"]
        labels_mb = held_per_label * backlog_labels
        reading = labels["peak_mb"] / k * backlog_labels
        need = import_mb + max(reading, labels_mb + run["peak_mb"])
        total += need
        print(f"  {name:<8} {import_mb:6,.0f} MB after imports + max(reading the labels {reading:7,.0f} MB, "
              f"holding them {labels_mb:7,.0f} MB + one window {run['peak_mb']:6,.0f} MB) = {need:8,.0f} MB")
    fits = "fits" if total <= M5_XLARGE_MB else "does NOT fit"
    print(f"  together: {total:,.0f} MB against the {M5_XLARGE_MB:,.0f} MB (16 GiB) of an ml.m5.xlarge: {fits}")


if __name__ == "__main__":
    main()
