"""Model Monitor's data-quality checks per window (issue 23 point 3) and its CloudWatch metrics (point 5).

Hand-made windows fire and clear each check type; a small world whose broken feature is captured missing or as text
shows completeness and data-type violations written at Model Monitor's layout and counted; the opt-in Model Monitor
metrics are read back from the emulator with their names and dimensions, published once across reruns."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from conftest import MECHANICS, small_world_params
from monitor_utils import alerting, config, iam, model_monitor as mm, payloads, publish, stages
from monitor_utils.aws import connect, get_bytes
from monitor_utils.context import run_clock
from monitor_utils.local import world
from monitor_utils.model_monitor.quality import CHECK_ORDER

WHEN = dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc)


def constraints(**config_overrides) -> mm.Constraints:
    """Constraints in the analyzer's shape: an Integral count, a non-negative Fractional, a Fractional that may be
    negative, a String with a domain."""
    doc = {"version": 0.0, "features": [
        {"name": "plays", "inferred_type": "Integral", "completeness": 1.0, "num_constraints": {"is_non_negative": True}},
        {"name": "loudness", "inferred_type": "Fractional", "completeness": 0.9,
         "num_constraints": {"is_non_negative": True}},
        {"name": "delta", "inferred_type": "Fractional", "completeness": 1.0,
         "num_constraints": {"is_non_negative": False}},
        {"name": "genre", "inferred_type": "String", "completeness": 1.0,
         "string_constraints": {"domains": ["rock", "pop"]}},
    ], "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
                             "datatype_check_threshold": 1.0, "domain_content_threshold": 1.0,
                             "distribution_constraints": {"perform_comparison": "Enabled",
                                                          "comparison_threshold": 0.1, "comparison_method": "Robust"}}}
    doc["monitoring_config"].update(config_overrides)
    return mm.read_constraints(doc)


def clean_window(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"plays": np.arange(n, dtype=float), "loudness": np.linspace(0.0, 5.0, n),
                         "delta": np.linspace(-1.0, 1.0, n), "genre": ["rock", "pop"] * (n // 2)})


def check(window: pd.DataFrame, cons: mm.Constraints | None = None, **kw) -> mm.WindowQuality:
    cons = cons or constraints()
    match = mm.match_columns(list(cons.features), list(window.columns))
    return mm.check_window(cons, window, match, **kw)


def kinds(q: mm.WindowQuality) -> list[tuple[str, str]]:
    return [(v.feature_name, v.constraint_check_type) for v in q.violations]


# ---------------------------------------------------------------------------------------------- each check type
def test_a_clean_window_has_no_violation_and_statistics_in_the_baselines_shape():
    q = check(clean_window())
    assert q.violations == []
    assert [f["name"] for f in q.statistics["features"]] == ["plays", "loudness", "delta", "genre"]
    assert [f["inferred_type"] for f in q.statistics["features"]] == ["Integral", "Fractional", "Fractional", "String"]
    num = q.statistics["features"][1]["numerical_statistics"]
    assert set(num) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert len(num["distribution"]["kll"]["buckets"]) == 10
    assert q.statistics["dataset"]["item_count"] == 20


def test_data_type_check_counts_text_in_a_number_column_against_the_threshold_in_the_analyzers_words():
    w = clean_window().astype({"loudness": object})
    w.loc[3, "loudness"] = "loud"
    q = check(w)
    assert kinds(q) == [("loudness", "data_type_check")]
    assert q.violations[0].description == ("Data type match requirement is not met. Expected data type: Fractional, "
                                           "Expected match: 100.0%. Observed: Only 95.0% of data is Fractional.")
    assert q.checks.loc["loudness", "type_share"] == pytest.approx(19 / 20)
    assert check(w, constraints(datatype_check_threshold=0.9)).violations == []  # 95% passes a 90% threshold


def test_data_type_check_of_an_integral_feature_counts_fractions_and_accepts_whole_floats():
    w = clean_window()
    assert check(w).violations == []  # 0.0, 1.0, ... are whole numbers
    w.loc[0, "plays"] = 2.5
    q = check(w)
    assert kinds(q) == [("plays", "data_type_check")]
    assert "Expected data type: Integral" in q.violations[0].description and "Only 95.0% of data is Integral" in \
        q.violations[0].description


def test_type_mismatches_of_quarantined_lines_count_as_present_values_of_another_type():
    q = check(clean_window(), type_mismatches={"delta": 5})
    assert kinds(q) == [("delta", "data_type_check")]
    assert q.checks.loc["delta", "type_share"] == pytest.approx(20 / 25)
    assert q.checks.loc["delta", "completeness"] == 1.0  # text is present, not missing


def test_completeness_check_fires_below_the_features_completeness_with_the_analyzers_generic_wording():
    w = clean_window()
    w.loc[[0, 1], "loudness"] = np.nan  # 90% present: loudness asks for 0.9, passes
    w.loc[0, "delta"] = np.nan  # 95% present: delta asks for 1.0, fails
    q = check(w)
    assert kinds(q) == [("delta", "completeness_check")]
    assert q.violations[0].description == "Value: 0.95 does not meet the constraint requirement! "
    w.loc[2, "loudness"] = np.nan  # 85% < 90%
    assert ("loudness", "completeness_check") in kinds(check(w))


def test_is_non_negative_fires_only_where_the_constraint_asks_for_it():
    w = clean_window()
    w.loc[4, "loudness"] = -0.5
    q = check(w)
    assert kinds(q) == [("loudness", "is_non_negative")]
    assert "1 negative value(s), minimum -0.5" in q.violations[0].description
    assert check(clean_window()).checks.loc["delta", "min"] == -1.0  # delta may be negative: no violation above


def test_categorical_values_check_compares_the_share_inside_the_domains_with_domain_content_threshold():
    w = clean_window()
    w.loc[[0, 2], "genre"] = "jazz"
    q = check(w)
    assert kinds(q) == [("genre", "categorical_values_check")]
    assert q.violations[0].description == "Value: 0.9 does not meet the constraint requirement! "
    assert check(w, constraints(domain_content_threshold=0.85)).violations == []


def test_missing_and_extra_columns_are_violations_not_errors():
    w = clean_window().drop(columns=["delta"]).assign(tempo=1.0)
    q = check(w)
    assert kinds(q) == [("delta", "missing_column_check"), ("tempo", "extra_column_check")]
    assert "Column delta is in the baseline constraints but not in the current dataset" in q.violations[0].description
    assert [f["name"] for f in q.statistics["features"]] == ["plays", "loudness", "genre"]


def test_a_headerless_baseline_matches_by_position_and_reports_the_columns_beyond_it():
    match = mm.match_columns(["_c0", "_c1", "_c2"], ["a", "b"], "prediction")
    assert (match.columns, match.missing, match.extra) == ({"_c0": "prediction", "_c1": "a", "_c2": "b"}, [], [])
    match = mm.match_columns(["_c0", "_c1"], ["a", "b", "c"], "prediction")
    assert (match.columns, match.missing, match.extra) == ({"_c0": "prediction", "_c1": "a"}, [], ["b", "c"])
    match = mm.match_columns(["_c0", "_c1", "_c2", "_c3", "_c4"], ["a", "b"], "prediction")
    assert match.missing == ["_c3", "_c4"] and match.extra == []
    by_name = mm.match_columns(["a", "b", "prediction"], ["a", "c"], "prediction")
    assert (by_name.columns, by_name.missing, by_name.extra) == ({"a": "a", "prediction": "prediction"}, ["b"], ["c"])


def test_baseline_drift_check_comes_from_the_drift_table_and_evaluate_constraints_disabled_keeps_only_it():
    drift = pd.DataFrame({"baseline_feature": ["loudness", "delta"], "drifted": [True, False],
                          "description": ["Numerical distance: 0.3 exceeds numerical threshold: 0.1", ""]},
                         index=["loudness", "delta"])
    w = clean_window()
    w.loc[0, "delta"] = np.nan
    q = check(w, drift=drift)
    assert kinds(q) == [("delta", "completeness_check"), ("loudness", "baseline_drift_check")]
    assert q.counts == {"completeness_check": 1, "baseline_drift_check": 1}
    off = check(w, constraints(evaluate_constraints="Disabled"), drift=drift)
    assert kinds(off) == [("loudness", "baseline_drift_check")]


def test_violations_are_written_in_the_analyzers_layout_and_read_back():
    w = clean_window().astype({"loudness": object})
    w.loc[3, "loudness"] = "loud"
    text = mm.dumps(mm.violations_document(check(w).violations))
    assert text.startswith('{\n  "violations" : [ {\n    "feature_name" : "loudness",\n    "constraint_check_type" : '
                           '"data_type_check",\n    "description" : "Data type match')
    assert mm.read_violations(json.loads(text))[0].constraint_check_type == "data_type_check"
    assert set(CHECK_ORDER) >= {"data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
                                "extra_column_check", "categorical_values_check", "is_non_negative"}


# ---------------------------------------------------------------------------------------------- the reader's reasons
@pytest.mark.parametrize("body, named", [("1,n/a,3", ["b"]), ("a,b,c", ["a", "b", "c"]),
                                         ('{"instances": [[1, 2, "x"]]}', ["c"])])
def test_a_quarantine_reason_names_the_feature_whose_value_is_not_a_number(body, named):
    csv = not body.startswith("{")
    with pytest.raises(payloads.BodyError) as err:
        payloads.parse_input({"observedContentType": "text/csv" if csv else "application/json", "mode": "INPUT",
                              "data": body, "encoding": "CSV" if csv else "JSON"}, ["a", "b", "c"])
    assert payloads.non_numeric_features(str(err.value), ["a", "b", "c"]) == named
    # other reasons (an infinite value, a wrong count) name no type mismatch
    assert payloads.non_numeric_features("record 0 feature 'c' is inf: not a finite number", ["a", "b", "c"]) == []


# ---------------------------------------------------------------------------------------------- the metrics
def test_data_metrics_are_model_monitors_names_namespace_and_dimensions():
    q = check(clean_window())
    datums = mm.data_metrics_datums(q.statistics, {"loudness": 0.25}, WHEN, "ep", "ep-schedule")
    names = {d["MetricName"] for d in datums}
    assert names == {f"feature_non_null_{f}" for f in ("plays", "loudness", "delta", "genre")} | \
        {f"feature_data_{f}" for f in ("plays", "loudness", "delta")} | {"feature_baseline_drift_loudness"}
    assert all(d[publish.NAMESPACE_KEY] == "aws/sagemaker/Endpoints/data-metrics" for d in datums)
    assert all(d["Dimensions"] == [{"Name": "Endpoint", "Value": "ep"}, {"Name": "MonitoringSchedule",
                                                                        "Value": "ep-schedule"}] for d in datums)
    data = next(d for d in datums if d["MetricName"] == "feature_data_loudness")["StatisticValues"]
    assert data == {"SampleCount": 20.0, "Sum": pytest.approx(50.0), "Minimum": 0.0, "Maximum": 5.0}
    emf = mm.data_metrics_datums(q.statistics, {}, WHEN, "ep", "s", statistic_values=False)
    assert next(d for d in emf if d["MetricName"] == "feature_data_loudness")["Value"] == pytest.approx(2.5)
    assert publish.emf_documents(mm.DATA_METRICS_NAMESPACE, publish.by_namespace(emf, "x")[mm.DATA_METRICS_NAMESPACE])
    model = mm.model_metrics_datums({"mae": 1.0, "mse": 4.0, "rmse": 2.0, "r2": float("nan")}, WHEN, "ep", "s")
    assert [d["MetricName"] for d in model] == ["mae", "mse", "rmse"]  # NaN is not published
    assert {d[publish.NAMESPACE_KEY] for d in model} == {"aws/sagemaker/Endpoints/model-metrics"}


def test_datums_go_to_their_own_namespace_without_the_key():
    groups = publish.by_namespace([{"MetricName": "a", publish.NAMESPACE_KEY: "x"}, {"MetricName": "b"}], "suite")
    assert groups == {"x": [{"MetricName": "a"}], "suite": [{"MetricName": "b"}]}


def test_the_data_quality_alarm_is_off_unless_asked_for():
    names = [s["AlarmName"] for s in alerting.alarm_specs(config.validate({"endpoint_name": "ep"}), "arn:aws:sns:us-east-1:1:t", "")]
    assert "ep-data-quality" not in names
    cfg = config.validate({"endpoint_name": "ep", "alarms": {"data_quality": True},
                           "alarm_overrides": {"data-quality": {"Threshold": 3}}})
    spec = {s["AlarmName"]: s for s in alerting.alarm_specs(cfg, "arn:aws:sns:us-east-1:1:t", "")}["ep-data-quality"]
    assert (spec["MetricName"], spec["Namespace"], spec["Threshold"]) == ("DataQualityViolations", cfg.namespace, 3.0)
    assert spec["AlarmActions"] == ["arn:aws:sns:us-east-1:1:t"]
    with pytest.raises(config.ParamsError, match="alarm 'data-quality' is off"):
        config.validate({"alarm_overrides": {"data-quality": {"Threshold": 3}}})


# ---------------------------------------------------------------------------------------------- a world, end to end
def list_keys(aws, bucket: str, prefix: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="module")
def broken_world(emulator):
    """A mechanics-sized stable world whose broken feature is captured missing (20%) and as text (10%) from the
    middle day on, with Model Monitor's metrics published; setup and drift have run once."""
    cfg = config.validate(small_world_params("dq", days=6, scenario="stable",
                                             world={**MECHANICS["world"], "missing_share": 0.2, "text_share": 0.1},
                                             model_monitor={"publish_metrics": True}))
    aws = connect(cfg, emulator.url)
    world.build(aws, cfg, progress=lambda m: None)
    now = run_clock(cfg, aws)
    stages.run("00_setup", cfg, aws, now)
    with iam.record_calls(aws) as calls:
        result = stages.run("20_drift", cfg, aws, now)
    RECORDED[cfg.endpoint_name] = calls
    return cfg, aws, now, result


