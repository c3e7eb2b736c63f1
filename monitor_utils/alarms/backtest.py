"""Backtest: an alarm replayed over a metric history into a state timeline with transitions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from .constants import ALARM, INSUFFICIENT_DATA, STATES
from .errors import alarm_name
from .evaluator import evaluate, static_rule
from .specs import alarm_period


def backtest(
    alarm: Mapping[str, Any],
    history: pd.Series | Sequence[tuple[datetime, float | None]],
    start_state: str = INSUFFICIENT_DATA,
    evaluation_range: int | None = None,
) -> BacktestResult:
    """Replay an alarm over a metric history into a state timeline.

    Parameters
    ----------
    alarm
        Static-threshold alarm spec; its period (``Period``, or the metric-math query period) sets the grid.
    history
        The watched series, one value per period: a Series indexed by period-end timestamps or a list of
        ``(timestamp, value)``. ``None``/NaN values and timestamps absent from the regular grid are missing.
    start_state
        State before the first period.
    evaluation_range
        Periods CloudWatch looks back over at each evaluation (see :func:`evaluate`). CloudWatch does not
        publish the exact number; the default ``EvaluationPeriods + 2`` matches the docs' examples (5 for 3).

    Returns
    -------
    BacktestResult
        ``timeline`` (timestamp, value, state), ``transitions`` (timestamp, from, to) and ``times_fired``
        (transitions into ALARM). Each period's state is ``evaluate`` over the range ending at that period,
        carrying the previous state forward.
    """
    if start_state not in STATES:
        raise ValueError(f"start_state {start_state!r} is not one of {', '.join(STATES)}")
    rule = static_rule(alarm)
    span = rule.n + 2 if evaluation_range is None else int(evaluation_range)
    if span < rule.n:
        raise ValueError(f"evaluation_range {span} is shorter than EvaluationPeriods {rule.n}; use at least {rule.n}")
    period = alarm_period(alarm)
    series = _on_grid(_history_series(history), period)
    values = [None if math.isnan(v) else float(v) for v in series.to_numpy()]
    state, states, transitions = start_state, [], []
    for i, ts in enumerate(series.index):
        new = evaluate(alarm, values[max(0, i - span + 1) : i + 1], state)
        if new != state:
            transitions.append({"timestamp": ts, "from": state, "to": new})
        state = new
        states.append(state)
    timeline = pd.DataFrame({"timestamp": series.index, "value": series.to_numpy(), "state": states})
    return BacktestResult(
        timeline=timeline,
        transitions=transitions,
        times_fired=sum(t["to"] == ALARM for t in transitions),
        threshold=rule.threshold,
        period=period,
        alarm_name=alarm_name(alarm),
    )


@dataclass
class BacktestResult:
    """State timeline of an alarm replayed over a metric history."""

    timeline: pd.DataFrame
    transitions: list[dict] = field(default_factory=list)
    times_fired: int = 0
    threshold: float | None = None
    period: int = 60
    alarm_name: str = ""

    def alarm_spans(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Return ``(start, end)`` of each contiguous ALARM run; a period ending at ``t`` covers ``(t - period, t]``."""
        spans, start, prev = [], None, None
        for ts, state in zip(self.timeline["timestamp"], self.timeline["state"]):
            if state == ALARM and start is None:
                start = ts - pd.Timedelta(seconds=self.period)
            if state != ALARM and start is not None:
                spans.append((start, prev))
                start = None
            prev = ts
        if start is not None:
            spans.append((start, prev))
        return spans

    def plot(self, ax: Any = None) -> Any:
        """Draw the metric, the threshold line and shaded ALARM periods; return the matplotlib Axes.

        Without ``ax`` a standalone ``matplotlib.figure.Figure`` is created (no pyplot, no GUI backend).
        The figure is :func:`monitor_utils.plots.alarm_backtest`.
        """
        from ..plots import alarm_backtest  # matplotlib loads only when a figure is drawn

        title = f"{self.alarm_name}: fired {self.times_fired} time(s)"
        return alarm_backtest(self.timeline, self.alarm_spans(), self.threshold, title, ax=ax)


def _history_series(history: pd.Series | Sequence[tuple[datetime, float | None]]) -> pd.Series:
    if isinstance(history, pd.Series):
        series = history.copy()
    else:
        rows = list(history)
        series = pd.Series([v for _, v in rows], index=[t for t, _ in rows], dtype="object")
    series.index = pd.DatetimeIndex(series.index)
    if series.empty:
        raise ValueError("backtest history is empty; pass at least one (timestamp, value) period")
    if series.index.has_duplicates:
        raise ValueError(
            f"backtest history has duplicate timestamps, e.g. {series.index[series.index.duplicated()][0]}; "
            "keep one value per period"
        )
    try:
        values = [math.nan if pd.isna(v) else float(v) for v in series.to_numpy(dtype=object)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"backtest history values must be numbers or None/NaN: {exc}") from None
    return pd.Series(values, index=series.index, dtype="float64").sort_index()


def _on_grid(series: pd.Series, period: int) -> pd.Series:
    """Reindex onto one row per period; absent timestamps become missing (NaN)."""
    grid = pd.date_range(series.index[0], series.index[-1], freq=pd.Timedelta(seconds=period))
    off_grid = series.index.difference(grid)
    if len(off_grid):
        raise ValueError(
            f"timestamp {off_grid[0]} is not a whole number of {period} s periods after {series.index[0]}; "
            "give one timestamp per period end of the alarm's period"
        )
    return series.reindex(grid)
