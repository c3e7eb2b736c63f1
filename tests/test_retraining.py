"""Tests for monitor_utils.retraining.decide and compare: the decision's triggers and interval, and the
champion/challenger gate, scored against scikit-learn's own RMSE."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_squared_error

from monitor_utils import config, data, retraining as R

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
CFG = config.validate({})
EP = CFG.endpoint_name


def evidence(rmse="OK", r2="OK", drift=(False, False, False), last=None) -> R.Evidence:
    windows = [f"2026-11-{d:02d}" for d in range(25, 25 + len(drift))]
    return R.Evidence(alarm_states={f"{EP}-rmse": rmse, f"{EP}-r2": r2},
                      metrics=pd.DataFrame({"window": windows, "rmse": [6.0] * len(drift), "r2": [0.5] * len(drift)}),
                      drift=pd.DataFrame({"window": windows, "drift_detected": list(drift),
                                          "top_features": [["timbre_avg_01"]] * len(drift)}),
                      last_retrain=last)


def test_no_trigger_no_retrain_with_reasons():
    d = R.decide(CFG, evidence(), NOW)
    assert not d.retrain and "no retraining needed" in d.reasons[0]
    assert f"alarm {EP}-rmse is OK" in d.reasons[0] and "dataset drift in 0 of the last 3 windows" in d.reasons[0]


@pytest.mark.parametrize("ev, trigger", [
    (evidence(rmse="ALARM"), f"alarm {EP}-rmse is ALARM"),
    (evidence(r2="ALARM"), f"alarm {EP}-r2 is ALARM"),
    (evidence(drift=(False, True, True)), "dataset drift in 2 of the last 3 windows (top features: timbre_avg_01)"),
])
def test_each_trigger_retrains(ev, trigger):
    d = R.decide(CFG, ev, NOW)
    assert d.retrain and trigger in d.reasons


def test_one_drifted_window_of_three_is_not_enough():
    assert not R.decide(CFG, evidence(drift=(True, False, False)), NOW).retrain


def test_minimum_interval_holds_a_wanted_retrain_back():
    recent = NOW - dt.timedelta(days=CFG.retraining["min_interval_days"] - 1)
    d = R.decide(CFG, evidence(rmse="ALARM", last=recent), NOW)
    assert not d.retrain and "within the minimum interval" in d.reasons[0]
    old = NOW - dt.timedelta(days=CFG.retraining["min_interval_days"] + 1)
    assert R.decide(CFG, evidence(rmse="ALARM", last=old), NOW).retrain


class Fixed:
    """A stand-in model predicting given years (the pipeline's predict interface)."""

    def __init__(self, years: np.ndarray):
        self.years = years

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        assert list(features.columns) == data.FEATURES
        return self.years


def holdout(n_per_decade: dict[int, int], seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    years = np.concatenate([rng.integers(d, d + 10, n) for d, n in n_per_decade.items()]).astype(float)
    frame = pd.DataFrame(rng.normal(size=(len(years), len(data.FEATURES))), columns=data.FEATURES)
    frame[data.TARGET] = years
    return frame


def test_a_clearly_better_even_challenger_is_promoted_with_sklearn_rmse():
    h = holdout({1980: 300, 1990: 400, 2000: 300})
    rng = np.random.default_rng(2)
    y = h[data.TARGET].to_numpy()
    champ, chall = y + rng.normal(0, 8, len(y)), y + rng.normal(0, 5, len(y))
    out = R.compare(CFG, Fixed(champ), Fixed(chall), h)
    assert out["promote"], out["reasons"]
    assert out["scores"]["champion"]["rmse"] == pytest.approx(mean_squared_error(y, np.clip(champ, 1922, 2011)) ** 0.5)
    assert out["scores"]["challenger"]["rmse"] == pytest.approx(mean_squared_error(y, np.clip(chall, 1922, 2011)) ** 0.5)
    assert out["rmse_gain"] == pytest.approx(1 - out["scores"]["challenger"]["rmse"] / out["scores"]["champion"]["rmse"])


def test_a_challenger_worse_in_a_gating_decade_is_not_promoted():
    h = holdout({1980: 300, 1990: 400, 2000: 300})
    rng = np.random.default_rng(3)
    y = h[data.TARGET].to_numpy()
    champ = y + rng.normal(0, 6, len(y))
    chall = y + rng.normal(0, 2, len(y))
    in_80s = (y >= 1980) & (y < 1990)
    chall[in_80s] = y[in_80s] + rng.normal(0, 9, in_80s.sum())  # much better overall, worse on the 1980s
    out = R.compare(CFG, Fixed(champ), Fixed(chall), h)
    assert not out["promote"] and any("regresses the 1980s segment" in r for r in out["reasons"])


def test_a_rare_decade_cannot_veto():
    h = holdout({1960: 35, 1990: 700, 2000: 700})  # the 1960s hold 2% of the holdout, under min_segment_share
    rng = np.random.default_rng(4)
    y = h[data.TARGET].to_numpy()
    champ = y + rng.normal(0, 6, len(y))
    chall = y + rng.normal(0, 3, len(y))
    old = y < 1970
    chall[old] = y[old] + rng.normal(0, 12, old.sum())
    out = R.compare(CFG, Fixed(champ), Fixed(chall), h)
    table = out["per_decade_rmse"].set_index("segment")
    assert not table.loc["1960s", "gating"] and table.loc["1960s", "relative_change"] > CFG.retraining["segment_tolerance"]
    assert out["promote"], out["reasons"]


def test_a_small_gain_is_not_enough():
    h = holdout({1990: 500, 2000: 500})
    y = h[data.TARGET].to_numpy()
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 6, len(y))
    out = R.compare(CFG, Fixed(y + noise), Fixed(y + noise * 0.995), h)
    assert not out["promote"] and "is not 2% better" in out["reasons"][0]
