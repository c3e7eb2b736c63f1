"""Tests for monitor_utils.drift: exactness against scipy, API behaviour and statistical quality."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitor_utils.drift import (
    DEFAULT_MIN_EFFECT,
    Baseline,
    CategoricalFeature,
    DriftReport,
    NumericFeature,
    benjamini_hochberg,
    bonferroni,
    build_baseline,
    detect_drift,
    ecdf_points,
    ks_pvalue,
    ks_statistic_sorted,
)

N_REF, N_CUR = 463_715, 51_630  # Million Song Dataset train / test split sizes


# ----------------------------------------------------------------------------- helpers


def scipy_ks(ref, cur):
    """scipy reference result on NaN-free samples."""
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    return stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)])


def assert_ks_matches_scipy(table: pd.DataFrame, ref: pd.DataFrame, cur: pd.DataFrame, p_rel: bool = True):
    for col in table.index:
        res = scipy_ks(ref[col], cur[col])
        row = table.loc[col]
        assert row["test"] == "ks", col
        assert abs(row["statistic"] - res.statistic) <= 1e-12, (col, row["statistic"], res.statistic)
        assert abs(row["p_value"] - res.pvalue) <= 1e-5, (col, row["p_value"], res.pvalue)
        if p_rel and res.pvalue > 1e-300:
            assert row["p_value"] == pytest.approx(res.pvalue, rel=1e-6), col


def mixed_frame(rng: np.random.Generator, n: int, shifts: dict[str, float] | None = None) -> pd.DataFrame:
    """Continuous, heavy-tailed, skewed and heavily tied columns (all > 20 distinct values)."""
    shifts = shifts or {}
    cols = {
        "normal": rng.normal(0, 1, n),
        "student_t3": rng.standard_t(3, n),
        "lognormal": rng.lognormal(0, 1, n),
        "rounded_1dp": np.round(rng.normal(0, 1, n), 1),
        "integers": np.round(rng.normal(50, 8, n)),
    }
    return pd.DataFrame({k: v + shifts.get(k, 0.0) for k, v in cols.items()})


# ----------------------------------------------------------------------------- KS exactness


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "n_ref,n_cur",
    [(1, 1), (1, 4), (5, 1), (2, 3), (5, 5), (4, 9), (37, 23), (200, 1000), (3000, 2999)],
)
def test_ks_statistic_sorted_matches_scipy(seed, n_ref, n_cur):
    rng = np.random.default_rng(seed)
    for transform in (lambda x: x, lambda x: np.round(x), lambda x: np.round(x, 1), lambda x: np.floor(x / 2)):
        ref = np.sort(transform(rng.normal(0, 2, n_ref)))
        cur = np.sort(transform(rng.normal(0.3 * seed, 2, n_cur)))
        assert abs(ks_statistic_sorted(ref, cur) - stats.ks_2samp(ref, cur).statistic) <= 1e-12


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@pytest.mark.parametrize(
    "n_ref,n_cur",
    [(1, 1), (1, 3), (4, 1), (2, 5), (5, 5), (3, 4), (17, 40), (100, 100), (250, 1200), (9999, 10000),
     (10001, 300), (20000, 15000)],
)
def test_detect_drift_matches_ks_2samp_small_and_medium(n_ref, n_cur):
    rng = np.random.default_rng(n_ref * 7919 + n_cur)

    def frame(n, shift):
        return pd.DataFrame({
            "cont": rng.normal(shift, 1, n),
            "tied_int": np.round(rng.normal(shift, 1.5, n)),  # few distinct values, many ties
            "tied_0dp": np.round(rng.exponential(2, n) + shift, 0),
            "unequal_scale": rng.normal(0, 1 + shift, n),
        })

    ref, cur = frame(n_ref, 0.0), frame(n_cur, 0.4)
    report = detect_drift(ref, cur, categorical_max_unique=0, correction="none")
    assert_ks_matches_scipy(report.table, ref, cur)
    assert np.array_equal(report.table["p_adjusted"], report.table["p_value"])


def test_detect_drift_matches_ks_2samp_msd_size():
    """Large samples (asymptotic p), incl. ties, heavy tails, outliers and every p-value regime."""
    rng = np.random.default_rng(11)
    ref = mixed_frame(rng, N_REF)
    ref["outliers"] = np.concatenate([rng.normal(0, 1, N_REF - 3), [1e12, -1e9, 3e300]])
    ref["constantish"] = np.where(rng.random(N_REF) < 0.999, 5.0, rng.normal(5, 1, N_REF))
    baseline = build_baseline(ref)
    assert all(isinstance(f, NumericFeature) for f in baseline.features.values())
    # D spans the scipy branches: PelzGood (no drift), 2*smirnov (moderate), 0 (large)
    for shifts in ({}, {"normal": 0.02, "student_t3": 0.03, "rounded_1dp": 0.05},
                   {"normal": 0.1, "lognormal": 0.15, "integers": 1.0, "rounded_1dp": 0.04},
                   {"normal": 1.0, "student_t3": 0.5, "lognormal": -0.4}):
        cur = mixed_frame(rng, N_CUR, shifts)
        cur["outliers"] = rng.normal(0, 1, N_CUR) * (1 + 2 * bool(shifts))
        cur["constantish"] = np.where(rng.random(N_CUR) < 0.998, 5.0, rng.normal(5, 1, N_CUR))
        report = detect_drift(baseline, cur, correction="none")
        assert_ks_matches_scipy(report.table, ref, cur)


def test_rounded_data_shifted_off_the_lattice_is_exact():
    """Tied reference, current values between the reference's distinct values."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": np.round(rng.normal(0, 1, N_REF), 2), "y": np.round(rng.normal(0, 3, N_REF), 1)})
    cur = pd.DataFrame({"x": np.round(rng.normal(0, 1, N_CUR), 2) + 0.005, "y": np.round(rng.normal(0.05, 3, N_CUR), 1)})
    table = detect_drift(ref, cur, correction="none").table
    assert_ks_matches_scipy(table, ref, cur)


