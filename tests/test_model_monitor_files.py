"""Model Monitor's data-quality files written and read in the analyzer's shapes, and a Model Monitor baseline as the
drift reference. The fixtures are the suite's own, hand-made in the shapes of the real files: the SDK pipeline
fixture (6 headerless Fractional columns, KLL sketches), the SDK monitor fixture (string_statistics, the older
distribution_constraints layout with per-feature overrides) and the churn baseline's constraints."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from botocore.stub import Stubber

from conftest import MECHANICS, small_world_params
from monitor_utils import assets, config, iam, model_monitor as mm, stages
from monitor_utils.aws import connect, ensure_bucket, get_bytes, get_json, put_bytes


def sdk_like_frame(rows: int = 100, seed: int = 0) -> pd.DataFrame:
    """Six headerless columns of small counts read from CSV as floats, like the SDK pipeline fixture's data."""
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.integers(1, 4, rows), rng.integers(0, 2, rows), rng.integers(0, 7, rows),
                            rng.poisson(0.5, rows), rng.poisson(0.5, rows), rng.integers(0, 6, rows)]).astype(float)
    return pd.DataFrame(data, columns=[f"_c{i}" for i in range(6)])


CHURN_LIKE_CONSTRAINTS = {  # the churn baseline's constraints.json shape (analyzer-written), with our own features
    "version": 0.0,
    "features": [
        {"name": "Churn", "inferred_type": "Integral", "completeness": 1.0, "num_constraints": {"is_non_negative": True}},
        {"name": "Day Mins", "inferred_type": "Fractional", "completeness": 0.98,
         "num_constraints": {"is_non_negative": True}},
        {"name": "Delta", "inferred_type": "Fractional", "completeness": 1.0, "num_constraints": {"is_non_negative": False}},
    ],
    "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 1.0,
                          "domain_content_threshold": 1.0,
                          "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                                       "comparison_method": "Robust"}},
}

SDK_MONITOR_LIKE_CONSTRAINTS = {  # the SDK monitor fixture's shape: older distribution_constraints, overrides
    "version": 0.0,
    "features": [
        {"name": "genre", "inferred_type": "String", "completeness": 1.0,
         "string_constraints": {"domains": ["rock", "pop"],
                                "monitoring_config_overrides": {"evaluate_constraints": "Enabled",
                                                                "emit_metrics": "Enabled"}}},
        {"name": "tempo", "inferred_type": "Fractional", "completeness": 1.0,
         "monitoringConfigOverrides": {"distribution_constraints": {"comparison_threshold": 0.5}}},
    ],
    "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
                          "distribution_constraints": {"enable_comparisons": True, "min_domain_mass": 1.0,
                                                       "comparison_threshold": 1.0}},
}


# ---------------------------------------------------------------------------------------------- writing statistics
def test_statistics_of_six_fractional_columns_have_the_sdk_fixtures_layout():
    frame = sdk_like_frame()
    doc = mm.statistics_document(frame)
    assert list(doc) == ["version", "dataset", "features"] and doc["version"] == 0.0 and isinstance(doc["version"], float)
    assert doc["dataset"] == {"item_count": 100}
    assert [f["name"] for f in doc["features"]] == list(frame.columns)
    for f in doc["features"]:
        col = frame[f["name"]].to_numpy()
        assert list(f) == ["name", "inferred_type", "numerical_statistics"] and f["inferred_type"] == "Fractional"
        ns = f["numerical_statistics"]
        assert list(ns) == ["common", "mean", "sum", "std_dev", "min", "max", "distribution"]
        assert ns["common"] == {"num_present": 100, "num_missing": 0}
        assert ns["sum"] == col.sum() and ns["mean"] == pytest.approx(col.mean(), rel=1e-15)
        assert ns["std_dev"] == pytest.approx(np.std(col, ddof=0), rel=1e-13)  # population, as the analyzer
        assert ns["std_dev"] != pytest.approx(np.std(col, ddof=1), rel=1e-6)
        assert (ns["min"], ns["max"]) == (col.min(), col.max())
        kll = ns["distribution"]["kll"]
        assert list(ns["distribution"]) == ["kll"] and list(kll) == ["buckets", "sketch"]
        assert len(kll["buckets"]) == 10
        assert all(list(b) == ["lower_bound", "upper_bound", "count"] and isinstance(b["count"], float)
                   for b in kll["buckets"])
        assert sum(b["count"] for b in kll["buckets"]) == 100.0
        assert kll["buckets"][0]["lower_bound"] == col.min() and kll["buckets"][-1]["upper_bound"] == col.max()
        assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
        assert isinstance(kll["sketch"]["parameters"]["k"], float)
        assert kll["sketch"]["data"] == [list(col)]  # under k values: level 0 holds the raw values in row order


