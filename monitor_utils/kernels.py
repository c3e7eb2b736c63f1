"""Kernels started ahead of the stages that will run in them, with the stage notebooks' imports already done."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from jupyter_client.manager import AsyncKernelManager

log = logging.getLogger(__name__)

# what every stage would do first (imports, AWS service models, a first figure), done in the kernel while it waits;
# it leaves no name in the notebook's namespace
WARM_UP = "import importlib as _importlib\n_importlib.import_module('monitor_utils.context').warm_up()\ndel _importlib\n"
READY_TIMEOUT_S = 120


async def _start(km, cwd: str, extra_arguments: list[str], code: str) -> None:
    await km.start_kernel(extra_arguments=extra_arguments, cwd=cwd)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=READY_TIMEOUT_S)
        # silent: no execution count, no history, nothing the notebook's own cells will show
        msg_id = kc.execute(code, silent=True, store_history=False)
        while True:
            reply = await kc.get_shell_msg(timeout=READY_TIMEOUT_S)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"warming the kernel failed: {reply['content'].get('ename')}: "
                               f"{reply['content'].get('evalue')}")
    finally:
        kc.stop_channels()


class TrackedKernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so whoever stops the kernel closes their channels
    too (papermill leaves a kernel it did not start running, and its client's channels open)."""

    def client(self, **kwargs):
        """A client connected to this kernel (remembered)."""
        kc = super().client(**kwargs)
        self.__dict__.setdefault("made_clients", []).append(kc)
        return kc


def _shutdown(km) -> None:
    for kc in km.__dict__.pop("made_clients", []):
        try:
            kc.stop_channels()
        except Exception as exc:  # noqa: BLE001
            log.debug("closing a kernel client: %s", exc)
    try:
        asyncio.run(km.shutdown_kernel(now=False))
    except Exception as exc:  # noqa: BLE001 - a kernel that will not stop gracefully is killed by its manager
        log.debug("kernel shutdown: %s", exc)


class WarmKernels:
    """Up to ``ahead`` python3 kernels starting in the background, each with ``code`` run in it, for ``count`` stages.

    :meth:`take` hands over the next warm kernel (or None when it could not start: papermill then starts its own)
    and starts the one after it; :meth:`release` stops a kernel a stage has finished with, in the background;
    :meth:`close` stops what is left. Kernels start with this process's environment, so create the pool after
    the environment is set (the emulator's endpoint, the run id).

    Parameters
    ----------
    count : int
        Kernels wanted in all (one per stage).
    cwd : str
        The kernels' working folder.
    extra_arguments : list[str]
        Command-line arguments for the kernel (as papermill's ``extra_arguments``).
    ahead : int
        Kernels starting or waiting at any time (two: metrics and drift take theirs together).
    code : str
        Run silently in each kernel once it answers (default: :func:`context.warm_up`).
    """

    def __init__(self, count: int, cwd: str, extra_arguments: list[str], ahead: int = 2,
                 code: str = WARM_UP) -> None:
        self._cwd, self._args, self._code = cwd, list(extra_arguments), code
        self._pool = ThreadPoolExecutor(ahead + 1, thread_name_prefix="warm-kernel")
        self._stopping: list[Future] = []
        self._waiting: deque[Future] = deque()
        self._left = count
        for _ in range(min(ahead, count)):
            self._launch()

    def _launch(self) -> None:
        self._left -= 1
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

    def take(self):
        """The next warm kernel manager (None if it failed to start); starts another while stages remain."""
        if not self._waiting:
            return None
        km = self._waiting.popleft().result()
        if self._left > 0:
            self._launch()
        return km

    def release(self, km) -> None:
        """Stop ``km`` in the background (a stage has finished with it)."""
        if km is not None:
            self._stopping.append(self._pool.submit(_shutdown, km))

    def close(self) -> None:
        """Stop the kernels nobody took and wait for every stop to finish."""
        self._left = 0
        while self._waiting:
            self.release(self._waiting.popleft().result())
        for f in self._stopping:
            f.result()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "WarmKernels":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
