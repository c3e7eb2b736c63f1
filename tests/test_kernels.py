"""Tests for monitor_utils.kernels: kernels started ahead, warmed up, handed to papermill and stopped."""

from __future__ import annotations

import asyncio
import json
import os

import nbformat
import papermill
import pytest

from monitor_utils import kernels

ARGS = ["--IPKernelApp.log_level=CRITICAL"]
CHEAP = "import colorsys, json\n_warm = 1\ndel _warm\n"  # colorsys: a module nothing else in a fresh kernel imports


class Recorded(kernels.TrackedKernelManager):
    """Every manager the pool makes, with its kernel's process id."""

    made: list["Recorded"] = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pid = None
        Recorded.made.append(self)

    async def start_kernel(self, **kwargs):
        await super().start_kernel(**kwargs)
        self.pid = self.provisioner.pid


@pytest.fixture
def recorded(monkeypatch):
    Recorded.made = []
    monkeypatch.setattr(kernels, "TrackedKernelManager", Recorded)
    yield Recorded.made
    for km in Recorded.made:  # a failed test leaves no kernel running
        if km.has_kernel and alive(km):
            asyncio.run(km.shutdown_kernel(now=True))


def alive(km) -> bool:
    return asyncio.run(km.is_alive())


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def notebook(*cells: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells],
                                    metadata={"kernelspec": {"name": "python3", "language": "python",
                                                             "display_name": "Python 3"}})


def run_in(km, tmp_path, nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    src, out = tmp_path / f"{name}.ipynb", tmp_path / f"{name}.out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, log_output=False,
                               cwd=str(tmp_path), km=km)
    return nbformat.read(out, as_version=4)


def printed(cell) -> dict:
    text = "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError(f"not one JSON document: {text!r}") from None


CHECK = ("import json, os, sys\n"
         "print(json.dumps({'colorsys': 'colorsys' in sys.modules,\n"
         "                  'names': sorted(n for n in dir() if 'warm' in n or 'importlib' in n),\n"
         "                  'metrics': 'monitor_utils.stages.metrics' in sys.modules, 'pid': os.getpid()}))")


def test_a_taken_kernel_has_run_the_warm_up_and_papermill_runs_in_it(tmp_path, recorded):
    with kernels.WarmKernels(1, str(tmp_path), ARGS, code=CHEAP) as pool:
        km = pool.take()
        assert km is not None and alive(km)
        out = run_in(km, tmp_path, notebook(CHECK, "x = 2\nx * 21"), "check")
        seen = printed(out.cells[0])
        assert seen["colorsys"] and seen["names"] == []  # imported by the warm-up, which left no name behind
        assert seen["pid"] == km.provisioner.pid  # the notebook ran in the warm kernel, not one papermill started
        assert [c.execution_count for c in out.cells] == [1, 2]  # the silent warm-up took no execution count
        assert out.cells[1].outputs[0]["data"]["text/plain"] == "42"
        assert alive(km)  # papermill leaves a kernel it did not start running
        pool.release(km)
    assert recorded == [km] and not alive(km) and not process_exists(recorded[0].pid)


def test_a_kernel_whose_warm_up_fails_is_not_handed_over_and_is_stopped(tmp_path, recorded):
    with kernels.WarmKernels(2, str(tmp_path), ARGS, code="raise RuntimeError(1)") as pool:
        assert pool.take() is None and pool.take() is None and pool.take() is None
    assert len(recorded) == 2
    for km in recorded:
        assert km.pid is not None and not alive(km) and not process_exists(km.pid)


def test_never_more_kernels_than_stages_and_close_stops_what_was_not_taken(tmp_path, recorded):
    pool = kernels.WarmKernels(3, str(tmp_path), ARGS, ahead=2, code=CHEAP, reuse=False)
    first, second = pool.take(), pool.take()
    assert first is not None and second is not None and first is not second and alive(first) and alive(second)
    pool.release(first, reuse=True)  # the pool does not reuse: stopped all the same
    pool.release(second)
    pool.close()  # stops the third, started ahead and never taken, and waits for every stop
    assert pool.take() is None
    assert len(recorded) == 3 and first in recorded and second in recorded  # one per stage, not one more
    for km in recorded:
        assert km.pid is not None and not alive(km) and not process_exists(km.pid)
    with kernels.WarmKernels(2, str(tmp_path), ARGS, ahead=1, code=CHEAP, reuse=False) as pool:
        taken = [pool.take() for _ in range(3)]
        for km in taken:
            pool.release(km)  # None is accepted: nothing to stop
    assert all(taken[:2]) and taken[2] is None and len(recorded) == 5
    with kernels.WarmKernels(1, str(tmp_path), ARGS, ahead=2, code=CHEAP):
        pass  # one stage: one kernel, however many may start ahead
    assert len(recorded) == 6
    for km in recorded:
        assert not alive(km) and not process_exists(km.pid)