def spark_moments(values):
    """Spark's streaming sum, mean and population std (CentralMomentAgg), one value at a time: the reference."""
    n, total, avg, m2 = 0, 0.0, 0.0, 0.0
    for x in values:
        n += 1
        total += x
        delta = x - avg
        delta_n = delta / n
        avg += delta_n
        m2 += delta * (delta - delta_n)
    return total, total / n, math.sqrt(m2 / n)


def test_sums_and_moments_are_sparks_to_the_last_digit():
    rng = np.random.default_rng(21)
    frame = pd.DataFrame({"a": rng.normal(3, 2, 5000).round(3), "b": rng.lognormal(size=5000)})
    gappy = frame.assign(c=np.where(np.arange(5000) % 3 == 0, np.nan, rng.normal(size=5000)))
    for data in (frame, gappy):  # without missing values, and with (the analyzer skips them)
        for f in mm.statistics_document(data)["features"]:
            ns = f["numerical_statistics"]
            assert (ns["sum"], ns["mean"], ns["std_dev"]) == spark_moments(data[f["name"]].dropna().tolist())


def test_the_text_is_jacksons_pretty_print():
    doc = {"version": 0.0, "dataset": {"item_count": 2}, "empty": [], "none": {},
           "features": [{"name": "a", "x": [[1.0, 2.5], [0.0, -0.0, 1e-05, 25000000.0, 0.5, 0.001]], "ok": True, "nan": math.nan, "n": 3},
                        {"name": "b\u00e9", "small": 1e-05, "big": 25000000.0, "c": 0.64, "inf": -math.inf}]}
    assert mm.dumps(doc) == (
        '{\n'
        '  "version" : 0.0,\n'
        '  "dataset" : {\n'
        '    "item_count" : 2\n'
        '  },\n'
        '  "empty" : [ ],\n'
        '  "none" : { },\n'
        '  "features" : [ {\n'
        '    "name" : "a",\n'
        '    "x" : [ [ 1.0, 2.5 ], [ 0.0, -0.0, 1.0E-5, 2.5E7, 0.5, 0.001 ] ],\n'
        '    "ok" : true,\n'
        '    "nan" : "NaN",\n'
        '    "n" : 3\n'
        '  }, {\n'
        '    "name" : "b\u00e9",\n'
        '    "small" : 1.0E-5,\n'
        '    "big" : 2.5E7,\n'
        '    "c" : 0.64,\n'
        '    "inf" : "-Infinity"\n'
        '  } ]\n'
        '}')
    text = mm.dumps(mm.statistics_document(sdk_like_frame(3)))
    assert text.startswith('{\n  "version" : 0.0,\n  "dataset" : {\n    "item_count" : 3\n  },\n  "features" : [ {\n'
                           '    "name" : "_c0",\n    "inferred_type" : "Fractional",\n    "numerical_statistics" : {\n'
                           '      "common" : {\n        "num_present" : 3,\n        "num_missing" : 0\n      },')
    assert text.endswith("} ]\n}") and json.loads(text) == json.loads(json.dumps(mm.statistics_document(sdk_like_frame(3))))