def test_ks_pvalue_helper_matches_scipy():
    rng = np.random.default_rng(3)
    for n_ref, n_cur, shift in [(3, 5, 1.0), (40, 40, 0.5), (500, 800, 0.1), (9000, 10000, 0.05),
                                (N_REF // 10, N_CUR, 0.0), (N_REF // 10, N_CUR, 0.03), (N_REF // 10, N_CUR, 0.2),
                                (200_000, 150, 0.3)]:
        ref, cur = rng.normal(0, 1, n_ref), rng.normal(shift, 1, n_cur)
        res = stats.ks_2samp(ref, cur)
        assert abs(ks_pvalue(res.statistic, n_ref, n_cur) - res.pvalue) <= 1e-5
        if res.pvalue > 1e-300:
            assert ks_pvalue(res.statistic, n_ref, n_cur) == pytest.approx(res.pvalue, rel=1e-6)


def test_sklearn_diabetes_and_wine_match_scipy():
    from sklearn.datasets import load_diabetes, load_wine

    diabetes = load_diabetes(as_frame=True).frame
    ref, cur = diabetes.iloc[:300], diabetes.iloc[300:]
    report = detect_drift(ref, cur, correction="none")
    assert report.table.loc["sex", "test"] == "chi2"  # two distinct values
    numeric = report.table.index[report.table["test"] == "ks"]
    assert len(numeric) == 10
    assert_ks_matches_scipy(report.table.loc[numeric], ref, cur)
    table = pd.crosstab(pd.concat([ref["sex"], cur["sex"]]), np.r_[np.zeros(len(ref)), np.ones(len(cur))]).T
    chi2 = stats.chi2_contingency(table.to_numpy(), correction=False)
    assert report.table.loc["sex", "statistic"] == pytest.approx(chi2.statistic, rel=1e-12)
    assert report.table.loc["sex", "p_value"] == pytest.approx(chi2.pvalue, rel=1e-10)

    wine = load_wine(as_frame=True).frame.drop(columns="target")
    shuffled = wine.sample(frac=1.0, random_state=0)
    ref, cur = shuffled.iloc[:120], shuffled.iloc[120:]
    report = detect_drift(ref, cur, correction="none", categorical_max_unique=0)
    assert_ks_matches_scipy(report.table, ref, cur)
    # sorted by alcohol: the two halves differ strongly in alcohol
    by_alcohol = wine.sort_values("alcohol")
    report = detect_drift(by_alcohol.iloc[:89], by_alcohol.iloc[89:])
    assert report.drift_detected and "alcohol" in report.drifted_features
    assert report.drifted_features[0] == "alcohol"


# ----------------------------------------------------------------------------- effect sizes


def test_wasserstein_matches_scipy_in_reference_sd_units():
    rng = np.random.default_rng(8)
    ref = mixed_frame(rng, N_REF)
    baseline = build_baseline(ref)
    for shifts in ({}, {"normal": 0.1, "student_t3": 0.2, "lognormal": 0.3, "rounded_1dp": 0.1, "integers": 2.0}):
        cur = mixed_frame(rng, N_CUR, shifts)
        table = detect_drift(baseline, cur).table
        for col in ref.columns:
            exact = stats.wasserstein_distance(ref[col], cur[col]) / ref[col].std()
            ours = table.loc[col, "wasserstein"]
            # grid value is exact unless F_ref - F_cur changes sign inside a cell; never above exact
            assert ours <= exact + 1e-9
            assert exact - ours <= 2e-4, (col, ours, exact)
            if shifts:
                assert ours == pytest.approx(exact, rel=1e-3), col


def test_wasserstein_small_samples_and_categorical_numeric():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(0, 2, 50), "k": rng.integers(0, 5, 50).astype(float)})
    cur = pd.DataFrame({"x": rng.normal(1, 2, 30), "k": rng.integers(1, 7, 30).astype(float)})
    table = detect_drift(ref, cur).table
    assert table.loc["k", "test"] == "chi2"
    for col in ("x", "k"):
        exact = stats.wasserstein_distance(ref[col], cur[col]) / ref[col].std()
        assert table.loc[col, "wasserstein"] == pytest.approx(exact, rel=0.02, abs=1e-3)
    exact_k = stats.wasserstein_distance(ref["k"], cur["k"]) / ref["k"].std()
    assert table.loc["k", "wasserstein"] == pytest.approx(exact_k, rel=1e-12)


