"""The runner end to end: records of a run, validation before anything runs, a failing stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import FAKE_CREDENTIALS
from monitor_utils import config, runner
from monitor_utils.context import STAGES

ROOT = Path(__file__).resolve().parents[1]
SMALL_WORLD = ["days=10", "world.requests_per_day=300", "world.train_rows=4000", "world.test_rows=1000",
               "now=2026-11-28T00:00:00Z"]


def small(name: str) -> list[str]:
    """A small world with AWS names of its own: moto's state is shared by every server in this process."""
    return SMALL_WORLD + [f"bucket=runner-{name}", f"endpoint_name=runner-{name}", f"sns_topic_name=runner-{name}",
                          f"dashboard_name=runner-{name}", f"log_group=/runner/{name}"]


@pytest.fixture
def clean_env(monkeypatch):
    """No emulator inherited from the test session: the runner starts and stops its own."""
    for name in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def test_full_run_leaves_every_record(full_run):
    code, out = full_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and [s["status"] for s in summary["stages"]] == ["ok"] * 6
    for stage in runner.STAGES:
        for ext in ("ipynb", "html", "json"):
            assert (out / f"{stage}.{ext}").stat().st_size > 0, f"{stage}.{ext}"
        html = (out / f"{stage}.html").read_text()
        assert "monitor_utils import" not in html  # code hidden in the report
        assert f'href="{stage}.html"' in (out / "index.html").read_text()
    retraining = json.loads((out / "50_retraining.json").read_text())
    assert {"retrain", "deployed", "reasons", "state_machine_definition"} <= set(retraining)
    assert retraining["state_machine_definition"]["StartAt"] == "Prepare"
    flow = retraining["workflow_execution"]
    assert flow["deployed"] == retraining["deployed"] and flow["states"][0] == "Prepare", flow
    pictures = {stage: sum("image/png" in o.get("data", {}) for c in nbformat.read(out / f"{stage}.ipynb", as_version=4).cells
                           for o in c.get("outputs", [])) for stage in runner.STAGES}
    assert pictures["10_metrics"] >= 3 and pictures["20_drift"] >= 2 and pictures["30_alerting"] >= 1
    assert pictures["40_dashboard"] >= 1 and pictures["50_retraining"] >= 1
    assert "data:image/png" in (out / "40_dashboard.html").read_text()
    executed = nbformat.read(out / "20_drift.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "aws_mode" in injected[0].source and "retraining" not in injected[0].source  # only declared


@pytest.mark.parametrize("override, message", [
    ("scenaro=stable", "unknown parameter 'scenaro'"),
    ("drift.alpah=0.1", "unknown parameter 'drift.alpah'"),
    ("days=0", "parameter 'days' is 0, out of range"),
    ("aws_mode=cloud", "accepted values: local, aws"),
])
def test_bad_params_fail_before_any_notebook_runs(tmp_path, override, message, clean_env):
    out = tmp_path / "run"
    with pytest.raises(config.ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runner.run([str(ROOT / "params" / "local.yaml")], [override], output=str(out), progress=lambda m: None)
    assert not out.exists()


def test_cli_exits_2_naming_the_bad_key(tmp_path, capsys, clean_env):
    from monitor_utils.cli import main

    assert main(["run", "-f", str(ROOT / "params" / "local.yaml"), "-p", "scenaro=stable", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "scenaro" in err and "scenario" in err


def test_a_failing_stage_stops_the_run_and_is_named(tmp_path, clean_env):
    nbs = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbs)
    broken = nbformat.read(nbs / "10_metrics.ipynb", as_version=4)
    broken.cells.insert(4, nbformat.v4.new_code_cell("raise RuntimeError('capture bucket unreadable')"))
    nbformat.write(broken, nbs / "10_metrics.ipynb")
    out = tmp_path / "run"
    code, _ = runner.run([str(ROOT / "params" / "local.yaml")], small("failing"), stages="setup,metrics,drift,alerting",
                         output=str(out), notebooks_dir=nbs, progress=lambda m: None)
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    by_stage = {s["stage"]: s for s in summary["stages"]}
    assert summary["status"] == "failed"
    assert by_stage["00_setup"]["status"] == "ok"
    assert by_stage["10_metrics"]["status"] == "failed" and "capture bucket unreadable" in by_stage["10_metrics"]["error"]
    assert by_stage["20_drift"]["status"] == "ok"  # it ran beside metrics (parallel_stages)
    assert by_stage["30_alerting"]["status"] == "skipped"
    assert [s["stage"] for s in summary["stages"]] == ["00_setup", "10_metrics", "20_drift", "30_alerting"]
    failed_nb = nbformat.read(out / "10_metrics.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in failed_nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_metrics_beside_drift_and_dashboard_beside_retraining():
    assert runner.stage_groups(list(STAGES), parallel=True) == [
        ["00_setup"], ["10_metrics", "20_drift"], ["30_alerting"], ["40_dashboard", "50_retraining"]]
    assert runner.stage_groups(list(STAGES), parallel=False) == [[s] for s in STAGES]
    assert runner.stage_groups(["20_drift", "40_dashboard"], parallel=True) == [["20_drift"], ["40_dashboard"]]
    assert runner.stage_groups(["20_drift", "50_retraining"], parallel=True) == [["20_drift"], ["50_retraining"]]


def test_unknown_stage_name_lists_the_stages():
    with pytest.raises(runner.RunnerError, match="setup, metrics, drift"):
        runner.resolve_stages("drfit")
    assert runner.resolve_stages("drift,setup") == ["00_setup", "20_drift"]


def test_a_second_run_exits_with_a_clear_message_while_one_is_running(tmp_path, clean_env, monkeypatch):
    import fcntl

    monkeypatch.chdir(ROOT)
    cfg = config.load([str(ROOT / "params" / "local.yaml")])
    lock = ROOT / "runs" / f".lock-{cfg.bucket}-{cfg.prefix}-{cfg.endpoint_name}"
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 since now")
        held.flush()
        with pytest.raises(runner.RunnerError, match="another run is in progress"):
            runner.run([str(ROOT / "params" / "local.yaml")], ["lock_wait_seconds=1"], output=str(tmp_path / "r"),
                       progress=lambda m: None)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert not (tmp_path / "r").exists()


def test_reports_and_records_never_hold_credentials(full_run):
    code, out = full_run  # it ran with credential-shaped values in the environment
    secrets = FAKE_CREDENTIALS
    assert code == 0
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore")
            for value in secrets.values():
                assert value not in text, f"{path.name} leaks a credential"
            assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text  # no presigned URLs


def test_progress_lines_from_stages_side_by_side_come_out_whole(monkeypatch):
    import io
    import threading
    import time

    from monitor_utils import runner

    class SlowOut(io.StringIO):  # a terminal slow enough that a thread switch falls between text and newline
        def write(self, text):
            time.sleep(0.002)
            return super().write(text)

    out = SlowOut()
    monkeypatch.setattr("sys.stdout", out)
    lines = [f"[{i}/6] stage-{i} ..." for i in range(8)]
    threads = [threading.Thread(target=lambda m=m: [runner._print_line(m) for _ in range(5)]) for m in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    printed = out.getvalue().splitlines()
    assert len(printed) == 40 and set(printed) == set(lines)
