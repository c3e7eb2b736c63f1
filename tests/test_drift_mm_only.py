"""The drift stage with ONLY a Model Monitor baseline: its KLL CDF distance check decides (issue #23, point 2)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from conftest import MECHANICS
from monitor_utils import config, model_monitor as mm, stages
from monitor_utils.aws import get_bytes


def _table(distances: dict[str, float], threshold: float = 0.1) -> pd.DataFrame:
    rows = [{"feature": f, "baseline_feature": f, "distance": d, "linf_simple": d, "threshold": threshold,
             "method": "Simple", "drifted": not math.isnan(d) and d > threshold, "baseline_n": 1000,
             "window_n": 0 if math.isnan(d) else 200, "sketch_error": 0.01,
             "description": "over" if not math.isnan(d) and d > threshold else ""} for f, d in distances.items()]
    return pd.DataFrame(rows).set_index("feature")


def test_the_kll_verdict_counts_features_over_the_threshold_as_the_dataset_rule_says():
    table = _table({"a": 0.30, "b": 0.12, "c": 0.05, "prediction": 0.02, "d": math.nan})
    opts = {"threshold": 0.01, "dataset_rule": "count", "dataset_threshold": 2}
    report = mm.kll_drift_report(table, opts, 1000, 250, "prediction")
    assert report.drift_detected and report.drifted_features == ["a", "b"]  # largest distance first
    assert report.drift_share == pytest.approx(2 / 4)  # d had nothing to compare: not tested
    assert list(report.table["test"].unique()) == [mm.KLL_TEST]
    assert report.table.loc["prediction", "role"] == "prediction" and not report.table.loc["d", "tested"]
    assert report.table.loc["a", "statistic"] == 0.30 and math.isnan(report.table.loc["a", "p_value"])
    assert report.table.loc["c", "nan_share_current"] == pytest.approx(1 - 200 / 250)
    assert not mm.kll_drift_report(table, {**opts, "dataset_threshold": 3}, 1000, 250, "prediction").drift_detected
    share = mm.kll_drift_report(table, {"threshold": 0.01, "dataset_rule": "share", "dataset_threshold": 0.6}, 1000, 250)
    assert not share.drift_detected  # 2 of 4 tested is 0.5 < 0.6


def test_drift_runs_on_the_model_monitor_baseline_alone_and_flags_the_drift_after_its_onset(make_world):
    cfg, aws, now = make_world(scenario="drift", **MECHANICS)
    setup = stages.run("00_setup", cfg, aws, now)
    prefix = setup["baseline"]["uri"].removeprefix(f"s3://{cfg.bucket}/")
    uris = {"statistics_uri": f"s3://{cfg.bucket}/{prefix}statistics.json",
            "constraints_uri": f"s3://{cfg.bucket}/{prefix}constraints.json", "schedule_name": ""}
    aws.client("s3").delete_object(Bucket=cfg.bucket, Key=f"{prefix}baseline.bin")
    assert get_bytes(aws, cfg.bucket, f"{prefix}baseline.bin") is None

    with pytest.raises(FileNotFoundError) as err:  # neither baseline: the error names both ways out
        stages.run("20_drift", cfg, aws, now)
    assert "baseline.bin" in str(err.value) and "run the setup stage" in str(err.value)
    assert "model_monitor.statistics_uri" in str(err.value) and "model_monitor.constraints_uri" in str(err.value)

    cfg_mm = config.validate({**cfg.to_dict(), "model_monitor": {**cfg.model_monitor, **uris}})
    result = stages.run("20_drift", cfg_mm, aws, now)
    assert result["reference"] == mm.KLL_REFERENCE and result["baseline"] is None
    assert result.baseline_profile is None and any("baseline.bin" in s for s in result["skipped"])
    assert result.latest_report is not None and set(result.latest_report.table["test"]) == {mm.KLL_TEST}
    checked = result.history.dropna(subset=["drift_detected"])
    assert len(checked) == cfg.days
    for key in ("drift_detected", "drifted_features", "drift_share", "top_features", "prediction_drift"):
        assert checked[key].notna().all(), key
    # the verdict is Model Monitor's: drifted exactly when enough features are over comparison_threshold
    assert (checked["drift_detected"] == (checked["baseline_drift_features"] >= cfg.drift["dataset_threshold"])).all()
    start = pd.Timestamp(now) - pd.Timedelta(days=cfg.days)
    onset = start + pd.Timedelta(days=round(cfg.world["drift_start_fraction"] * cfg.days))
    broken_from = onset + pd.Timedelta(days=1)
    ends = pd.to_datetime(checked["end"], utc=True)
    before, after = checked[ends <= onset], checked[ends - pd.Timedelta(days=1) >= broken_from]
    assert len(before) >= 2 and len(after) >= 1
    assert not before["drift_detected"].any() and after["drift_detected"].all()
    broken = cfg.world["broken_feature"]
    assert all(broken in list(top) for top in after["top_features"])
    assert "drifted from the Model Monitor baseline (KLL CDF distance)" in result.verdict.text
    assert result["data_quality"]["constraints_uri"] == uris["constraints_uri"]  # its constraints checked the windows
    assert checked["data_quality_violations"].notna().all()


def test_the_inputs_come_from_the_statistics_names_else_by_position_from_the_served_models(monkeypatch):
    from monitor_utils.stages import drift as drift_stage

    frame = pd.DataFrame({"prediction": [2000.0, 2001.0, 1999.5], "f1": [0.1, 0.2, 0.3], "f2": [1.0, 2.0, 3.0]})

    def baseline_of(df: pd.DataFrame) -> mm.ModelMonitorBaseline:
        stats = mm.statistics_document(df, {c: "Fractional" for c in df.columns})
        return mm.ModelMonitorBaseline(mm.read_statistics(stats), mm.read_constraints(mm.constraints_document(stats)))

    monkeypatch.setattr(drift_stage, "feature_names", lambda aws, cfg: ["served_a", "served_b"])
    assert drift_stage.model_monitor_inputs(None, None, baseline_of(frame)) == ["f1", "f2"]
    headerless = frame.set_axis(["_c0", "_c1", "_c2"], axis=1)
    assert drift_stage.model_monitor_inputs(None, None, baseline_of(headerless)) == ["served_a", "served_b"]
