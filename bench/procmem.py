"""Bench helper: a process's own peak resident memory from the kernel, measuring children, and an emulator elsewhere.

Every figure the memory benches print is measured in a process that does only that thing, started with
``subprocess`` (fork and exec), from ``/proc/self/status`` read in that process itself:

- ``VmHWM`` (the peak resident set, "high water mark") belongs to the process's address space (its ``mm``), and
  exec gives the process a new one: it starts from nothing in the child, whatever the parent held.
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not reset by exec: the kernel folds the old address space's
  peak into it, and that address space was the parent's (copied by fork, or shared outright by the vfork that
  Python's subprocess uses), so a child started by a large parent reports at least the parent's size. That is
  how the previous bench measured its parent (which held the emulator and the generated data).
- Each child takes its baseline after its imports (``VmRSS`` then) and reports its peak above it. When a child
  must first load an input it does not measure (the labels a window joins, say), it resets the high water mark
  to the current resident set (``/proc/self/clear_refs``, value 5, Linux 4.0 and later) and takes the baseline
  again; the input's own cost is a figure of its own.

A child prints one line ``BENCH-RESULT {json}`` as its last output; :func:`run_child` returns that dict.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

MARK = "BENCH-RESULT "


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field of this process (``VmRSS``, ``VmHWM``), in MB (10^6 bytes)."""
    with open("/proc/self/status") as fh:
        found = re.search(rf"^{field}:\s+(\d+) kB", fh.read(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"/proc/self/status has no {field}: this bench needs Linux")
    return int(found.group(1)) * 1024 / 1e6


def reset_peak() -> None:
    """Make this process's high water mark (VmHWM) its current resident set (``/proc/self/clear_refs`` value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError as exc:
        raise RuntimeError(f"cannot reset the peak resident set through /proc/self/clear_refs ({exc}): "
                           "this bench needs Linux 4.0 or later with /proc writable by the process") from None


class Peak:
    """This process's peak resident memory above a baseline taken when made (or at :meth:`rebase`).

    A thread also samples ``VmRSS`` every 20 ms (``sampled_mb``: the largest sample above the baseline), a
    cross-check of the kernel's high water mark that can only be lower (it misses what lasts less than a sample).
    """

    def __init__(self) -> None:
        import threading

        self.import_rss_mb = status_mb("VmRSS")
        self.import_hwm_mb = status_mb("VmHWM")
        self.base_mb = self.import_rss_mb
        self.sampled = 0.0
        self.t0 = time.perf_counter()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.sampled = max(self.sampled, status_mb("VmRSS"))
            time.sleep(0.02)

    def rebase(self) -> float:
        """Take the baseline again (after loading an input the figure leaves out); return what the input holds."""
        reset_peak()
        held = status_mb("VmRSS") - self.base_mb
        self.base_mb = self.sampled = status_mb("VmRSS")
        self.t0 = time.perf_counter()
        return held

    def result(self, **fields) -> dict:
        """Peak above the baseline (``peak_mb``), what is still held (``held_mb``), seconds since the baseline."""
        return {"peak_mb": status_mb("VmHWM") - self.base_mb, "held_mb": status_mb("VmRSS") - self.base_mb,
                "sampled_mb": self.sampled - self.base_mb,
                "base_mb": self.base_mb, "import_rss_mb": self.import_rss_mb, "import_hwm_mb": self.import_hwm_mb,
                "seconds": time.perf_counter() - self.t0, **fields}


def report(result: dict) -> None:
    """Print the child's result as its last line."""
    print(MARK + json.dumps(result, default=str), flush=True)


def run_child(argv: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run ``python argv...`` in a fresh process and return the dict it reported; its stderr on failure."""
    got = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout)
    found = [line for line in got.stdout.splitlines() if line.startswith(MARK)]
    if got.returncode != 0 or not found:
        raise RuntimeError(f"bench child {' '.join(argv)} failed (exit {got.returncode}):\n{got.stderr[-4000:]}")
    return json.loads(found[-1][len(MARK):])


def aws_environment(url: str) -> dict:
    """This process's environment pointed at the emulator at ``url`` for aws mode, with its dummy credentials
    and without any real credential or local-mode name."""
    dropped = {"MONITOR_UTILS_LOCAL_ENDPOINT", "MOTO_PORT", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE",
               "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


class Served:
    """A process serving the emulator (started by :meth:`start`), stopped with SIGTERM on exit.

    ``argv`` must make the process print ``emulator serving on <url>`` once it serves (``python -m monitor_utils
    emulator`` does); ``env`` is its environment. Its output goes to a log file in a folder of its own, which
    also holds the caches it keeps (``XDG_CACHE_HOME``): the folder is removed on exit, nothing stays behind.
    """

    def __init__(self, argv: list[str], timeout_s: float = 1800, env: dict | None = None) -> None:
        self.argv, self.timeout_s, self.env = argv, timeout_s, env
        self.folder = Path(tempfile.mkdtemp(prefix="bench-emulator-"))
        self.log = self.folder / "emulator.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "Served":
        env = {k: v for k, v in (self.env or os.environ).items()
               if k not in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL", "MOTO_PORT")}
        env["XDG_CACHE_HOME"] = str(self.folder / "cache")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, *self.argv], stdout=out, stderr=subprocess.STDOUT, env=env,
                                         cwd=self.folder)
        deadline = time.monotonic() + self.timeout_s
        while not self.url:
            found = re.search(r"emulator serving on (http://127\.0\.0\.1:\d+)", self.log.read_text())
            if found:
                self.url = found.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the emulator did not start (exit {self.proc.poll()}):\n{self.log.read_text()[-4000:]}")
            else:
                time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        import shutil

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def serving_here(params: dict) -> Iterator[tuple]:
    """A bench's writer process: the emulator served in this process, a session on it (no injected faults) with
    the params' bucket made, and an event set when the parent asks it to stop (SIGINT or SIGTERM); yields
    (params, session, server, stop) and stops the emulator on exit."""
    import threading

    from monitor_utils import config
    from monitor_utils.aws import connect, ensure_bucket
    from monitor_utils.local import server

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    local = server.start()
    try:
        cfg = config.validate(params)
        aws = connect(cfg, local.url, faults=False)
        ensure_bucket(aws, cfg.bucket)
        yield cfg, aws, local, stop
    finally:
        local.stop()


def put_here(aws, url: str, objects: list) -> None:
    """(bucket, key, body) objects straight into the store of the emulator this process serves (through the S3
    API when it cannot)."""
    from monitor_utils import capture
    from monitor_utils.local import emulator

    if not emulator.put_objects_here(url, aws.account_id, objects, "application/jsonl"):
        capture.put_objects(aws, objects)
