"""Feature-attribution drift: exact linear SHAP against brute-force Shapley values, nDCG against a hand-computed case
and scikit-learn's ndcg_score, and the drift stage naming the broken feature."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import ndcg_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from monitor_utils import attribution as attr

FEATS = ["a", "b", "c", "d"]


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal([1, -2, 5, 0], [1, 3, 0.5, 2], (n, 4)), columns=FEATS)
    y = 3 * x["a"] - 0.5 * x["b"] + 8 * x["c"] + 0.1 * x["d"] + rng.normal(0, 0.1, n)
    return x, y


def _brute_force_shapley(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact interventional Shapley values of one record by enumerating every coalition: v(S) = mean over the
    background of f(x_S, background_rest)."""
    p = x.size

    def value(subset):
        rows = background.copy()
        rows[:, list(subset)] = x[list(subset)]
        return float(np.mean(f(rows)))

    phi = np.zeros(p)
    for j in range(p):
        others = [k for k in range(p) if k != j]
        for size in range(p):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
                phi[j] += w * (value(s + (j,)) - value(s))
    return phi


def test_linear_shap_of_a_scaled_ridge_pipeline_equals_brute_force_shapley_values():
    x, y = _data()
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    explainer = attr.make_explainer(model, x, FEATS)
    assert explainer.method == "linear_shap"
    background = x.to_numpy()[:60]  # a background sample: its mean is what linear SHAP uses
    predict = lambda rows: model.predict(pd.DataFrame(rows, columns=FEATS))  # noqa: E731
    for record in x.to_numpy()[200:203]:
        exact = _brute_force_shapley(predict, record, background)
        fast = attr.linear_shap(explainer.coef, background.mean(axis=0), record[None, :])[0]
        assert fast == pytest.approx(exact, rel=1e-6, abs=1e-9)
        assert fast.sum() == pytest.approx(predict(record[None, :])[0] - predict(background).mean())  # efficiency


def test_global_attributions_are_mean_absolute_shap_and_rank_the_features():
    x, y = _data()
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    explainer = attr.make_explainer(model, x, FEATS)
    got = attr.global_attributions(explainer, x)
    expected = np.abs(attr.linear_shap(explainer.coef, x.to_numpy().mean(axis=0), x.to_numpy())).mean(axis=0)
    assert got.to_numpy() == pytest.approx(expected)
    assert list(got.sort_values(ascending=False).index) == ["c", "a", "b", "d"]  # |w| * sd * 0.80: 3.2, 2.4, 1.2, 0.16
    with_missing = x.copy()
    with_missing.loc[0, "a"] = np.nan
    assert attr.global_attributions(explainer, with_missing).notna().all()


def test_a_non_linear_model_gets_permutation_importance():
    x, y = _data()
    tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x, y)
    explainer = attr.make_explainer(tree, x, FEATS)
    assert explainer.method == "permutation_importance" and explainer.coef is None
    got = attr.global_attributions(explainer, x)
    assert got.idxmax() in ("a", "c") and got["d"] < got["a"]


def test_ndcg_against_a_hand_computed_case_and_scikit_learn():
    base = pd.Series({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0})
    assert attr.ndcg(base, base * 7) == pytest.approx(1.0)
    window = pd.Series({"a": 1.0, "b": 3.0, "c": 2.0, "d": 9.0})  # window order d, b, c, a
    dcg = 1 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(4) + 4 / math.log2(5)
    idcg = 4 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(4) + 1 / math.log2(5)
    assert attr.ndcg(base, window) == pytest.approx(dcg / idcg) == pytest.approx(0.7668, abs=1e-4)
    rng = np.random.default_rng(3)
    for _ in range(20):
        b, w = rng.random(8), rng.random(8)
        assert attr.ndcg(pd.Series(b), pd.Series(w)) == pytest.approx(ndcg_score([b], [w]))


