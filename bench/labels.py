"""Bench: reading a backlog's labels compactly (``capture.read_labels(..., compact=True)``): peak and held bytes a label.

A writer process serves the emulator and writes, straight into its store, ``--per-day`` labels a day over
``--days`` days as hourly ground-truth objects (as a labelling job files them: one object an hour, so an
endpoint taking a million invocations a day gives objects of about 42,000 lines). Most labels are the common
shape (one CSV value for a single-record request); ``--multi`` of them answer a 3-record request (JSON
``instances``), ``--relabel`` of the records are labelled again in a later hour (the latest label wins), and
every object holds one line that is not a label (quarantined).

Then a fresh process in aws mode against it (the production keeper, nothing kept) reads the whole range once,
as the metrics and drift stages do, and another reads its first half: each prints its peak resident memory
(``VmHWM``, read by the process itself; see ``bench/procmem.py``) above its own baseline after imports and a
read of an empty range, what it still holds after the read (``VmRSS``), both in bytes a label, and the labels
read a second. From the two reads, what a further label adds (the slope; what is there whatever the count, such
as the objects fetched ahead, is left out of it) and so what a 30-day backlog at a million labels a day (30M
labels) takes, against the issue's goal of 1.5 GB; ``--days 30`` measures that backlog itself (about 10 minutes).

``--regress`` reads the labels the previous way (every line through ``json.loads`` into Python strings and
lists, all parts concatenated, then sorted and copied whole: ``old_parse_ground_truth`` and ``old_build``
below), to show the bench sees the difference; both ways give the same labels.

Run: python bench/labels.py [--per-day 1000000] [--days 2] [--regress | --both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procmem  # noqa: E402  (bench/procmem.py)

START = "2026-01-05T00:00:00Z"
BUCKET = "bench-labels"
GOAL_MB = 1500.0  # issue 24: a 30-day backlog at a million labels a day held in at most 1.5 GB by each stage
BACKLOG_LABELS = 30_000_000


def params(mode: str) -> dict:
    return {"aws_mode": mode, "bucket": BUCKET, "now": START, "region": "us-east-1"}


def ground_truth(per_day: int, days: int, multi: float, relabel: float, seed: int = 24) -> Iterator[tuple[int, list]]:
    """(hour offset, lines) of each hourly object of the backlog, one hour at a time."""
    import numpy as np

    from monitor_utils import capture

    rng = np.random.default_rng(seed)
    per_hour = per_day // 24
    before: list[str] = []
    for h in range(days * 24):
        ids = rng.integers(0, 1 << 62, per_hour)
        years = rng.integers(1922, 2012, per_hour)
        many = rng.random(per_hour) < multi
        # the common line written from a template (what ground_truth_line gives: checked on each hour's first)
        lines = [capture.ground_truth_line(f"{i:032x}", [float(y), float(y) + 1, float(y) + 2]) if m else
                 f'{{"groundTruthData":{{"data":"{y}","encoding":"CSV"}},"eventMetadata":{{"eventId":"{i:032x}"}},'
                 f'"eventVersion":"0"}}' for i, y, m in zip(ids.tolist(), years.tolist(), many.tolist())]
        i, y, m = int(ids[0]), int(years[0]), bool(many[0])
        assert lines[0] == capture.ground_truth_line(f"{i:032x}", [float(y), float(y) + 1, float(y) + 2] if m else float(y))
        again = before[: int(per_hour * relabel)]  # some records of the hour before labelled again: the latest wins
        before = lines
        lines = lines + [line.replace('"data":"', '"data":"-') if '"CSV"' in line else line for line in again]
        lines.append('{"groundTruthData": {"data": "not a number", "encoding": "CSV"}, "eventMetadata": {"eventId": "x"}}')
        yield h, lines


def serve(per_day: int, days: int, multi: float, relabel: float) -> None:
    """The writer: serve the emulator here, write the labels into it, then serve until stopped."""
    from monitor_utils import capture, config

    with procmem.serving_here(params("local")) as (cfg, aws, local, stop):
        start = config.parse_time(START)
        bucket, base = capture.split_s3_uri(cfg.ground_truth_uri)
        from monitor_utils import windows

        for h, lines in ground_truth(per_day, days, multi, relabel):
            if stop.is_set():  # stopped while writing
                return
            hour = start + dt.timedelta(hours=h)
            key = windows.partition_prefix(base, hour) + f"00-00-000-gt{h:05d}.jsonl"
            procmem.put_here(aws, local.url, [(bucket, key, ("\n".join(lines) + "\n").encode())])
        print(f"emulator serving on {local.url}", flush=True)
        stop.wait()


# --- the previous way, for --regress --------------------------------------------------------------

def old_build(parts):
    """``CompactLabels.build`` before the bucketed build: every part concatenated, then sorted and copied whole."""
    import numpy as np

    from monitor_utils.labels import CompactLabels

    def field(i, dtype):
        out = np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.empty(0, dtype)
        for j, p in enumerate(parts):
            parts[j] = p[:i] + (None,) + p[i + 1:]
        return out

    h1, h2, index, year = field(0, np.uint64), field(1, np.uint64), field(2, np.int32), field(3, np.float64)
    order = np.argsort(h1, kind="stable")
    h1, h2, index, year = h1[order], h2[order], index[order], year[order]
    del order
    tied = np.flatnonzero(h1[1:] == h1[:-1])
    if len(tied):
        rows = np.union1d(tied, tied + 1)
        within = np.lexsort((index[rows], h2[rows], h1[rows]))
        h2[rows], index[rows], year[rows] = h2[rows][within], index[rows][within], year[rows][within]
    same_next = (h1[1:] == h1[:-1]) & (h2[1:] == h2[:-1]) & (index[1:] == index[:-1])
    if same_next.any():
        last = np.append(~same_next, True)
        h1, h2, index, year = h1[last], h2[last], index[last], year[last]
    new_key = np.append(True, (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])) if len(h1) else np.empty(0, bool)
    first = h1[new_key]
    same = first[1:] == first[:-1]
    shared = np.append(same, False) | np.append(False, same) if len(first) else np.empty(0, bool)
    return CompactLabels(h1, h2, index, year, int(shared.sum()))


def old_parse_ground_truth(aws, bucket, objects, compact=False):
    """``capture._parse_ground_truth`` with ``compact`` before the columnar pass: every line by ``json.loads``."""
    import numpy as np
    import pandas as pd

    from monitor_utils import capture, keeping, labels as label_store

    quarantined, counts, parts = [], [], []
    with ThreadPoolExecutor(capture.FETCH_WORKERS) as pool:
        bodies = capture.ahead(pool, lambda o: keeping.fetch(aws, bucket, o), objects, capture.READ_AHEAD)
        for obj, body in zip(objects, bodies):
            k, p, y, bad, lines = capture.parse_label_lines(obj.key, body)
            del body
            parts.append((*label_store.key_hashes(k), np.asarray(p, dtype=np.int32),
                          np.concatenate(y) if y else np.empty(0)))
            quarantined += bad
            counts.append((obj.key, capture.partition_hour(obj.key), lines, lines - len(bad), len(bad)))
    return capture.LabelBatch(old_build(parts), quarantined, pd.DataFrame(counts, columns=capture.LABEL_COUNTS))


# --- the measured child ---------------------------------------------------------------------------

def child(days: int, regress: bool) -> None:
    """Read the backlog's labels compactly in this fresh process and report its peak and what it holds."""
    from monitor_utils import capture, config, keeping
    from monitor_utils.aws import connect

    if regress:
        capture._parse_ground_truth = old_parse_ground_truth
    cfg = config.validate(params("aws"))
    aws = connect(cfg)
    assert aws.mode == "aws" and type(keeping.current()) is keeping.Keeper  # production: nothing kept
    start = config.parse_time(START)
    capture.read_labels(aws, cfg.ground_truth_uri, start - dt.timedelta(days=400), start - dt.timedelta(days=399),
                        compact=True)  # warm-up: lazy imports, botocore's model
    peak = procmem.Peak()
    batch = capture.read_labels(aws, cfg.ground_truth_uri, start, start + dt.timedelta(days=days), compact=True)
    lab = batch.labels
    result = peak.result(labels=len(lab), nbytes=lab.nbytes, collisions=lab.collisions,
                         quarantined=len(batch.quarantined), lines=int(batch.counts["lines"].sum()))
    digest = hashlib.sha1()  # after the figures: what both ways read, compared
    for a in (lab.h1, lab.h2, lab.record_index, lab.year):
        digest.update(memoryview(a))
    procmem.report({**result, "digest": digest.hexdigest()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-day", type=int, default=1_000_000, help="labels a day (one hourly object each hour)")
    ap.add_argument("--days", type=int, default=2, help="days of labels in the backlog read")
    ap.add_argument("--multi", type=float, default=0.01, help="share of labels answering a 3-record request")
    ap.add_argument("--relabel", type=float, default=0.02, help="share of an hour's labels given again the next hour")
    ap.add_argument("--regress", action="store_true", help="read the labels the previous way (see above)")
    ap.add_argument("--both", action="store_true", help="measure the previous way and this one, same labels")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.per_day, args.days, args.multi, args.relabel)
    if args.child:
        return child(args.days, args.regress)
    print(f"writing {args.days} days of {args.per_day:,} labels a day (hourly ground-truth objects; a writer process "
          "serving the emulator) ...", flush=True)
    # the current way over the whole backlog and over its first half (the growth a label: the slope), the
    # previous way over the whole backlog when asked
    runs = [(False, args.days), (False, max(1, args.days // 2))] if not args.regress else []
    runs += [(True, args.days)] if args.regress or args.both else []
    with procmem.Served([__file__, "--serve", "--per-day", str(args.per_day), "--days", str(args.days),
                         "--multi", str(args.multi), "--relabel", str(args.relabel)], timeout_s=7200) as served:
        env = procmem.aws_environment(served.url)
        got = {(way, days): procmem.run_child([__file__, "--child", "--days", str(days)] + (["--regress"] if way else []),
                                              env=env) for way, days in runs}
    print("read_labels(compact=True), each in a fresh process (VmHWM and VmRSS above its baseline after imports and "
          "an empty read):")
    for (way, days), r in got.items():
        k = r["labels"]
        print(f"  {'previous (--regress)' if way else 'current':<21} {days:>2} days, {k:,} labels ({r['lines']:,} lines, "
              f"{r['quarantined']:,} quarantined, {r['collisions']} first-hash collisions): peak {r['peak_mb']:,.0f} MB "
              f"({r['peak_mb'] * 1e6 / k:,.1f} B/label), held {r['held_mb']:,.0f} MB ({r['held_mb'] * 1e6 / k:,.1f} "
              f"B/label; arrays {r['nbytes'] / k:.0f} B/label), {k / r['seconds']:,.0f} labels/s [{r['digest'][:12]}]")
    for way in (False, True):
        full, half = got.get((way, args.days)), got.get((way, max(1, args.days // 2)))
        if full is None:
            continue
        k = full["labels"]
        if half is not None and half["labels"] < k:  # what a further label adds, and what is there whatever the count
            slope = {f: (full[f] - half[f]) * 1e6 / (k - half["labels"]) for f in ("peak_mb", "held_mb")}
            extra = {f: full[f] + slope[f] * (BACKLOG_LABELS - k) / 1e6 for f in slope}
            how = (f"a further label adds {slope['peak_mb']:.1f} B at peak, {slope['held_mb']:.1f} B held (the "
                   f"{args.days // 2}- and {args.days}-day reads): ")
        else:  # one point: every byte scaled with the labels (an upper bound)
            extra = {f: full[f] * BACKLOG_LABELS / k for f in ("peak_mb", "held_mb")}
            how = "scaled from one read (constant costs scaled too): "
        fits = "within" if extra["peak_mb"] <= GOAL_MB else "OVER"
        print(f"  {'previous' if way else 'current'}: 30M labels (30 days at a million a day): {how}peak "
              f"{extra['peak_mb']:,.0f} MB, held {extra['held_mb']:,.0f} MB: {fits} the goal of {GOAL_MB:,.0f} MB")
    if len({r["digest"] for (_, days), r in got.items() if days == args.days}) > 1:
        sys.exit("the two ways gave different labels")


if __name__ == "__main__":
    main()
