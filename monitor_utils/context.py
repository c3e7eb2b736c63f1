"""What a stage notebook needs to start: parameters, an AWS session (local or real), the run clock, and a place for its record."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import config
from .aws import Aws, connect
from .paths import repo_root  # noqa: F401 - re-exported: callers import it from here
from .records import write_json
from .results import StageResult

STAGES = ("00_setup", "10_metrics", "20_drift", "30_alerting", "40_dashboard", "50_retraining")


def warm_up() -> None:
    """Do now what every stage would do first: import the stage modules and what they use, parse the AWS service
    models, draw a figure once (fonts, renderer). The runner calls this in the kernels it starts ahead of the stages."""
    import importlib
    import io
    import pkgutil

    from matplotlib.figure import Figure

    from . import aws, stages

    for info in pkgutil.iter_modules(stages.__path__, stages.__name__ + "."):
        importlib.import_module(info.name)
    for name in ("engine", "drift", "estimation", "workflow", "dashboard", "alerting", "plots", "report"):
        importlib.import_module(f"{__package__}.{name}")
    aws.preload_service_models()
    fig = Figure(figsize=(2, 1), layout="constrained")
    fig.subplots().plot([0, 1], [0, 1], label="x")
    fig.savefig(io.BytesIO(), format="png")


def run_clock(cfg: config.Params, aws: Aws) -> dt.datetime:
    """The run's 'now': the ``now`` parameter, else the simulated world's end (local), else the real clock."""
    if cfg.now:
        return config.parse_time(cfg.now)
    if aws.mode == "local":
        from .local import world  # local mode only

        manifest = world.read_manifest(aws, cfg)
        if manifest:
            return config.parse_time(manifest["now"])
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class StageContext:
    """Parameters, session and clock of one stage run, and where its JSON record goes."""

    cfg: config.Params
    aws: Aws
    stage: str
    now: dt.datetime
    run_dir: Path
    local_aws: Any = None  # local mode: the emulator (a monitor_utils.local.LocalAws)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def show_parameters(self, namespace: Mapping[str, Any]) -> None:
        """Display the parameters this notebook declares with the values in effect, folded (reports hide code)."""
        from IPython.display import HTML, display

        from .report import parameters_html

        display(HTML(parameters_html(self.cfg, namespace, config.SCHEMA)))

    def save(self, result: StageResult) -> Path:
        """Write ``<run_dir>/<stage>.json``: the stage's record, headline, verdict and series."""
        record = {"stage": self.stage, "aws_mode": self.cfg.aws_mode, "now": self.now.isoformat(),
                  "duration_s": round(time.perf_counter() - self.started, 2), "notes": self.notes,
                  **result.to_record()}
        return write_json(self.run_dir / f"{self.stage}.json", record)


def prepare_local(cfg: config.Params, aws: Aws, before: str, progress=print) -> None:
    """Local mode: build the simulated world if missing and run the package side of every stage before ``before``."""
    from .local import world  # local mode only

    if world.read_manifest(aws, cfg) is None:
        world.build(connect(cfg, aws.endpoint_url, faults=False), cfg, progress=progress)
    from . import stages

    now = run_clock(cfg, aws)
    for name in STAGES[: STAGES.index(before)]:
        progress(f"local: running the {name} stage's package code first (its notebook was not run)")
        stages.run(name, cfg, aws, now)


def start_stage(namespace: Mapping[str, Any], stage: str) -> StageContext:
    """Start a stage from a notebook's globals: validate parameters, connect, and in local mode make sure
    a world exists (starting the emulator in this kernel and running earlier stages when none is running).

    Parameters
    ----------
    namespace : Mapping[str, Any]
        The notebook's ``globals()`` after its parameters cell.
    stage : str
        One of ``STAGES``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    cfg = config.from_namespace(namespace)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else repo_root() / "runs" / "interactive"
    if cfg.aws_mode == "aws":
        aws = connect(cfg)
        return StageContext(cfg, aws, stage, run_clock(cfg, aws), run_dir)
    from . import local  # local mode only
    from .local import world

    running = local.find_running()
    if running is not None:
        aws = connect(cfg, running.url)

        if world.read_manifest(aws, cfg) is None:
            prepare_local(cfg, aws, stage)
        ctx = StageContext(cfg, aws, stage, run_clock(cfg, aws), run_dir, running)
        return ctx
    started = local.start()
    aws = connect(cfg, started.url)
    prepare_local(cfg, aws, stage)
    ctx = StageContext(cfg, aws, stage, run_clock(cfg, aws), run_dir, started)
    ctx.notes.append("started a local AWS emulator in this kernel and built the simulated world (no runner was running)")
    return ctx

