"""Label-free estimates in the suite: the fit beside the baseline, per-window rows and datums, the record and its accuracy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitor_utils import data, estimates, model, publish, windows
from monitor_utils.config import validate
from monitor_utils.estimation import LossEstimator

DAY = windows.from_label("2026-11-20", "daily")


@pytest.fixture(scope="module")
def reference():
    served = model.train_model(data.generate(3000, seed=201))
    ref = data.generate(600, seed=202)
    return ref.assign(prediction=model.predict(served, ref))


@pytest.fixture(scope="module")
def fitted(reference):
    """The one real fit of this module (window 200 of a 600-record reference)."""
    return LossEstimator().fit(reference, data.FEATURES, window_size=200, seed=estimates.FIT_SEED)


@pytest.fixture
def recorded_fits(fitted, monkeypatch):
    """Stand in for LossEstimator.fit: record the window size asked for and hand back the module's fit."""
    fits = []

    def fake_fit(self, reference, features, target, prediction, *, window_size, seed):
        fits.append(window_size)
        return fitted

    monkeypatch.setattr(LossEstimator, "fit", fake_fit)
    monkeypatch.setattr(estimates, "_FITTED", {})  # a new process
    return fits


def test_fit_caps_the_window_at_half_the_reference_and_reuses_an_identical_fit(reference, recorded_fits):
    first = estimates.fit_estimator(reference, data.FEATURES, window_size=50_000)
    again = estimates.fit_estimator(reference.copy(), data.FEATURES, window_size=50_000)
    assert recorded_fits == [300] and again.to_bytes() == first.to_bytes()
    other = reference.assign(prediction=reference["prediction"] + 1.0)  # other data: fitted anew
    estimates.fit_estimator(other, data.FEATURES, window_size=50_000)
    estimates.fit_estimator(reference, data.FEATURES, window_size=10)  # at least MIN_WINDOW_RECORDS
    assert recorded_fits == [300, 300, estimates.MIN_WINDOW_RECORDS]


def test_a_fit_kept_in_the_cache_folder_is_reused_by_another_process(reference, recorded_fits, tmp_path,
                                                                     monkeypatch):
    first = estimates.fit_estimator(reference, data.FEATURES, window_size=200, cache=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".bin"]  # no partial file left behind
    monkeypatch.setattr(estimates, "_FITTED", {})  # as in a new process
    again = estimates.fit_estimator(reference, data.FEATURES, window_size=200, cache=tmp_path)
    assert recorded_fits == [200] and again.to_bytes() == first.to_bytes()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from monitor_utils.local import caches

    assert caches.estimator_folder() == tmp_path / "xdg" / "monitor_utils" / "estimators"


def test_a_window_is_estimated_from_its_scored_records_only(reference, fitted):
    est = fitted
    records = reference.drop(columns=["year"]).iloc[:200].copy()
    direct = est.estimate(records)
    records.loc[records.index[:20], "prediction"] = np.nan  # input-only captures: no prediction to judge
    row = estimates.estimate_window(est, DAY, records)
    assert row["records"] == 180 and row["window"] == "2026-11-20" and row["end"] == DAY.end
    assert row["estimated_rmse"] == pytest.approx(est.estimate(records.iloc[20:])["estimated_rmse"])
    assert row["estimated_rmse"] != direct["estimated_rmse"]
    empty = estimates.estimate_window(est, DAY, records.iloc[:0])
    assert empty["records"] == 0 and empty["estimated_rmse"] is None
    assert estimates.window_datums(validate({}), DAY, empty) == []


def test_window_datums_are_valid_and_stamped_at_the_window_end():
    cfg = validate({})
    row = {"window": DAY.label, "estimated_rmse": 7.5, "estimated_rmse_low": 7.0, "estimated_rmse_high": 8.1,
           "estimated_mae": 5.2, "outside_support": 0.1}
    datums = estimates.window_datums(cfg, DAY, row)
    assert {d["MetricName"]: d["Value"] for d in datums} == {
        "EstimatedRMSE": 7.5, "EstimatedRMSELow": 7.0, "EstimatedRMSEHigh": 8.1, "EstimatedMAE": 5.2,
        "OutsideSupport": 0.1}
    for d in datums:
        publish.validate_datum(d)
        assert d["Timestamp"] == DAY.end
        assert {x["Name"]: x["Value"] for x in d["Dimensions"]} == cfg.metric_dimensions()


def _row(label: str, est: float, lo: float, hi: float) -> dict:
    w = windows.from_label(label, "daily")
    return {"window": label, "end": w.end, "estimated_rmse": est, "estimated_rmse_low": lo,
            "estimated_rmse_high": hi, "estimated_mae": est * 0.8, "outside_support": 0.0, "records": 100}


def test_the_record_puts_the_realized_rmse_beside_each_estimate_and_null_while_labels_wait():
    est = pd.DataFrame([_row("2026-11-20", 6.0, 5.5, 6.5), _row("2026-11-21", 10.0, 9.0, 11.0),
                        _row("2026-11-22", 11.0, 10.0, 12.0)])
    realized = pd.DataFrame({"window": ["2026-11-20", "2026-11-21"], "rmse": [6.6, 9.5]})
    record = estimates.with_realized(est, realized)
    assert [r["realized_rmse"] for r in record] == [6.6, 9.5, None]
    assert record[2]["end"] == "2026-11-23T00:00:00Z"
    acc = estimates.accuracy(record)
    rel = np.abs(np.array([6.0, 10.0]) / np.array([6.6, 9.5]) - 1)
    assert acc == {"windows": 2, "mean_relative_error": pytest.approx(rel.mean()),
                   "worst_relative_error": pytest.approx(rel.max()), "inside_interval": 0.5}
    assert estimates.with_realized(est.iloc[:0], realized) == [] and estimates.accuracy(record[2:]) is None


def test_the_threshold_defaults_to_the_rmse_alarms():
    assert validate({"thresholds": {"rmse_max": 8.0}}).estimated_rmse_max == 8.0
    assert validate({"thresholds": {"rmse_max": 8.0, "estimated_rmse_max": 9.5}}).estimated_rmse_max == 9.5


def test_no_estimator_without_a_labelled_test_split(emulator):
    from monitor_utils import aws as aws_mod
    from monitor_utils.local import world

    cfg = validate({"bucket": "estimates-no-test", "endpoint_name": "ep-estimates-no-test", "days": 2,
                    "now": "2026-11-28T00:00:00Z", "world": {"requests_per_day": 100, "train_rows": 1000,
                                                             "test_rows": 500}})
    aws = aws_mod.connect(cfg, emulator.url)
    world.build(aws, cfg, progress=lambda m: None)
    aws.client("s3").delete_object(Bucket=cfg.bucket, Key=cfg.key("data", "test.npz"))
    now = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
    assert estimates.ensure_estimator(aws, cfg, now, data.FEATURES) == (None, False)
    assert estimates.load_estimator(aws, cfg) is None
