"""The KLL sketch: Deequ's layout and compaction, ranks and buckets, its error bound, and the CDF distance."""

import math

import numpy as np
import pytest
from scipy import stats

from monitor_utils.kll import KLLSketch, linf_distance, robust_distance, sketch_values


def deequ_reference(values, k, c):
    """Deequ's QuantileNonSample.update, transcribed one value at a time (the independent reference)."""
    cap = lambda h: 2 * (math.ceil(k * c**h / 2) + 1)  # noqa: E731
    levels, compressions, offsets = [[]], [0], [0]
    for v in values:
        levels[0].append(v)
        if sum(map(len, levels)) > sum(cap(h) for h in range(len(levels))):
            for h in range(len(levels)):
                if len(levels[h]) >= cap(h):
                    if h + 1 >= len(levels):
                        levels.append([]), compressions.append(0), offsets.append(0)
                    items = len(levels[h])
                    even = items - items % 2
                    if compressions[h] % 2 == 1:
                        offsets[h] = 1 - offsets[h]
                    s = sorted(levels[h][:even])
                    levels[h + 1] += s[offsets[h]:even:2]
                    levels[h] = levels[h][even:]
                    compressions[h] += 1
                    break
    return levels


def brute_cdf_distance(a, b):
    """sup |F_a - F_b| over every value of either sample, with numpy on the raw values."""
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, x, side="right") / a.size - np.searchsorted(b, x, side="right") / b.size))


def test_a_small_column_is_kept_raw_in_row_order():
    values = np.array([3.0, 1.0, 2.0, 3.0, 3.0, 1.0, 2.0, 3.0])
    sketch = sketch_values(values)
    assert [list(lvl) for lvl in sketch.levels] == [list(values)]  # level 0 = the values as read, unsorted
    assert sketch.to_json() == {"parameters": {"c": 0.64, "k": 2048.0}, "data": [list(values)]}
    assert sketch.n == 8 and sketch.error_bound() == 0.0


def test_2333_rows_give_the_churn_baselines_layout():
    # the real churn baseline (2,333 rows) logs levels of 283 and 1,025 values, the second sorted
    values = np.random.default_rng(3).integers(0, 250, 2333).astype(float)
    levels = sketch_values(values).levels
    assert [lvl.size for lvl in levels] == [283, 1025]
    assert np.all(np.diff(levels[1]) >= 0)
    assert levels[0][-1] == values[-1]  # the newest values stay in level 0, in order
    assert levels[0].size + 2 * levels[1].size == 2333


@pytest.mark.parametrize("k, c, n", [(2048, 0.64, 9000), (40, 0.64, 3000), (16, 0.5, 2000)])
def test_updates_in_runs_equal_deequs_one_value_at_a_time(k, c, n):
    values = np.random.default_rng(k).normal(size=n).round(2)
    expected = deequ_reference(list(values), k, c)
    sketch = KLLSketch(k, c).update(values[: n // 3]).update(values[n // 3:])
    assert [list(lvl) for lvl in sketch.levels] == expected
    assert len(expected) > 1  # compactions happened


def test_an_exactly_full_sketch_is_compacted_by_sparks_final_merge():
    values = np.arange(2050.0)[::-1]
    assert [lvl.size for lvl in KLLSketch().update(values).levels] == [2050]
    merged = sketch_values(values).levels
    assert [lvl.size for lvl in merged] == [0, 1025]
    np.testing.assert_array_equal(merged[1], np.arange(0.0, 2050.0, 2))


def test_buckets_are_deequs_equal_width_counts():
    values = np.random.default_rng(1).normal(size=1000)
    lo, hi = values.min(), values.max()
    buckets = sketch_values(values).buckets(lo, hi)
    assert len(buckets) == 10 and all(isinstance(b["count"], float) for b in buckets)
    edges = [lo + (hi - lo) * i / 10.0 for i in range(11)]
    assert [b["lower_bound"] for b in buckets] == edges[:-1] and [b["upper_bound"] for b in buckets] == edges[1:]
    expected = [np.sum((values >= a) & (values < b)) for a, b in zip(edges[:-2], edges[1:-1])]
    expected.append(np.sum((values >= edges[-2]) & (values <= hi)))  # the last bucket is closed
    assert [b["count"] for b in buckets] == [float(e) for e in expected]


@pytest.mark.parametrize("k", [2048, 512, 200])
@pytest.mark.parametrize("dist", ["normal", "lognormal", "integers"])
def test_cdf_and_quantile_errors_stay_within_the_bound(k, dist):
    rng = np.random.default_rng(k)
    values = {"normal": rng.normal(size=60_000), "lognormal": rng.lognormal(size=60_000),
              "integers": rng.integers(0, 40, 60_000).astype(float)}[dist]
    sketch = sketch_values(values, k=k)
    bound = sketch.error_bound()
    assert 0 < bound < 1 and sketch.n == values.size
    x = np.sort(values)
    exact = np.searchsorted(x, x, side="right") / x.size
    assert np.max(np.abs(sketch.cdf(x) - exact)) <= bound
    q = np.linspace(0.01, 0.99, 99)
    ranks = np.searchsorted(x, sketch.quantile(q), side="right") / x.size  # true CDF at the sketch's quantiles
    low = np.searchsorted(x, sketch.quantile(q), side="left") / x.size
    assert np.all((ranks >= q - bound) & (low <= q + bound))


def test_the_distance_is_the_brute_force_cdf_distance_while_the_sketch_is_exact():
    rng = np.random.default_rng(5)
    base, window = rng.normal(size=1800), rng.normal(0.3, 1.2, size=700)
    d = linf_distance(sketch_values(base), window)
    assert d == brute_cdf_distance(base, window)
    assert d == pytest.approx(stats.ks_2samp(base, window).statistic, abs=1e-15)
    ties_base, ties_window = rng.integers(0, 5, 1500).astype(float), rng.integers(1, 6, 400).astype(float)
    assert linf_distance(sketch_values(ties_base), ties_window) == brute_cdf_distance(ties_base, ties_window)


def test_the_distance_to_a_compacted_sketch_is_within_its_bound():
    rng = np.random.default_rng(8)
    base, window = rng.normal(size=200_000), rng.normal(0.05, 1.0, size=5000)
    sketch = sketch_values(base)
    assert len(sketch.levels) > 2
    exact = brute_cdf_distance(base, window)
    assert abs(linf_distance(sketch, window) - exact) <= sketch.error_bound()


def test_robust_distance_subtracts_the_ks_margin():
    assert robust_distance(0.3, 1000, 100) == pytest.approx(0.3 - 1.8 * math.sqrt(1100 / 100_000))
    assert robust_distance(0.05, 1000, 100) == 0.0


def test_json_round_trip_and_errors():
    sketch = sketch_values(np.random.default_rng(2).normal(size=5000))
    again = KLLSketch.from_json(sketch.to_json())
    assert [list(a) for a in again.levels] == [list(b) for b in sketch.levels] and again.n == 5000
    with pytest.raises(ValueError, match="statistics.json: feature 'x'.*parameters"):
        KLLSketch.from_json({"data": [[1.0]]}, "statistics.json: feature 'x'")
    with pytest.raises(ValueError, match="list of levels"):
        KLLSketch.from_json({"parameters": {"c": 0.64, "k": 2048.0}, "data": [1.0, 2.0]})
    with pytest.raises(ValueError, match="different parameters"):
        KLLSketch(2048).merge(KLLSketch(1024))