def test_inferred_types_come_from_the_declared_types_else_the_dtype():
    frame = pd.DataFrame({"csv_float": [3.0, 1.0], "ints": [3, 1], "text": ["x", "y"], "flag": [True, False]})
    types = {f["name"]: f["inferred_type"] for f in mm.statistics_document(frame)["features"]}
    assert types == {"csv_float": "Fractional", "ints": "Integral", "text": "String", "flag": "Integral"}
    declared = mm.statistics_document(frame, {"ints": "Fractional"})["features"][1]
    assert declared["inferred_type"] == "Fractional" and declared["numerical_statistics"]["sum"] == 4.0
    with pytest.raises(ValueError, match="column 'ints': inferred type 'Float'"):
        mm.statistics_document(frame, {"ints": "Float"})
    with pytest.raises(ValueError, match="column 'text' is declared Fractional.*declare it String"):
        mm.statistics_document(frame, {"text": "Fractional"})
    with pytest.raises(ValueError, match=r"names column\(s\) \['nope'\]"):
        mm.statistics_document(frame, {"nope": "String"})


def test_missing_values_nan_and_the_string_layout():
    frame = pd.DataFrame({"empty": [np.nan] * 4, "part": [1.0, np.nan, 3.0, np.nan],
                          "message": ["hello", "hello", None, "bye"]})
    doc = mm.statistics_document(frame)
    empty, part, message = doc["features"]
    ns = empty["numerical_statistics"]
    assert ns["common"] == {"num_present": 0, "num_missing": 4}
    assert [ns[k] for k in ("mean", "std_dev", "min", "max")] == ["NaN"] * 4 and ns["sum"] == 0.0
    assert part["numerical_statistics"]["mean"] == 2.0 and part["numerical_statistics"]["std_dev"] == 1.0
    assert part["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"] == [[1.0, 3.0]]
    assert message == {"name": "message", "inferred_type": "String", "string_statistics": {
        "common": {"num_present": 3, "num_missing": 1}, "distinct_count": 2.0,
        "distribution": {"categorical": {"buckets": [{"value": "hello", "count": 2}, {"value": "bye", "count": 1}]}}}}
    assert isinstance(message["string_statistics"]["distinct_count"], float)
    assert '"mean" : "NaN"' in mm.dumps(doc)


# ---------------------------------------------------------------------------------------------- constraints
def test_constraints_are_suggested_as_the_analyzer_does():
    frame = sdk_like_frame().assign(_c5=lambda f: f["_c5"] - 1, genre=["rock", "pop"] * 50)
    doc = mm.constraints_document(mm.statistics_document(frame))
    assert doc["features"][0] == {"name": "_c0", "inferred_type": "Fractional", "completeness": 1.0,
                                  "num_constraints": {"is_non_negative": True}}
    assert doc["features"][5]["num_constraints"] == {"is_non_negative": False}
    assert doc["features"][6] == {"name": "genre", "inferred_type": "String", "completeness": 1.0,
                                  "string_constraints": {"domains": ["pop", "rock"]}}
    assert doc["monitoring_config"] == CHURN_LIKE_CONSTRAINTS["monitoring_config"]
    assert mm.dumps(doc).count('"comparison_method" : "Robust"') == 1
    with pytest.raises(ValueError, match="comparison_method 'KS'"):
        mm.constraints_document(mm.statistics_document(frame), comparison_method="KS")


