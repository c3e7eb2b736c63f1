"""The metrics and drift stages let each window's records go when the window is done, and hand the memory back
(issue 24: a stage's peak follows the window, not the backlog)."""

from __future__ import annotations

import subprocess
import sys
import weakref

import pytest

from conftest import MECHANICS
from monitor_utils import capture, engine, heap, stages


def test_the_stages_let_each_windows_records_go_before_they_read_the_next(make_world, monkeypatch):
    """When the metrics or the drift stage reads a window, no earlier window's records frame is still alive (weak
    references to each frame read): what a stage keeps per window is its small result, never the window's records."""
    cfg, aws, now = make_world(scenario="stable", label_wait_days=0, **MECHANICS)  # every day a window to score
    stages.run("00_setup", cfg, aws, now)
    frames: list[weakref.ref] = []
    alive_at_each_read: list[int] = []
    read = capture.read_capture

    def tracking(*args, **kwargs):
        alive_at_each_read.append(sum(ref() is not None for ref in frames))
        batch = read(*args, **kwargs)
        frames.append(weakref.ref(batch.records))
        return batch

    qualities: list[weakref.ref] = []  # each window's data quality (its statistics: megabytes of sketch floats)
    quality_alive: list[int] = []
    window_quality = engine.window_quality

    def tracking_quality(*args, **kwargs):
        quality = window_quality(*args, **kwargs)
        qualities.append(weakref.ref(quality))
        return quality

    def tracking_both(*args, **kwargs):
        quality_alive.append(sum(ref() is not None for ref in qualities))
        return tracking(*args, **kwargs)

    monkeypatch.setattr(capture, "read_capture", tracking_both)
    monkeypatch.setattr(engine, "window_quality", tracking_quality)
    for stage, done in (("10_metrics", "windows_published"), ("20_drift", "windows_checked")):
        frames.clear()
        alive_at_each_read.clear()
        result = stages.run(stage, cfg, aws, now)
        assert len(result.record[done]) >= 4, (stage, result.record[done])
        assert len(alive_at_each_read) >= 4 and alive_at_each_read == [0] * len(alive_at_each_read), \
            (stage, alive_at_each_read)
    # the drift stage wrote each window's Model Monitor files as the window came back and kept only a summary
    assert len(qualities) >= 4 and set(quality_alive) == {0}, quality_alive


def test_releasing_keeps_the_per_window_functions_name_and_result():
    """The Dask engine ships the per-window functions by reference and local mode's keeper keys their results by
    module and name: wrapped, they are still found under both, and return what the function returns."""
    for fn in (engine.metrics_window, engine.drift_window):
        assert (fn.__module__, fn.__qualname__) == ("monitor_utils.engine", fn.__wrapped__.__name__)
        assert getattr(sys.modules[fn.__module__], fn.__qualname__) is fn
    assert heap.releasing(lambda x, *, y: (x, y))(1, y=2) == (1, 2)


RELEASE_CHECK = r"""
import re, threading
from monitor_utils import heap

def rss():
    return int(re.search(r"VmRSS:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

kept = []
def work():  # 120 MB in 2 KB blocks from a thread, one block in 50 kept: freed pages amid the heap, not at its top
    blocks = [bytearray(2048) for _ in range(60_000)]
    kept.extend(blocks[::50])
before = rss()
thread = threading.Thread(target=work)
thread.start()
thread.join()
held = rss()
heap.release()
print(before, held, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._glibc() is None, reason="glibc's malloc only")
def test_release_hands_what_a_thread_freed_back_to_the_system():
    """A thread's freed blocks amid a few kept ones stay resident until :func:`heap.release` (malloc_trim) hands
    their pages back; measured in a fresh process from its own /proc/self/status."""
    out = subprocess.run([sys.executable, "-c", RELEASE_CHECK], capture_output=True, text=True, check=True).stdout
    before, held, after = map(float, out.split())
    assert held - before > 80, (before, held, after)  # the freed blocks stay resident without a release
    assert after - before < 0.25 * (held - before), (before, held, after)
