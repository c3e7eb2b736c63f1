"""Every notebook: committed clean, declares its parameters like the schema, and runs under plain papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from monitor_utils import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
# a small world on a fixed clock: a few windows with labels, drift and alarms, and a retrained challenger compared
SMALL = {"days": 5, "now": "2026-11-28T00:00:00Z",
         "world": {**LOCAL.get("world", {}), "requests_per_day": 150, "train_rows": 2000, "test_rows": 500,
                   "drift_start_fraction": 0.4}}


def test_six_stage_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["00_setup", "10_metrics", "20_drift", "30_alerting", "40_dashboard", "50_retraining"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_schema_keys_with_schema_defaults(path):
    declared = papermill.inspect_notebook(str(path))
    source = next(c.source for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert len(declared) == len(source.strip().splitlines())  # papermill parsed every line (no '=' in help texts)
    defaults = config.defaults()
    for name, info in declared.items():
        assert name in config.SCHEMA, name
        assert eval(info["default"]) == defaults[name], name  # literal defaults equal the schema's
        assert info["help"], f"{name} has no help comment"


@pytest.fixture
def clean_env(monkeypatch):
    """Plain papermill: no runner, so each notebook starts the local world itself."""
    for name in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL", "MONITOR_UTILS_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_under_plain_papermill_with_local_params(path, tmp_path, clean_env):
    out = tmp_path / path.name
    params = {**LOCAL, **SMALL, "run_dir": str(tmp_path)}  # params/local.yaml, on a smaller world
    papermill.execute_notebook(str(path), str(out), parameters=params, cwd=str(tmp_path), kernel_name="python3",
                               progress_bar=False, execution_timeout=600)
    record = json.loads((tmp_path / f"{path.stem}.json").read_text())
    assert record["stage"] == path.stem and record["aws_mode"] == "local"


def test_run_all_with_defaults_needs_no_edits(tmp_path, clean_env):
    """What Jupyter's Run All does: execute the notebook as committed, no parameters injected."""
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "10_metrics.ipynb"), str(out), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False, execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert (tmp_path / "runs" / "interactive" / "10_metrics.json").exists()
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
    assert "No capture line was quarantined" in shown  # the default world's capture reads whole: said, not an empty table