RECORDED: dict[str, list] = {}


def test_the_broken_feature_is_named_by_completeness_and_data_type_violations_written_at_the_layout(broken_world):
    cfg, aws, now, result = broken_world
    record, history = result.record, result.record["history"]
    schedule = f"{cfg.endpoint_name}-suite"
    assert record["data_quality"]["schedule"] == schedule
    assert record["data_quality"]["constraints_uri"].endswith("/constraints.json")
    keys = list_keys(aws, cfg.bucket, f"{cfg.prefix}/monitoring/{cfg.endpoint_name}/{schedule}/")
    checked = history.dropna(subset=["drift_detected"])
    for label, end in zip(checked["window"], checked["end"]):  # two files per checked window, at its end hour
        base = f"{cfg.prefix}/monitoring/{cfg.endpoint_name}/{schedule}/{pd.Timestamp(end):%Y/%m/%d/%H}/"
        assert [k for k in keys if k.startswith(base)] == [base + "constraint_violations.json", base + "statistics.json"]
    broken = cfg.world["broken_feature"]
    per_window = {}
    for end in checked["end"]:
        base = f"{cfg.prefix}/monitoring/{cfg.endpoint_name}/{schedule}/{pd.Timestamp(end):%Y/%m/%d/%H}/"
        found = mm.read_violations(json.loads(get_bytes(aws, cfg.bucket, base + "constraint_violations.json")))
        per_window[pd.Timestamp(end)] = {(v.feature_name, v.constraint_check_type) for v in found}
        stats = mm.read_statistics(json.loads(get_bytes(aws, cfg.bucket, base + "statistics.json")))
        assert len(stats.features) == 91 and stats.features[broken].inferred_type == "Fractional"
    from_day = pd.Timestamp(world.read_manifest(aws, cfg)["data_quality"]["from"])
    for end, found in per_window.items():
        expected = {(broken, "completeness_check"), (broken, "data_type_check")} if end > from_day else set()
        assert {f for f in found if f[0] == broken} == expected, end
    assert (checked["data_quality_violations"] == [len(v) for v in per_window.values()]).all()
    latest = record["data_quality"]["latest_violations"]
    assert {(v["feature_name"], v["constraint_check_type"]) for v in latest} >= {(broken, "completeness_check"),
                                                                                   (broken, "data_type_check")}
    assert f"data_type_check on {broken}" in result.verdict.text and result.verdict.attention


