"""Secure by default, read back from the emulator in aws mode: what setup creates carries its own protections, and a
missing bucket stops the run before anything is created."""

from __future__ import annotations

import fnmatch
import itertools
import json
from pathlib import Path

import pytest
import yaml

from monitor_utils import alerting, cli, config, iam, stages
from monitor_utils.aws import connect
from monitor_utils.stages import setup

NOW = "2026-11-28T00:00:00Z"
_ids = itertools.count(1)


def aws_params(**values) -> dict:
    """aws-mode params with names of their own (the emulator is shared by the session)."""
    n = f"sec{next(_ids)}"
    return {"aws_mode": "aws", "now": NOW, "bucket": f"{n}-bucket", "endpoint_name": f"ep-{n}",
            "sns_topic_name": f"alerts-{n}", "log_group": f"/sec/{n}", "dashboard_name": f"dash-{n}",
            "test_fire": "never", "retries": {"max_attempts": 2}, **values}


def account_state(aws) -> dict:
    """What exists in the emulator's account: buckets, log groups, topics."""
    return {"buckets": sorted(b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]),
            "log_groups": sorted(g["logGroupName"] for page in aws.client("logs").get_paginator(
                "describe_log_groups").paginate() for g in page["logGroups"]),
            "topics": sorted(t["TopicArn"] for page in aws.client("sns").get_paginator("list_topics").paginate()
                             for t in page["Topics"])}


@pytest.fixture
def kms_alias(emulator):
    """A KMS key in the emulator and an alias naming it: (alias, key ARN)."""
    aws = connect(config.validate({}), emulator.url)
    key = aws.client("kms").create_key(Description="monitoring suite")["KeyMetadata"]
    alias = f"alias/suite-{next(_ids)}"
    aws.client("kms").create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return alias, key["Arn"]


