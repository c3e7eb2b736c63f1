"""The process heap: one C malloc arena for every thread, and what a window freed handed back to the system after it.

A stage reads its backlog one window at a time and lets each window's records go when the window is done, but
the C library's allocator (glibc's malloc, which numpy, pandas and the reader's pyarrow pool use) does not hand
freed memory back on its own: each thread that allocates (the threads fetching objects) gets an arena of its own,
up to eight per core, and what is freed inside an arena stays mapped until the arena's top is free. Measured on
the metrics stage (a world of 20,000 records a day, VmHWM above the imports): the peak over 12 windows was 1.16x
that over 3 (360 and 311 MB), the resident set after each window growing by a few MB and the labels' parsing
leaving 60 MB behind, while the memory Python traced stayed flat. With one arena and the freed memory handed
back after each window: 230 and 216 MB, 1.06x (the rest: the compact labels themselves and their parsing).

Reading a backlog's labels maps each large buffer on its own (:func:`map_large_buffers`, from the first label
read on), so the objects that come and go leave no holes in the heaps.

:func:`limit_arenas` (called by :func:`stages.run`, and by :func:`releasing` for a Dask worker),
:func:`map_large_buffers` and :func:`release` do nothing where the C library is not glibc (macOS, musl): there the
figures are the allocator's own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc's mallopt parameters (malloc.h)
MAPPED_FROM = 1 << 20  # bytes from which glibc gives each allocation a memory map of its own (map_large_buffers)
ARENAS = 1  # the fetching threads wait on the network, not on the allocator: one arena costs them nothing measurable
_LIBC: Any = None


def _glibc() -> Any:
    """The C library when it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
                _LIBC = libc
        except OSError:
            pass
    return _LIBC or None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let glibc's malloc make at most ``arenas`` arenas in this process (threads share them); True when set.

    It takes effect for arenas made after the call: call it before the process starts threads that allocate
    (a stage's first fetch). Threads started earlier keep their arena."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, int(arenas)) == 1)


def map_large_buffers() -> bool:
    """Make glibc give every allocation of ``MAPPED_FROM`` bytes or more a memory map of its own, for the rest of
    the process; True when set.

    By default glibc raises that threshold to the size of the largest block freed (up to 32 MB): once a fetched
    object of a few MB is let go, the next ones (the bodies the fetching threads read, the texts and tables of
    each object) come from its heaps, whose freed holes stay resident, and the peak of reading a backlog grows
    with the objects read, by how the threads happened to interleave. Mapped, each is given back when let go.
    """
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MAPPED_FROM) == 1)


def release() -> None:
    """Hand the C heap's free pages back to the system (``malloc_trim(0)``: every arena, not only the top of the
    main heap). No garbage collection: a window's records hold no reference cycles (tests/test_stage_backlog_memory.py
    finds none alive when the next window is read), and a full collection walks every object of the process
    (tenths of a second a window beside an in-process emulator)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def releasing(fn: F) -> F:
    """``fn`` (a per-window function) that limits the arenas before it runs and :func:`release`\\ s what it freed
    once it has returned (its frames are gone then; only its result is left). Name and module stay ``fn``'s: the
    Dask engine ships it by reference and local mode's keeper keys results by them."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit_arenas()
        try:
            return fn(*args, **kwargs)
        finally:
            release()

    return wrapper  # type: ignore[return-value]
