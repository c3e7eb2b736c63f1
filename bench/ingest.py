"""Bench: the capture reader on single-record CSV traffic, against the single-shape reader it replaced.

Both readers parse the same capture lines in the same run. The baseline is the reader the suite had
before it learned multi-record bodies (one record per line, CSV or ``{"instances": [[...]]}`` only),
kept here verbatim so the ratio stays measurable. ``read_capture`` is also timed end to end on the local
emulator (listing, fetching and parsing one window of the same lines). Machines are shared and noisy:
read the ratio, not the seconds.
Run: python bench/ingest.py [--records 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import time

import numpy as np
import pandas as pd

from monitor_utils import capture, config, data, local, windows
from monitor_utils.aws import connect, ensure_bucket

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)


def previous_reader(lines: list[str]) -> int:
    """The single-record reader the suite used before (its per-line parse loop, verbatim in effect)."""
    def decode(side):
        d = side["data"]
        if side.get("encoding", "CSV") == "BASE64":
            d = base64.b64decode(d, validate=True).decode("utf-8")
        return d, side.get("observedContentType", "")

    def features(side):
        d, ctype = decode(side)
        if "json" in ctype:
            obj = json.loads(d)
            if isinstance(obj, dict):
                obj = obj.get("instances", obj.get("features", obj.get("inputs")))
            arr = np.asarray(obj, dtype=float)
            arr = arr[0] if arr.ndim == 2 and len(arr) == 1 else arr
        else:
            arr = np.array(d.strip().split(","), dtype=float)
        if arr.shape != (len(data.FEATURES),):
            raise ValueError("wrong count")
        return arr

    def prediction(side):
        d, _ = decode(side)
        return float(d.strip().split(",")[0])

    rows, feats = [], []
    for line in lines:
        rec = json.loads(line)
        ts = pd.Timestamp(rec["eventMetadata"]["inferenceTime"])
        ts = ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
        feats.append(features(rec["captureData"]["endpointInput"]))
        rows.append((rec["eventMetadata"]["eventId"], ts, prediction(rec["captureData"]["endpointOutput"])))
    frame = pd.DataFrame(rows, columns=["event_id", "inference_time", "prediction"])
    return len(pd.concat([frame, pd.DataFrame(np.vstack(feats), columns=data.FEATURES)], axis=1))


def current_parse(lines: list[str]) -> int:
    """Today's per-request parse (the part of read_capture after the bytes are fetched)."""
    n = 0
    for line in lines:
        rec = json.loads(line)
        capture.parse_time(rec["eventMetadata"]["inferenceTime"])
        x, y, _ = capture.parse_request(rec, data.FEATURES)
        n += len(y)
    return n


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    x = data.generate(args.records, seed=5)[data.FEATURES].to_numpy()
    seconds = np.sort(rng.uniform(0, 86_400, args.records))
    times = [START + dt.timedelta(seconds=float(s)) for s in seconds]
    lines = [capture.capture_line(x[i], 2000.0 + i % 50, f"ev-{i}", f"inf-{i}", windows.iso(times[i]), "csv")
             for i in range(args.records)]

    before = best(lambda: previous_reader(lines), args.repeats)
    after = best(lambda: current_parse(lines), args.repeats)
    print(f"parse of {args.records} single-record CSV lines: previous reader {args.records / before:,.0f} records/s, "
          f"current {args.records / after:,.0f} records/s; ratio current/previous = {before / after:.2f}x")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    try:
        cfg = config.validate({"bucket": "bench-ingest"})
        aws = connect(cfg, server.url)
        ensure_bucket(aws, cfg.bucket)
        uri = capture.capture_uri_for(cfg.capture_uri, "bench", "AllTraffic")
        capture.write_hourly(aws, uri, pd.Series(times), lines, "cap")
        day = windows.Window(START, START + dt.timedelta(days=1))
        end_to_end = best(lambda: capture.read_capture(aws, uri, day), args.repeats)
        got = len(capture.read_capture(aws, uri, day).records)
        assert got == args.records, (got, args.records)
        print(f"read_capture end to end on the emulator (24 objects): {args.records / end_to_end:,.0f} records/s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