@pytest.mark.parametrize("with_kms", [False, True], ids=["sse-s3", "sse-kms"])
def test_a_bucket_setup_creates_carries_its_own_protections(emulator, kms_alias, with_kms):
    from test_iam import denied

    cfg = config.validate(aws_params(create_bucket=True, kms_key_id=kms_alias[0] if with_kms else ""))
    aws = connect(cfg)  # aws mode, pointed at the emulator by AWS_ENDPOINT_URL
    assert aws.mode == "aws"
    with iam.record_calls(aws) as calls:
        changes, topic_arn = setup.provision(cfg, aws)
    assert any(c.startswith(f"created bucket {cfg.bucket}") for c in changes)
    s3 = aws.client("s3")

    block = s3.get_public_access_block(Bucket=cfg.bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}

    rule = s3.get_bucket_encryption(Bucket=cfg.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    if with_kms:
        assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_alias[0]}
    else:
        assert default == {"SSEAlgorithm": "AES256"}

    policy = json.loads(s3.get_bucket_policy(Bucket=cfg.bucket)["Policy"])
    deny = [st for st in policy["Statement"] if st["Effect"] == "Deny"
            and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert len(deny) == 1, policy
    assert deny[0]["Principal"] == "*" and deny[0]["Action"] == "s3:*"
    assert sorted(deny[0]["Resource"]) == [f"arn:aws:s3:::{cfg.bucket}", f"arn:aws:s3:::{cfg.bucket}/*"]

    assert s3.get_bucket_versioning(Bucket=cfg.bucket)["Status"] == "Enabled"

    group = aws.client("logs").describe_log_groups(logGroupNamePrefix=cfg.log_group)["logGroups"][0]
    assert group["logGroupName"] == cfg.log_group
    if with_kms:
        assert group["kmsKeyId"] == kms_alias[1]  # CloudWatch Logs takes a key ARN: the alias was resolved
        attrs = aws.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        assert attrs["KmsMasterKeyId"] == kms_alias[0]
    else:
        assert "kmsKeyId" not in group

    # the suite's policy for these params allows every call setup made, and only create_bucket brings CreateBucket
    policy_doc, _ = iam.policy(cfg, account=aws.account_id)
    assert denied(policy_doc, calls) == []
    assert {"s3:CreateBucket", "s3:PutPublicAccessBlock", "s3:PutBucketEncryption", "s3:PutBucketPolicy",
            "s3:PutBucketVersioning"} <= {f"{c.service}:{c.operation}" for c in calls}
    without, _ = iam.policy(config.validate({**aws_params(), "bucket": cfg.bucket}), account=aws.account_id)
    assert {n.action for n in denied(without, calls)} >= {"s3:CreateBucket", "s3:PutBucketPolicy"}

    again, _ = setup.provision(cfg, aws)  # a rerun finds everything in place
    assert again == []


def test_the_alert_topic_admits_only_this_accounts_alarms_of_this_suite(emulator):
    cfg = config.validate(aws_params(create_bucket=True))
    aws = connect(cfg)
    _, topic_arn = setup.provision(cfg, aws)
    policy = json.loads(aws.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"])
    [statement] = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert statement["Resource"] == topic_arn
    account = aws.account_id
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    patterns = statement["Condition"]["ArnLike"]["aws:SourceArn"]
    patterns = patterns if isinstance(patterns, list) else [patterns]

    def admitted(arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, p) for p in patterns)

    names = [s["AlarmName"] for s in alerting.alarm_specs(cfg, topic_arn)]
    names += [alerting.composite_spec(cfg, topic_arn)["AlarmName"], alerting.anomaly_spec(cfg, topic_arn)["AlarmName"]]
    alarm = f"arn:aws:cloudwatch:{cfg.region}:{{account}}:alarm:{{name}}"
    assert all(admitted(alarm.format(account=account, name=n)) for n in names)
    assert not admitted(alarm.format(account="210987654321", name=names[0]))  # another account's alarm
    assert not admitted(alarm.format(account=account, name="someone-elses-alarm"))
    # the alerting stage's own call leaves the policy as setup set it
    alerting.ensure_paging(aws, cfg)
    assert json.loads(aws.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"]) == policy


def test_a_missing_bucket_stops_the_run_before_anything_is_created(emulator, tmp_path, capsys):
    values = aws_params()
    params = tmp_path / "prod.yaml"
    params.write_text(yaml.safe_dump(values))
    cfg = config.load([params])
    aws = connect(cfg)
    before = account_state(aws)
    assert cfg.bucket not in before["buckets"]

    out = tmp_path / "run"
    assert cli.main(["run", "-f", str(params), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{params}: parameter 'bucket' is '{cfg.bucket}'" in err
    assert "create_bucket: true" in err and "typo" in err
    assert not out.exists()  # stopped before the run's records
    assert account_state(aws) == before

    # the setup notebook, run on its own, stops the same way at its first step
    with pytest.raises(config.ParamsError, match="parameter 'bucket'"):
        stages.run("00_setup", cfg, aws, config.parse_time(NOW))
    assert account_state(aws) == before


def test_create_bucket_is_off_by_default_and_in_the_aws_example():
    assert config.defaults()["create_bucket"] is False
    example = yaml.safe_load((Path(__file__).resolve().parents[1] / "params" / "aws.example.yaml").read_text())
    assert example["create_bucket"] is False


def test_the_policy_with_create_bucket_and_a_key_alias_stays_a_managed_policy(emulator, kms_alias):
    from test_iam import denied

    cfg = config.validate(aws_params(create_bucket=True, kms_key_id=kms_alias[0], alert_emails=["ops@example.com"],
                                     metrics_transport="emf"))
    policy, notes = iam.policy(cfg)
    assert len(json.dumps(policy, separators=(",", ":"))) < 6144  # a managed policy's size limit
    describe = iam.Call("kms", "DescribeKey", {"KeyId": kms_alias[0]})
    assert denied(policy, [describe]) == []
    assert denied(policy, [iam.Call("kms", "DescribeKey", {"KeyId": "alias/someone-elses"})])
    assert any("logs." in n and "cloudwatch.amazonaws.com" in n for n in notes)


def test_an_unknown_key_alias_stops_setup_before_anything_is_created(emulator):
    cfg = config.validate(aws_params(create_bucket=True, kms_key_id="alias/no-such-key"))
    aws = connect(cfg)
    before = account_state(aws)
    with pytest.raises(config.ParamsError, match=r"parameter 'kms_key_id' is 'alias/no-such-key'.*nothing was created"):
        setup.provision(cfg, aws)
    assert account_state(aws) == before


def test_the_setup_notebook_is_given_create_bucket_and_the_key_by_the_runner(tmp_path):
    from monitor_utils import assets, runner

    nb = assets.notebooks_dir() / "00_setup.ipynb"
    cfg = config.validate(aws_params(create_bucket=True, kms_key_id="alias/monitoring"))
    values = runner.stage_parameters(cfg, runner.notebook_parameters(nb), tmp_path, nb)
    assert values["create_bucket"] is True and values["kms_key_id"] == "alias/monitoring"
