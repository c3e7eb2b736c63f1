"""The package as users install it: a wheel (built the way `python -m build` does, from the sdist) carries
every subpackage, the notebooks and the params files, and runs the suite outside any checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from monitor_utils import assets

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


# what a fresh clone does not have (an egg-info left by `pip install -e .` would feed its file list to the sdist)
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist", "runs", "__pycache__",
                                        ".pytest_cache", ".ipynb_checkpoints")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The sdist of a clean copy of the checkout, then a wheel built from the unpacked sdist, as `python -m build`
    does (no network: the venv's setuptools builds it)."""
    out = tmp_path_factory.mktemp("dist")
    clone = out / "clone"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    sdist = _run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                                        "print(b.build_sdist(sys.argv[1]))", str(out)], clone).stdout.strip().splitlines()[-1]
    with tarfile.open(out / sdist) as tar:
        tar.extractall(out / "src", filter="data")
    (src,) = (out / "src").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--quiet",
          "--disable-pip-version-check", "-w", str(out / "wheel")], out)
    (whl,) = (out / "wheel").glob("monitor_utils-*.whl")
    return whl


def test_wheel_carries_every_module_notebook_and_params_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = ROOT / "monitor_utils"
    subpackages = sorted(p.parent.relative_to(ROOT).as_posix() for p in source.rglob("__init__.py"))
    assert "monitor_utils/stages" in subpackages
    for package in subpackages:
        assert f"{package}/__init__.py" in names, f"the wheel lacks the subpackage {package}"
    modules = {p.relative_to(ROOT).as_posix() for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= names, f"the wheel lacks {sorted(modules - names)}"
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    params = sorted(p.name for p in (ROOT / "params").glob("*.yaml"))
    assert len(notebooks) == 6 and {"local.yaml", "aws.example.yaml"} <= set(params)
    with zipfile.ZipFile(wheel) as zf:
        for folder, files in (("notebooks", notebooks), ("params", params)):
            for name in files:
                packaged = f"monitor_utils/resources/{folder}/{name}"
                assert packaged in names, f"the wheel lacks {packaged}"
                assert zf.read(packaged) == (ROOT / folder / name).read_bytes(), f"{packaged} differs from {folder}/{name}"
    assert not any(n.startswith(("tests/", "bench/", "notebooks/", "params/")) for n in names)
    assert not (ROOT / "monitor_utils" / "resources").exists()  # copied into the build folder, never the source


def test_the_packaged_suite_runs_outside_any_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL",
                                                             "MONITOR_UTILS_RUN_ID")}
    env["PYTHONPATH"] = str(site)
    where = _run([sys.executable, "-c", "import monitor_utils.assets as a; print(a.__file__); print(a.checkout_root()); "
                                        "print(a.notebooks_dir())"], work, env).stdout.split()
    assert where[0] == str(site / "monitor_utils" / "assets.py") and where[1] == "None"
    assert where[2] == str(site / "monitor_utils" / "resources" / "notebooks")
    installed = {p for p in site.rglob("*") if "__pycache__" not in p.parts}
    # params/local.yaml is not under the working directory: the packaged copy is read
    done = _run([sys.executable, "-m", "monitor_utils", "run", "-f", "params/local.yaml", "--stages", "setup",
                 "-p", "days=3", "-p", "world.requests_per_day=100", "-p", "world.train_rows=2000",
                 "-p", "world.test_rows=500", "-p", "now=2026-11-28T00:00:00Z", "-p", "bucket=package-test"],
                work, env, timeout=600)
    (run_dir,) = [p for p in (work / "runs").iterdir() if p.is_dir()]
    assert str(run_dir) in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and [s["stage"] for s in summary["stages"]] == ["00_setup"]
    assert summary["params_files"] == [str(site / "monitor_utils" / "resources" / "params" / "local.yaml")]
    record = json.loads((run_dir / "00_setup.json").read_text())
    assert record["stage"] == "00_setup" and record["baseline"]["model_version"] == "v0001"
    assert {p for p in site.rglob("*") if "__pycache__" not in p.parts} == installed  # nothing written there
    executed = json.loads((run_dir / "00_setup.ipynb").read_text())
    assert executed["metadata"]["papermill"]["input_path"] == str(site / "monitor_utils" / "resources" / "notebooks"
                                                                  / "00_setup.ipynb")


def test_checkout_is_found_from_a_checkout():
    assert assets.checkout_root() == ROOT
    assert assets.notebooks_dir() == ROOT / "notebooks" and assets.params_dir() == ROOT / "params"


def test_params_file_falls_back_to_the_shipped_copy_only_for_shipped_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert assets.params_file("params/local.yaml") == ROOT / "params" / "local.yaml"
    assert assets.params_file("aws.example.yaml") == ROOT / "params" / "aws.example.yaml"
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "local.yaml").write_text("days: 5\n")
    assert assets.params_file("params/local.yaml") == Path("params/local.yaml")   # the user's own file wins
    assert assets.params_file("params/prod.yaml") == Path("params/prod.yaml")     # not shipped: left to fail
    assert assets.params_file("elsewhere/local.yaml") == Path("elsewhere/local.yaml")


def test_cli_names_a_missing_params_file(tmp_path, monkeypatch, capsys):
    from monitor_utils.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["iam-policy", "-f", "params/prod.yaml"]) == 2
    assert "params file params/prod.yaml does not exist" in capsys.readouterr().err


def test_the_process_entry_returns_the_commands_code_and_freezes_the_heap_only_after_it(monkeypatch):
    import gc

    from monitor_utils import cli

    events = []
    monkeypatch.setattr(cli, "main", lambda: events.append(("main", gc.get_freeze_count())) or 3)
    monkeypatch.setattr(gc, "freeze", lambda: events.append(("freeze", None)))
    assert cli.entry() == 3
    assert events == [("main", gc.get_freeze_count()), ("freeze", None)]  # the command ran with a collecting gc


def test_python_dash_m_exits_with_the_commands_code(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "monitor_utils", "iam-policy", "-f", "params/prod.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "params file params/prod.yaml does not exist" in done.stderr
