"""The package side of each stage: one ``run(cfg, aws, now) -> StageResult`` per notebook, called by notebooks and the runner."""

from __future__ import annotations

import datetime as dt
import importlib

from .. import heap
from ..aws import Aws
from ..config import Params
from ..results import StageResult

MODULES = {"00_setup": "setup", "10_metrics": "metrics", "20_drift": "drift", "30_alerting": "alerting",
           "40_dashboard": "dashboard", "50_retraining": "retraining"}


def run(stage: str, cfg: Params, aws: Aws, now: dt.datetime) -> StageResult:
    """Run one stage's package code (no figures) and return its result (record, artefacts, headline, verdict).

    The process's C heap gets one malloc arena first (:func:`heap.limit_arenas`): a stage's fetching threads then
    leave no arenas of their own holding what they freed."""
    heap.limit_arenas()
    module = importlib.import_module(f"{__name__}.{MODULES[stage]}")
    return module.run(cfg, aws, now)