STAGE_ONE = ("import colorsys\nleft_behind = 41\nleft_behind + 1", "print('x')")
STAGE_TWO = ("import json, sys\nprint(json.dumps({'names': sorted(n for n in dir() if n not in ('In', '_ih', '_i1')),\n"
             "  'colorsys': 'colorsys' in sys.modules, 'out': len(Out)}))",)


def test_a_kernel_given_back_serves_the_next_stage_with_a_clean_namespace(tmp_path, recorded):
    with kernels.WarmKernels(2, str(tmp_path), ARGS, ahead=1, code=CHEAP) as pool:
        km = pool.take()
        first = run_in(km, tmp_path, notebook(*STAGE_ONE), "one")
        assert first.cells[0].outputs[0]["data"]["text/plain"] == "42"
        pool.release(km, reuse=True)
        again = pool.take()
        assert again is km and alive(km)  # the same kernel process, not a new one
        second = run_in(again, tmp_path, notebook(*STAGE_TWO), "two")
        seen = printed(second.cells[0])
        # the first notebook's names and outputs are gone, as in a kernel of its own; its imports stay imported
        fresh = printed(run_in(None, tmp_path, notebook(*STAGE_TWO), "fresh").cells[0])
        assert "left_behind" not in seen["names"] and seen["names"] == fresh["names"]
        assert seen["colorsys"] and not fresh["colorsys"] and seen["out"] == fresh["out"] == 0
        assert [c.execution_count for c in second.cells] == [1]  # counts start again at 1
        pool.release(again, reuse=True)  # no stage left: stopped, not kept
    assert recorded == [km] and not alive(km) and not process_exists(km.pid)


def test_a_kernel_of_a_failed_stage_or_a_dead_kernel_is_replaced_not_reused(tmp_path, recorded):
    with kernels.WarmKernels(3, str(tmp_path), ARGS, ahead=1, code=CHEAP) as pool:
        failed = pool.take()
        pool.release(failed, reuse=False)  # the stage failed: its kernel may hold anything
        replacement = pool.take()
        assert replacement is not None and replacement is not failed and alive(replacement)
        asyncio.run(replacement.shutdown_kernel(now=True))  # the kernel died under the stage
        pool.release(replacement, reuse=True)
        third = pool.take()
        assert third is not None and third not in (failed, replacement) and alive(third)
        pool.release(third, reuse=True)
    assert len(recorded) == 3 and not process_exists(failed.pid)
    for km in recorded:
        assert not alive(km)


def test_a_run_that_stops_after_a_failed_stage_starts_no_replacement(tmp_path, recorded):
    with kernels.WarmKernels(6, str(tmp_path), ARGS, ahead=1, code=CHEAP) as pool:
        km = pool.take()
        pool.release(km, reuse=False)  # the stage failed: the runner stops after its group
    assert recorded == [km] and not process_exists(km.pid)  # nothing was started only to be stopped


def test_reused_kernels_the_runner_way_make_two_kernels_for_six_stages(tmp_path, recorded):
    with kernels.WarmKernels(6, str(tmp_path), ARGS, ahead=2, code=CHEAP) as pool:
        for group in ([1], [2, 3], [4], [5, 6]):  # setup; metrics and drift; alerting; dashboard and retraining
            taken = [pool.take() for _ in group]
            assert all(taken) and len(set(map(id, taken))) == len(group)
            for km in taken:
                pool.release(km, reuse=True)
    assert len(recorded) == 2
    for km in recorded:
        assert not alive(km) and not process_exists(km.pid)


def test_the_default_warm_up_imports_the_stages(tmp_path, recorded):
    with kernels.WarmKernels(1, str(tmp_path), ARGS) as pool:  # kernels.WARM_UP
        km = pool.take()
        assert km is not None
        out = run_in(km, tmp_path, notebook(CHECK), "default")
        pool.release(km)
    seen = printed(out.cells[0])
    assert seen["metrics"] and seen["names"] == [] and out.cells[0].execution_count == 1
    assert not alive(km)


def test_the_pool_serves_a_caller_that_runs_an_event_loop_of_its_own(tmp_path, recorded):
    async def two_stages():  # e.g. the runner called under playwright's or Jupyter's running loop
        with kernels.WarmKernels(2, str(tmp_path), ARGS, ahead=1, code=CHEAP) as pool:
            km = pool.take()
            pool.release(km, reuse=True)
            again = pool.take()
            pool.release(again, reuse=True)
        return km, again

    km, again = asyncio.run(two_stages())
    assert km is again and recorded == [km] and not process_exists(km.pid)
