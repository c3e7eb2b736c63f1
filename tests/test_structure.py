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


def import_base(node: ast.ImportFrom, pkg: str) -> str:
    """The module a ``from ... import`` statement in package ``pkg`` imports from (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    parts = pkg.split(".")
    return ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every package module ``name`` imports anywhere in its code (top-level or inside functions)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = import_base(node, pkg)
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


# the mode-dispatch entry points: they alone may import local mode, and only inside a function (its local branch)
LOCAL_ENTRY_MODULES = {"monitor_utils.runner", "monitor_utils.context", "monitor_utils.cli", "monitor_utils.steps",
                       "monitor_utils.stages.retraining"}
LOCAL_PACKAGE = "monitor_utils.local"


def production_modules() -> dict[str, Path]:
    """Every module of the package outside ``monitor_utils.local``."""
    return {m: p for m, p in modules().items() if m != LOCAL_PACKAGE and not m.startswith(LOCAL_PACKAGE + ".")}


def local_imports(name: str, path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of each import of ``monitor_utils.local`` (absolute or relative) in ``path``."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body} | {id(n) for node in tree.body if isinstance(node, (ast.If, ast.Try))
                                             for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = import_base(node, pkg)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        if any(t == LOCAL_PACKAGE or t.startswith(LOCAL_PACKAGE + ".") for t in targets):
            found.append((node.lineno, id(node) in top))
    return found


def test_no_production_module_imports_local_mode():
    """No module outside monitor_utils.local imports it at module level; inside functions only the entry points do."""
    bad = []
    for name, path in production_modules().items():
        for line, at_top in local_imports(name, path):
            if at_top or name not in LOCAL_ENTRY_MODULES:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports monitor_utils.local"
                           + (" at module level" if at_top else f" (only {sorted(LOCAL_ENTRY_MODULES)} may, in a function)"))
    assert not bad, bad


@pytest.mark.parametrize("code, expected", [
    ("from . import local\n", [(1, True)]),
    ("from .local import world\n", [(1, True)]),
    ("import monitor_utils.local.caches\n", [(1, True)]),
    ("try:\n    from monitor_utils.local import caches\nexcept ImportError:\n    pass\n", [(2, True)]),
    ("def f():\n    from ..local import world\n", []),  # two dots from monitor_utils.x: outside the package
    ("def f():\n    from .local import world\n", [(2, False)]),
    ("from . import locally, keeping\n", []),
])
def test_the_local_import_finder_sees_every_spelling(tmp_path, code, expected):
    path = tmp_path / "x.py"
    path.write_text(code)
    assert local_imports("monitor_utils.x", path) == expected


def test_importing_every_production_module_loads_neither_local_mode_nor_moto():
    names = sorted(m for m in production_modules() if m != "monitor_utils.__main__")
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m == 'moto' or m.startswith(('moto.', 'monitor_utils.local')))\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aws_mode_never_imports_the_simulator():
    code = ("import sys\nfrom monitor_utils import runner, context, stages, cli\n"
            "from monitor_utils.stages import setup, metrics, drift, alerting, dashboard, retraining\n"
            "assert 'monitor_utils.local' not in sys.modules, 'local mode imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_moto_is_the_local_extra_only():
    """A production install (``pip install monitor_utils``) goes without moto; ``make`` installs the local extra."""
    import tomllib

    root = PACKAGE.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("moto")]
    assert [d for d in project["optional-dependencies"]["local"] if d.startswith("moto[server]")]
    assert "-e '.[dev,local]'" in (root / "Makefile").read_text()