def test_both_distribution_constraints_layouts_load():
    churn = mm.read_constraints(CHURN_LIKE_CONSTRAINTS)
    assert list(churn.features) == ["Churn", "Day Mins", "Delta"]
    assert churn.features["Day Mins"].completeness == 0.98 and churn.features["Delta"].is_non_negative is False
    assert churn.monitoring_config == mm.MonitoringConfig(True, True, 1.0, 1.0, True, 0.1, "Robust", None)
    old = mm.read_constraints(SDK_MONITOR_LIKE_CONSTRAINTS)
    assert old.monitoring_config.perform_comparison is True and old.monitoring_config.min_domain_mass == 1.0
    assert old.monitoring_config.comparison_threshold == 1.0 and old.monitoring_config.comparison_method == "Robust"
    assert old.features["genre"].domains == ["rock", "pop"]
    assert old.features["genre"].overrides == {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled"}
    assert old.comparison_threshold("tempo") == 0.5 and old.comparison_threshold("genre") == 1.0
    off = json.loads(json.dumps(SDK_MONITOR_LIKE_CONSTRAINTS))
    off["monitoring_config"]["distribution_constraints"]["enable_comparisons"] = False
    assert mm.read_constraints(off).monitoring_config.perform_comparison is False


def test_bad_files_are_named_with_the_field_to_fix():
    where = "s3://b/k/constraints.json"
    with pytest.raises(ValueError, match="s3://b/k/constraints.json: not a Model Monitor constraints file"):
        mm.read_constraints({"violations": []}, where)
    bad = json.loads(json.dumps(CHURN_LIKE_CONSTRAINTS))
    bad["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "yes"
    with pytest.raises(ValueError, match="monitoring_config.distribution_constraints.perform_comparison"):
        mm.read_constraints(bad, where)
    with pytest.raises(ValueError, match="s3://b/s.json: feature 'a': inferred_type 'Float'"):
        mm.read_statistics({"dataset": {"item_count": 1}, "features": [{"name": "a", "inferred_type": "Float"}]},
                           "s3://b/s.json")
    with pytest.raises(ValueError, match="dataset.item_count"):
        mm.read_statistics({"features": []}, "s3://b/s.json")
    with pytest.raises(ValueError, match="feature 'a'.numerical_statistics.mean: expected a number"):
        mm.read_statistics({"dataset": {"item_count": 1}, "features": [{"name": "a", "inferred_type": "Fractional",
                            "numerical_statistics": {"common": {"num_present": 1, "num_missing": 0}, "mean": "x"}}]},
                           "s3://b/s.json")


# ---------------------------------------------------------------------------------------------- round trips
def test_statistics_and_constraints_round_trip_through_their_text():
    frame = sdk_like_frame(3000, seed=4).assign(genre=["rock", "pop", "jazz"] * 1000, _c2=lambda f: f["_c2"] / 3)
    frame.loc[::7, "_c1"] = np.nan
    doc = mm.statistics_document(frame)
    stats = mm.read_statistics(json.loads(mm.dumps(doc)))
    assert stats.item_count == 3000 and list(stats.features) == list(frame.columns)
    c1 = stats.features["_c1"]
    assert (c1.num_present, c1.num_missing) == (frame["_c1"].notna().sum(), frame["_c1"].isna().sum())
    for name in frame.columns[:6]:
        feat, ns = stats.features[name], doc["features"][list(frame.columns).index(name)]["numerical_statistics"]
        assert feat.is_numeric and feat.sketch.n == feat.num_present
        assert [list(lvl) for lvl in feat.sketch.levels] == ns["distribution"]["kll"]["sketch"]["data"]
        assert (feat.mean, feat.std_dev, feat.min, feat.max) == (ns["mean"], ns["std_dev"], ns["min"], ns["max"])
    assert len(stats.features["_c2"].sketch.levels) == 2  # 3,000 values: compacted once
    genre = stats.features["genre"]
    assert not genre.is_numeric and genre.categories == {"jazz": 1000, "pop": 1000, "rock": 1000}
    assert genre.distinct_count == 3.0
    cons = mm.read_constraints(json.loads(mm.dumps(mm.constraints_document(doc, comparison_threshold=0.2,
                                                                            comparison_method="Simple"))))
    assert cons.features["_c1"].completeness == pytest.approx(frame["_c1"].notna().mean())
    assert cons.monitoring_config.comparison_threshold == 0.2 and cons.monitoring_config.comparison_method == "Simple"
    assert cons.features["genre"].domains == ["jazz", "pop", "rock"]


def test_violations_round_trip_and_the_drift_wording():
    found = [mm.Violation("f1", "baseline_drift_check", mm.violations.baseline_drift_description(0.2711598746081505, 0.1)),
             mm.Violation("f2", "completeness_check", "Value: 0.5 does not meet the constraint requirement! ")]
    doc = mm.violations_document(found)
    assert list(doc["violations"][0]) == ["feature_name", "constraint_check_type", "description"]
    assert mm.read_violations(json.loads(mm.dumps(doc))) == found
    assert found[0].description == "Numerical distance: 0.2711598746081505 exceeds numerical threshold: 0.1"
    with pytest.raises(ValueError, match="violations\\[0\\] needs feature_name"):
        mm.read_violations({"violations": [{"description": "x"}]})


# ---------------------------------------------------------------------------------------------- drift against it
def _baseline(frame, **constraints):
    stats = mm.statistics_document(frame)
    return mm.ModelMonitorBaseline(mm.read_statistics(json.loads(mm.dumps(stats))),
                                   mm.read_constraints(json.loads(mm.dumps(mm.constraints_document(stats, **constraints)))))


def _brute(a, b):
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, x, side="right") / a.size - np.searchsorted(b, x, side="right") / b.size))


