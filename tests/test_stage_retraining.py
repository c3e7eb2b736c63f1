"""The retraining stage on the local emulator: deploy a better model, never a worse one, dry run, rollback, guardrails.

The tests share one small drift world that has run setup, metrics, drift and alerting (conftest's retraining_world);
each starts from that state (its snapshot is restored and checked first), as a freshly built world would give it.
"""

from __future__ import annotations

import pytest

from conftest import subscribe_queue
from monitor_utils import alerting, config, model, registry, stages


def _serving_config(aws, cfg) -> str:
    return aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)["EndpointConfigName"]


@pytest.fixture
def drift_world_to_retrain(retraining_world):
    """(cfg, aws, now) of the shared drift world as alerting left it (restored before and after the test)."""
    cfg, aws, now, snapshot = retraining_world
    snapshot.restore()  # whatever ran on it before: back to the state after alerting (checked)
    yield cfg, aws, now
    snapshot.restore()


def with_retraining(cfg, **retraining) -> config.Params:
    """The same world with other retraining parameters (they change nothing before the retraining stage)."""
    return config.validate({**cfg.to_dict(), "retraining": {**cfg.retraining, **retraining}})


def test_retraining_deploys_a_better_model_in_the_drift_world(drift_world_to_retrain):
    cfg, aws, now = drift_world_to_retrain
    before = _serving_config(aws, cfg)
    result = stages.run("50_retraining", cfg, aws, now)
    assert result["retrain"] and result["deployed"], result.get("outcome")
    flow = result["workflow_execution"]  # the workflow ran the same decision first, from the same state
    assert flow["deployed"] is True and flow["status"] == "SUCCEEDED" and flow["states"][-1] == "Deployed", flow
    assert _serving_config(aws, cfg) != before
    desc = aws.client("sagemaker").describe_endpoint(EndpointName=cfg.endpoint_name)
    assert desc["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    capture_cfg = aws.client("sagemaker").describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])["DataCaptureConfig"]
    assert capture_cfg["DestinationS3Uri"] == cfg.capture_uri  # data capture kept
    after = result["after_deploy"]
    assert after["served_model"]["rmse"] < after["previous_model"]["rmse"]
    rec = registry.record(aws, cfg, "v0002")
    assert rec["parent"].endswith("v0001/model.tar.gz") and rec["comparison"]["promote"]
    # one challenger: the stage reports the workflow's deploy instead of training and deploying a second one
    assert result["challenger_version"] == "v0002" and registry.next_version(aws, cfg) == 3
    assert result["deployed_config"] == desc["EndpointConfigName"]
    assert set(result["comparison"]["per_decade_rmse"].columns) >= {"segment", "champion", "challenger"}
    # minimum interval: an immediate rerun does not retrain again
    assert stages.run("50_retraining", cfg, aws, now)["retrain"] is False


def test_a_worse_challenger_is_never_deployed(drift_world_to_retrain, monkeypatch):
    cfg, aws, now = drift_world_to_retrain
    before = _serving_config(aws, cfg)
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import make_pipeline

    def worse(train, alpha=1.0, sample_weight=None):  # a challenger that always answers 1930
        return make_pipeline(DummyRegressor(strategy="constant", constant=1930)).fit(train[model.FEATURES], train["year"])

    monkeypatch.setattr(model, "make_pipeline_fitted", worse)
    result = stages.run("50_retraining", cfg, aws, now)
    assert result["retrain"] is True and result["deployed"] is False
    assert result["comparison"]["promote"] is False and "champion kept" in result["outcome"]
    assert result["workflow_execution"]["end_state"] == "kept" and not result["workflow_execution"]["deployed"]
    assert _serving_config(aws, cfg) == before


def test_dry_run_compares_but_does_not_deploy(drift_world_to_retrain):
    cfg, aws, now = drift_world_to_retrain
    cfg = with_retraining(cfg, dry_run=True)
    before = _serving_config(aws, cfg)
    result = stages.run("50_retraining", cfg, aws, now)
    assert result["retrain"] and not result["deployed"] and "dry run" in result["outcome"]
    assert result["workflow_execution"]["end_state"] == "kept" and not result["workflow_execution"]["deployed"]
    assert _serving_config(aws, cfg) == before


@pytest.mark.parametrize("mode, key", [("canary", "CanarySize"), ("linear", "LinearStepSize"), ("all_at_once", None)])
def test_deployment_guardrails_follow_params_and_botocore(mode, key):
    from monitor_utils.stages.setup import deployment_config, validate_update_endpoint

    cfg = config.validate({"retraining": {"traffic_shifting": mode, "shift_percent": 25}})
    dc = deployment_config(cfg)
    validate_update_endpoint({"EndpointName": "e", "EndpointConfigName": "c", "DeploymentConfig": dc})
    routing = dc["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == mode.upper()
    assert (routing[key]["Value"] == 25) if key else ("CanarySize" not in routing and "LinearStepSize" not in routing)
    with pytest.raises(ValueError, match="UpdateEndpoint request is invalid"):
        validate_update_endpoint({"EndpointName": "e", "DeploymentConfig": dc})  # no EndpointConfigName


def test_a_deploy_rolls_back_when_a_rollback_alarm_fires(drift_world_to_retrain):
    cfg, aws, now = drift_world_to_retrain
    before = _serving_config(aws, cfg)
    aws.client("cloudwatch").set_alarm_state(AlarmName=f"{cfg.endpoint_name}-error-rate", StateValue="ALARM",
                                             StateReason="5XX spike during the deploy")
    topic, _ = alerting.ensure_paging(aws, cfg)
    queue = subscribe_queue(aws, topic, f"rb-{cfg.endpoint_name}")
    result = stages.run("50_retraining", cfg, aws, now)
    assert result["retrain"] and result["comparison"]["promote"]
    assert result["deployed"] is False and result["rolled_back"] is True
    assert "rolled back" in result["outcome"] and _serving_config(aws, cfg) == before
    assert result["workflow_execution"]["end_state"] == "rolled back" and not result["workflow_execution"]["deployed"]
    msgs = aws.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert any("rolled back" in m["Body"] for m in msgs)
