"""Bench: peak memory per million records of the per-window work, and that it follows the window, not the backlog.

The emulator (in this process) holds ``--days`` days of ``--records`` single-record CSV invocations a day, with
their labels. A fresh child process then runs the metrics stage's per-window function
(``engine.metrics_window``: read the window's objects, parse, join labels, metrics) over the first window,
then over all of them, one at a time, and reports its peak resident memory (ru_maxrss) above what it held
before the first window. Peak per window / records per window gives the memory per million records. The
floor, in another fresh process: only fetching each window's objects into memory with boto3. Nothing is kept
between runs (local mode's ``caches`` is off in the child, as in aws mode).
Run: python bench/memory.py [--records 100000] [--days 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import subprocess
import sys

import numpy as np
import pandas as pd

from monitor_utils import capture, config, data, local, windows
from monitor_utils.aws import connect, ensure_bucket, get_bytes, split_s3_uri

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
BUCKET = "bench-memory"


def rss_mb() -> float:
    """Resident memory now (MB)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 1e6


def child(url: str, days: int, floor: bool) -> None:
    """Run the per-window work (or, for the floor, only fetch each window's objects into memory) over ``days``
    windows; print JSON with memory before, after one window, after all."""
    from monitor_utils import engine
    from monitor_utils.local import caches as object_cache

    object_cache.enabled = lambda aws: False  # every window read and parsed, as in aws mode (no kept copies)
    cfg = config.validate({"bucket": BUCKET})
    aws = connect(cfg, url)
    uri = capture.capture_uri_for(cfg.capture_uri, "bench", "AllTraffic")
    labels, _ = capture.read_ground_truth(aws, cfg.ground_truth_uri, START, START + dt.timedelta(days=days + 1))
    todo = windows.windows_between(START, START + dt.timedelta(days=days), "daily")
    empty = windows.Window(START - dt.timedelta(days=2), START - dt.timedelta(days=1))  # imports, without data
    engine.metrics_window(aws, empty, capture_uri=uri, features=data.FEATURES, labels=labels)
    before = rss_mb()
    out = {"before_mb": before, "records": []}
    for i, w in enumerate(todo):
        if floor:
            bucket, _ = split_s3_uri(uri)
            keys = capture.keys_between(aws, uri, w.start - dt.timedelta(hours=1), w.end + dt.timedelta(hours=1))
            bodies = [get_bytes(aws, bucket, k) for k in keys]
            out["records"].append(sum(body.count(b"\n") for body in bodies))
            del bodies
        else:
            res = engine.metrics_window(aws, w, capture_uri=uri, features=data.FEATURES, labels=labels)
            out["records"].append(res["row"]["captured"])
        if i == 0:
            out["peak_one_window_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    out["peak_all_windows_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000, help="single-record CSV invocations per day")
    ap.add_argument("--days", type=int, default=3, help="windows (days) in the backlog")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.days, args.floor)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    try:
        cfg = config.validate({"bucket": BUCKET})
        aws = connect(cfg, server.url)
        ensure_bucket(aws, BUCKET)
        uri = capture.capture_uri_for(cfg.capture_uri, "bench", "AllTraffic")
        rng = np.random.default_rng(2)
        for day in range(args.days):
            n = args.records
            x = data.generate(n, seed=10 + day)
            times = [START + dt.timedelta(days=day, seconds=float(s)) for s in np.sort(rng.uniform(0, 86_400, n))]
            lines = [capture.capture_line(row, 2000.0, f"ev-{day}-{i}", f"inf-{day}-{i}", windows.iso(t), "csv")
                     for i, (row, t) in enumerate(zip(x[data.FEATURES].to_numpy(), times))]
            capture.write_hourly(aws, uri, pd.Series(times), lines, "cap")
            gt = [capture.ground_truth_line(f"inf-{day}-{i}", float(y)) for i, y in enumerate(x["year"])]
            capture.write_hourly(aws, cfg.ground_truth_uri, pd.Series(times), gt, "gt")
        runs = {}
        for floor in (True, False):  # each in a fresh process
            got = subprocess.run([sys.executable, __file__, "--child", server.url, "--days", str(args.days)]
                                 + (["--floor"] if floor else []), check=True, capture_output=True, text=True)
            runs[floor] = json.loads(got.stdout.strip().splitlines()[-1])
        out = runs[False]
    finally:
        server.stop()
    per_window = float(np.mean(out["records"]))
    one, every = out["peak_one_window_mb"] - out["before_mb"], out["peak_all_windows_mb"] - out["before_mb"]
    print(f"per-window work (read, parse, join, metrics) on {per_window:,.0f} records a window, "
          f"{len(out['records'])} windows, in a fresh process holding {out['before_mb']:.0f} MB before:")
    print(f"  peak above that after the first window:  {one:8.0f} MB")
    print(f"  peak above that after all {len(out['records'])} windows:   {every:8.0f} MB "
          f"(ratio {every / one:.2f}: memory follows the window, not the backlog)")
    base = runs[True]["peak_all_windows_mb"] - runs[True]["before_mb"]
    print(f"  floor: only fetching each window's objects into memory (boto3), peak above start: {base:8.0f} MB")
    print(f"peak memory per million records = {every / per_window * 1e6:,.0f} MB "
          f"(floor: fetching the bytes {base / per_window * 1e6:,.0f} MB; ratio {every / base:.2f}x)")


if __name__ == "__main__":
    main()