def test_baseline_drift_is_model_monitors_cdf_distance_against_the_threshold():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"f0": rng.normal(size=1500), "f1": rng.normal(size=1500), "prediction": rng.normal(size=1500)})
    cur = pd.DataFrame({"f0": rng.normal(size=400), "f1": rng.normal(0.8, 1, size=400), "prediction": rng.normal(size=400)})
    columns = mm.align_columns(["f0", "f1", "prediction"], ["f0", "f1"], "prediction")
    simple = mm.baseline_drift(_baseline(ref, comparison_method="Simple"), cur, columns)
    for f in ("f0", "f1", "prediction"):
        assert simple.loc[f, "distance"] == simple.loc[f, "linf_simple"] == _brute(ref[f], cur[f])
        assert simple.loc[f, "sketch_error"] == 0.0  # 1,500 values: the sketch holds them raw
    robust = mm.baseline_drift(_baseline(ref), cur, columns)
    margin = 1.8 * math.sqrt((1500 + 400) / (1500 * 400))
    for f in ("f0", "f1", "prediction"):
        assert robust.loc[f, "distance"] == pytest.approx(max(0.0, _brute(ref[f], cur[f]) - margin), abs=1e-15)
    assert list(robust.index[robust["drifted"]]) == ["f1"] and robust.loc["f1", "distance"] > 0.1
    assert robust.loc["f1", "description"].startswith("Numerical distance: ")
    assert [v.feature_name for v in mm.drift_violations(robust)] == ["f1"]
    assert not mm.baseline_drift(_baseline(ref, comparison_threshold=0.9), cur, columns)["drifted"].any()


def test_a_headerless_baseline_lines_up_by_position_output_first():
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"_c0": rng.normal(50, 1, 800), "_c1": rng.normal(size=800), "_c2": rng.normal(size=800)})
    cur = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(2, 1, 300), "prediction": rng.normal(50, 1, 300)})
    columns = mm.align_columns(["_c0", "_c1", "_c2"], ["a", "b"], "prediction")
    assert columns == {"_c0": "prediction", "_c1": "a", "_c2": "b"}
    table = mm.baseline_drift(_baseline(ref), cur, columns)
    assert table.loc["prediction", "baseline_feature"] == "_c0" and list(table.index[table["drifted"]]) == ["b"]
    assert mm.align_columns(["_c0", "_c1"], ["a", "b"], "prediction") == {"_c0": "a", "_c1": "b"}
    with pytest.raises(ValueError, match="4 features"):
        mm.align_columns(["w", "x", "y", "z"], ["a", "b"], "prediction")


