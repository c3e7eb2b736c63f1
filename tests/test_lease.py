"""One runner at a time per account (the S3 lease), and each window published once even when two run at once."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import yaml

from conftest import MECHANICS
from monitor_utils import aws as aws_helpers
from monitor_utils import cli, config, lease, preflight, stages, watermark, windows
from monitor_utils.aws import connect

T0 = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.timezone.utc)


class Clock:
    """A pinned wall clock that tests move by hand."""

    def __init__(self, t: dt.datetime = T0) -> None:
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)


def _aws_mode(cfg) -> config.Params:
    """The same world's params in aws mode (AWS_ENDPOINT_URL, set by the session's emulator, points boto3 at it)."""
    return config.validate({**cfg.to_dict(), "aws_mode": "aws"})


def _stored_lease(aws, cfg) -> dict | None:
    return aws_helpers.get_json(aws, cfg.bucket, lease.key(cfg))


def _samples(aws, cfg, metric: str, now: dt.datetime) -> dict[str, float]:
    got = aws.client("cloudwatch").get_metric_statistics(
        Namespace=cfg.namespace, MetricName=metric, Statistics=["SampleCount"], Period=86400,
        StartTime=now - dt.timedelta(days=cfg.days + 2), EndTime=now + dt.timedelta(days=1),
        Dimensions=[{"Name": "EndpointName", "Value": cfg.endpoint_name},
                    {"Name": "VariantName", "Value": cfg.variant_name}])
    return {windows.containing(p["Timestamp"] - dt.timedelta(seconds=1), "daily").label: p["SampleCount"]
            for p in got["Datapoints"]}


def test_the_emulator_answers_conditional_writes_as_s3_does(make_world):
    cfg, aws, _ = make_world(scenario="stable", **MECHANICS)
    key = cfg.key("state", "conditional.json")
    first = aws_helpers.put_json_if(aws, cfg.bucket, key, {"n": 1}, None)  # IfNoneMatch='*': created
    with pytest.raises(aws_helpers.PreconditionFailed):
        aws_helpers.put_json_if(aws, cfg.bucket, key, {"n": 2}, None)  # exists
    second = aws_helpers.put_json_if(aws, cfg.bucket, key, {"n": 2}, first)  # IfMatch the ETag read
    with pytest.raises(aws_helpers.PreconditionFailed):
        aws_helpers.put_json_if(aws, cfg.bucket, key, {"n": 3}, first)  # stale ETag
    assert aws_helpers.get_json_etag(aws, cfg.bucket, key) == ({"n": 2}, second)


def test_lease_expiry_takeover_and_renewal_follow_the_pinned_clock(make_world):
    cfg, aws, _ = make_world(scenario="stable", **MECHANICS)
    cfg = config.validate({**cfg.to_dict(), "lease_seconds": 60})
    clock = Clock()
    first = lease.Lease(aws, cfg, "run-a", clock)
    first.acquire()
    held = _stored_lease(aws, cfg)
    assert held["run_id"] == "run-a" and held["expires"] == "2026-12-01T06:01:00Z" and held["pid"] and held["host"]
    second = lease.Lease(aws, cfg, "run-b", clock)
    clock.advance(50)
    assert first.renew()  # renewed at +50 s: now expires at +110 s
    clock.advance(30)  # +80 s: past the first expiry, inside the renewed one
    with pytest.raises(lease.LeaseHeld) as refused:
        second.acquire()
    assert "run-a" in str(refused.value) and "2026-12-01T06:01:50Z" in str(refused.value)  # holder and expiry
    clock.advance(31)  # +111 s: expired
    second.acquire()
    assert _stored_lease(aws, cfg)["run_id"] == "run-b" and second.content["took_over_from"] == "run-a"
    assert not first.renew() and "run-b" in first.lost  # the first learns it lost the lease
    first.release()  # leaves the new holder's lease alone
    assert _stored_lease(aws, cfg)["run_id"] == "run-b"
    second.release()
    assert _stored_lease(aws, cfg) is None


def test_the_renewal_thread_extends_the_lease_while_the_run_runs(make_world):
    cfg, aws, _ = make_world(scenario="stable", **MECHANICS)
    cfg = config.validate({**cfg.to_dict(), "lease_seconds": 60})
    clock = Clock()
    held = lease.Lease(aws, cfg, "run-a", clock)
    held.acquire()
    clock.advance(45)
    held.start_renewing(interval=0.01)
    for _ in range(500):
        if _stored_lease(aws, cfg)["expires"] == "2026-12-01T06:01:45Z":
            break
        threading.Event().wait(0.01)
    assert _stored_lease(aws, cfg)["expires"] == "2026-12-01T06:01:45Z"
    held.release()
    assert _stored_lease(aws, cfg) is None


def test_wait_for_lease_waits_with_progress_lines_until_the_holder_releases(make_world):
    cfg, aws, _ = make_world(scenario="stable", **MECHANICS)
    clock = Clock()
    holder = lease.Lease(aws, cfg, "run-a", clock)
    holder.acquire()
    lines: list[str] = []
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            holder.release()

    waiting = lease.Lease(aws, cfg, "run-b", clock)
    waiting.acquire(wait=True, progress=lines.append, sleep=sleep, poll_seconds=7)
    assert waits == [7, 7] and len(lines) == 2
    assert all("run-a" in line and "waiting for the lease" in line for line in lines)
    assert _stored_lease(aws, cfg)["run_id"] == "run-b"
    waiting.release()


def test_two_runners_without_the_lease_publish_each_window_once(make_world, monkeypatch):
    cfg, local_aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, local_aws, now)
    cfg = config.validate({**_aws_mode(cfg).to_dict(), "run_lease": False})
    barriers = {s: threading.Barrier(2, timeout=60) for s in ("metrics", "estimates", "drift")}
    real_claim, real_put = watermark.Watermark.claim, watermark.put_json_if
    conflicts: list[str] = []

    def claim_together(self, *args, **kwargs):  # both runners reach each watermark with the same ETag in hand
        try:
            barriers[self.stage].wait()
        except threading.BrokenBarrierError:
            pass
        return real_claim(self, *args, **kwargs)

    def counting_put(aws, bucket, key, obj, etag):
        try:
            return real_put(aws, bucket, key, obj, etag)
        except aws_helpers.PreconditionFailed:
            conflicts.append(key)
            raise

    monkeypatch.setattr(watermark.Watermark, "claim", claim_together)
    monkeypatch.setattr(watermark, "put_json_if", counting_put)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def runner(name: str) -> None:
        try:
            session = connect(cfg)  # aws mode: a boto3 session of its own, through AWS_ENDPOINT_URL
            assert session.mode == "aws" and session.endpoint_url
            watermark.OWNER.set(name)  # two runs: two owners of claims
            results[name] = {s: stages.run(s, cfg, session, now) for s in ("10_metrics", "20_drift")}
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(f"runner-{i}",)) for i in (1, 2)]
    [t.start() for t in threads]
    [t.join(timeout=300) for t in threads]
    assert not errors, errors
    assert conflicts, "the two runners never raced on a watermark: the test proves nothing"
    expected = [w.label for w in windows.windows_between(windows.floor(now - dt.timedelta(days=cfg.days), "daily"),
                                                         now - dt.timedelta(days=cfg.label_wait_days), "daily")]
    published = [r["10_metrics"]["windows_published"] for r in results.values()]
    assert sorted(published[0] + published[1]) == expected  # each window by one runner, none by both
    left = [r["10_metrics"]["windows_left_to_another_run"] for r in results.values()]
    assert sorted(left[0] + left[1]) == expected and set(left[0]) == set(published[1])  # each says what it left
    checked = [r["20_drift"]["windows_checked"] for r in results.values()]
    assert not set(checked[0]) & set(checked[1])
    for metric in ("RMSE", "LabelCoverage", "Count", "CapturedInvocations", "EstimatedRMSE", "DriftShare"):
        counts = _samples(local_aws, cfg, metric, now)
        assert counts and set(counts.values()) == {1.0}, (metric, counts)
    assert set(expected) <= set(_samples(local_aws, cfg, "RMSE", now))
    history = aws_helpers.get_json(local_aws, cfg.bucket, cfg.key("metrics", "history.json"))
    assert [w["window"] for w in history["windows"]] == expected  # neither runner's rows were lost


def _aws_params_file(tmp_path, cfg, **extra) -> str:
    values = {**_aws_mode(cfg).to_dict(), **extra}
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(values))))
    return str(path)


def test_a_second_runner_exits_3_naming_the_holder_and_wait_for_lease_runs_after_it(make_world, tmp_path, capsys):
    cfg, local_aws, now = make_world(scenario="stable", **MECHANICS)
    stages.run("00_setup", cfg, local_aws, now)
    params = _aws_params_file(tmp_path, cfg, lease_seconds=60)
    aws_cfg = config.load([params])
    holder = lease.Lease(connect(aws_cfg), aws_cfg, "20261201T060000Z-beef")
    holder.acquire()
    out_dir = tmp_path / "refused"
    code = cli.main(["run", "-f", params, "--stages", "metrics", "--output", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 3
    assert "20261201T060000Z-beef" in err and holder.content["host"] in err  # run id and host
    assert holder.content["started"] in err and holder.content["expires"] in err  # start time and expiry
    assert not out_dir.exists() and watermark.load(local_aws, cfg, "metrics").published == []  # nothing ran

    threading.Timer(1.0, holder.release).start()  # the holder finishes a second later
    code = cli.main(["run", "-f", params, "--stages", "metrics", "--output", str(out_dir), "--wait-for-lease",
                     "-p", "lease_seconds=60"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "waiting for the lease" in printed and "20261201T060000Z-beef" in printed
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["lease"]["run_id"] == summary["run_id"]
    assert _stored_lease(local_aws, cfg) is None  # released at the end
    assert watermark.load(local_aws, cfg, "metrics").published  # the waiting run did the work


def test_a_lease_that_cannot_be_taken_stops_the_run_with_a_message(make_world, tmp_path, capsys, monkeypatch):
    cfg, _, _ = make_world(scenario="stable", **MECHANICS)
    # the runner's account check stops a missing bucket first (exit 2, tests/test_security.py); past it, a lease
    # S3 refuses still ends in a message, not a traceback
    monkeypatch.setattr(preflight, "check_account", lambda cfg, aws: None)
    params = _aws_params_file(tmp_path, cfg, bucket="no-such-bucket-for-the-lease")
    code = cli.main(["run", "-f", params, "--stages", "metrics", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "could not take the run lease s3://no-such-bucket-for-the-lease/" in err
    assert "NoSuchBucket" in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_live_claim_of_another_runner_is_left_to_it_and_a_dead_runs_claim_is_taken(make_world):
    cfg, aws, _ = make_world(scenario="stable", **MECHANICS)
    clock = Clock()
    theirs = watermark.load(aws, cfg, "drift")
    assert theirs.claim(aws, cfg, ["2026-11-20", "2026-11-21"], owner="run-a", clock=clock) == ["2026-11-20",
                                                                                              "2026-11-21"]
    mine = watermark.load(aws, cfg, "drift")
    clock.advance(cfg.stage_timeout_seconds - 1)  # run-a may still be publishing: nothing for run-b
    assert mine.claim(aws, cfg, ["2026-11-20", "2026-11-21", "2026-11-22"], owner="run-b", clock=clock) == ["2026-11-22"]
    clock.advance(2)  # older than a stage may run: run-a died
    assert mine.claim(aws, cfg, ["2026-11-20"], owner="run-b", clock=clock) == ["2026-11-20"]
    with pytest.raises(aws_helpers.PreconditionFailed):
        theirs.save(aws, cfg)  # run-a's copy is stale: it cannot overwrite what run-b wrote
    theirs.commit(aws, cfg, ["2026-11-21"], None)  # a commit re-reads and re-applies
    stored = watermark.load(aws, cfg, "drift")
    assert stored.published == ["2026-11-21"] and stored.pending == ["2026-11-20", "2026-11-22"]
    assert stored.claims["2026-11-20"]["owner"] == "run-b"


def test_the_lease_needs_only_what_the_aws_mode_policy_allows(make_world):
    from test_iam import ACCOUNT, denied

    from monitor_utils import iam

    cfg, _, _ = make_world(scenario="stable", **MECHANICS)
    aws_cfg = _aws_mode(cfg)
    session = connect(aws_cfg)
    with iam.record_calls(session) as calls:
        held = lease.Lease(session, aws_cfg, "run-a")
        held.acquire()
        held.renew()
        held.release()
    assert {(c.service, c.operation) for c in calls} == {("s3", "PutObject"), ("s3", "DeleteObject")}
    policy, _ = iam.policy(aws_cfg, ACCOUNT)
    assert denied(policy, calls) == []
    without, _ = iam.policy(config.validate({**aws_cfg.to_dict(), "run_lease": False}), ACCOUNT)
    assert [n.action for n in denied(without, calls)] == ["s3:DeleteObject"]  # the lease's own statement
