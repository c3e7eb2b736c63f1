"""Model Monitor's regression model-quality files: statistics shape, the standard-deviation rule, constraints suggested
from a baseline, violations in the model-quality shape, and the metrics stage writing them per window."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from monitor_utils import metrics
from monitor_utils.model_monitor import dumps
from monitor_utils.model_monitor import model_quality as mq


def _pairs(n: int, noise: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.normal(2000, 10, n)
    return y, y + rng.normal(0, noise, n)


def test_statistics_have_model_monitors_regression_shape_and_values():
    y, p = _pairs(300)
    doc = mq.regression_statistics(y, p, seed=3, evaluation_time=dt.datetime(2023, 3, 30, 21, 8, 34, 729000,
                                                                               tzinfo=dt.timezone.utc))
    assert list(doc) == ["version", "dataset", "regression_metrics"] and doc["version"] == 0.0
    assert doc["dataset"] == {"item_count": 300, "evaluation_time": "2023-03-30T21:08:34.729Z"}
    assert list(doc["regression_metrics"]) == ["mae", "mse", "rmse", "r2"]
    ref = metrics.regression_metrics(y, p)  # sklearn-checked elsewhere
    for k, v in doc["regression_metrics"].items():
        assert set(v) == {"value", "standard_deviation"} and v["value"] == pytest.approx(ref[k])
        assert isinstance(v["standard_deviation"], float) and 0 < v["standard_deviation"] < abs(v["value"])
    text = dumps(doc)
    assert text.startswith('{\n  "version" : 0.0,\n  "dataset" : {\n    "item_count" : 300,')
    assert json.loads(text) == doc


def test_standard_deviation_is_nan_under_200_records_and_five_80_percent_subsamples_from_200():
    y, p = _pairs(199)
    doc = mq.regression_statistics(y, p)
    assert all(v["standard_deviation"] == "NaN" for v in doc["regression_metrics"].values())
    assert '"standard_deviation" : "NaN"' in dumps(doc) and "evaluation_time" not in doc["dataset"]
    y, p = _pairs(200)
    got = mq.standard_deviations(y, p, seed=11)
    rng = np.random.default_rng(11)  # the rule, written out independently
    rmses = []
    for _ in range(5):
        idx = rng.choice(200, 160, replace=False)
        rmses.append(math.sqrt(np.mean((p[idx] - y[idx]) ** 2)))
    assert got["rmse"] == pytest.approx(np.std(rmses, ddof=1))
    assert mq.standard_deviations(y, p, seed=11) == got  # a window's seed: the same file again
    assert mq.standard_deviations(y, p, seed=12) != got


def test_constraints_suggested_from_a_baseline_use_its_values_and_model_monitors_operators():
    y, p = _pairs(500)
    stats = mq.regression_statistics(y, p)
    cons = mq.regression_constraints(stats)
    assert cons["version"] == 0.0
    assert {k: c["comparison_operator"] for k, c in cons["regression_constraints"].items()} == {
        "mae": "GreaterThanThreshold", "mse": "GreaterThanThreshold", "rmse": "GreaterThanThreshold",
        "r2": "LessThanThreshold"}
    assert all(cons["regression_constraints"][k]["threshold"] == stats["regression_metrics"][k]["value"]
               for k in mq.REGRESSION_METRICS)
    read = mq.read_regression_constraints(json.loads(dumps(cons)))
    assert read["rmse"] == (stats["regression_metrics"]["rmse"]["value"], "GreaterThanThreshold")
    assert mq.check_regression(stats, read) == []  # the baseline itself passes its own constraints


def test_violations_fire_in_model_monitors_model_quality_shape_and_not_when_within():
    y, p = _pairs(400, noise=1.0)
    base = mq.read_regression_constraints(mq.regression_constraints(mq.regression_statistics(y, p)))
    worse = mq.regression_statistics(y, y + np.random.default_rng(1).normal(0, 3.0, 400), seed=5)
    found = mq.check_regression(worse, base)
    assert [(v.metric_name, v.constraint_check_type) for v in found] == [
        ("mae", "GreaterThanThreshold"), ("mse", "GreaterThanThreshold"), ("rmse", "GreaterThanThreshold"),
        ("r2", "LessThanThreshold")]
    rmse = worse["regression_metrics"]["rmse"]
    assert found[2].description == (f"Metric rmse with {rmse['value']!r} +/- {rmse['standard_deviation']!r} was "
                                    f"GreaterThanThreshold '{base['rmse'][0]!r}'")
    doc = json.loads(dumps(mq.model_quality_violations_document(found)))
    assert list(doc["violations"][0]) == ["constraint_check_type", "description", "metric_name"]
    better = mq.regression_statistics(y, y + np.random.default_rng(1).normal(0, 0.5, 400))
    assert mq.check_regression(better, base) == []
    loose = {"rmse": (9.0, "GreaterThanThreshold")}
    small = mq.regression_statistics(*_pairs(50, noise=11.0))
    (v,) = mq.check_regression(small, loose)
    assert v.description.endswith("+/- NaN was GreaterThanThreshold '9.0'")


def test_bad_constraints_files_are_named_with_the_field():
    with pytest.raises(ValueError, match="mq.json: not a regression model-quality constraints file"):
        mq.read_regression_constraints({"features": []}, "mq.json")
    with pytest.raises(ValueError, match=r"regression_constraints.rmse.comparison_operator 'Bigger'"):
        mq.read_regression_constraints({"regression_constraints": {"rmse": {"threshold": 1.0,
                                                                             "comparison_operator": "Bigger"}}})
    with pytest.raises(ValueError, match="regression_constraints.mae needs threshold"):
        mq.read_regression_constraints({"regression_constraints": {"mae": {"threshold": 1.0}}})


def test_output_layout_is_model_monitors():
    when = dt.datetime(2024, 5, 7, 0, tzinfo=dt.timezone.utc)
    assert mq.output_key("msd-year/", "ep", "", when) == "msd-year/monitoring/ep/monitor-utils-model-quality/2024/05/07/00"
    assert mq.output_key("p", "ep", "dq", when).endswith("/ep/dq-model-quality/2024/05/07/00")


# ---------------------------------------------------------------------------------------------- the stages
def test_metrics_stage_writes_model_monitors_files_per_window_and_counts_violations(make_world):
    from monitor_utils import baseline, config, stages
    from monitor_utils.aws import get_bytes, put_bytes

    from conftest import MECHANICS

    cfg, aws, now = make_world(scenario="drift", **MECHANICS)
    setup = stages.run("00_setup", cfg, aws, now)
    uri = setup["model_baselines"]["model_quality_constraints"]
    prefix = uri.removeprefix(f"s3://{cfg.bucket}/").rsplit("/", 1)[0]
    base_stats = json.loads(get_bytes(aws, cfg.bucket, f"{prefix}/statistics.json"))
    assert base_stats["dataset"]["item_count"] == cfg.world["test_rows"]
    cons = json.loads(get_bytes(aws, cfg.bucket, f"{prefix}/constraints.json"))
    assert cons == json.loads(dumps(mq.regression_constraints(base_stats)))
    assert setup.record["baseline"]["test_metrics"]["rmse"] == pytest.approx(cons["regression_constraints"]["rmse"]["threshold"])

    result = stages.run("10_metrics", cfg, aws, now)
    published = result["windows_published"]
    assert published and result["model_quality"]["windows_written"] == published
    assert result["model_quality"]["output"] == f"s3://{cfg.bucket}/msd-year/monitoring/{cfg.endpoint_name}/{cfg.endpoint_name}-suite-model-quality"
    history = result.history.set_index("window")
    for label in published:
        end = dt.datetime.fromisoformat(label).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        key = mq.output_key(cfg["prefix"], cfg.endpoint_name, f"{cfg.endpoint_name}-suite", end)
        stats = json.loads(get_bytes(aws, cfg.bucket, f"{key}/statistics.json"))
        assert stats["dataset"]["item_count"] == history.loc[label, "count"]
        assert stats["regression_metrics"]["rmse"]["value"] == pytest.approx(history.loc[label, "rmse"])
        found = json.loads(get_bytes(aws, cfg.bucket, f"{key}/constraint_violations.json"))["violations"]
        assert len(found) == history.loc[label, "model_quality_violations"]
        rmse_over = stats["regression_metrics"]["rmse"]["value"] > cons["regression_constraints"]["rmse"]["threshold"]
        assert rmse_over == any(v["metric_name"] == "rmse" for v in found)
    assert history["model_quality_violations"].iloc[-1] == 4  # the drifting window is worse on every metric
    assert result["model_quality"]["violations"] == history["model_quality_violations"].sum()
    assert "Model Monitor's model-quality check of that window: 4 violation(s)" in result.verdict.text

    # a constraints file of one's own (a model-quality baselining job's) is read from the param
    put_bytes(aws, cfg.bucket, "mine/constraints.json", dumps({"version": 0.0, "regression_constraints": {
        "rmse": {"threshold": 50.0, "comparison_operator": "GreaterThanThreshold"}}}).encode())
    mine = config.validate({**cfg.to_dict(), "model_monitor": {
        **cfg["model_monitor"], "model_quality_constraints_uri": f"s3://{cfg.bucket}/mine/constraints.json"}})
    read, where = baseline.load_model_quality_constraints(aws, mine)
    assert read == {"rmse": (50.0, "GreaterThanThreshold")} and where.endswith("mine/constraints.json")
    missing = config.validate({**cfg.to_dict(), "model_monitor": {
        **cfg["model_monitor"], "model_quality_constraints_uri": f"s3://{cfg.bucket}/none.json"}})
    with pytest.raises(FileNotFoundError, match=r"none.json does not exist \(model_monitor.model_quality_constraints_uri\)"):
        baseline.load_model_quality_constraints(aws, missing)


def test_the_policy_reads_the_configured_model_quality_constraints_and_nothing_beside_them():
    from monitor_utils import assets, config, iam

    example = str(assets.params_file("aws.example.yaml"))
    cfg = config.load([example], ["model_monitor.model_quality_constraints_uri=s3://mq-bucket/base/constraints.json"])
    policy, _ = iam.policy(cfg, "123456789012")
    resources = [r for st in policy["Statement"] if "s3:GetObject" in st["Action"] for r in st["Resource"]]
    assert "arn:aws:s3:::mq-bucket/base/constraints.json" in resources
    assert not any(r.startswith("arn:aws:s3:::mq-bucket") and r != "arn:aws:s3:::mq-bucket/base/constraints.json"
                   for r in resources)
    with pytest.raises(config.ParamsError, match="model_monitor.model_quality_constraints_uri"):
        iam.policy(config.load([example], ["model_monitor.model_quality_constraints_uri=s3://mq-bucket/*"]))
