"""Kernels started ahead of the stages that will run in them, with the stage notebooks' imports already done, and
reused (namespace cleared) by the next stage once a stage has finished in one."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from jupyter_client.manager import AsyncKernelManager

log = logging.getLogger(__name__)

# what every stage would do first (imports, AWS service models, a first figure), done in the kernel while it waits;
# it leaves no name in the notebook's namespace
WARM_UP = "import importlib as _importlib\n_importlib.import_module('monitor_utils.context').warm_up()\ndel _importlib\n"
# run in a kernel a stage has finished with, before the next stage runs in it (see reset_namespace)
RESET = "__import__('monitor_utils.kernels', fromlist=['_']).reset_namespace()\n"
READY_TIMEOUT_S = 120


def reset_namespace(shell=None) -> None:
    """In a kernel: make the namespace what a new kernel's is (the last notebook's names and outputs gone, the modules
    it imported still imported), execution counts start at 1 again, and warnings show once per notebook again.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell, optional
        The kernel's shell (default: the running one).
    """
    import gc
    import warnings

    from IPython import get_ipython

    shell = shell or get_ipython()
    # IPython's reset drops the interactive module's own attributes, which a new kernel has
    kept = {k: shell.user_ns[k] for k in ("__doc__", "__loader__", "__package__", "__spec__") if k in shell.user_ns}
    shell.reset(new_session=True)  # a new history session: its line numbers (execution counts) start at 1 again
    shell.user_ns.update(kept)
    shell.user_ns.update({"_": "", "__": "", "___": ""})  # the output cache's names, as a new kernel starts them
    getattr(warnings, "_filters_mutated", lambda: None)()  # forget which warnings were already shown
    gc.collect()


async def _run_silently(km, code: str, what: str, wait_for_ready: bool = True) -> None:
    """Run ``code`` in ``km``'s kernel with no execution count, no history and nothing a notebook will show
    (``wait_for_ready=False`` for a kernel known to answer: its request queues until the channel connects)."""
    kc = km.client()
    kc.start_channels()
    try:
        if wait_for_ready:
            await kc.wait_for_ready(timeout=READY_TIMEOUT_S)
        msg_id = kc.execute(code, silent=True, store_history=False)
        while True:
            reply = await kc.get_shell_msg(timeout=READY_TIMEOUT_S)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{what} failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    finally:
        kc.stop_channels()
        clients = km.__dict__.get("made_clients", [])
        if kc in clients:
            clients.remove(kc)


async def _start(km, cwd: str, extra_arguments: list[str], code: str) -> None:
    await km.start_kernel(extra_arguments=extra_arguments, cwd=cwd)
    await _run_silently(km, code, "warming the kernel")


class TrackedKernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so whoever stops the kernel closes their channels
    too (papermill leaves a kernel it did not start running, and its client's channels open)."""

    def client(self, **kwargs):
        """A client connected to this kernel (remembered)."""
        kc = super().client(**kwargs)
        self.__dict__.setdefault("made_clients", []).append(kc)
        return kc


def _close_clients(km) -> None:
    for kc in km.__dict__.pop("made_clients", []):
        try:
            kc.stop_channels()
        except Exception as exc:  # noqa: BLE001
            log.debug("closing a kernel client: %s", exc)


def _shutdown(km) -> None:
    _close_clients(km)
    try:
        asyncio.run(km.shutdown_kernel(now=False))
    except Exception as exc:  # noqa: BLE001 - a kernel that will not stop gracefully is killed by its manager
        log.debug("kernel shutdown: %s", exc)


