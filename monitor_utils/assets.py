"""Where the stage notebooks and the params files are: the checkout's, else the copies packaged in the wheel.

Run from a checkout (or an editable install of one) the suite uses the checkout's ``notebooks/`` and
``params/``. Installed from a wheel it uses the copies the build put under
``monitor_utils/resources/notebooks`` and ``monitor_utils/resources/params`` (see ``setup.py``).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

RESOURCES = "resources"


def checkout_root() -> Path | None:
    """The source checkout this package is imported from (a clone or an editable install), else None.

    Returns
    -------
    Path or None
        The folder holding this project's ``pyproject.toml``, ``notebooks/`` and ``params/``.
    """
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not (pyproject.is_file() and (root / "notebooks").is_dir() and (root / "params").is_dir()):
        return None
    try:
        is_ours = 'name = "monitor_utils"' in pyproject.read_text()
    except OSError:
        return None
    return root if is_ours else None


def _packaged(kind: str) -> Path:
    folder = Path(str(importlib.resources.files(__package__) / RESOURCES / kind))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: this installation of monitor_utils carries no {kind}/ (it was neither run from a "
            f"checkout nor installed from a wheel built with the project's setup.py). Reinstall it from a wheel built "
            f"with `python -m pip wheel . --no-deps`, or run it from a checkout")
    return folder


def notebooks_dir() -> Path:
    """The folder of the six stage notebooks: the checkout's ``notebooks/``, else the packaged copy."""
    root = checkout_root()
    return root / "notebooks" if root else _packaged("notebooks")


def params_dir() -> Path:
    """The folder of the shipped params files (``local.yaml``, ``aws.example.yaml``): the checkout's, else packaged."""
    root = checkout_root()
    return root / "params" if root else _packaged("params")


def params_file(path: str | Path) -> Path:
    """Resolve a ``-f`` params file: the path as given when it exists, else the shipped file of that name.

    ``params/local.yaml`` (or ``local.yaml``) therefore works from any working directory, also outside a
    checkout, and names the packaged copy there. Any other missing path is returned unchanged, so reading
    it fails naming it.

    Parameters
    ----------
    path : str or Path
        As given on the command line.

    Returns
    -------
    Path
        The file to read.
    """
    given = Path(path)
    if given.exists() or given.is_absolute() or given.parent not in (Path("."), Path("params")):
        return given
    try:
        shipped = params_dir() / given.name
    except FileNotFoundError:
        return given
    return shipped if shipped.is_file() else given
