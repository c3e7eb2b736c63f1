"""Bench: ``read_capture`` end to end on the local emulator against its floors and the per-line reader it replaced.

One day of single-record CSV invocations is written to the emulator (24 hourly objects), then, in the same
run, timed: the floor of fetching the bytes (listing and fetching every object concurrently), the floor of
parsing the same number of floats from one CSV buffer (pyarrow), the previous reader (one ``json.loads`` and
string split per line, kept here verbatim in effect so the ratio stays measurable), ``read_capture`` as it was
before every line was accounted for (the package at git ``--before``, default the commit before issue 22, loaded
from git into a package of its own) and today's columnar ``read_capture``, which must be at least as fast. ``--engines`` also times the candidate columnar engines on the bytes of one day (pyarrow's
JSON reader, polars' NDJSON reader, orjson per line; each followed by one vectorised numeric parse), those
that import. Local mode keeps what it read (``monitor_utils.local.caches``); the timed reads keep nothing, as in aws mode, so they
time the reader and not the kept copy (which is timed on a line of its own). Machines are shared and noisy: read
the ratios, not the seconds.
Run: python bench/ingest.py [--records 100000] [--repeats 3] [--engines] [--before 0caf036]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import importlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from monitor_utils import capture, config, data, local, windows
from monitor_utils.local import caches as object_cache
from monitor_utils.aws import connect, ensure_bucket, get_bytes, split_s3_uri

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
BEFORE = "0caf036"  # the commit before issue 22 (every captured line accounted for)


def package_at(ref: str, folder: Path) -> ModuleType:
    """``monitor_utils`` as it was at git ``ref``, extracted into ``folder`` and imported as ``monitor_utils_<ref>``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref, "monitor_utils"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    name = "monitor_utils_" + "".join(c if c.isalnum() else "_" for c in ref)
    (folder / "monitor_utils").rename(folder / name)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(f"{name}.capture")
    finally:
        sys.path.remove(str(folder))


def fetch_all(aws, uri: str, day: windows.Window) -> list[bytes]:
    """The fetch floor: list the window's objects and read them all, 8 at a time, as read_capture does."""
    bucket, _ = split_s3_uri(uri)
    keys = capture.keys_between(aws, uri, day.start - dt.timedelta(hours=1), day.end + dt.timedelta(hours=1))
    with ThreadPoolExecutor(capture.FETCH_WORKERS) as pool:
        return list(pool.map(lambda k: get_bytes(aws, bucket, k), keys))


def parse_floor(buffer: bytes, width: int) -> np.ndarray:
    """The parse floor: the same number of floats from one CSV buffer with pyarrow's multithreaded reader."""
    table = pa_csv.read_csv(io.BytesIO(buffer), read_options=pa_csv.ReadOptions(autogenerate_column_names=True))
    assert table.num_columns == width
    return np.column_stack([c.to_numpy() for c in table.columns])


