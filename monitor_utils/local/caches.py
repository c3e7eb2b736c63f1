"""Local mode only: disk copies of capture and ground-truth objects, and of what was parsed from them, found again by ETag."""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence, TypeVar

from .. import keeping
from ..aws import Aws, get_bytes
from ..keeping import Listed  # noqa: F401 - re-exported: the type of the objects kept here

MAX_AGE_DAYS = 30  # a copy unused this long is removed the next time a process opens the cache
_pruned: set[Path] = set()
_code_digests: dict[tuple[str, ...] | str, str] = {}
T = TypeVar("T")


def root() -> Path:
    """The suite's cache folder on this machine: ``$XDG_CACHE_HOME/monitor_utils`` (else ``~/.cache/monitor_utils``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "monitor_utils"


def folder() -> Path:
    """Where object copies live (``<root>/objects``)."""
    return root() / "objects"


def enabled(aws: Aws) -> bool:
    """Copies are kept in local mode only, and never while faults are injected (those runs test the transport).

    In local mode the simulated world writes the same files every run, so each run after the first reads them
    (and what was parsed from them) from disk, and a stage reading a window another stage read parses nothing.
    In aws mode nothing captured is written to local disk.
    """
    return aws.mode == "local" and not aws.faults_injected


def _entry(obj: Listed) -> Path:
    digest = hashlib.sha256(f"{obj.etag}|{obj.size}".encode()).hexdigest()
    return folder() / digest[:2] / digest


def _opened() -> None:
    if root() not in _pruned:  # once per process and folder: copies unused for a month go
        _pruned.add(root())
        prune()


def write_aside(path: Path, body: bytes) -> None:
    """Write ``body`` beside ``path`` and rename it into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{id(body)}.part")
    partial.write_bytes(body)
    partial.replace(path)


def _code_digest(code: Sequence[ModuleType]) -> str:
    names = tuple(m.__name__ for m in code)
    if names not in _code_digests:
        _code_digests[names] = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in code)).hexdigest()
    return _code_digests[names]