def test_wasserstein_separates_shift_sizes_on_tied_data_where_ks_cannot():
    """Integer-valued feature (SD 10): +0.2 and +1.0 both move values one lattice step for KS."""
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"x": np.round(rng.normal(0, 10, 200_000))})
    cur = pd.DataFrame({"x": np.round(rng.normal(0, 10, 50_000))})
    baseline = build_baseline(ref)
    small = detect_drift(baseline, cur + 0.2).table.loc["x"]  # 0.02 SD
    large = detect_drift(baseline, cur + 1.0).table.loc["x"]  # 0.1 SD
    assert small["statistic"] == large["statistic"]
    assert small["p_adjusted"] < 1e-10  # significant, yet not practically relevant
    assert small["wasserstein"] == pytest.approx(0.02, abs=0.005)
    assert large["wasserstein"] == pytest.approx(0.1, abs=0.005)
    assert not small["drifted"] and large["drifted"]


def test_psi_against_histogram_on_reported_edges():
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.gamma(2.0, 1.0, 200_000)})
    cur = pd.DataFrame({"x": rng.gamma(2.2, 1.0, 40_000)})
    baseline = build_baseline(ref)
    feat = baseline.features["x"]
    edges = feat.psi_edges
    assert edges.size == 9
    ref_share = np.bincount(np.searchsorted(edges, ref["x"], side="right"), minlength=10) / len(ref)
    cur_share = np.bincount(np.searchsorted(edges, cur["x"], side="right"), minlength=10) / len(cur)
    np.testing.assert_allclose(ref_share, feat.psi_shares, atol=1e-5)
    np.testing.assert_allclose(ref_share, 0.1, atol=2e-3)  # deciles, snapped to the value grid
    expected = float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))
    assert detect_drift(baseline, cur).table.loc["x", "psi"] == pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------- categorical


