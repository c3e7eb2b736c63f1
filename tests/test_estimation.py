"""The label-free loss estimator: unbiased and covered on fresh reference-like chunks, sees contradicting features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor_utils import data, model
from monitor_utils.estimation import LossEstimator

CHUNK = 400
KEYS = {"estimated_rmse", "estimated_rmse_low", "estimated_rmse_high", "estimated_mae", "outside_support", "records",
        "missing_values"}


def rmse(frame: pd.DataFrame) -> float:
    return float(np.sqrt(((frame["year"] - frame["prediction"]) ** 2).mean()))


@pytest.fixture(scope="module")
def world():
    served = model.train_model(data.generate(4000, seed=101))
    reference = data.generate(3000, seed=102)
    reference["prediction"] = model.predict(served, reference)
    held_out = data.generate(8000, seed=103)  # another seed: fresh reference-like records
    held_out["prediction"] = model.predict(served, held_out)
    est = LossEstimator(calibration_chunks=40, n_boot=15).fit(reference, data.FEATURES, window_size=CHUNK, seed=3)
    return {"served": served, "reference": reference, "held_out": held_out, "est": est}


def chunks(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [frame.iloc[i:i + CHUNK] for i in range(0, len(frame) - CHUNK + 1, CHUNK)]


def test_unbiased_on_fresh_reference_like_chunks(world):
    parts = chunks(world["held_out"])
    estimated = np.array([world["est"].estimate(c)["estimated_rmse"] for c in parts])
    realized = np.array([rmse(c) for c in parts])
    assert abs(estimated.mean() / realized.mean() - 1) < 0.05
    assert np.abs(estimated / realized - 1).mean() < 0.10


def test_interval_covers_realized_rmse_on_held_out_chunks(world):
    parts = chunks(world["held_out"])
    inside = []
    for c in parts:
        r = world["est"].estimate(c)
        assert r["estimated_rmse_low"] <= r["estimated_rmse"] <= r["estimated_rmse_high"]
        inside.append(r["estimated_rmse_low"] <= rmse(c) <= r["estimated_rmse_high"])
    assert np.mean(inside) >= 0.75  # nominal 90%


def test_estimate_rises_when_a_feature_contradicts_the_others(world):
    est, served = world["est"], world["served"]
    base = world["held_out"].iloc[:1000].copy()
    broken = base.copy()
    broken["timbre_avg_01"] -= 2.0 * world["reference"]["timbre_avg_01"].std()  # still inside the reference range
    broken["prediction"] = model.predict(served, broken)
    before, after = est.estimate(base), est.estimate(broken)
    assert rmse(broken) > 1.4 * rmse(base)  # the realized RMSE jumps ...
    assert after["estimated_rmse"] > 1.4 * before["estimated_rmse"]  # ... and so does the estimate
    assert abs(after["estimated_rmse"] / rmse(broken) - 1) < 0.15
    found = [f["feature"] for f in est.diagnose(broken)["inconsistent_features"]]
    assert found[:1] == ["timbre_avg_01"]
    assert est.diagnose(base)["inconsistent_features"] == []


def test_round_trip_gives_identical_estimates(world):
    blob = world["est"].to_bytes()
    assert len(blob) < 3_000_000
    loaded = LossEstimator.from_bytes(blob)
    window = world["held_out"].iloc[:CHUNK]
    assert loaded.estimate(window) == world["est"].estimate(window)
    with pytest.raises(ValueError, match="not a stored LossEstimator"):
        LossEstimator.from_bytes(b"not an estimator")


def test_result_keys_and_records(world):
    window = world["held_out"].iloc[:CHUNK].assign(request_id="r", input_format="csv")  # extra columns are ignored
    r = world["est"].estimate(window)
    assert set(r) == KEYS
    assert r["records"] == CHUNK
    assert r["estimated_mae"] <= r["estimated_rmse"]


def test_outside_support(world):
    est = world["est"]
    assert est.estimate(world["reference"].iloc[:CHUNK])["outside_support"] == 0.0
    assert est.estimate(world["held_out"].iloc[:CHUNK])["outside_support"] < 0.15
    window = world["reference"].iloc[:CHUNK].copy()
    col = "timbre_cov_03_07"
    window.loc[window.index[:40], col] = world["reference"][col].max() + 1.0
    assert est.estimate(window)["outside_support"] == pytest.approx(40 / CHUNK)


def test_clear_errors(world):
    est = world["est"]
    window = world["held_out"].iloc[:CHUNK]
    with pytest.raises(ValueError, match="missing column.*'timbre_avg_02'.*'timbre_cov_01_01'"):
        est.estimate(window.drop(columns=["timbre_avg_02", "timbre_cov_01_01"]))
    with pytest.raises(ValueError, match="missing column.*'prediction'"):
        est.estimate(window.drop(columns=["prediction"]))
    with pytest.raises(ValueError, match="no records"):
        est.estimate(window.iloc[:0])
    bad = window.copy()
    bad.loc[bad.index[0], "timbre_avg_05"] = np.inf  # a missing value (NaN) is filled in; infinity is an error
    with pytest.raises(ValueError, match="timbre_avg_05"):
        est.estimate(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        LossEstimator().estimate(window)
    with pytest.raises(ValueError, match="missing column.*'year'"):
        LossEstimator().fit(world["reference"].drop(columns=["year"]), data.FEATURES, window_size=CHUNK)
    with pytest.raises(ValueError, match="at least"):
        LossEstimator().fit(world["reference"].iloc[:500], data.FEATURES, window_size=CHUNK)