def previous_read_capture(aws, uri: str, window: windows.Window) -> pd.DataFrame:
    """The reader before the columnar one: fetch, then per line json.loads, parse_time and parse_request."""
    features = data.FEATURES
    rows, blocks, preds = [], [], []
    for body in fetch_all(aws, uri, window):
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            meta = rec["eventMetadata"]
            t = capture.parse_time(meta["inferenceTime"])
            if not (window.start <= t < window.end):
                continue
            x, y, _ = capture.parse_request(rec, features)
            inference_id = meta.get("inferenceId") or None
            rows.append((meta["eventId"], inference_id, inference_id or meta["eventId"], t))
            blocks.append(x)
            preds.append(y)
    sizes = np.array([len(y) for y in preds])
    frame = pd.DataFrame({"event_id": np.repeat([r[0] for r in rows], sizes),
                          "inference_id": np.repeat(np.array([r[1] for r in rows], dtype=object), sizes),
                          "join_key": np.repeat([r[2] for r in rows], sizes),
                          "record_index": np.concatenate([np.arange(k) for k in sizes]),
                          "inference_time": pd.to_datetime(np.repeat(np.array([r[3] for r in rows], dtype=object), sizes),
                                                           utc=True),
                          "prediction": np.concatenate(preds)})
    records = pd.concat([frame, pd.DataFrame(np.vstack(blocks), columns=features)], axis=1)
    return records.sort_values(["inference_time", "join_key", "record_index"], kind="stable").reset_index(drop=True)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def engines(bodies: list[bytes], n: int, width: int, repeats: int) -> None:
    """Candidate columnar engines on the same bytes: each reads the lines, then converts the CSV bodies at once."""
    def numbers(strings: pa.Array) -> np.ndarray:
        return pc.cast(pc.split_pattern(strings, ",").flatten(), pa.float64()).to_numpy().reshape(-1, width)

    def with_pyarrow():
        for b in bodies:
            rows = pa_json.read_json(io.BytesIO(b)).to_struct_array().combine_chunks()
            numbers(pc.struct_field(rows, ["captureData", "endpointInput", "data"]))

    candidates = {"pyarrow JSON reader + pyarrow cast": with_pyarrow}
    try:
        import polars as pl

        def with_polars():
            for b in bodies:
                side = pl.read_ndjson(io.BytesIO(b))["captureData"].struct.field("endpointInput").struct.field("data")
                side.str.split(",").explode().cast(pl.Float64).to_numpy().reshape(-1, width)

        candidates["polars NDJSON reader + polars cast"] = with_polars
    except ImportError:
        print("  (polars does not import: skipped)")
    try:
        import orjson

        def with_orjson():
            for b in bodies:
                recs = [orjson.loads(line) for line in b.splitlines() if line.strip()]
                numbers(pa.array([r["captureData"]["endpointInput"]["data"] for r in recs]))

        candidates["orjson per line + pyarrow cast"] = with_orjson
    except ImportError:
        print("  (orjson does not import: skipped)")
    for name, fn in candidates.items():
        print(f"  {name:40s} {n / best(fn, repeats):>12,.0f} records/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", action="store_true", help="also time the candidate columnar engines")
    ap.add_argument("--before", default=BEFORE, help="git ref of the read_capture to compare with")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        before_capture = package_at(args.before, folder)
        run(args, before_capture)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, before_capture: ModuleType) -> None:
    """Write one day of capture to the emulator and time the readers on it (see the module docstring)."""
    rng = np.random.default_rng(1)
    x = data.generate(args.records, seed=5)[data.FEATURES].to_numpy()
    seconds = np.sort(rng.uniform(0, 86_400, args.records))
    times = [START + dt.timedelta(seconds=float(s)) for s in seconds]
    lines = [capture.capture_line(x[i], 2000.0 + i % 50, f"ev-{i}", f"inf-{i}", windows.iso(times[i]), "csv")
             for i in range(args.records)]
    floats = "".join(",".join(map(repr, r)) + "\n" for r in x.tolist()).encode()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    try:
        cfg = config.validate({"bucket": "bench-ingest"})
        aws = connect(cfg, server.url)
        ensure_bucket(aws, cfg.bucket)
        uri = capture.capture_uri_for(cfg.capture_uri, "bench", "AllTraffic")
        capture.write_hourly(aws, uri, pd.Series(times), lines, "cap")
        day = windows.Window(START, START + dt.timedelta(days=1))
        got = capture.read_capture(aws, uri, day)
        before = previous_read_capture(aws, uri, day)
        assert len(got.records) == len(before) == args.records, (len(got.records), len(before), args.records)
        pd.testing.assert_frame_equal(got.records, before, check_dtype=False)  # the same records, to the bit
        assert got.lines == got.lines_read == args.records and got.lines_outside == 0  # every line accounted for
        package = before_capture.__name__.rsplit(".", 1)[0]
        before_cache = sys.modules.get(package + ".object_cache")  # the package before keeps nothing either:
        if before_cache is not None:  # an old layout kept copies here; a newer one keeps only through the keeper
            before_cache.enabled = lambda aws: False  # installed in local mode (never in a package loaded aside)
        pd.testing.assert_frame_equal(before_capture.read_capture(aws, uri, day).records, got.records)

        n = args.records
        kept = best(lambda: capture.read_capture(aws, uri, day), args.repeats)  # local mode's copy, read again
        keeps = object_cache.enabled
        object_cache.enabled = lambda aws: False  # from here on nothing is kept or served from a copy, as in aws mode
        try:
            fetch = best(lambda: fetch_all(aws, uri, day), args.repeats)
            parse = best(lambda: parse_floor(floats, len(data.FEATURES)), args.repeats)
            previous = best(lambda: previous_read_capture(aws, uri, day), args.repeats)
            earlier, current, earlier_cpu, current_cpu = [], [], [], []
            for _ in range(args.repeats):  # interleaved: both see the same load on a shared machine
                for fn, wall, cpu in ((lambda: before_capture.read_capture(aws, uri, day), earlier, earlier_cpu),
                                      (lambda: capture.read_capture(aws, uri, day), current, current_cpu)):
                    c = time.process_time()
                    wall.append(best(fn, 1))
                    cpu.append(time.process_time() - c)  # this process's CPU (the emulator serving included)
            earlier, current, earlier_cpu, current_cpu = min(earlier), min(current), min(earlier_cpu), min(current_cpu)
        finally:
            object_cache.enabled = keeps
        print(f"one day of {n:,} single-record CSV invocations (24 objects) on the local emulator, records/s:")
        print(f"  floor: fetch the bytes             {n / fetch:>12,.0f}")
        print(f"  floor: parse {n * len(data.FEATURES):,} floats from one buffer {n / parse:>12,.0f}")
        print(f"  floor: both, one after the other   {n / (fetch + parse):>12,.0f}")
        print(f"  previous reader (per line)         {n / previous:>12,.0f}")
        print(f"  read_capture at {args.before} (before) {n / earlier:>12,.0f}")
        print(f"  read_capture (columnar)            {n / current:>12,.0f}")
        print(f"  read_capture, local mode's kept copy {n / kept:>10,.0f}  (a window read again, objects unchanged)")
        print(f"ratio read_capture / read_capture at {args.before} = {earlier / current:.2f}x (>= 1: no slower); "
              f"in CPU seconds {earlier_cpu / current_cpu:.2f}x (less swayed by other load on a shared machine)")
        print(f"ratio read_capture / previous reader = {previous / current:.2f}x; "
              f"read_capture takes {current / (fetch + parse):.2f}x the time of fetch + parse floors")
        if args.engines:
            print("candidate engines, parse only (bytes already fetched):")
            engines(fetch_all(aws, uri, day), n, len(data.FEATURES), args.repeats)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