def test_chi_square_path_equals_scipy_chi2_contingency():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"genre": rng.choice(["rock", "pop", "jazz", "folk"], 5000, p=[0.4, 0.3, 0.2, 0.1])})
    cur_values = rng.choice(["rock", "pop", "jazz", "metal"], 2000, p=[0.35, 0.35, 0.2, 0.1]).astype(object)
    cur_values[:25] = None
    cur = pd.DataFrame({"genre": cur_values})
    report = detect_drift(ref, cur)
    row = report.table.loc["genre"]
    cats = ["rock", "pop", "jazz", "folk", "metal"]
    observed = np.array([[np.sum(ref["genre"] == c) for c in cats], [np.sum(cur["genre"] == c) for c in cats]])
    chi2 = stats.chi2_contingency(observed, correction=False)
    assert row["test"] == "chi2"
    assert row["statistic"] == pytest.approx(chi2.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9, abs=1e-300)
    assert row["nan_share_current"] == pytest.approx(25 / 2000)
    r = np.maximum(observed[0] / observed[0].sum(), 1e-4)
    c = np.maximum(observed[1] / observed[1].sum(), 1e-4)
    assert row["psi"] == pytest.approx(np.sum((c - r) * np.log(c / r)), rel=1e-12)
    assert row["effect_size"] == "psi" and row["drifted"]


def test_category_dtype_and_low_cardinality_numeric_use_chi_square():
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({
        "mode": pd.Categorical(rng.choice(["major", "minor"], 3000)),
        "key": rng.integers(0, 12, 3000),
        "flag": rng.random(3000) < 0.3,
    })
    cur = pd.DataFrame({
        "mode": pd.Categorical(rng.choice(["major", "minor"], 1000, p=[0.5, 0.5])),
        "key": rng.integers(0, 12, 1000),
        "flag": rng.random(1000) < 0.3,
    })
    baseline = build_baseline(ref)
    assert all(isinstance(f, CategoricalFeature) for f in baseline.features.values())
    table = detect_drift(baseline, cur).table
    assert (table["test"] == "chi2").all()
    for col in ("key", "flag"):
        values = np.union1d(ref[col], cur[col])
        obs = np.array([[np.sum(ref[col] == v) for v in values], [np.sum(cur[col] == v) for v in values]])
        assert table.loc[col, "statistic"] == pytest.approx(stats.chi2_contingency(obs, correction=False).statistic)


# ----------------------------------------------------------------------------- API behaviour


@pytest.fixture(scope="module")
def small_pair():
    rng = np.random.default_rng(21)
    ref = pd.DataFrame({f"f{i}": rng.normal(0, 1, 20_000) for i in range(6)})
    cur = pd.DataFrame({f"f{i}": rng.normal(0.3 if i < 2 else 0.0, 1, 8_000) for i in range(6)})
    return ref, cur


