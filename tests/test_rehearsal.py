"""aws mode rehearsed end to end: the world ``full_run`` runs on in local mode, served by ``python -m monitor_utils
emulator`` in a process of its own, and the whole suite run against it in aws mode (``AWS_ENDPOINT_URL``) as a user
would: every stage ok, a rerun publishes and changes nothing, the results equal local mode's, and no aws-mode
process (the runner, its kernels) ever imports local mode or moto."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from conftest import serve_world

STAGES = ("00_setup", "10_metrics", "20_drift", "30_alerting", "40_dashboard", "50_retraining")
FORBIDDEN = ("moto", "monitor_utils.local")
# Installed in every process of an aws-mode run (PYTHONPATH reaches the runner and the kernels it starts): it notes
# that it is there, and refuses (and notes) any import of local mode or moto.
IMPORT_GUARD = '''
import importlib.abc, os, sys
FORBIDDEN = %(forbidden)r
_DIR = os.environ["MONITOR_UTILS_TEST_IMPORT_GUARD"]
open(os.path.join(_DIR, "guarded-" + str(os.getpid())), "w").close()


class _RefuseLocalMode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            with open(os.path.join(_DIR, "imported-" + str(os.getpid())), "a") as out:
                out.write(name + "\\n")
            raise ImportError("aws mode imported " + name)
        return None


sys.meta_path.insert(0, _RefuseLocalMode())
'''


def write_guard(folder: Path, forbidden: tuple[str, ...] = FORBIDDEN) -> Path:
    """A folder holding the import guard as ``sitecustomize.py`` (put it on PYTHONPATH, with
    MONITOR_UTILS_TEST_IMPORT_GUARD naming it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(IMPORT_GUARD % {"forbidden": forbidden})
    return folder


def client(served, service: str):
    cfg = yaml.safe_load(served.params.read_text())
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=cfg["region"]).client(service, endpoint_url=served.url)


