"""Where the suite's local files live: the checkout's root (runs/, outbox), else the working directory."""

from __future__ import annotations

from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The checkout's root (holding pyproject.toml and notebooks/), else the working directory."""
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "notebooks").is_dir():
            return p
    return here