def metric_points(aws, namespace: str, name: str, dims: list[dict], start, end) -> list:
    got = aws.client("cloudwatch").get_metric_statistics(Namespace=namespace, MetricName=name, Dimensions=dims,
                                                         StartTime=start, EndTime=end, Period=86400,
                                                         Statistics=["SampleCount", "Maximum", "Average"])
    return sorted(got["Datapoints"], key=lambda p: p["Timestamp"])


def test_violations_and_model_monitor_metrics_are_published_once_with_their_names_and_dimensions(broken_world):
    cfg, aws, now, result = broken_world
    broken = cfg.world["broken_feature"]
    start, end = now - dt.timedelta(days=cfg.days + 1), now + dt.timedelta(days=1)
    mm_dims = [{"Name": "Endpoint", "Value": cfg.endpoint_name},
               {"Name": "MonitoringSchedule", "Value": f"{cfg.endpoint_name}-suite"}]
    suite_dims = [{"Name": k, "Value": v} for k, v in cfg.metric_dimensions().items()]

    def published():
        return {name: metric_points(aws, ns, name, dims, start, end) for ns, name, dims in [
            (cfg.namespace, "DataQualityViolations", suite_dims),
            (mm.DATA_METRICS_NAMESPACE, f"feature_non_null_{broken}", mm_dims),
            (mm.DATA_METRICS_NAMESPACE, f"feature_data_{broken}", mm_dims),
            (mm.DATA_METRICS_NAMESPACE, f"feature_baseline_drift_{broken}", mm_dims)]}

    first = published()
    windows_checked = len(result.record["history"].dropna(subset=["drift_detected"]))
    for name, points in first.items():
        assert len(points) == windows_checked and all(p["SampleCount"] >= 1 for p in points), name
    assert [p["Maximum"] for p in first["DataQualityViolations"]] == \
        list(result.record["history"].dropna(subset=["drift_detected"])["data_quality_violations"].astype(float))
    assert min(p["Average"] for p in first[f"feature_non_null_{broken}"]) < 0.9  # 20% captured missing
    assert max(p["Average"] for p in first[f"feature_non_null_{broken}"]) == 1.0  # before the break
    listed = aws.client("cloudwatch").list_metrics(Namespace=mm.DATA_METRICS_NAMESPACE,
                                                   MetricName=f"feature_data_{broken}")["Metrics"]
    assert {tuple(sorted(d["Name"] for d in m["Dimensions"])) for m in listed} == {("Endpoint", "MonitoringSchedule")}
    again = stages.run("20_drift", cfg, aws, now)  # a rerun publishes nothing again
    assert again.record["windows_checked"] == [] and published() == first
    # the newest window's violations are read back from its constraint_violations.json
    assert again.record["data_quality"]["latest_violations"] == result.record["data_quality"]["latest_violations"]