def test_string_features_compare_category_shares_and_overrides_apply():
    ref = pd.DataFrame({"genre": ["rock"] * 600 + ["pop"] * 400, "tempo": np.linspace(0, 1, 1000)})
    cur = pd.DataFrame({"genre": ["rock"] * 100 + ["pop"] * 250 + ["jazz"] * 50, "tempo": np.linspace(0.5, 1.5, 400)})
    stats = mm.statistics_document(ref)
    base = mm.ModelMonitorBaseline(mm.read_statistics(stats), mm.read_constraints(SDK_MONITOR_LIKE_CONSTRAINTS))
    table = mm.baseline_drift(base, cur, {"genre": "genre", "tempo": "tempo"})
    assert table.loc["genre", "linf_simple"] == pytest.approx(max(abs(0.6 - 0.25), abs(0.4 - 0.625), 0.125))
    assert table.loc["tempo", "threshold"] == 0.5 and table.loc["genre", "threshold"] == 1.0  # override, then file
    assert not table["drifted"].any()  # the older layout's threshold 1.0: nothing can exceed it


# ---------------------------------------------------------------------------------------------- where the files are
def _sagemaker():
    import boto3

    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_a_schedules_inline_baseline_is_found_with_botocore_validated_shapes():
    client = _sagemaker()
    with Stubber(client) as stub:
        stub.add_response("describe_monitoring_schedule", {
            "MonitoringScheduleArn": "arn:aws:sagemaker:us-east-1:000000000000:monitoring-schedule/dq",
            "MonitoringScheduleName": "dq", "MonitoringScheduleStatus": "Scheduled", "MonitoringType": "DataQuality",
            "CreationTime": "2024-01-01T00:00:00Z", "LastModifiedTime": "2024-01-01T00:00:00Z",
            "MonitoringScheduleConfig": {"MonitoringJobDefinition": {
                "BaselineConfig": {"StatisticsResource": {"S3Uri": "s3://b/base/statistics.json"},
                                   "ConstraintsResource": {"S3Uri": "s3://b/base/constraints.json"}},
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": "ep", "LocalPath": "/opt/ml/processing/input"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                    "S3Uri": "s3://b/reports", "LocalPath": "/opt/ml/processing/output"}}]},
                "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                          "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {"ImageUri": "image"},
                "RoleArn": "arn:aws:iam::000000000000:role/monitor"}}},
            {"MonitoringScheduleName": "dq"})
        assert mm.schedule_baseline_uris(client, "dq") == ("s3://b/base/statistics.json", "s3://b/base/constraints.json")


class _ScheduleThenMoto:
    """DescribeMonitoringSchedule answered by a stubbed client (moto has no monitoring schedules), the job
    definition by moto's own DescribeDataQualityJobDefinition."""

    def __init__(self, stubbed, moto):
        self.describe_monitoring_schedule = stubbed.describe_monitoring_schedule
        self.describe_data_quality_job_definition = moto.describe_data_quality_job_definition


def _schedule_answer(name: str, kind: str) -> dict:
    """DescribeMonitoringSchedule's answer for schedule ``name`` of ``kind`` with job definition ``<name>-def``."""
    return {"MonitoringScheduleArn": f"arn:aws:sagemaker:us-east-1:000000000000:monitoring-schedule/{name}",
            "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Scheduled",
            "CreationTime": "2024-01-01T00:00:00Z", "LastModifiedTime": "2024-01-01T00:00:00Z",
            "MonitoringScheduleConfig": {"MonitoringJobDefinitionName": f"{name}-def", "MonitoringType": kind}}


