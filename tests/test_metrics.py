"""Tests for monitor_utils.metrics against scikit-learn and numpy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from monitor_utils import metrics as M

TOL = 1e-9


def sk_reference(y, p) -> dict:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    mse = skm.mean_squared_error(y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on a single value and returns NaN
        r2 = skm.r2_score(y, p)
    return {"count": len(y), "mse": mse, "rmse": math.sqrt(mse), "mae": skm.mean_absolute_error(y, p),
            "r2": r2, "median_ae": skm.median_absolute_error(y, p), "bias": float(np.mean(p - y))}


def assert_matches(got: dict, ref: dict) -> None:
    assert set(got) == set(M.METRIC_NAMES)
    assert got["count"] == ref["count"] and isinstance(got["count"], int)
    for k in M.METRIC_NAMES[1:]:
        assert isinstance(got[k], float), k
        if math.isnan(ref[k]):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(ref[k], rel=TOL, abs=TOL), k


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [2, 3, 7, 100, 1001, 10000])
def test_agrees_with_sklearn_on_random_inputs(seed, n):
    rng = np.random.default_rng(seed * 1000 + n)
    y = np.round(rng.gamma(1.6, 8.0, n) * -1 + 2011)          # release-year-like actuals
    p = y + rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 12), n)
    assert_matches(M.regression_metrics(y, p), sk_reference(y, p))


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_sklearn_on_wide_scale_inputs(seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_t(2, 500) * 1e3
    p = y * rng.uniform(0.5, 1.5) + rng.standard_cauchy(500)
    assert_matches(M.regression_metrics(y, p), sk_reference(y, p))


def test_integer_inputs_and_lists():
    y = [1990, 2001, 1975, 2010, 1999]
    p = [1992, 1998, 1980, 2005, 1999]
    got = M.regression_metrics(y, p)
    assert_matches(got, sk_reference(y, p))
    # hand arithmetic: errors 2, -3, 5, -5, 0
    assert got["mse"] == pytest.approx((4 + 9 + 25 + 25 + 0) / 5)
    assert got["mae"] == pytest.approx(3.0)
    assert got["median_ae"] == 3.0
    assert got["bias"] == pytest.approx(-1 / 5)
    assert_matches(M.regression_metrics(np.array(y, dtype=np.int32), np.array(p, dtype=np.int64)),
                   sk_reference(y, p))


def test_bias_sign_is_prediction_minus_actual():
    got = M.regression_metrics([2000, 2000, 2000, 2001], [2003, 2004, 2002, 2004])
    assert got["bias"] == pytest.approx(3.0)
    assert M.regression_metrics([2003, 2004], [2000, 2000])["bias"] == pytest.approx(-3.5)


def test_constant_actuals_match_sklearn():
    y = np.full(20, 2000)
    perfect = M.regression_metrics(y, y)
    assert perfect["r2"] == 1.0 == skm.r2_score(y, y)
    imperfect = M.regression_metrics(y, y + np.arange(20))
    assert imperfect["r2"] == 0.0 == skm.r2_score(y, y + np.arange(20))
    assert_matches(imperfect, sk_reference(y, y + np.arange(20)))


def test_perfect_predictions():
    rng = np.random.default_rng(1)
    y = rng.normal(2000, 10, 300)
    got = M.regression_metrics(y, y.copy())
    assert got["mse"] == got["rmse"] == got["mae"] == got["median_ae"] == got["bias"] == 0.0
    assert got["r2"] == 1.0
    assert_matches(got, sk_reference(y, y))


def test_mean_prediction_gives_r2_zero_and_worse_is_negative():
    y = np.array([1990.0, 2000.0, 2010.0, 1995.0])
    assert M.regression_metrics(y, np.full(4, y.mean()))["r2"] == pytest.approx(0.0, abs=1e-12)
    assert M.regression_metrics(y, y[::-1])["r2"] < 0


def test_single_value():
    got = M.regression_metrics([2000], [2003.5])
    assert got["count"] == 1
    assert got["mse"] == 12.25 and got["rmse"] == 3.5 and got["mae"] == 3.5 and got["median_ae"] == 3.5
    assert got["bias"] == 3.5
    assert math.isnan(got["r2"])
    assert_matches(got, sk_reference([2000], [2003.5]))


def test_2d_column_vectors_are_flattened():
    y = np.array([[1990.0], [2000.0], [2005.0]])
    p = np.array([1991.0, 1999.0, 2010.0])
    assert_matches(M.regression_metrics(y, p), sk_reference(y.ravel(), p))


@pytest.mark.parametrize("y, p, match", [
    ([], [], "no values"),
    (np.array([]), np.array([]), "no values"),
    ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], r"actuals.*position 1"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, float("inf")], r"predictions.*position 2"),
    ([1.0, 2.0, 3.0], [-float("inf"), 2.0, 3.0], r"predictions.*position 0"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "3 values but predictions has 2"),
    ([1.0], [1.0, 2.0], "1 values but predictions has 2"),
])
def test_bad_inputs_raise_value_error(y, p, match):
    with pytest.raises(ValueError, match=match):
        M.regression_metrics(y, p)


def test_pandas_series_inputs():
    df = pd.DataFrame({"year": [1990, 2000, 2010], "prediction": [1995.0, 1998.0, 2011.0]}, index=[10, 20, 30])
    assert_matches(M.regression_metrics(df["year"], df["prediction"]), sk_reference(df["year"], df["prediction"]))


# --------------------------------------------------------------------------- bootstrap


def reasonable_case(n=800, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.normal(2000, 10, n)
    return y, y + rng.normal(0.0, 5.0, n)


def test_bootstrap_brackets_point_estimate():
    y, p = reasonable_case()
    point = M.regression_metrics(y, p)
    ci = M.bootstrap_intervals(y, p, n_boot=300, level=0.9, seed=1)
    assert set(ci) == {"rmse", "r2"}
    for k in ("rmse", "r2"):
        lo, hi = ci[k]
        assert lo < point[k] < hi, k
        assert hi - lo < 0.25 * abs(point[k])  # informative, not the whole real line
    # the errors were drawn with sigma 5: a 99% interval on 800 pairs covers it
    lo, hi = M.bootstrap_intervals(y, p, n_boot=400, level=0.99, seed=2)["rmse"]
    assert lo < 5.0 < hi


def test_bootstrap_deterministic_for_seed_and_varies_across_seeds():
    y, p = reasonable_case()
    a = M.bootstrap_intervals(y, p, seed=11)
    b = M.bootstrap_intervals(y, p, seed=11)
    c = M.bootstrap_intervals(y, p, seed=12)
    assert a == b
    assert a != c


def test_bootstrap_matches_independent_resampling():
    y, p = reasonable_case(n=200, seed=5)
    n_boot, level, seed = 150, 0.8, 9
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.size, size=(n_boot, y.size))
    rmse = [math.sqrt(skm.mean_squared_error(y[i], p[i])) for i in idx]
    r2 = [skm.r2_score(y[i], p[i]) for i in idx]
    got = M.bootstrap_intervals(y, p, n_boot=n_boot, level=level, seed=seed)
    assert got["rmse"] == pytest.approx(tuple(np.percentile(rmse, [10, 90])), rel=1e-9)
    assert got["r2"] == pytest.approx(tuple(np.percentile(r2, [10, 90])), rel=1e-9)


@pytest.mark.parametrize("chunk_values", [1, 7 * 200 + 3, 10**9])
def test_bootstrap_in_chunks_draws_the_same_resamples(chunk_values):
    # 1 resample at a time, 7 at a time (a last chunk of another size), all at once: the reference's intervals
    y, p = reasonable_case(n=200, seed=5)
    n_boot, level, seed = 150, 0.8, 9
    idx = np.random.default_rng(seed).integers(0, y.size, size=(n_boot, y.size))
    rmse = [math.sqrt(skm.mean_squared_error(y[i], p[i])) for i in idx]
    r2 = [skm.r2_score(y[i], p[i]) for i in idx]
    got = M.bootstrap_intervals(y, p, n_boot=n_boot, level=level, seed=seed, chunk_values=chunk_values)
    assert got["rmse"] == pytest.approx(tuple(np.percentile(rmse, [10, 90])), rel=1e-9)
    assert got["r2"] == pytest.approx(tuple(np.percentile(r2, [10, 90])), rel=1e-9)
    assert got == M.bootstrap_intervals(y, p, n_boot=n_boot, level=level, seed=seed)


def test_bootstrap_wider_level_is_wider():
    y, p = reasonable_case()
    narrow = M.bootstrap_intervals(y, p, level=0.5, seed=4)
    wide = M.bootstrap_intervals(y, p, level=0.99, seed=4)
    for k in ("rmse", "r2"):
        assert wide[k][0] <= narrow[k][0] < narrow[k][1] <= wide[k][1]


def test_bootstrap_degenerate_cases():
    nan = M.bootstrap_intervals([2000], [2001])
    assert all(math.isnan(v) for v in nan["rmse"] + nan["r2"])
    y = np.full(50, 2000.0)
    perfect = M.bootstrap_intervals(y, y)
    assert perfect == {"rmse": (0.0, 0.0), "r2": (1.0, 1.0)}
    with pytest.raises(ValueError):
        M.bootstrap_intervals([1.0, float("nan")], [1.0, 2.0])


# --------------------------------------------------------------------------- segments


def test_metrics_by_segment_equals_per_group_metrics():
    rng = np.random.default_rng(8)
    n = 600
    df = pd.DataFrame({"decade": rng.choice(["1970s", "1980s", "1990s", "2000s"], n, p=[0.1, 0.2, 0.3, 0.4]),
                       "year": rng.integers(1970, 2010, n)})
    df["prediction"] = df["year"] + rng.normal(0, 6, n)
    table = M.metrics_by_segment(df, "decade")
    assert list(table.columns) == ["decade", *M.METRIC_NAMES]
    assert list(table["decade"]) == sorted(df["decade"].unique())
    for _, row in table.iterrows():
        group = df[df["decade"] == row["decade"]]
        ref = sk_reference(group["year"], group["prediction"])
        for k in M.METRIC_NAMES:
            assert row[k] == pytest.approx(ref[k], rel=TOL), (row["decade"], k)
    assert table["count"].sum() == n


def test_metrics_by_segment_min_count_and_custom_columns():
    df = pd.DataFrame({"seg": ["a"] * 5 + ["b"] * 2 + ["c"],
                       "y": [1, 2, 3, 4, 5, 1, 2, 3], "yhat": [1, 2, 3, 4, 6, 2, 2, 3]})
    table = M.metrics_by_segment(df, "seg", actual="y", prediction="yhat", min_count=2)
    assert list(table["seg"]) == ["a", "b"]
    row_a = table.set_index("seg").loc["a"]
    assert row_a["mse"] == pytest.approx(1 / 5) and row_a["count"] == 5
    every = M.metrics_by_segment(df, "seg", actual="y", prediction="yhat")
    assert list(every["seg"]) == ["a", "b", "c"] and math.isnan(every.set_index("seg").loc["c", "r2"])


def test_metrics_by_segment_empty():
    df = pd.DataFrame({"seg": ["a"], "year": [2000], "prediction": [2001.0]})
    table = M.metrics_by_segment(df, "seg", min_count=5)
    assert table.empty and list(table.columns) == ["seg", *M.METRIC_NAMES]
