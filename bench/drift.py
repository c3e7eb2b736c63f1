"""Benchmark: the seed's per-column ks_2samp loop vs detect_drift with a stored Baseline (MSD shape)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor_utils.drift import build_baseline, detect_drift  # noqa: E402

N_REFERENCE = 463_715  # MSD training split
N_CURRENT = 51_630  # MSD test split
N_FEATURES = 90
SEED = 20240601
DRIFTED = {  # column index -> shift in reference standard deviations
    0: 0.1, 7: 0.15, 21: 0.2, 33: 0.1, 45: 0.3, 52: 0.12, 64: 0.5, 71: 0.1, 80: 0.25, 88: 1.0,
}
SPEED_TARGETS = {"without drift": 15.0, "with drift": 25.0}


def seed_detect_drift(reference_data: pd.DataFrame, current_data: pd.DataFrame, threshold: float = 0.05) -> bool:
    """The original implementation: KS test per column, any p < threshold means drift."""
    drifted = False
    for col in reference_data.columns:
        if ks_2samp(reference_data[col], current_data[col]).pvalue < threshold:
            drifted = True
    return drifted


def make_frame(rng: np.random.Generator, n_rows: int) -> pd.DataFrame:
    """MSD-like features: normal, heavy-tailed Student-t, skewed lognormal, rounded/tied."""
    cols = {}
    for j in range(N_FEATURES):
        kind = j % 4
        loc, scale = 10.0 * np.sin(j), 1.0 + (j % 7)
        if kind == 0:
            x = rng.normal(loc, scale, n_rows)
        elif kind == 1:
            x = loc + scale * rng.standard_t(3 + j % 3, n_rows)
        elif kind == 2:
            x = loc + scale * rng.lognormal(0.0, 0.5 + 0.1 * (j % 5), n_rows)
        else:
            x = np.round(rng.normal(loc, scale, n_rows), 1)  # many ties
        cols[f"timbre_{j:02d}"] = x
    return pd.DataFrame(cols)


def drift(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for j, shift in DRIFTED.items():
        col = out.columns[j]
        out[col] = out[col] + shift * reference[col].std()
    return out


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak_memory(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one seed run per case instead of three")
    args = parser.parse_args(argv)
    seed_repeats, our_repeats = (1, 3) if args.quick else (3, 7)

    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    reference = make_frame(rng, N_REFERENCE)
    current = {"without drift": make_frame(rng, N_CURRENT)}
    current["with drift"] = drift(make_frame(rng, N_CURRENT), reference)
    print(f"data: reference {reference.shape}, current {current['without drift'].shape} "
          f"(generated in {time.perf_counter() - t0:.1f} s); drifted columns: {len(DRIFTED)}")

    t0 = time.perf_counter()
    baseline = build_baseline(reference)
    build_s = time.perf_counter() - t0
    print(f"build_baseline (one-off): {build_s:.2f} s")

    rows, ok = [], True
    for case, cur in current.items():
        seed_s, seed_flag = median_time(lambda: seed_detect_drift(reference, cur), seed_repeats)
        ours_s, report = median_time(lambda: detect_drift(baseline, cur), our_repeats)
        rows.append((case, seed_s, ours_s, seed_flag, report))

    print()
    print(f"{'case':<15}{'seed loop [s]':>15}{'ours [s]':>11}{'speed-up':>10}  seed says  ours says (drifted features)")
    for case, seed_s, ours_s, seed_flag, report in rows:
        print(f"{case:<15}{seed_s:>15.3f}{ours_s:>11.4f}{seed_s / ours_s:>9.1f}x  {str(seed_flag):<9}  "
              f"{str(report.drift_detected):<5} ({len(report.drifted_features)})")
    print()
    for case, seed_s, ours_s, _, _ in rows:
        ratio, target = seed_s / ours_s, SPEED_TARGETS[case]
        ok &= ratio >= target
        print(f"speed-up {case}: {ratio:.1f}x (target >= {target:g}x)")

    expected = {f"timbre_{j:02d}" for j in DRIFTED}
    found = set(rows[1][4].drifted_features)
    print(f"drifted columns found: {len(found & expected)}/{len(expected)}, false: {sorted(found - expected)}; "
          f"no-drift window flags: {rows[0][4].drifted_features}")

    cur = current["with drift"]
    cur_bytes = cur.memory_usage(index=False, deep=False).sum()
    base_bytes = sum(
        sum(getattr(f, a).nbytes for a in ("sorted_values", "grid_cumcount", "grid_integral", "grid_pure"))
        for f in baseline.features.values() if f.kind == "numeric"
    )
    peak = peak_memory(lambda: detect_drift(baseline, cur))
    limit = 2 * (cur_bytes + base_bytes)
    ok &= peak < limit
    print(f"peak memory allocated by detect_drift(baseline, current): {peak / 2**20:.1f} MiB "
          f"(current window {cur_bytes / 2**20:.1f} MiB, baseline arrays {base_bytes / 2**20:.1f} MiB; "
          f"limit 2x arrays = {limit / 2**20:.0f} MiB; {peak / cur_bytes:.2f}x the current window alone)")
    print("OK" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
