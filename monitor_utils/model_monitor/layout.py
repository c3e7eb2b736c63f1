"""Where Model Monitor's monitoring executions write their files, and the schedule name the suite reports under."""

from __future__ import annotations

import datetime as dt
from typing import Any

#: The schedule name when ``model_monitor.schedule_name`` is empty: ``<endpoint>`` + this suffix.
DEFAULT_SCHEDULE_SUFFIX = "-suite"


def schedule_name(cfg: Any) -> str:
    """``model_monitor.schedule_name``, else ``<endpoint_name>-suite``: the ``<schedule>`` of the output layout and
    the ``MonitoringSchedule`` dimension of Model Monitor's metrics."""
    return cfg["model_monitor"]["schedule_name"] or f"{cfg['endpoint_name']}{DEFAULT_SCHEDULE_SUFFIX}"


def monitoring_prefix(prefix: str, endpoint: str, schedule: str) -> str:
    """``PREFIX/monitoring/<endpoint>/<schedule>``: where a schedule's executions write (no trailing slash)."""
    return "/".join([prefix.strip("/"), "monitoring", endpoint, schedule]).lstrip("/")


def execution_prefix(prefix: str, endpoint: str, schedule: str, when: dt.datetime) -> str:
    """``PREFIX/monitoring/<endpoint>/<schedule>/<yyyy>/<mm>/<dd>/<hh>``: the key prefix (no trailing slash) of one
    monitoring execution's ``statistics.json`` and ``constraint_violations.json``, as Model Monitor lays out its
    output. ``when`` is the execution's hour: the suite uses the window's end (an hourly schedule's execution at
    hh:00 analyses the hour before it)."""
    return f"{monitoring_prefix(prefix, endpoint, schedule)}/{when:%Y/%m/%d/%H}"
