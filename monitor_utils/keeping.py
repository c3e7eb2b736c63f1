"""What a stage keeps between runs: nothing by default (aws mode); local mode installs its disk-backed keeper here."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable, NamedTuple, Sequence, TypeVar

from .aws import Aws, get_bytes

T = TypeVar("T")


class Listed(NamedTuple):
    """One object as ``ListObjectsV2`` describes it."""

    key: str
    etag: str
    size: int


class Keeper:
    """The production behaviour: read every object from S3, parse every time, keep nothing.

    Local mode replaces it (:func:`install`) with one that keeps copies and parsed results on disk; the
    production modules call only these methods and never import local mode.
    """

    def fetch(self, aws: Aws, bucket: str, obj: Listed) -> bytes:
        """The object's bytes (an empty body when it is gone)."""
        return get_bytes(aws, bucket, obj.key) or b""

    def parsed(self, aws: Aws, kind: str, objects: Sequence[Listed], detail: str, parse: Callable[[], T],
               code: Sequence[ModuleType]) -> T:
        """What ``parse()`` returns for these objects (``kind``, ``detail`` and ``code`` name what a keeper keys it by)."""
        return parse()

    def each_window(self, aws: Aws, fn: Callable[..., Any], shared: dict, todo: Sequence,
                    objects_of: Callable[[Any], Sequence[Listed]], then: Callable[[Any, Any], Any] | None = None) -> list:
        """``then(w, fn(aws, w, **shared))`` for each window ``w`` of ``todo`` (``objects_of(w)``: the window's capture
        objects; ``then`` defaults to the result itself), each ``then`` before the next window runs."""
        then = then or (lambda w, res: res)
        return [then(w, fn(aws, w, **shared)) for w in todo]

    def estimator_folder(self, aws: Aws) -> Path | None:
        """A folder where fitted loss estimators are kept between runs, or None (fit in this process only)."""
        return None


_KEEPER: Keeper = Keeper()


def install(keeper: Keeper) -> Keeper:
    """Make ``keeper`` this process's keeper and return the one it replaces (local mode installs its own)."""
    global _KEEPER
    previous, _KEEPER = _KEEPER, keeper
    return previous


def current() -> Keeper:
    """This process's keeper (the production :class:`Keeper` unless local mode installed another)."""
    return _KEEPER


def fetch(aws: Aws, bucket: str, obj: Listed) -> bytes:
    """:meth:`Keeper.fetch` of this process's keeper."""
    return _KEEPER.fetch(aws, bucket, obj)


def parsed(aws: Aws, kind: str, objects: Sequence[Listed], detail: str, parse: Callable[[], T],
           code: Sequence[ModuleType]) -> T:
    """:meth:`Keeper.parsed` of this process's keeper."""
    return _KEEPER.parsed(aws, kind, objects, detail, parse, code)