def test_attribution_drift_flags_below_the_threshold_and_names_the_feature_that_moved():
    base = pd.Series({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0})
    drift = attr.attribution_drift(base, pd.Series({"a": 1.0, "b": 3.0, "c": 2.0, "d": 9.0}))
    assert drift.violated and drift.most_changed[0] == "d" and drift.most_changed[1] == "a"
    assert drift.table.loc["d", "window_rank"] == 1 and drift.table.loc["d", "baseline_rank"] == 4
    doc = attr.violation_document(drift)
    assert doc["version"] == "1.0" and doc["violations"][0]["constraint_check_type"] == "feature_attribution_drift_check"
    assert doc["violations"][0]["metric_name"] == "shap" and "most changed: d, a" in doc["violations"][0]["description"]
    calm = attr.attribution_drift(base, base * 1.1)
    assert not calm.violated and attr.violation_document(calm)["violations"] == []
    assert attr.attribution_drift(base, pd.Series({"a": 4.0, "b": 3.0, "c": 1.0, "d": 2.0}), threshold=0.999).violated
    assert attr.read_analysis(attr.analysis_document(base, 2000.0, "linear_shap")).equals(base)


def test_drift_stage_names_the_broken_feature_and_publishes_attribution_drift_once(make_world):
    import datetime as dt
    import json

    from conftest import MECHANICS
    from monitor_utils import stages
    from monitor_utils.aws import get_bytes

    cfg, aws, now = make_world(scenario="drift", **{**MECHANICS, "world": {**MECHANICS["world"],
                                                                             "broken_feature": "timbre_avg_07"}})
    setup = stages.run("00_setup", cfg, aws, now)
    doc = json.loads(get_bytes(aws, cfg.bucket, setup["model_baselines"]["attributions"].removeprefix(f"s3://{cfg.bucket}/")))
    assert doc["method"] == "linear_shap" and len(doc["explanations"]["kernel_shap"]["label0"]["global_shap_values"]) == 90
    result = stages.run("20_drift", cfg, aws, now)
    checked = result.history.dropna(subset=["drift_detected"]).set_index("window")
    assert checked["attribution_ndcg"].between(0, 1).all() and result["attribution"]["method"] == "linear_shap"
    last = checked.iloc[-1]
    assert list(last["attribution_most_changed"])[0] == "timbre_avg_07"
    assert list(checked["attribution_most_changed"].iloc[0])[0] != "timbre_avg_07"  # before it broke
    assert "Feature attributions (mean |SHAP|): nDCG" in result.verdict.text
    assert "most changed: timbre_avg_07" in result.verdict.text
    key = cfg.key("monitoring", cfg.endpoint_name, f"{cfg.endpoint_name}-suite-model-explainability",
                  f"{dt.datetime.fromisoformat(last.name) + dt.timedelta(days=1):%Y/%m/%d/%H}")
    violations = json.loads(get_bytes(aws, cfg.bucket, f"{key}/constraint_violations.json"))
    assert violations["version"] == "1.0" and bool(violations["violations"]) == bool(last["attribution_violated"])
    cw = aws.client("cloudwatch")
    dims = [{"Name": k, "Value": v} for k, v in cfg.metric_dimensions().items()]
    for name in ("FeatureAttributionDrift", "AttributionNDCG"):
        points = cw.get_metric_statistics(Namespace=cfg.namespace, MetricName=name, Dimensions=dims,
                                          StartTime=now - dt.timedelta(days=30), EndTime=now + dt.timedelta(days=1), Period=86400,
                                          Statistics=["SampleCount"])["Datapoints"]
        assert sorted(p["SampleCount"] for p in points) == [1.0] * len(checked)
    from monitor_utils.stages import alerting as alerting_stage

    assert alerting_stage.most_changed_features(aws, cfg)[0] == "timbre_avg_07"  # what a quality page names
    again = stages.run("20_drift", cfg, aws, now)  # nothing new: nothing published twice
    assert again["windows_checked"] == [] and again["datums_published"] == 0


def test_a_quality_page_names_the_features_whose_attribution_moved_most():
    import pandas as pd

    from monitor_utils.stages.alerting import verdict

    rows = [{"alarm": "ep-estimated-rmse", "state": "ALARM", "threshold": 9.0},
            {"alarm": "ep-heartbeat", "state": "ALARM", "threshold": 1.0},
            {"alarm": "ep-r2", "state": "OK", "threshold": 0.15}]
    text = verdict(rows, {}, {}, ["timbre_avg_03", "timbre_avg_01"], "ep").text
    assert "ep-estimated-rmse is in ALARM; most changed: timbre_avg_03, timbre_avg_01." in text
    assert "ep-heartbeat is in ALARM." in text  # not a page about quality
    assert "most changed" not in verdict(rows, {}, {}, [], "ep").text
