"""Benchmark: label-free RMSE estimates (monitor_utils.estimation, and NannyML's DLE where it installs) against the
realized RMSE of the simulated worlds' daily windows.

Per world: mean and worst relative error of the estimate against the realized RMSE of the captured records
(status 200) of each daily window, and the share of windows whose realized RMSE lies inside the interval.
Goals (issue 12): mean <= 15%, worst <= 35%, inside >= 80%; where quality drops, lower mean and worst error than
DLE; the first broken-feature day estimated above thresholds.rmse_max; a world whose quality holds estimated
below it every day. Both estimators are fitted on the same reference (the test split, predicted by the served
model) and see no labels of the windows. Exit status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # nannyml otherwise sends usage data over the network
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor_utils import config, data, model  # noqa: E402
from monitor_utils.local import world  # noqa: E402
from monitor_utils.estimation import LossEstimator  # noqa: E402

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
GOALS = {"mean": 0.15, "worst": 0.35, "coverage": 0.80}
# (name, params): default seeds, another seed, another onset, another broken feature
WORLDS = [
    ("drift seed 7", {"scenario": "drift", "seed": 7}),
    ("stable seed 7", {"scenario": "stable", "seed": 7}),
    ("drift seed 11", {"scenario": "drift", "seed": 11}),
    ("stable seed 11", {"scenario": "stable", "seed": 11}),
    ("drift seed 7 onset 0.3", {"scenario": "drift", "seed": 7, "world": {"drift_start_fraction": 0.3}}),
    ("drift seed 23 onset 0.8", {"scenario": "drift", "seed": 23, "world": {"drift_start_fraction": 0.8}}),
    ("drift seed 7 broken avg_03", {"scenario": "drift", "seed": 7, "world": {"broken_feature": "timbre_avg_03"}}),
]


def build_world(params: dict) -> dict:
    """Train, test, served model and daily windows of one simulated world, in memory (as ``world.build`` makes them)."""
    cfg = config.validate(params, source="bench")
    w = cfg.world
    train = data.generate(w["train_rows"], seed=cfg.seed * 1000 + 1)
    test = data.generate(w["test_rows"], seed=cfg.seed * 1000 + 2)
    served = model.train_model(train)
    ref_std = float(train[w["broken_feature"]].std())
    traffic = world.simulate_traffic(cfg, START, cfg.days, served, reference_std=ref_std)
    traffic = traffic[traffic["status"] == 200]  # what the endpoint captures
    day = ((traffic["inference_time"] - pd.Timestamp(START)) // pd.Timedelta(days=1)).to_numpy()
    windows = [traffic.loc[day == d, data.FEATURES + ["prediction", "year"]].reset_index(drop=True)
               for d in range(cfg.days)]
    reference = test.assign(prediction=model.predict(served, test))
    drift_day = int(round(w["drift_start_fraction"] * cfg.days))
    return {"cfg": cfg, "reference": reference, "windows": windows,
            "broken_day": drift_day + 1 if cfg.scenario == "drift" else None}


def realized_rmse(window: pd.DataFrame) -> float:
    return float(np.sqrt(((window["year"] - window["prediction"]) ** 2).mean()))


def ours(wd: dict, seed: int) -> dict:
    t0 = time.perf_counter()
    est = LossEstimator().fit(wd["reference"], data.FEATURES, window_size=wd["cfg"].world["requests_per_day"], seed=seed)
    fit_s = time.perf_counter() - t0
    rows, times = [], []
    for w in wd["windows"]:
        t = time.perf_counter()
        r = est.estimate(w[data.FEATURES + ["prediction"]])  # no labels
        times.append(time.perf_counter() - t)
        rows.append((r["estimated_rmse"], r["estimated_rmse_low"], r["estimated_rmse_high"], r["outside_support"]))
    return {"rows": rows, "fit_s": fit_s, "estimate_s": max(times), "bytes": len(est.to_bytes())}


def nannyml_dle(wd: dict):
    """NannyML's DLE (metrics=['rmse'], chunk_size = window size), fitted on the same reference; None if absent."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import nannyml as nml
            from nannyml.chunk import SizeBasedChunker
    except Exception:  # noqa: BLE001 - not installed, or does not import here
        return None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dle = nml.DLE(feature_column_names=data.FEATURES, y_pred="prediction", y_true="year", metrics=["rmse"],
                      chunk_size=wd["cfg"].world["requests_per_day"],
                      hyperparameters={"verbosity": -1})  # LightGBM's defaults, without its log lines
        dle.fit(wd["reference"][data.FEATURES + ["prediction", "year"]])
        fit_s = time.perf_counter() - t0
        rows = []
        for w in wd["windows"]:
            dle.chunker = SizeBasedChunker(chunk_size=len(w))  # one chunk = the whole daily window
            res = dle.estimate(w[data.FEATURES + ["prediction"]]).to_df()
            res = res[res[("chunk", "period")] == "analysis"].iloc[0]
            rows.append((float(res[("rmse", "value")]), float(res[("rmse", "lower_confidence_boundary")]),
                         float(res[("rmse", "upper_confidence_boundary")]), float("nan")))
    return {"rows": rows, "fit_s": fit_s, "version": nml.__version__}