def test_report_shape_bool_and_seed_compatible_signature(small_pair):
    ref, cur = small_pair
    report = detect_drift(ref, cur, 0.05)  # seed call: positional threshold
    assert isinstance(report, DriftReport)
    assert bool(report) is True and report.drift_detected is True
    assert report.drifted_features[:2] and set(report.drifted_features) == {"f0", "f1"}
    effects = report.table.loc[report.drifted_features, "effect"].to_numpy()
    assert np.all(np.diff(effects) <= 0)
    assert report.n_reference == 20_000 and report.n_current == 8_000
    assert report.drift_share == pytest.approx(2 / 6)
    required = {"test", "statistic", "p_value", "p_adjusted", "psi", "wasserstein", "effect", "drifted",
                "nan_share_reference", "nan_share_current", "reason"}
    assert required <= set(report.table.columns)
    assert report.options["correction"] == "bh" and report.options["threshold"] == 0.05
    assert report.options["min_effect"] == DEFAULT_MIN_EFFECT["wasserstein"]
    reason = report.table.loc["f0", "reason"]
    assert "p_adj=" in reason and "< 0.05" in reason and "wasserstein=" in reason and ">= 0.05" in reason
    same = detect_drift(ref, ref.sample(8_000, random_state=1))
    assert bool(same) is False and same.drifted_features == []
    payload = json.dumps(report.to_dict(), allow_nan=False)
    back = json.loads(payload)
    assert back["drift_detected"] is True and len(back["features"]) == 6
    assert back["features"][0]["feature"] == "f0" and back["features"][0]["drifted"] is True


def test_dataframe_and_baseline_reference_give_identical_tables(small_pair):
    ref, cur = small_pair
    from_frame = detect_drift(ref, cur)
    from_baseline = detect_drift(build_baseline(ref), cur)
    pd.testing.assert_frame_equal(from_frame.table, from_baseline.table, check_exact=True)
    assert from_frame.drifted_features == from_baseline.drifted_features


def test_baseline_save_load_and_bytes_round_trip(tmp_path, small_pair):
    ref, cur = small_pair
    ref = ref.assign(genre=np.where(np.arange(len(ref)) % 3 == 0, "rock", "pop"),
                     key=np.arange(len(ref)) % 5, missing=np.where(np.arange(len(ref)) % 4 == 0, np.nan, 1.5 * ref["f0"]))
    cur = cur.assign(genre="pop", key=np.arange(len(cur)) % 4, missing=cur["f0"])
    baseline = build_baseline(ref, prediction_column="f5")
    path = tmp_path / "baseline.bin"
    baseline.save(path)
    assert path.exists()  # no suffix appended
    buf = io.BytesIO()
    baseline.save(buf)
    buf.seek(0)
    copies = [Baseline.load(path), Baseline.from_bytes(baseline.to_bytes()), Baseline.load(buf)]
    expected = detect_drift(baseline, cur).table
    for copy in copies:
        assert copy.feature_names == baseline.feature_names and copy.settings == baseline.settings
        for name, feat in baseline.features.items():
            other = copy.features[name]
            assert type(other) is type(feat)
            for key, value in vars(feat).items():
                got = vars(other)[key]
                if isinstance(value, np.ndarray):
                    assert got.dtype == value.dtype and np.array_equal(got, value, equal_nan=value.dtype.kind == "f"), key
                elif isinstance(value, float) and math.isnan(value):
                    assert math.isnan(got), key
                else:
                    assert got == value, key
        pd.testing.assert_frame_equal(detect_drift(copy, cur).table, expected, check_exact=True)
    assert expected.loc["f5", "role"] == "prediction"


def test_missing_and_extra_columns_are_named(small_pair):
    ref, cur = small_pair
    baseline = build_baseline(ref)
    with pytest.raises(ValueError, match=r"current data lacks column 'f3' present in the baseline"):
        detect_drift(baseline, cur.drop(columns="f3"))
    with pytest.raises(ValueError, match=r"column 'year' not present in the baseline"):
        detect_drift(baseline, cur.assign(year=1999))
    with pytest.raises(ValueError, match=r"'f1'.*'f2'"):
        detect_drift(baseline, cur.drop(columns=["f1", "f2"]))
    # a subset via columns= ignores the others
    report = detect_drift(baseline, cur.drop(columns="f3").assign(year=1999), columns=["f0", "f4"])
    assert list(report.table.index) == ["f0", "f4"]
    with pytest.raises(ValueError, match="not in the baseline"):
        detect_drift(baseline, cur, columns=["nope"])