def test_a_schedules_job_definition_gives_the_baseline(emulator):
    cfg = config.validate(small_world_params("mm-job-definition"))  # no world: a bucket and the emulated SageMaker
    aws = connect(cfg, emulator.url)
    ensure_bucket(aws, cfg.bucket)
    sm = aws.client("sagemaker")
    sm.create_data_quality_job_definition(
        JobDefinitionName="dq-def",
        DataQualityBaselineConfig={"StatisticsResource": {"S3Uri": f"s3://{cfg.bucket}/mm/statistics.json"},
                                   "ConstraintsResource": {"S3Uri": f"s3://{cfg.bucket}/mm/constraints.json"}},
        DataQualityAppSpecification={"ImageUri": "image"},
        DataQualityJobInput={"EndpointInput": {"EndpointName": cfg.endpoint_name, "LocalPath": "/opt/ml/processing/input"}},
        DataQualityJobOutputConfig={"MonitoringOutputs": [{"S3Output": {"S3Uri": f"s3://{cfg.bucket}/reports",
                                                                         "LocalPath": "/opt/ml/processing/output"}}]},
        JobResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        RoleArn="arn:aws:iam::000000000000:role/monitor")
    client = _sagemaker()
    with Stubber(client) as stub:
        stub.add_response("describe_monitoring_schedule", _schedule_answer("dq", "DataQuality"),
                          {"MonitoringScheduleName": "dq"})
        uris = mm.schedule_baseline_uris(_ScheduleThenMoto(client, sm), "dq")
    assert uris == (f"s3://{cfg.bucket}/mm/statistics.json", f"s3://{cfg.bucket}/mm/constraints.json")
    with Stubber(client) as stub:
        stub.add_response("describe_monitoring_schedule", _schedule_answer("mq", "ModelQuality"),
                          {"MonitoringScheduleName": "mq"})
        with pytest.raises(ValueError, match="'mq' is a ModelQuality monitor"):
            mm.schedule_baseline_uris(client, "mq")
    with pytest.raises(ValueError, match="model_monitor.constraints_uri is empty"):
        mm.configured_uris(aws, config.validate({**cfg.to_dict(), "model_monitor": {
            "statistics_uri": "s3://b/s.json", "constraints_uri": "", "schedule_name": ""}}))
    assert mm.configured_uris(aws, cfg) is None
    with pytest.raises(FileNotFoundError, match=r"s3://.*/nothing.json does not exist \(model_monitor.statistics_uri\)"):
        mm.load_model_monitor_baseline(aws, f"s3://{cfg.bucket}/nothing.json", f"s3://{cfg.bucket}/nothing.json")
    put_bytes(aws, cfg.bucket, "mm/statistics.json", b"not json")
    with pytest.raises(ValueError, match="statistics.json is not JSON"):
        mm.load_model_monitor_baseline(aws, *uris)


