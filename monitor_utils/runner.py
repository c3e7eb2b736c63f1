"""Run the stage notebooks with papermill and leave the run's records: notebooks, HTML reports, stage JSON, summary and index."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

# nbformat validates notebooks with jsonschema, whose format checkers import rfc3987_syntax when it is installed
# (jupyter-events pulls it in); that import compiles Earley grammars for 2-3 s (python-jsonschema/jsonschema#1428).
# No notebook schema uses the iri formats it checks: the runner's process goes without them.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # importing it now raises ImportError

from . import assets, config, lease  # noqa: E402
from .aws import connect  # noqa: E402
from .kernels import WarmKernels  # noqa: E402
from .context import STAGES, prepare_local, repo_root  # noqa: E402
from .records import export_html, format_value, stage_summary, to_jsonable, write_index, write_json  # noqa: E402

STAGE_ALIASES = {s.split("_", 1)[1]: s for s in STAGES}
# stages that may run side by side: metrics and drift need only setup's baseline and keep their own watermarks;
# the dashboard and retraining need only what alerting left (alarms, histories) and change nothing the other reads
SIDE_BY_SIDE = (("10_metrics", "20_drift"), ("40_dashboard", "50_retraining"))
# the kernel talks to this process over loopback only; its log repeats a transport warning and a shutdown
# interrupt per stage
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]  # failures still reach papermill as cell errors


class RunnerError(ValueError):
    """The run cannot start (bad stage names, notebooks missing, undeclared parameters)."""


def resolve_stages(text: str | None) -> list[str]:
    """``'drift,metrics'`` or ``'20_drift'`` -> stage ids in pipeline order; unknown names fail, listing the stages."""
    if not text:
        return list(STAGES)
    wanted = []
    for raw in (t.strip() for t in text.split(",") if t.strip()):
        name = STAGE_ALIASES.get(raw, raw)
        if name not in STAGES:
            raise RunnerError(f"unknown stage {raw!r}; stages are {', '.join(STAGE_ALIASES)} (or {', '.join(STAGES)})")
        wanted.append(name)
    return [s for s in STAGES if s in wanted]


def notebook_parameters(path: Path) -> dict[str, dict]:
    """Parameters a notebook declares in its ``parameters`` cell (papermill's own inspection)."""
    import papermill

    return papermill.inspect_notebook(str(path))


def stage_parameters(cfg: config.Params, declared: dict[str, dict], run_dir: Path, nb: Path) -> dict[str, Any]:
    """The values for exactly the parameters the notebook declares; a declared name unknown to the schema is an error."""
    unknown = [n for n in declared if n not in config.SCHEMA]
    if unknown:
        raise RunnerError(f"{nb}: parameters cell declares {unknown}, which the params schema does not know; "
                          f"accepted: {', '.join(sorted(config.SCHEMA))}")
    values = {n: cfg[n] for n in declared}
    if "run_dir" in declared:
        values["run_dir"] = str(run_dir)
    return to_jsonable(values)


_HTML_START = re.compile(r"<(!doctype\b|html\b|head\b|body\b)", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
MAX_ERROR_CHARS = 2000


def plain_error(message: str) -> str:
    """An error message fit for the run's records: an HTML body (a proxy's or a server's 500 page, which botocore puts
    in a ClientError's message) is cut down to the text before it and the page's title or status line."""
    start = _HTML_START.search(message)
    if start:
        head = message[:start.start()].rstrip(" :\n")
        title = _HTML_TITLE.search(message)
        status = " ".join(title.group(1).split()) if title else "an HTML page"
        message = f"{head}: {status} (HTML body left out)" if head else f"{status} (HTML body left out)"
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + " [...]"


def _error_of(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    return plain_error(f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def run_lock(cfg: config.Params, wait_s: int):
    """One run at a time per bucket/prefix/endpoint on this machine: the next waits up to ``wait_s`` or stops."""
    import fcntl

    folder = repo_root(Path.cwd()) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".lock-{cfg.bucket}-{cfg.prefix.replace('/', '_')}-{cfg.endpoint_name}"
    with open(path, "a+") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise RunnerError(f"another run is in progress ({holder}, lock {path}); waited {wait_s} s. "
                                      "Let it finish, or raise lock_wait_seconds to queue behind it") from None
                time.sleep(1)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_PRINTING = threading.Lock()


def _print_line(message: str) -> None:
    """Print one progress line whole: stages side by side report from two threads, and ``print`` writes the text
    and its newline separately (lines came out as ``[2/6] 10_metrics ...[3/6] 20_drift ...``)."""
    with _PRINTING:
        print(message, flush=True)


def stage_groups(stages: list[str], parallel: bool) -> list[list[str]]:
    """The stages in pipeline order, as groups that run one after the other; with ``parallel`` the stages of one
    of :data:`SIDE_BY_SIDE` share a group (metrics and drift; the dashboard and retraining)."""
    if not parallel:
        return [[s] for s in stages]
    groups: list[list[str]] = []
    for stage in stages:
        if groups and any(set(groups[-1]) | {stage} <= set(pair) for pair in SIDE_BY_SIDE):
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


def _execute_stage(cfg: config.Params, nb: Path, declared: dict, run_dir: Path, stage: str, entry: dict,
                   kernels: WarmKernels | None = None) -> None:
    """Run one stage notebook with papermill (in a warm kernel from ``kernels`` when there is one), export its HTML
    report and fill ``entry`` (status, duration, verdict)."""
    import papermill

    t0 = time.perf_counter()
    out_nb = run_dir / f"{stage}.ipynb"
    km = kernels.take() if kernels else None
    try:
        papermill.execute_notebook(str(nb), str(out_nb), parameters=stage_parameters(cfg, declared, run_dir, nb),
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   execution_timeout=cfg.stage_timeout_seconds, start_timeout=120,
                                   cwd=str(repo_root(Path.cwd())),  # where runs/ is, not the notebooks
                                   extra_arguments=KERNEL_ARGUMENTS, **({"km": km} if km else {}))
        entry["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded in the summary, the run stops after this stage's group
        entry.update(status="failed", error=_error_of(exc))
    finally:
        if km is not None:  # a kernel a stage ended well in serves a later stage (namespace cleared)
            kernels.release(km, reuse=entry.get("status") == "ok")
    entry["duration_s"] = round(time.perf_counter() - t0, 2)
    if out_nb.exists():
        try:
            export_html(out_nb, run_dir / f"{stage}.html")
        except Exception as exc:  # noqa: BLE001
            entry["html_error"] = _error_of(exc)
    result_path = run_dir / f"{stage}.json"
    if result_path.exists():
        record = json.loads(result_path.read_text())
        entry["headline"] = record.get("headline") if isinstance(record.get("headline"), dict) else {}
        entry.update(stage_summary(run_dir, stage, record))  # verdict, series, sparkline file


def new_run_id() -> str:
    """A run's id: its UTC start time and four random hex digits."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def run_lease(cfg: config.Params, run_id: str, wait: bool, say: Callable[[str], None]):
    """aws mode with ``run_lease``: hold the S3 lease for the run (:mod:`monitor_utils.lease`); raises
    :class:`monitor_utils.lease.LeaseHeld` when another run holds it and ``wait`` is false. Local mode serves its
    own emulator to one run, so there is nothing to share: no lease."""
    if cfg.aws_mode != "aws" or not cfg.run_lease:
        return contextlib.nullcontext(None)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        aws = connect(cfg)
    except (BotoCoreError, ClientError) as exc:
        raise lease.LeaseError(f"could not open an AWS session to take the run lease: {type(exc).__name__}: {exc}") from None
    return lease.holding(aws, cfg, run_id, wait=wait, progress=say)


def run(files: list[str] = (), overrides: list[str] = (), stages: str | None = None, output: str | None = None,
        notebooks_dir: Path | None = None, progress: Callable[[str], None] | None = None,
        wait_for_lease: bool = False) -> tuple[int, Path]:
    """Run the suite; return (exit code, run folder).

    Parameters are merged and validated before anything runs (overridden alarms by CloudWatch's rules too:
    :func:`preflight.check_alarm_overrides`); in aws mode the account is checked too
    (:func:`preflight.check_account`: credentials, the bucket, an ``s3://`` ``data_path``), so a bad parameter
    raises :class:`config.ParamsError` (exit code 2) before anything is created. In local mode the emulator is started,
    the simulated world built, and stopped at the end. Each notebook gets only the parameters it declares
    and a per-cell timeout of ``stage_timeout_seconds``. Metrics and drift run at the same time, and so do the
    dashboard and retraining, unless ``parallel_stages`` is false. The run stops after the first failed stage (and the one running beside it).

    In aws mode the run first takes the S3 lease (``run_lease``): when another run holds it,
    :class:`monitor_utils.lease.LeaseHeld` is raised before anything runs, unless ``wait_for_lease``.
    """
    cfg = config.load(files, overrides)
    from . import preflight

    if output and output.startswith("s3://"):
        _check_s3_output(cfg, output)
    preflight.check_alarm_overrides(cfg)
    if cfg.aws_mode == "aws":  # what setup would find missing, found before any stage starts (read-only requests)
        preflight.check_account(cfg, connect(cfg))
    if output and output.startswith("s3://"):
        return _run_to_s3(cfg, files, overrides, stages, output, notebooks_dir, progress, wait_for_lease)
    return _run_locked(cfg, files, overrides, stages, output, notebooks_dir, progress, wait_for_lease)


def _run_locked(cfg: config.Params, files, overrides, stages, output, notebooks_dir, progress,
                wait_for_lease: bool) -> tuple[int, Path]:
    """One run under this machine's lock and (aws mode) the account's S3 lease."""
    say = progress or _print_line
    with run_lock(cfg, cfg.lock_wait_seconds):
        run_id = new_run_id()
        with run_lease(cfg, run_id, wait_for_lease, say) as held:
            return _run(cfg, files, overrides, stages, output, notebooks_dir, progress, run_id, held)


def _check_s3_output(cfg: config.Params, output: str) -> None:
    """``--output s3://...`` names a bucket and is given in aws mode; else :class:`RunnerError`."""
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", output):
        raise RunnerError(f"--output {output!r} is not an S3 prefix; use s3://BUCKET/PREFIX/runs/")
    if cfg.aws_mode != "aws":
        raise RunnerError("--output s3://... needs aws_mode: aws (local mode's S3 ends with its run); "
                          "give a folder instead")


def _run_to_s3(cfg: config.Params, files, overrides, stages, output: str, notebooks_dir, progress,
               wait_for_lease: bool = False) -> tuple[int, Path]:
    """``--output s3://BUCKET/PREFIX/``: run into a temporary folder, then upload the records to
    ``PREFIX/<run_id>/`` and the index to ``PREFIX/latest/index.html``; returns (exit code, that folder). The folder
    is removed once uploaded (a failed upload leaves it, says where, and exits 1). :func:`run` has checked
    ``output`` (:func:`_check_s3_output`) before the account."""
    import shutil
    import tempfile

    from .records import RECORDS_URI_ENV, upload_run

    say = progress or _print_line
    records = output.rstrip("/") + "/"
    folder = Path(tempfile.mkdtemp(prefix="monitor-utils-run-"))
    os.environ[RECORDS_URI_ENV] = records  # the stages name the reports' place in what they page
    try:
        code, run_dir = _run_locked(cfg, files, overrides, stages, str(folder), notebooks_dir, progress, wait_for_lease)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing ran (bad stages, a held lock): nothing to keep
        raise
    finally:
        os.environ.pop(RECORDS_URI_ENV, None)
    run_id = json.loads((run_dir / "summary.json").read_text())["run_id"]
    try:
        written = upload_run(connect(cfg), run_dir, records, run_id)
    except Exception as exc:  # noqa: BLE001 - the records stay on disk: nothing is lost
        say(f"error: the run's records could not be uploaded to {records}{run_id}/ ({_error_of(exc)}); "
            f"they are kept in {run_dir}")
        return 1, run_dir
    shutil.rmtree(folder, ignore_errors=True)
    say(f"records uploaded: {len(written)} objects under {records}{run_id}/; index {records}{run_id}/index.html")
    return code, run_dir


def _run(cfg: config.Params, files, overrides, stages, output, notebooks_dir, progress, run_id: str,
         held: lease.Lease | None = None) -> tuple[int, Path]:
    say = progress or _print_line
    selected = resolve_stages(stages)
    nb_dir = Path(notebooks_dir) if notebooks_dir else assets.notebooks_dir()
    plan = []
    for stage in selected:
        nb = nb_dir / f"{stage}.ipynb"
        if not nb.exists():
            raise RunnerError(f"notebook {nb} is missing")
        plan.append((stage, nb, notebook_parameters(nb)))
    run_dir = Path(output) if output else repo_root(Path.cwd()) / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict[str, Any] = {"run_id": run_id, "status": "running", "aws_mode": cfg.aws_mode,
                               "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "params_files": [str(f) for f in files], "overrides": list(overrides), "stages": []}
    if held is not None:
        summary["lease"] = {k: held.content.get(k) for k in ("run_id", "host", "started", "expires", "took_over_from")
                            if held.content.get(k)}
    say(f"run {run_id}: {len(plan)} stage(s), mode {cfg.aws_mode}, records in {run_dir}")
    emulator = kernels = None
    exit_code = 0
    os.environ["MONITOR_UTILS_RUN_ID"] = run_id
    try:
        if cfg.aws_mode == "local":
            from . import local  # local mode only

            emulator = local.start()
            # the stages' kernels start now (with the emulator's environment) and warm up while the world is built
            kernels = WarmKernels(len(plan), str(repo_root(Path.cwd())), KERNEL_ARGUMENTS)
            aws = connect(cfg, emulator.url, faults=False)
            say(f"local AWS emulator on {emulator.url}; building the simulated world ({cfg.scenario}, {cfg.days} days)")
            from .local import world
            from .local.emulator import preload_in_background

            # the emulator loads now what the stages' first requests would wait for; the first stage waits for its
            # kernel to warm up anyway, so this costs the run nothing
            preload_in_background(aws.account_id)
            t_world = time.perf_counter()
            world.build(aws, cfg, progress=lambda m: say("  " + m))
            summary["world_seconds"] = round(time.perf_counter() - t_world, 2)
            if selected[0] != STAGES[0]:
                prepare_local(cfg, aws, selected[0], progress=lambda m: say("  " + m))
        kernels = kernels or WarmKernels(len(plan), str(repo_root(Path.cwd())), KERNEL_ARGUMENTS)
        entries = {stage: {"stage": stage, "status": "skipped", "duration_s": 0.0} for stage, _, _ in plan}
        summary["stages"] = list(entries.values())  # pipeline order, whatever order the stages finish in
        number = {stage: i for i, (stage, _, _) in enumerate(plan, 1)}

        def run_stage(item: tuple[str, Path, dict]) -> None:
            stage, nb, declared = item
            entry = entries[stage]
            tag = f"[{number[stage]}/{len(plan)}] {stage}"
            say(f"{tag} ...")
            _execute_stage(cfg, nb, declared, run_dir, stage, entry, kernels)
            say(f"{tag} {entry['status']} in {entry['duration_s']:.1f} s"
                + (f": {entry['error']}" if entry.get("error") else "")
                + (f"  ({'; '.join(f'{k}: {format_value(v)}' for k, v in entry['headline'].items())})"
                   if entry.get("headline") else ""))

        for group in stage_groups([stage for stage, _, _ in plan], cfg.parallel_stages):
            items = [item for item in plan if item[0] in group]
            if len(items) == 1:
                run_stage(items[0])
            else:  # independent stages: each waits on its own kernel, so they share the machine's cores
                with ThreadPoolExecutor(len(items)) as pool:
                    list(pool.map(run_stage, items))
            if any(entries[stage]["status"] == "failed" for stage in group):
                exit_code = 1
                break  # later stages stay 'skipped'
    except Exception as exc:  # noqa: BLE001 - e.g. the emulator could not start: still leave a summary
        summary["error"] = _error_of(exc)
        exit_code = 1
        say(f"run failed before the stages finished: {summary['error']}")
    finally:
        if kernels is not None:
            kernels.close()
        if emulator is not None:
            emulator.stop()
        os.environ.pop("MONITOR_UTILS_RUN_ID", None)
    if held is not None and held.lost:
        summary["lease_lost"] = held.lost
        say(f"warning: {held.lost} while this run ran (each window was still published once: the watermarks "
            "are conditional)")
    summary["status"] = "ok" if exit_code == 0 else "failed"
    summary["duration_s"] = round(time.perf_counter() - started, 2)
    write_json(run_dir / "summary.json", summary)
    write_index(run_dir, summary)
    say(f"run {summary['status']} in {summary['duration_s']:.1f} s; open {run_dir / 'index.html'}")
    return exit_code, run_dir


def main_run(args) -> int:
    """CLI entry for ``run``."""
    try:
        code, _ = run(args.file or [], args.param or [], args.stages, args.output,
                      wait_for_lease=getattr(args, "wait_for_lease", False))
        return code
    except (config.ParamsError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except lease.LeaseHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except lease.LeaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
