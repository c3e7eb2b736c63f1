"""Bench: a warm suite run against its floor, six notebooks that only import the stack, measured in the same run.

The floor: six one-cell notebooks that import what the stage notebooks import (pandas, IPython's display,
``monitor_utils`` plots, report, stages and the stage context), each executed by papermill in a fresh kernel
and exported to HTML, one after the other in this process, as the runner does. The suite: what ``make run`` runs
(``python -m monitor_utils run -f params/local.yaml``) in a process of its own, so every run starts from a fresh
emulator as a user's does. The suite's disk caches (``XDG_CACHE_HOME``) point at an empty folder of this bench: the
first run is cold (a user's first ``make run``: the world simulated, the estimator fitted, every window computed),
the timed runs after it are warm (``--runs`` times; the best counts). The suite's own breakdown (world building,
each stage) is printed from its summary, so the report says where the time goes. Machines are shared and noisy:
read the ratios.
Run: python bench/suite.py [--runs 1] [--params params/local.yaml] [-p KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from monitor_utils import runner
from monitor_utils.records import export_html

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = ("from IPython.display import Markdown, display\nimport pandas as pd\n"
           "from monitor_utils import plots, report, stages\nfrom monitor_utils.context import start_stage\n")


def floor(folder: Path) -> float:
    """Seconds to run six import-only notebooks with papermill and export each to HTML."""
    import papermill

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMPORTS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = folder / "import_only.ipynb"
    nbformat.write(nb, str(src))
    t0 = time.perf_counter()
    for i in range(6):
        out = folder / f"floor_{i}.ipynb"
        papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, log_output=False,
                                   extra_arguments=runner.KERNEL_ARGUMENTS, cwd=str(ROOT))
        export_html(out, folder / f"floor_{i}.html")
    return time.perf_counter() - t0


def suite(folder: Path, params: str, overrides: list[str], cache: Path) -> tuple[float, dict]:
    """Seconds of one whole suite run in its own process (emulator, world, six stages, reports), and its summary.

    In one process moto keeps its state after the server stops: a second ``runner.run`` there would find the
    first run's world, watermarks and deploy, and skip most of the work. A process per run is what users get.
    """
    command = [sys.executable, "-m", "monitor_utils", "run", "-f", params, "--output", str(folder)]
    command += [a for kv in overrides for a in ("-p", kv)]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the suite failed ({done.returncode}); see {folder / 'summary.json'}\n{done.stdout[-2000:]}")
    return elapsed, json.loads((folder / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1, help="timed suite runs after the warm-up (the best counts)")
    ap.add_argument("--params", default=str(ROOT / "params" / "local.yaml"))
    ap.add_argument("-p", dest="overrides", action="append", default=[], help="KEY=VALUE, as for the runner")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    overrides = ["bucket=bench-suite", "endpoint_name=bench-suite", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = floor(tmp)
        cold, _ = suite(tmp / "cold", args.params, overrides, tmp / "cache")
        runs = [suite(tmp / f"run-{i}", args.params, overrides, tmp / "cache") for i in range(args.runs)]
        base = min(base, floor(tmp))  # the floor again, after the suite, in the same conditions
    best, summary = min(runs, key=lambda r: r[0])
    print(f"floor: six import-only notebooks, papermill + HTML export: {base:.1f} s")
    print(f"suite: a warm run of all six stages (emulator, world, notebooks, reports): {best:.1f} s")
    stages = {s["stage"]: s["duration_s"] for s in summary["stages"]}
    world = summary.get("world_seconds")
    print("  where it goes: " + (f"world {world:.1f} s, " if world is not None else "")
          + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    print(f"ratio suite / floor = {best / base:.2f}x (the first, cold run: {cold:.1f} s, {cold / base:.2f}x)")


if __name__ == "__main__":
    main()