def test_nan_shares_and_all_nan_column(small_pair):
    ref, cur = small_pair
    ref = ref.copy()
    cur = cur.copy()
    ref.loc[ref.index[:2000], "f2"] = np.nan
    cur.loc[cur.index[:800], "f3"] = np.nan
    cur["f4"] = np.nan
    report = detect_drift(ref, cur)
    t = report.table
    assert t.loc["f2", "nan_share_reference"] == pytest.approx(0.1)
    assert t.loc["f3", "nan_share_current"] == pytest.approx(0.1)
    assert t.loc["f4", "nan_share_current"] == 1.0
    assert not t.loc["f4", "tested"] and not t.loc["f4", "drifted"] and np.isnan(t.loc["f4", "p_value"])
    assert "missing" in t.loc["f4", "reason"] and "not tested" in t.loc["f4", "reason"]
    res = scipy_ks(ref["f3"], cur["f3"])
    assert t.loc["f3", "statistic"] == pytest.approx(res.statistic, abs=1e-12)
    assert t.loc["f3", "p_value"] == pytest.approx(res.pvalue, abs=1e-5)
    assert t.loc["f3", "n_current"] == 7_200
    assert report.drift_share == pytest.approx(2 / 5)  # f4 not tested


def test_corrections_match_scipy_and_order():
    rng = np.random.default_rng(0)
    shifts = np.r_[np.linspace(0.0, 0.06, 20), np.zeros(10)]  # graded: BH's step-up matters
    ref = pd.DataFrame({f"f{i:02d}": rng.normal(0, 1, 20_000) for i in range(30)})
    cur = pd.DataFrame({f"f{i:02d}": rng.normal(s, 1, 8_000) for i, s in enumerate(shifts)})
    baseline = build_baseline(ref)
    raw = detect_drift(baseline, cur, correction="none", min_effect=0.0).table
    p = raw["p_value"].to_numpy()
    bh = detect_drift(baseline, cur, correction="bh", min_effect=0.0).table
    bonf = detect_drift(baseline, cur, correction="bonferroni", min_effect=0.0).table
    expected_bh = stats.false_discovery_control(p, method="bh")
    step_down_only = np.minimum(1.0, p * len(p) / (np.argsort(np.argsort(p)) + 1))
    assert np.any(step_down_only > expected_bh * (1 + 1e-9))  # BH's running minimum matters here
    np.testing.assert_allclose(bh["p_adjusted"], expected_bh, rtol=1e-12)
    np.testing.assert_allclose(bonf["p_adjusted"], np.minimum(1.0, p * len(p)), rtol=1e-12)
    np.testing.assert_array_equal(raw["p_adjusted"], p)
    for q in (rng.uniform(size=200) ** 3, rng.uniform(size=7), np.array([0.01, 0.011, 0.04, 0.041, 0.5])):
        np.testing.assert_allclose(benjamini_hochberg(q), stats.false_discovery_control(q), rtol=1e-12)
        np.testing.assert_allclose(bonferroni(q), np.minimum(1, q * len(q)))
    n_raw, n_bh, n_bonf = raw["drifted"].sum(), bh["drifted"].sum(), bonf["drifted"].sum()
    assert set(bonf.index[bonf.drifted]) <= set(bh.index[bh.drifted]) <= set(raw.index[raw.drifted])
    assert n_raw > n_bh > n_bonf > 0, (n_raw, n_bh, n_bonf)