def test_the_metrics_stage_publishes_model_monitors_model_metrics_once(broken_world):
    cfg, aws, now, _ = broken_world
    start, end = now - dt.timedelta(days=cfg.days + 1), now + dt.timedelta(days=1)
    mm_dims = [{"Name": "Endpoint", "Value": cfg.endpoint_name},
               {"Name": "MonitoringSchedule", "Value": f"{cfg.endpoint_name}-suite"}]
    result = stages.run("10_metrics", cfg, aws, now)
    history = result.record["history"].set_index("window")
    published = [w for w in result.record["windows_published"] if history.loc[w, "count"]]
    assert published
    points = {name: metric_points(aws, mm.MODEL_METRICS_NAMESPACE, name, mm_dims, start, end)
              for name in ("mae", "mse", "rmse", "r2")}
    for name, got in points.items():
        assert len(got) == len(published) and all(p["SampleCount"] == 1 for p in got), name
    by_day = {pd.Timestamp(p["Timestamp"]).tz_convert("UTC").floor("D"): p["Maximum"] for p in points["rmse"]}
    for w in published:  # the window's own RMSE, at its end
        day = pd.Timestamp(history.loc[w, "end"], tz="UTC") if pd.Timestamp(history.loc[w, "end"]).tzinfo is None \
            else pd.Timestamp(history.loc[w, "end"]).tz_convert("UTC")
        assert by_day[day.floor("D")] == pytest.approx(history.loc[w, "rmse"])
    again = stages.run("10_metrics", cfg, aws, now)
    assert again.record["windows_published"] == []
    assert {n: metric_points(aws, mm.MODEL_METRICS_NAMESPACE, n, mm_dims, start, end) for n in points} == points