# ---------------------------------------------------------------------------------------------- the stages
def test_setup_writes_model_monitors_files_and_drift_reads_them_as_its_reference(make_world):
    cfg, aws, now = make_world(scenario="drift", **MECHANICS)
    setup = stages.run("00_setup", cfg, aws, now)
    prefix = setup["baseline"]["uri"].removeprefix(f"s3://{cfg.bucket}/")
    text = get_bytes(aws, cfg.bucket, f"{prefix}statistics.json").decode()
    assert text.startswith('{\n  "version" : 0.0,\n  "dataset" : {\n    "item_count" : 4000\n')
    stats = mm.read_statistics(json.loads(text))
    assert len(stats.features) == 91 and {f.inferred_type for f in stats.features.values()} == {"Fractional"}
    assert all(f.sketch.n == 4000 and len(f.buckets) == 10 for f in stats.features.values())
    cons = mm.read_constraints(json.loads(get_bytes(aws, cfg.bucket, f"{prefix}constraints.json")))
    assert cons.monitoring_config == mm.MonitoringConfig()  # the analyzer's defaults: 0.1, Robust
    settings = get_json(aws, cfg.bucket, f"{prefix}monitor_utils_drift.json")
    assert settings["alpha"] == cfg.drift["alpha"] == 0.01 and settings["min_effect"] == 0.05
    assert setup["drift_settings"] == settings

    uris = {"statistics_uri": f"s3://{cfg.bucket}/{prefix}statistics.json",
            "constraints_uri": f"s3://{cfg.bucket}/{prefix}constraints.json", "schedule_name": ""}
    cfg_mm = config.validate({**cfg.to_dict(), "model_monitor": uris, "drift": {**cfg.drift, "alpha": 0.005}})
    result = stages.run("20_drift", cfg_mm, aws, now)
    assert result["model_monitor"]["statistics_uri"] == uris["statistics_uri"]
    assert get_json(aws, cfg.bucket, f"{prefix}monitor_utils_drift.json")["alpha"] == 0.005  # what the stage ran
    checked = result.history.dropna(subset=["drift_detected"])
    assert checked["baseline_drift_features"].notna().all()
    assert "baseline_drift" in result.feature_history and result.feature_history["baseline_drift"].between(0, 1).all()
    broken = cfg.world["broken_feature"]
    last = checked.iloc[-1]
    assert broken in list(last["baseline_drift_top"])
    assert "Against the Model Monitor baseline (Robust CDF distance over 0.1)" in result.verdict.text
    doc = get_json(aws, cfg.bucket, cfg.key("drift", "windows", f"{last['window']}.json"))
    table = {r["feature"]: r for r in doc["model_monitor_baseline_drift"]}
    assert table[broken]["drifted"] and table[broken]["distance"] > 0.1


# ---------------------------------------------------------------------------------------------- IAM
def _allows(policy: dict, call: "iam.Call", region: str) -> bool:
    """Whether an Allow statement without conditions grants every permission ``call`` needs."""
    from fnmatch import fnmatchcase

    return all(any(need.action in st["Action"] and not st.get("Condition")
                   and any(fnmatchcase(need.resource, r) for r in st["Resource"]) for st in policy["Statement"])
               for need in iam.needs(call, region, "123456789012"))


def test_the_policy_reads_the_configured_baseline_and_nothing_beside_it():
    example = str(assets.params_file("aws.example.yaml"))
    cfg = config.load([example], ["model_monitor.schedule_name=dq-sched"])
    policy, notes = iam.policy(cfg, "123456789012")
    schedule = lambda name: iam.Call("sagemaker", "DescribeMonitoringSchedule", {"MonitoringScheduleName": name})  # noqa: E731
    assert _allows(policy, schedule("dq-sched"), cfg.region) and not _allows(policy, schedule("other"), cfg.region)
    assert _allows(policy, iam.Call("sagemaker", "DescribeDataQualityJobDefinition", {"JobDefinitionName": "d"}),
                   cfg.region)
    assert any("model_monitor.schedule_name" in n for n in notes)
    without, _ = iam.policy(config.load([example]), "123456789012")
    assert not _allows(without, schedule("dq-sched"), cfg.region)
    cfg = config.load([example], ["model_monitor.statistics_uri=s3://mm-bucket/base/statistics.json",
                                  "model_monitor.constraints_uri=s3://mm-bucket/base/constraints.json"])
    policy, _ = iam.policy(cfg, "123456789012")
    get = lambda key: iam.Call("s3", "GetObject", {"Bucket": "mm-bucket", "Key": key})  # noqa: E731
    assert _allows(policy, get("base/statistics.json"), cfg.region) and _allows(policy, get("base/constraints.json"), cfg.region)
    assert not _allows(policy, get("base/other.json"), cfg.region)
    with pytest.raises(config.ParamsError, match="model_monitor.statistics_uri"):
        iam.policy(config.load([example], ["model_monitor.statistics_uri=s3://mm-bucket/*",
                                           "model_monitor.constraints_uri=s3://mm-bucket/c.json"]))
