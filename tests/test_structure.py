"""The package's shape: no import cycle (function-level imports included), small modules, public library APIs only,
stages that never import one another, and the simulator imported only in local mode."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitor_utils"
MAX_LINES = 700


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every package module ``name`` imports anywhere in its code (top-level or inside functions)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found |= {m for m in [base, *(f"{base}.{a.name}" for a in node.names)] if m in known}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    return found - {name}


def test_import_graph_has_no_cycle():
    known = modules()
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(n):] + [m, n]) if n in trail
                            else f"import cycle through {m} -> {n}")
            if n not in state:
                visit(n, trail + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_cycle_detector_finds_a_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from monitor_utils import b\n")
    b.write_text("from monitor_utils import a\n")
    known = {"monitor_utils.a": a, "monitor_utils.b": b}
    assert imports_of("monitor_utils.a", a, known) == {"monitor_utils.b"}
    assert imports_of("monitor_utils.b", b, known) == {"monitor_utils.a"}


def test_no_module_is_over_700_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_private_names_from_other_libraries():
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module and node.module != "__future__":
                if not node.module.startswith("monitor_utils") and (
                        any(part.startswith("_") for part in node.module.split("."))
                        or any(a.name.startswith("_") for a in node.names)):
                    bad.append(f"{name}: from {node.module} import {', '.join(a.name for a in node.names)}")
    assert not bad, bad


def test_stages_never_import_one_another():
    known = modules()
    stages = {m for m in known if m.startswith("monitor_utils.stages.")}
    for m in stages:
        assert not imports_of(m, known[m], known) & stages, m


def test_aws_mode_never_imports_the_simulator():
    code = ("import sys\nfrom monitor_utils import runner, context, stages, cli\n"
            "from monitor_utils.stages import setup, metrics, drift, alerting, dashboard, retraining\n"
            "assert 'monitor_utils.world' not in sys.modules, 'world imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