def test_the_policy_allows_model_monitors_namespaces_only_when_publish_metrics_is_on(broken_world):
    from test_iam import ACCOUNT, denied

    cfg, aws, now, result = broken_world
    calls = [c for c in RECORDED[cfg.endpoint_name] if c.operation == "PutMetricData"]
    assert {c.params["Namespace"] for c in calls} == {cfg.namespace, mm.DATA_METRICS_NAMESPACE}
    on, _ = iam.policy(cfg, ACCOUNT)
    assert denied(on, calls, cfg.region) == []
    off, _ = iam.policy(config.validate({**cfg.to_dict(), "model_monitor": {"publish_metrics": False}}), ACCOUNT)
    assert {n.context["cloudwatch:namespace"] for n in denied(off, calls, cfg.region)} == {mm.DATA_METRICS_NAMESPACE}


def test_a_model_monitor_baseline_with_a_renamed_column_gives_missing_and_extra_column_violations(broken_world):
    """The drift path of a window against a Model Monitor baseline whose files call one input by another name: the
    window is still checked, and the two columns are violations instead of an error."""
    from monitor_utils import baseline as suite_baseline, capture, engine, windows
    from monitor_utils.aws import put_bytes
    from monitor_utils.stages import drift as drift_stage

    cfg, aws, now, result = broken_world
    _, prefix = suite_baseline.served_prefix(aws, cfg)
    docs = {name: json.loads(get_bytes(aws, cfg.bucket, f"{prefix}/{name}.json")) for name in ("statistics", "constraints")}
    for doc in docs.values():
        doc["features"][2]["name"] = "renamed_feature"
    uris = {}
    for name, doc in docs.items():
        put_bytes(aws, cfg.bucket, f"mm-baseline/{name}.json", mm.dumps(doc).encode())
        uris[name] = f"s3://{cfg.bucket}/mm-baseline/{name}.json"
    mm_cfg = config.validate({**cfg.to_dict(), "model_monitor": {"statistics_uri": uris["statistics"],
                                                                   "constraints_uri": uris["constraints"]}})
    mm_baseline = mm.load_configured_baseline(aws, mm_cfg)
    own, _ = suite_baseline.load_baseline(aws, cfg)
    inputs = [f for f in own.feature_names if f != "prediction"]
    constraints, uri, match = drift_stage.quality_reference(aws, mm_cfg, mm_baseline, inputs)
    assert uri == uris["constraints"] and match.missing == ["renamed_feature"] and match.extra == [inputs[2]]
    w = windows.from_label(result.record["history"]["window"].iloc[0], cfg.window)
    res = engine.drift_window(aws, w, capture_uri=capture.capture_uri_for(cfg.capture_uri, cfg.endpoint_name,
                                                                          cfg.variant_name),
                              features=inputs, baseline=own, opts=drift_stage.detector_options(cfg),
                              mm_baseline=mm_baseline, mm_columns=match.columns, quality_constraints=constraints,
                              quality_match=match)
    assert {(v.feature_name, v.constraint_check_type) for v in res["quality"].violations} == {
        ("renamed_feature", "missing_column_check"), (inputs[2], "extra_column_check")}  # a clean window otherwise
