"""Bench: ``read_capture`` end to end on the local emulator against its floors and the per-line reader it replaced.

One day of single-record CSV invocations is written to the emulator (24 hourly objects), then, in the same
run, timed: the floor of fetching the bytes (listing and fetching every object concurrently; its CPU too), the
floor of parsing the same number of floats from one CSV buffer (pyarrow), the previous reader (one ``json.loads``
and string split per line, kept here verbatim in effect so the ratio stays measurable), ``read_capture`` as it was
at git ``--before`` (loaded from git into a package of its own) and today's ``read_capture``, interleaved so both
see the same load, in wall and CPU seconds. ``--engines`` also times, on one thread and in CPU seconds, the
candidate engines on the bytes of one day (pyarrow's JSON reader with an explicit schema, the layout cut of
``monitor_utils.capture_layout``, polars' NDJSON reader, orjson per line; the floats by pyarrow's split and cast,
string views built with numpy, pyarrow's CSV reader or polars), those that import, and the parts of today's pass.
``--redundant-pass`` checks the bench itself: today's reader parses every object twice, and its ratio must fall.
Local mode keeps what it read (``monitor_utils.local.caches``); the timed reads keep nothing, as in aws mode, so
they time the reader and not the kept copy (which is timed on a line of its own). Machines are shared and noisy:
read the ratios, not the seconds.
Run: python bench/ingest.py [--records 100000] [--repeats 3] [--engines] [--before 0caf036] [--redundant-pass]
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

from monitor_utils import capture, capture_layout, config, data, local, reader, windows
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


def cpu_best(fn, repeats: int) -> float:
    """The least CPU seconds (this process, every thread) of ``repeats`` calls: less swayed by a shared machine."""
    times = []
    for _ in range(repeats):
        c = time.process_time()
        fn()
        times.append(time.process_time() - c)
    return min(times)


def string_view_cells(rows: pa.Array, width: int) -> pa.Array:
    """The cells of CSV rows as Arrow string views over the rows' bytes, built with numpy from the comma positions
    (no split copy; every row must hold ``width`` cells): tried for issue 24, slower than pyarrow's split."""
    rows = rows.cast(pa.string())
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset + len(rows) + 1]
    data = np.frombuffer(rows.buffers()[2], dtype=np.uint8)[: offsets[-1]]
    commas = np.flatnonzero(data == 44).reshape(len(rows), width - 1)
    assert ((commas[:, 0] >= offsets[:-1]) & (commas[:, -1] < offsets[1:])).all()
    start, end = np.empty((len(rows), width), dtype=np.int64), np.empty((len(rows), width), dtype=np.int64)
    start[:, 0], end[:, -1] = offsets[:-1], offsets[1:]
    start[:, 1:], end[:, :-1] = commas + 1, commas
    return capture_layout.views(rows.buffers()[2], start.ravel(), end.ravel())