def snapshot(served) -> dict:
    """What the suite keeps in the account: its metrics' datapoints, alarms (state and configuration), the dashboard,
    and the objects under its prefix with their ETags."""
    cfg = yaml.safe_load(served.params.read_text())
    cw, s3 = client(served, "cloudwatch"), client(served, "s3")
    now = dt.datetime.fromisoformat(cfg["now"].replace("Z", "+00:00"))
    datapoints = {}
    for metric in cw.list_metrics(Namespace=cfg["namespace"])["Metrics"]:
        got = cw.get_metric_statistics(Namespace=cfg["namespace"], MetricName=metric["MetricName"],
                                       Dimensions=metric["Dimensions"], Statistics=["SampleCount"], Period=86400 * 30,
                                       StartTime=now - dt.timedelta(days=90), EndTime=now + dt.timedelta(days=2))
        key = f"{metric['MetricName']}{sorted((d['Name'], d['Value']) for d in metric['Dimensions'])}"
        datapoints[key] = sum(p["SampleCount"] for p in got["Datapoints"])
    described = cw.describe_alarms(AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    alarms = {a["AlarmName"]: (a["StateValue"], str(a["AlarmConfigurationUpdatedTimestamp"]))
              for a in described["MetricAlarms"] + described["CompositeAlarms"]}
    objects = {o["Key"]: o["ETag"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=cfg["bucket"], Prefix=cfg["prefix"] + "/") for o in page.get("Contents", [])}
    try:
        dashboard = cw.get_dashboard(DashboardName=cfg["dashboard_name"])["DashboardBody"]
    except cw.exceptions.ResourceNotFound:  # the dashboard stage did not get to put it (its test says why)
        dashboard = None
    return {"datapoints": datapoints, "alarms": alarms, "objects": objects, "dashboard": dashboard}


def run_aws_mode(served, output: Path, guard: Path) -> subprocess.CompletedProcess:
    """``python -m monitor_utils run -f <written params>`` with AWS_ENDPOINT_URL, every process guarded."""
    env = {**served.env, "PYTHONPATH": str(guard), "MONITOR_UTILS_TEST_IMPORT_GUARD": str(guard)}
    return subprocess.run([sys.executable, "-m", "monitor_utils", "run", "-f", str(served.params),
                           "--output", str(output)], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def rehearsal(served_world, tmp_path_factory):
    """The suite run twice in aws mode against the served world, with the world's state after each run."""
    base = tmp_path_factory.mktemp("rehearsal")
    guard = write_guard(base / "guard")
    first = run_aws_mode(served_world, base / "first", guard)
    after_first = snapshot(served_world)
    second = run_aws_mode(served_world, base / "second", guard)
    return {"runs": (first, second), "dirs": (base / "first", base / "second"), "guard": guard,
            "states": (after_first, snapshot(served_world))}


def record(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / f"{stage}.json").read_text())


def test_the_written_params_point_aws_mode_at_the_served_world(served_world):
    params = yaml.safe_load(served_world.params.read_text())
    assert params["aws_mode"] == "aws" and params["now"] == "2026-11-28T00:00:00Z"
    assert params["capture_prefix"] == f"s3://{params['bucket']}/{params['prefix']}/datacapture"
    assert params["ground_truth_prefix"] == f"s3://{params['bucket']}/{params['prefix']}/ground-truth"
    assert "world" not in params and "scenario" not in params  # the simulator's knobs stay out of aws mode
    log = served_world.log.read_text()
    assert f"AWS_ENDPOINT_URL={served_world.url}" in log and "AWS_ACCESS_KEY_ID=testing" in log


def test_every_stage_runs_ok_in_aws_mode_twice(rehearsal):
    for proc, run_dir in zip(rehearsal["runs"], rehearsal["dirs"]):
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["aws_mode"] == "aws"
        assert [(s["stage"], s["status"]) for s in summary["stages"]] == [(s, "ok") for s in STAGES]


def test_no_aws_mode_process_imports_local_mode_or_moto(rehearsal):
    guard = rehearsal["guard"]
    imported = {p.name: p.read_text() for p in guard.glob("imported-*")}
    assert not imported, f"aws-mode processes imported local-only modules: {imported}"
    # the guard was in the runners and in the kernels that ran the stages (at least one kernel per run)
    assert len(list(guard.glob("guarded-*"))) >= 4


def test_a_rerun_publishes_nothing_and_changes_nothing(rehearsal):
    first, second = rehearsal["states"]
    assert first["datapoints"] and all(n > 0 for n in first["datapoints"].values())
    beats = [k for k in first["datapoints"] if k.startswith("SuiteHeartbeat")]  # the one datum every run sends
    assert beats and all(second["datapoints"].pop(k) == first["datapoints"].pop(k) + 1 for k in beats)
    for part in first:
        changed = {k: (first[part].get(k), second[part].get(k)) for k in set(first[part]) | set(second[part])
                   if first[part].get(k) != second[part].get(k)} if isinstance(first[part], dict) else (
            {} if first[part] == second[part] else {"body": "changed"})
        assert not changed, f"the rerun changed {part}: {changed}"
    rerun = rehearsal["dirs"][1]
    assert record(rerun, "10_metrics")["datums_published"] == 0 and record(rerun, "10_metrics")["windows_published"] == []
    assert record(rerun, "20_drift")["datums_published"] == 0 and record(rerun, "20_drift")["windows_checked"] == []
    assert record(rerun, "30_alerting")["alarms_put"] == [] and record(rerun, "40_dashboard")["put"] is False
    assert record(rerun, "50_retraining")["deployed"] is False


@pytest.mark.parametrize("stage, keys", [
    ("10_metrics", ("history", "estimates", "latest")),
    ("20_drift", ("history", "latest")),
    ("50_retraining", ("retrain", "deployed", "reasons", "evidence", "outcome")),
])
def test_aws_mode_computes_what_local_mode_computes(rehearsal, full_run, stage, keys):
    code, local_dir = full_run
    assert code == 0
    aws, local = record(rehearsal["dirs"][0], stage), record(local_dir, stage)
    for key in keys:
        assert aws.get(key) == local.get(key), f"{stage}: {key} differs"


def test_alarm_states_in_aws_mode_are_local_modes(rehearsal, full_run):
    """CloudWatch (here the emulator, with the suite's M-of-N evaluator) evaluates the alarms in aws mode; the suite
    drives them in local mode: the same states, the latency alarm's p99 and the composite alarm included."""
    _, local_dir = full_run
    aws = {r["alarm"]: r["state"] for r in record(rehearsal["dirs"][0], "30_alerting")["alarms"]}
    local = {r["alarm"]: r["state"] for r in record(local_dir, "30_alerting")["alarms"]}
    assert aws == local
    assert any(name.endswith("-latency-p99") for name in aws) and any(name.endswith("-ModelUnhealthy") for name in aws)
    assert "ALARM" in aws.values() and "OK" in aws.values()  # a comparison that can tell states apart


TINY_WORLD = ["days=2", "world.requests_per_day=48", "world.train_rows=1000", "world.test_rows=500",
              "now=2026-11-28T00:00:00Z"]


def test_the_emulator_command_stops_cleanly_on_sigterm(tmp_path):
    import urllib.request

    with serve_world(tmp_path, TINY_WORLD) as served:
        with urllib.request.urlopen(f"{served.url}/moto-api/config", timeout=5) as resp:
            assert 200 <= resp.status < 300
    assert served.log.read_text().rstrip().endswith("emulator stopped")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{served.url}/moto-api/config", timeout=2)


def test_the_emulator_command_without_moto_names_the_local_extra(tmp_path):
    """A production install has no moto: the command says which extra to install, without a traceback."""
    guard = write_guard(tmp_path / "guard", ("moto",))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "monitor_utils", "emulator", "-f", str(root / "params" / "local.yaml"),
                           *(a for o in TINY_WORLD for a in ("-p", o))], capture_output=True, text=True, timeout=120,
                          env={**served_env_without_local(), "PYTHONPATH": str(guard),
                               "MONITOR_UTILS_TEST_IMPORT_GUARD": str(guard)})
    assert proc.returncode == 1 and "monitor_utils[local]" in proc.stderr and "Traceback" not in proc.stderr


def served_env_without_local() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL")}