def test_option_validation_lists_accepted_names(small_pair):
    ref, cur = small_pair
    with pytest.raises(ValueError, match=r"unknown correction 'holm'.*'bh'.*'bonferroni'.*'none'"):
        detect_drift(ref, cur, correction="holm")
    with pytest.raises(TypeError, match=r"unknown option.*'alpha'.*accepted options.*'correction'"):
        detect_drift(ref, cur, alpha=0.01)
    with pytest.raises(ValueError, match=r"effect_size.*'wasserstein'.*'psi'.*'ks'"):
        detect_drift(ref, cur, effect_size="kl")
    with pytest.raises(ValueError, match=r"dataset_rule.*'count'.*'share'.*'weighted'"):
        detect_drift(ref, cur, dataset_rule="majority")
    with pytest.raises(ValueError, match="threshold"):
        detect_drift(ref, cur, 5)
    with pytest.raises(ValueError, match="weights lack tested feature"):
        detect_drift(ref, cur, dataset_rule="weighted", weights={"f0": 1.0})


def test_effect_size_options_gate_and_dataset_rules(small_pair):
    ref, cur = small_pair
    baseline = build_baseline(ref)
    for name, column in (("wasserstein", "wasserstein"), ("psi", "psi"), ("ks", "statistic")):
        t = detect_drift(baseline, cur, effect_size=name).table
        np.testing.assert_array_equal(t["effect"], t[column])
        assert (t["effect_size"] == name).all()
    # a gate above the observed effects silences significant features, and the reason says so
    t = detect_drift(baseline, cur, min_effect=10.0).table
    assert not t["drifted"].any()
    assert "too small to matter" in t.loc["f0", "reason"]
    assert detect_drift(baseline, cur, dataset_rule="share", dataset_threshold=0.3).drift_detected
    assert not detect_drift(baseline, cur, dataset_rule="share", dataset_threshold=0.5).drift_detected
    assert not detect_drift(baseline, cur, dataset_threshold=3).drift_detected
    weights = {f"f{i}": (10.0 if i < 2 else 1.0) for i in range(6)}
    assert detect_drift(baseline, cur, dataset_rule="weighted", weights=weights).drift_detected  # 20/24
    weights = {f"f{i}": (1.0 if i < 2 else 10.0) for i in range(6)}
    assert not detect_drift(baseline, cur, dataset_rule="weighted", weights=weights).drift_detected  # 2/42


def test_ecdf_points_are_exact_ecdf_values():
    rng = np.random.default_rng(6)
    values = np.round(rng.normal(0, 1, 10_000), 2)
    x, y = ecdf_points(values, max_points=300)
    assert x.size <= 300 and np.all(np.diff(x) >= 0)
    np.testing.assert_array_equal(y, [np.mean(values <= v) for v in x])
    assert y[-1] == 1.0
    baseline = build_baseline(pd.DataFrame({"v": values}))
    bx, by = baseline.ecdf_points("v", max_points=300)
    np.testing.assert_array_equal(bx, x)
    np.testing.assert_array_equal(by, y)


def test_build_baseline_validation():
    with pytest.raises(ValueError, match="no rows"):
        build_baseline(pd.DataFrame({"a": []}))
    with pytest.raises(ValueError, match="column 'ts'.*unsupported dtype"):
        build_baseline(pd.DataFrame({"ts": pd.date_range("2020", periods=3)}))
    with pytest.raises(ValueError, match="prediction_column 'yhat'"):
        build_baseline(pd.DataFrame({"a": [1.0, 2.0]}), prediction_column="yhat")
    baseline = build_baseline(pd.DataFrame({"a": np.arange(100.0)}))
    with pytest.raises(ValueError, match=r"column 'a' is numeric in the baseline.*pd.to_numeric"):
        detect_drift(baseline, pd.DataFrame({"a": ["x", "y"]}))


# ----------------------------------------------------------------------------- statistical quality
#
# One baseline of MSD size (463,715 rows) with 10 features of different shapes, and 120
# independent current windows of MSD test size (51,630 rows). The verdict properties are
# per feature (the dataset rule "count >= 1" only adds the other, undrifted features'
# chance of a false alarm), so 10 features cover the shapes; the 90-feature case is checked
# separately below for the multiple-testing correction.

