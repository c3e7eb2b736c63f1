"""A window's label-free estimate: chunked work gives the same bits as all at once, and its peak follows one matrix."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import numpy as np
import pytest

from monitor_utils import data, estimates, estimation, model, windows
from monitor_utils.estimation import LossEstimator

DAY = windows.containing(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), "daily")


@pytest.fixture(scope="module")
def fitted():
    served = model.train_model(data.generate(3000, seed=101))
    reference = data.generate(2000, seed=102)
    reference["prediction"] = model.predict(served, reference)
    est = LossEstimator(calibration_chunks=10, n_boot=8).fit(reference, data.FEATURES, window_size=400, seed=3)
    return served, est


def window(served, n: int, seed: int = 200):
    """A window of ``n`` records with a broken feature in a third of them, missing values and input-only records."""
    rec = data.generate(n, seed=seed)
    rec["prediction"] = model.predict(served, rec)
    rec.loc[rec.index[::3], data.FEATURES[5]] += 40.0
    rec.loc[rec.index[::50], "prediction"] = np.nan
    rec.loc[rec.index[::70], data.FEATURES[7]] = np.nan
    rec.loc[rec.index[::90], data.FEATURES[:3]] = np.nan
    return rec


def test_chunked_work_gives_the_same_bits_as_all_at_once(fitted, monkeypatch):
    served, est = fitted
    rec = window(served, 3000)
    at_once = est.diagnose(rec.dropna(subset=["prediction"]))
    assert at_once["inconsistent_features"] and at_once["missing_values"] > 0  # the paths that matter are taken
    monkeypatch.setattr(estimation, "CHUNK_ROWS", 97)
    monkeypatch.setattr(estimation, "LEVEL_CHUNK_ROWS", 31)
    chunked = est.diagnose(rec.dropna(subset=["prediction"]))
    assert chunked == at_once  # exact: model inputs, resampled means and corrections in chunks change no bit
    G = np.random.default_rng(1).normal(size=(1000, 7)) * 50
    rows = np.random.default_rng(2).integers(0, 1000, 1000)
    assert np.array_equal(estimation._rows_mean(G, rows), G[rows].mean(axis=0))


def test_the_window_is_estimated_from_a_mask_of_the_frame_as_from_its_scored_rows(fitted):
    served, est = fitted
    rec = window(served, 2000)
    row = estimates.estimate_window(est, DAY, rec)
    scored = est.estimate(rec.dropna(subset=["prediction"])[est.features + ["prediction"]])
    assert row["records"] == scored["records"] == 2000 - len(rec.index[::50])
    assert {k: row[k] for k in estimates.PUBLISHED.values()} == {k: scored[k] for k in estimates.PUBLISHED.values()}
    with pytest.raises(ValueError, match=r"1 record\(s\) with missing or infinite values in column\(s\) \['prediction'\]"):
        est.estimate(rec.assign(prediction=rec["prediction"].fillna(0.0).where(rec.index != 1, np.inf)))
    with pytest.raises(ValueError, match=r"record\(s\) with missing or infinite values in column\(s\) \['" +
                       data.FEATURES[2]):
        est.estimate(rec.assign(**{data.FEATURES[2]: np.inf}), rows=rec["prediction"].notna().to_numpy())


def test_the_estimate_peaks_near_one_matrix_of_the_window(fitted):
    """Traced peak (numpy reports its buffers to tracemalloc) of a window's estimate against what the window's
    features take as a float64 matrix, measured here: the standardised matrix and its residuals (two such
    matrices) and chunk-sized temporaries, no copy of the frame (the previous code peaked above 6)."""
    served, est = fitted
    rec = window(served, 40_000)
    matrix = rec[est.features].to_numpy(dtype=float).nbytes
    estimates.estimate_window(est, DAY, rec.iloc[:500])  # warm-up
    tracemalloc.start()
    try:
        row = estimates.estimate_window(est, DAY, rec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert row["records"] > 39_000
    assert peak < 2.4 * matrix, f"estimate peaked at {peak / matrix:.2f}x the window's feature matrix"