def figures(rows: list[tuple], realized: np.ndarray) -> dict:
    est = np.array([r[0] for r in rows])
    lo, hi = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    rel = np.abs(est / realized - 1)
    return {"est": est, "mean": float(rel.mean()), "worst": float(rel.max()),
            "coverage": float(((realized >= lo) & (realized <= hi)).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worlds", type=int, nargs="*", help="indices of WORLDS to run (default: all)")
    parser.add_argument("--days", action="store_true", help="also print the per-day table of every world")
    parser.add_argument("--no-nannyml", action="store_true", help="skip NannyML's DLE even if it imports")
    parser.add_argument("--seed", type=int, default=0, help="seed of the estimator's fit")
    args = parser.parse_args(argv)
    chosen = [WORLDS[i] for i in args.worlds] if args.worlds else WORLDS
    ok = True
    summary = []
    for name, params in chosen:
        wd = build_world(params)
        cfg = wd["cfg"]
        realized = np.array([realized_rmse(w) for w in wd["windows"]])
        mine = ours(wd, args.seed)
        dle = None if args.no_nannyml else nannyml_dle(wd)
        f = figures(mine["rows"], realized)
        g = figures(dle["rows"], realized) if dle else None
        thr = cfg.thresholds["rmse_max"]
        drops = bool(realized.max() > thr)
        print(f"\n== {name}: {cfg.days} daily windows of ~{cfg.world['requests_per_day']} records, "
              f"reference {len(wd['reference'])} test rows, realized RMSE {realized.min():.2f}-{realized.max():.2f}")
        print(f"   {'':22} {'mean rel err':>12} {'worst':>7} {'in interval':>12}")
        print(f"   {'estimation.py':22} {f['mean']:12.1%} {f['worst']:7.1%} {f['coverage']:12.0%}"
              f"   (fit {mine['fit_s']:.1f} s, estimate <= {mine['estimate_s'] * 1000:.0f} ms, {mine['bytes'] / 1e6:.2f} MB)")
        if g:
            print(f"   {'nannyml ' + dle['version'] + ' DLE':22} {g['mean']:12.1%} {g['worst']:7.1%} {g['coverage']:12.0%}"
                  f"   (fit {dle['fit_s']:.1f} s)")
        else:
            print("   nannyml DLE: not importable here (bench-only extra: pip install nannyml), skipped")
        goals = f["mean"] <= GOALS["mean"] and f["worst"] <= GOALS["worst"] and f["coverage"] >= GOALS["coverage"]
        line = [f"goals (mean <= 15%, worst <= 35%, inside >= 80%): {'met' if goals else 'MISSED'}"]
        if drops and g:
            better = f["mean"] < g["mean"] and f["worst"] < g["worst"]
            line.append(f"better than DLE: {'yes' if better else 'NO'}")
            goals = goals and better
        if wd["broken_day"] is not None:
            b = wd["broken_day"]
            first = f["est"][b]
            fires = first > thr
            line.append(f"first broken-feature day (day {b}): realized {realized[b]:.2f}, estimated {first:.2f} "
                        f"{'>' if fires else '<='} rmse_max {thr:g}" + (f" (DLE {g['est'][b]:.2f})" if g else ""))
            if drops:
                goals = goals and fires
        if not drops:
            quiet = bool((f["est"] < thr).all())
            line.append(f"estimate below rmse_max {thr:g} on every day: {'yes' if quiet else 'NO'} "
                        f"(max {f['est'].max():.2f})")
            goals = goals and quiet
        print("   " + "; ".join(line))
        if args.days:
            table = pd.DataFrame({"realized": realized, "estimated": f["est"],
                                  "low": [r[1] for r in mine["rows"]], "high": [r[2] for r in mine["rows"]],
                                  "outside_support": [r[3] for r in mine["rows"]]})
            if g:
                table["dle"] = g["est"]
            print(table.round(3).to_string())
        ok = ok and goals
        summary.append((name, f, g))
    print(f"\nall goals met: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