QUALITY_WINDOWS = 120


def _quality_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "normal": rng.normal(3.0, 2.0, n),
        "student_t3": rng.standard_t(3, n),
        "student_t5": 10 + 4 * rng.standard_t(5, n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
        "lognormal_narrow": rng.lognormal(2.0, 0.4, n),
        "exponential": rng.exponential(5.0, n),
        "uniform": rng.uniform(-1, 1, n),
        "bimodal": np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(2, 1, n)),
        "rounded_1dp": np.round(rng.normal(0, 1, n), 1),
        "integers": np.round(rng.normal(100, 15, n)),
    }


@pytest.fixture(scope="module")
def quality_results():
    rng = np.random.default_rng(2024)
    baseline = build_baseline(pd.DataFrame(_quality_columns(rng, N_REF)))
    names = baseline.feature_names
    results = {"null": [], "shift_0.1": [], "shift_0.02": []}
    for w in range(QUALITY_WINDOWS):
        window = pd.DataFrame(_quality_columns(rng, N_CUR))
        results["null"].append(detect_drift(baseline, window))
        target = names[w % len(names)]
        sd = baseline.features[target].std
        for label, size in (("shift_0.1", 0.1), ("shift_0.02", 0.02)):
            shifted = window.copy()
            shifted[target] = shifted[target] + size * sd
            results[label].append((target, detect_drift(baseline, shifted)))
    return results


def test_same_distribution_windows_rarely_alarm(quality_results):
    alarms = sum(r.drift_detected for r in quality_results["null"])
    assert alarms <= 0.05 * QUALITY_WINDOWS, alarms


def test_shift_of_0_1_sd_is_caught(quality_results):
    caught = sum(r.drift_detected and target in r.drifted_features for target, r in quality_results["shift_0.1"])
    assert caught >= 0.95 * QUALITY_WINDOWS, caught


def test_shift_of_0_02_sd_is_not_declared(quality_results):
    declared = sum(r.drift_detected for _, r in quality_results["shift_0.02"])
    assert declared <= 0.05 * QUALITY_WINDOWS, declared
    # ...although the KS test alone finds it often: the effect gate is what rejects it
    significant = sum(r.table.loc[t, "p_adjusted"] < 0.05 for t, r in quality_results["shift_0.02"])
    assert significant >= 0.3 * QUALITY_WINDOWS, significant


def test_ninety_features_multiple_testing():
    """Seed rule (uncorrected p < 0.05) flags ~4.5 of 90 same-distribution features per window."""
    rng = np.random.default_rng(90)
    kinds = [
        lambda n: rng.normal(0, 1, n),
        lambda n: rng.standard_t(4, n),
        lambda n: rng.lognormal(0, 0.7, n),
        lambda n: np.round(rng.normal(0, 2, n), 1),
    ]

    def frame(n):
        return pd.DataFrame({f"timbre_{j:02d}": kinds[j % 4](n) for j in range(90)})

    baseline = build_baseline(frame(N_REF))
    seed_counts, bh_alarms, default_alarms = [], 0, 0
    for _ in range(8):
        window = frame(N_CUR)
        raw = detect_drift(baseline, window, correction="none", min_effect=0.0)
        seed_counts.append(int(raw.table["drifted"].sum()))
        bh_alarms += detect_drift(baseline, window, min_effect=0.0).drift_detected
        default_alarms += detect_drift(baseline, window).drift_detected
    assert 2 <= np.mean(seed_counts) <= 8, seed_counts  # p-values are uniform under the null
    assert sum(c > 0 for c in seed_counts) >= 6, seed_counts  # the seed would alarm almost always
    assert bh_alarms <= 2  # BH controls the family-wise error at 5% under the global null
    assert default_alarms == 0