class WarmKernels:
    """Python3 kernels for ``count`` stages: started in the background with ``code`` run in each, and reused.

    :meth:`take` hands over a kernel for the next stage: one a stage has finished with, its namespace cleared
    (:data:`RESET`), else the next warm one, else one started then (None when it could not start: papermill then
    starts its own). :meth:`release` gives a kernel back: kept for the next stage when ``reuse`` (a stage that
    ended well in a kernel that is still alive), else stopped in the background. ``ahead`` kernels are started
    ahead of the stages (two: metrics and drift run side by side), never more than the stages need; with
    ``reuse=False`` every stage gets a kernel of its own. :meth:`close` stops what is left. Kernels start with this
    process's environment, so create the pool after the environment is set (the emulator's endpoint, the run id).

    Reusing a kernel saves each later stage the interpreter's start and the imports (about 2 s of a core each); a
    stage still sees none of its predecessor's names, only the modules it imported and what they keep in memory
    (the AWS service models, frames read by ETag in local mode).

    Parameters
    ----------
    count : int
        Stages to run (kernels wanted, at most, without reuse).
    cwd : str
        The kernels' working folder.
    extra_arguments : list[str]
        Command-line arguments for the kernel (as papermill's ``extra_arguments``).
    ahead : int
        Kernels kept in existence ahead of the stages: starting, waiting, or running a stage.
    code : str
        Run silently in each kernel once it answers (default: :func:`context.warm_up`).
    reuse : bool
        Whether :meth:`release` may keep a kernel for the next stage.
    """

    def __init__(self, count: int, cwd: str, extra_arguments: list[str], ahead: int = 2,
                 code: str = WARM_UP, reuse: bool = True) -> None:
        self._cwd, self._args, self._code = cwd, list(extra_arguments), code
        self._ahead, self._reuse = ahead, reuse
        self._pool = ThreadPoolExecutor(ahead + 1, thread_name_prefix="warm-kernel")
        self._lock = threading.Lock()
        self._stopping: list[Future] = []
        # kernels on their way to the next stage, in the order they will be handed over: given back and being reset
        # (ready first), then starting and warming up; each future gives a kernel manager, or None if it failed
        self._resetting: deque[Future] = deque()
        self._waiting: deque[Future] = deque()
        self._busy = 0  # kernels handed over and not yet given back
        self._remaining = count  # stages still to take a kernel
        with self._lock:
            self._top_up()

    def _top_up(self) -> None:
        """Start kernels until ``ahead`` exist (a busy one counts when it will come back) or the stages have enough."""
        while True:
            coming = len(self._resetting) + len(self._waiting)
            if coming + (self._busy if self._reuse else 0) >= self._ahead or coming >= self._remaining:
                return
            self._waiting.append(self._pool.submit(self._warm))

    def _warm(self):
        km = TrackedKernelManager(kernel_name="python3")
        try:
            asyncio.run(_start(km, self._cwd, self._args, self._code))
        except Exception as exc:  # noqa: BLE001 - the stage still runs, in a kernel papermill starts
            log.warning("a kernel could not be warmed (%s); the stage starts its own", exc)
            if km.has_kernel:
                _shutdown(km)
            return None
        return km

    def _reset(self, km):
        """``km`` reset for the next stage; a kernel that died or cannot be reset is stopped and a new one warmed."""
        _close_clients(km)  # papermill's client: the next stage's papermill makes its own
        try:
            if not asyncio.run(km.is_alive()):
                raise RuntimeError("the kernel is no longer running")
            asyncio.run(_run_silently(km, RESET, "resetting the kernel", wait_for_ready=False))
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot be reset is not used again
            log.warning("a kernel could not be reset for the next stage (%s); a new one is started", exc)
            _shutdown(km)
            return self._warm()
        return km

    def take(self):
        """A kernel manager for the next stage: a kernel given back and reset, else the next warm one (None if it
        failed to start: papermill then starts its own); starts another while stages remain."""
        with self._lock:
            self._remaining -= 1
            if not self._resetting and not self._waiting and self._remaining >= 0:
                # nothing on its way (a kernel was stopped, not replaced): start one for this stage now
                self._waiting.append(self._pool.submit(self._warm))
            queue = self._resetting if self._resetting else self._waiting
            coming = queue.popleft() if queue else None
            if coming is not None:
                self._busy += 1
            self._top_up()
        km = coming.result() if coming is not None else None
        if coming is not None and km is None:
            with self._lock:
                self._busy -= 1
                self._top_up()
        return km

    def release(self, km, reuse: bool = False) -> None:
        """Give back ``km`` (a stage has finished with it; None is accepted): when ``reuse``, the pool reuses kernels
        and stages remain, reset in the background for the next stage (replaced if it died); else stopped in the
        background. Nothing here waits on the kernel: the caller may run an event loop of its own."""
        if km is None:
            return
        with self._lock:
            self._busy -= 1
            if reuse and self._reuse and self._remaining > len(self._resetting) + len(self._waiting):
                self._resetting.append(self._pool.submit(self._reset, km))
                return
            # stopped, not replaced here: the next take starts one if it needs it (a run usually stops after a
            # failed stage, and would wait for a replacement's warm-up only to stop it)
            self._stopping.append(self._pool.submit(_shutdown, km))

    def close(self) -> None:
        """Stop the kernels nobody took and wait for every stop to finish."""
        with self._lock:
            self._remaining = 0
            coming = list(self._resetting) + list(self._waiting)
            self._resetting, self._waiting = deque(), deque()
        for km in (f.result() for f in coming):
            if km is not None:
                self._stopping.append(self._pool.submit(_shutdown, km))
        for f in self._stopping:
            f.result()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "WarmKernels":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
