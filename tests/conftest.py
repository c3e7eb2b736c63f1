"""Shared fixtures: one local AWS emulator per test session, and small fresh simulated worlds on it."""

from __future__ import annotations

import itertools
import logging

import pytest

from monitor_utils import config, local, world
from monitor_utils.aws import connect
from monitor_utils.context import run_clock

WORLD_END = "2026-11-28T00:00:00Z"
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def emulator():
    """The embedded local AWS for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    yield server
    server.stop()


def small_world_params(name: str, **overrides) -> dict:
    """Parameters of a small, fast world whose AWS names cannot collide with another test's."""
    values = {"now": WORLD_END, "bucket": f"test-world-{name}", "endpoint_name": f"ep-{name}",
              "sns_topic_name": f"alerts-{name}", "dashboard_name": f"dash-{name}", "log_group": f"/test/{name}",
              "days": 14, "world": {"requests_per_day": 600, "train_rows": 6000, "test_rows": 1500,
                                    "drift_start_fraction": 0.5}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


@pytest.fixture
def make_world(emulator):
    """Build a fresh small world (unique bucket, endpoint, topic) and return (cfg, aws, now)."""

    def make(**overrides):
        cfg = config.validate(small_world_params(f"w{next(_ids)}", **overrides))
        aws = connect(cfg, emulator.url)
        world.build(aws, cfg, progress=lambda m: None)
        return cfg, aws, run_clock(cfg, aws)

    return make