def engines(bodies: list[bytes], n: int, width: int, repeats: int) -> None:
    """Candidate columnar engines on the same bytes, one thread: each reads the lines, then converts the CSV
    bodies to floats; then the parts of today's pass (CPU, every candidate on one core)."""
    def numbers(strings: pa.Array) -> np.ndarray:
        return pc.cast(pc.split_pattern(strings.cast(pa.string()), ",").flatten(), pa.float64()).to_numpy().reshape(-1, width)

    def json_rows(b: bytes) -> pa.Array:
        options = pa_json.ReadOptions(use_threads=False, block_size=max(reader.READ_BLOCK, len(b) + 1))
        table = pa_json.read_json(io.BytesIO(b), read_options=options, parse_options=reader.PARSE_OPTIONS)
        return pc.struct_field(table.to_struct_array().combine_chunks(), ["captureData", "endpointInput", "data"])

    def cut_rows(b: bytes) -> pa.Array:
        cut = capture_layout.cut(b)
        return capture_layout.views(b, *cut.spans["data"])

    cuts = [capture_layout.cut(b) for b in bodies]
    rows = [capture_layout.views(b, *c.spans["data"]).cast(pa.string()) for b, c in zip(bodies, cuts)]
    split = [pc.split_pattern(r, ",").flatten() for r in rows]
    candidates = {
        "pyarrow JSON reader (explicit schema) + split/cast": lambda: [numbers(json_rows(b)) for b in bodies],
        "layout cut (byte positions) + split/cast": lambda: [numbers(cut_rows(b)) for b in bodies],
        "layout cut + string_view cells (numpy) + cast": lambda: [
            pc.cast(string_view_cells(cut_rows(b), width), pa.float64()) for b in bodies],
        "layout cut + pyarrow CSV reader (rows joined)": lambda: [
            pa_csv.read_csv(pa.BufferReader(pc.binary_join_element_wise(cut_rows(b).cast(pa.string()), "", "\n")
                                            .buffers()[2]),
                            read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False),
                            convert_options=pa_csv.ConvertOptions(
                                column_types={f"f{i}": pa.float64() for i in range(width)})) for b in bodies],
        "parse_object (today's pass, whole)": lambda: [
            reader.parse_object("bench/2026/01/05/00/x.jsonl", b, windows.Window(START, START + dt.timedelta(days=1)),
                                data.FEATURES, 0) for b in bodies],
        "  part: layout cut alone": lambda: [capture_layout.cut(b) for b in bodies],
        "  part: pyarrow JSON reader alone": lambda: [json_rows(b) for b in bodies],
        "  part: split_pattern alone": lambda: [pc.split_pattern(r, ",") for r in rows],
        "  part: cast string -> float64 alone": lambda: [pc.cast(c, pa.float64()) for c in split],
    }
    try:
        import polars as pl

        def with_polars():
            for b in bodies:
                side = pl.read_ndjson(io.BytesIO(b))["captureData"].struct.field("endpointInput").struct.field("data")
                side.str.split(",").explode().cast(pl.Float64).to_numpy().reshape(-1, width)

        candidates["polars NDJSON reader + polars split/cast"] = with_polars
        candidates["layout cut + polars split/cast"] = lambda: [
            pl.from_arrow(cut_rows(b).cast(pa.string())).str.split(",").explode().cast(pl.Float64) for b in bodies]
    except ImportError:
        print("  (polars does not import: skipped)")
    try:
        import orjson

        def with_orjson():
            for b in bodies:
                recs = [orjson.loads(line) for line in b.splitlines() if line.strip()]
                numbers(pa.array([r["captureData"]["endpointInput"]["data"] for r in recs]))

        candidates["orjson per line + split/cast"] = with_orjson
    except ImportError:
        print("  (orjson does not import: skipped)")
    for name, fn in candidates.items():
        print(f"  {name:52s} {cpu_best(fn, repeats) * 1000 * 100_000 / n:>8,.0f} ms CPU per 100k records")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", action="store_true", help="also time the candidate columnar engines")
    ap.add_argument("--before", default=BEFORE, help="git ref of the read_capture to compare with")
    ap.add_argument("--redundant-pass", action="store_true",
                    help="check the bench: today's reader parses every object twice (the ratio must fall)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if args.redundant_pass:
        once = reader.parse_object
        reader.parse_object = lambda *a: (once(*a), once(*a))[1]
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
            fetch_cpu = cpu_best(lambda: fetch_all(aws, uri, day), args.repeats)
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
        print(f"  floor: fetch the bytes             {n / fetch:>12,.0f}  ({fetch_cpu * 1000 * 100_000 / n:,.0f} ms CPU "
              "per 100k records, the emulator serving included)")
        print(f"  floor: parse {n * len(data.FEATURES):,} floats from one buffer {n / parse:>12,.0f}")
        print(f"  floor: both, one after the other   {n / (fetch + parse):>12,.0f}")
        print(f"  previous reader (per line)         {n / previous:>12,.0f}")
        print(f"  read_capture at {args.before} (before) {n / earlier:>12,.0f}  ({earlier_cpu * 1000 * 100_000 / n:,.0f} ms CPU "
              "per 100k records)")
        print(f"  read_capture (columnar)            {n / current:>12,.0f}  ({current_cpu * 1000 * 100_000 / n:,.0f} ms CPU "
              "per 100k records)" + ("  [--redundant-pass: every object parsed twice]" if args.redundant_pass else ""))
        print(f"  read_capture, local mode's kept copy {n / kept:>10,.0f}  (a window read again, objects unchanged)")
        print(f"ratio read_capture / read_capture at {args.before} = {earlier / current:.2f}x (>= 1: no slower); "
              f"in CPU seconds {earlier_cpu / current_cpu:.2f}x (less swayed by other load on a shared machine)")
        print(f"ratio read_capture / previous reader = {previous / current:.2f}x; "
              f"read_capture takes {current / (fetch + parse):.2f}x the time of fetch + parse floors")
        if args.engines:
            print("candidate engines, parse only (bytes already fetched), one thread:")
            engines(fetch_all(aws, uri, day), n, len(data.FEATURES), args.repeats)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
