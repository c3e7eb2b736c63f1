"""Monitoring windows: their bounds, which are complete, and the hourly partitions they span."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.timezone.utc
LENGTH = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1)}


@dataclass(frozen=True, order=True)
class Window:
    """A half-open time range [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        """Short name, e.g. '2026-11-01' or '2026-11-01T13'."""
        if self.end - self.start >= dt.timedelta(days=1):
            return self.start.strftime("%Y-%m-%d")
        return self.start.strftime("%Y-%m-%dT%H")

    def hours(self) -> list[dt.datetime]:
        """Start of each hour the window covers (the capture partitions to list)."""
        out, t = [], floor(self.start, "hourly")
        while t < self.end:
            out.append(t)
            t += dt.timedelta(hours=1)
        return out


def from_label(label: str, window: str) -> Window:
    """The window a label names ('2026-11-01' daily, '2026-11-01T13' hourly)."""
    fmt = "%Y-%m-%d" if window == "daily" else "%Y-%m-%dT%H"
    start = dt.datetime.strptime(label, fmt).replace(tzinfo=UTC)
    return Window(start, start + LENGTH[window])


def containing(t: dt.datetime, window: str) -> Window:
    """The window that contains ``t``."""
    start = floor(t, window)
    return Window(start, start + LENGTH[window])


def floor(t: dt.datetime, window: str) -> dt.datetime:
    """Round ``t`` down to a window boundary."""
    t = t.astimezone(UTC)
    if window == "daily":
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "hourly":
        return t.replace(minute=0, second=0, microsecond=0)
    raise ValueError(f"window {window!r}: accepted values are {', '.join(LENGTH)}")


def windows_between(start: dt.datetime, end: dt.datetime, window: str) -> list[Window]:
    """Every whole window from the boundary at or after ``start`` up to ``end``."""
    step = LENGTH[window]
    t = floor(start, window)
    if t < start:
        t += step
    out = []
    while t + step <= end:
        out.append(Window(t, t + step))
        t += step
    return out


def partition_prefix(base: str, t: dt.datetime) -> str:
    """``base/yyyy/mm/dd/hh/`` as SageMaker Data Capture and ground truth lay out their files."""
    return f"{base.rstrip('/')}/{t:%Y/%m/%d/%H}/"


def iso(t: dt.datetime) -> str:
    """ISO 8601 UTC with a Z, as SageMaker writes inferenceTime."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