def fingerprint(value: object) -> str:
    """A digest of ``value`` that is the same in every process for equal values: frames and arrays by their
    contents, mappings and sets in sorted order, anything else by its pickle."""
    import numpy as np
    import pandas as pd

    h = hashlib.sha256(type(value).__name__.encode())
    if isinstance(value, (pd.DataFrame, pd.Series)):
        try:
            h.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists): by their contents, row by row
            h.update(fingerprint([value.index.tolist(), value.to_numpy().tolist()]).encode())
        h.update(repr(list(value.columns) if isinstance(value, pd.DataFrame) else value.name).encode())
        h.update(repr(list(value.dtypes) if isinstance(value, pd.DataFrame) else value.dtype).encode())
    elif isinstance(value, np.ndarray) and value.dtype == object:  # the buffer holds pointers: the elements count
        h.update(f"{value.shape}|".encode() + fingerprint(value.ravel().tolist()).encode())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}|{value.shape}".encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            h.update(f"{k!r}={fingerprint(value[k])};".encode())
    elif isinstance(value, (set, frozenset)):
        h.update(",".join(sorted(fingerprint(v) for v in value)).encode())
    elif isinstance(value, (list, tuple)):
        h.update(",".join(fingerprint(v) for v in value).encode())
    elif value is None or isinstance(value, (str, int, float, bool)):
        h.update(repr(value).encode())
    else:
        h.update(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return h.hexdigest()


def package_digest() -> str:
    """A digest of this package's source and the numeric libraries' versions: results kept under it are computed
    again after any change to the code that made them."""
    if "package" not in _code_digests:
        import numpy as np
        import pandas as pd
        import scipy
        import sklearn

        h = hashlib.sha256(f"{np.__version__}|{pd.__version__}|{scipy.__version__}|{sklearn.__version__}".encode())
        base = Path(__file__).parents[1]  # the whole package, local/ included
        for path in sorted(base.rglob("*.py")):
            h.update(str(path.relative_to(base)).encode() + path.read_bytes())
        _code_digests["package"] = h.hexdigest()
    return _code_digests["package"]


def prune(max_age_days: float = MAX_AGE_DAYS, now: float | None = None) -> int:
    """Remove object copies and parsed results not read for ``max_age_days``; returns how many were removed."""
    limit = (time.time() if now is None else now) - max_age_days * 86400
    removed = 0
    for path in [*folder().glob("*/*"), *(root() / "parsed").glob("*/*/*")]:
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another process removed it first
            continue
    return removed


def fetch(aws: Aws, bucket: str, obj: Listed) -> bytes:
    """The object's bytes: the local copy when one matches its ETag and size, else from S3 (and kept, in local mode).

    An object S3 lists with the same ETag and size holds the same bytes, so a copy never goes stale; a rewritten
    object gets a new ETag and is read again. Copies are written aside and renamed, so a reader never sees half.
    """
    if not enabled(aws):
        return get_bytes(aws, bucket, obj.key) or b""
    _opened()
    path = _entry(obj)
    try:
        body = path.read_bytes()
        if len(body) == obj.size:
            os.utime(path)  # recently used: kept by prune
            return body
    except FileNotFoundError:
        pass
    body = get_bytes(aws, bucket, obj.key) or b""
    if len(body) == obj.size:
        write_aside(path, body)
    return body


def parsed(aws: Aws, kind: str, objects: Sequence[Listed], detail: str, parse: Callable[[], T],
           code: Sequence[ModuleType]) -> T:
    """``parse()``, or what it returned before for exactly these objects (keys, ETags, sizes), ``detail`` and code.

    Local mode keeps the result (pickled, under ``<root>/parsed/<kind>``); the key also holds the source of the
    ``code`` modules that parse, so a changed parser never reads an old result. Elsewhere this is ``parse()``.
    """
    if not enabled(aws):
        return parse()
    _opened()
    h = hashlib.sha256(f"{kind}|{detail}|{_code_digest(code)}".encode())
    for o in objects:
        h.update(f"|{o.key}|{o.etag}|{o.size}".encode())
    digest = h.hexdigest()
    path = root() / "parsed" / kind / digest[:2] / digest
    try:
        result = pickle.loads(path.read_bytes())  # written by this function only, in the user's own cache folder
        os.utime(path)
        return result
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        pass
    result = parse()
    write_aside(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return result


def estimator_folder() -> Path:
    """Where local mode keeps fitted loss estimators between runs (``<root>/estimators``)."""
    return root() / "estimators"


class DiskKeeper(keeping.Keeper):
    """Local mode's keeper: object copies and parsed results on disk (:func:`fetch`, :func:`parsed`), each window's
    result keyed by its inputs, and fitted estimators kept. Whatever it keeps, it keeps only while :func:`enabled`."""

    def fetch(self, aws: Aws, bucket: str, obj: Listed) -> bytes:
        return fetch(aws, bucket, obj)

    def parsed(self, aws: Aws, kind: str, objects: Sequence[Listed], detail: str, parse: Callable[[], T],
               code: Sequence[ModuleType]) -> T:
        return parsed(aws, kind, objects, detail, parse, code)

    def each_window(self, aws: Aws, fn: Callable[..., Any], shared: dict, todo: Sequence,
                    objects_of: Callable[[Any], Sequence[Listed]], then: Callable[[Any, Any], Any] | None = None) -> list:
        """Each window's result, kept on disk keyed by the window's capture objects (keys, ETags, sizes), ``fn``,
        every shared argument's contents and the package's source: the same world read again computes nothing."""
        if not enabled(aws):
            return super().each_window(aws, fn, shared, todo, objects_of, then)
        from ..windows import iso

        inputs = f"{fn.__module__}.{fn.__qualname__}|{fingerprint(shared)}|{package_digest()}"
        then = then or (lambda w, res: res)  # applied to each kept or computed result (never kept itself)
        return [then(w, parsed(aws, "window", objects_of(w), f"{iso(w.start)}|{iso(w.end)}|{inputs}",
                               lambda w=w: fn(aws, w, **shared), ())) for w in todo]

    def estimator_folder(self, aws: Aws) -> Path | None:
        return estimator_folder() if aws.mode == "local" else None


def install() -> None:
    """Make :class:`DiskKeeper` this process's keeper (local mode's start-up calls this)."""
    if not isinstance(keeping.current(), DiskKeeper):
        keeping.install(DiskKeeper())
