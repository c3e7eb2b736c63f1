"""Tests for monitor_utils.plots: each figure draws what its data holds (lines, points, axes) and survives empty input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from conftest import date_labels_apart
from monitor_utils import plots

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def history(n: int = 6) -> pd.DataFrame:
    ends = [T0 + dt.timedelta(days=i + 1) for i in range(n)]
    rmse = np.linspace(6, 11, n)
    return pd.DataFrame({"window": [f"{e - dt.timedelta(days=1):%Y-%m-%d}" for e in ends], "end": ends,
                         "rmse": rmse, "rmse_low": rmse - 0.5, "rmse_high": rmse + 0.5, "r2": np.linspace(0.6, -0.5, n),
                         "r2_low": np.linspace(0.5, -0.6, n), "r2_high": np.linspace(0.7, -0.4, n),
                         "mae": rmse * 0.8, "bias": np.zeros(n), "captured": [1000] * n, "labelled": [900] * n,
                         "label_coverage": [0.9] * n})


def test_metric_timelines_draw_every_window_and_the_thresholds():
    fig = plots.metric_timelines(history(), {"rmse": 9.0, "r2": 0.15}, {"rmse": 6.5, "r2": 0.6})
    assert isinstance(fig, Figure)
    rmse_ax = next(ax for ax in fig.axes if "RMSE" in ax.get_title())
    ys = [line.get_ydata() for line in rmse_ax.get_lines()]
    assert any(len(y) == 6 and np.allclose(y, np.linspace(6, 11, 6)) for y in ys)  # the series itself
    assert any(np.allclose(np.unique(y), [9.0]) for y in ys)  # the threshold


def test_label_coverage_and_segments():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plots.label_coverage(history())
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["captured", "labelled", "coverage"]
    box = legend.get_window_extent(renderer)
    bars = [b.get_window_extent(renderer) for b in ax.patches]
    assert bars and not any(box.overlaps(b) for b in bars)  # the legend covers no window's bar
    seg = pd.DataFrame({"window": ["w1", "w1", "w2"], "segment": ["1990s", "2000s", "1990s"], "rmse": [5.0, 7.0, 6.0],
                        "count": [100, 120, 90]})
    assert isinstance(plots.segment_rmse(seg), Figure)


def test_sparkline_draws_values_and_threshold_and_tolerates_gaps():
    fig = plots.sparkline({"label": "RMSE", "windows": ["a", "b", "c"], "values": [6.0, None, 11.0], "threshold": 9.0})
    lines = fig.axes[0].get_lines()
    assert any(np.allclose(np.unique(line.get_ydata()), [9.0]) for line in lines)
    fig = plots.sparkline({"label": "x", "windows": [], "values": [], "threshold": None})
    assert isinstance(fig, Figure)


def test_pages_timeline_marks_each_page_and_survives_none():
    pages = [{"alarm": "ep-rmse", "datapoint_time": T0, "known_at": T0 + dt.timedelta(days=3)},
             {"alarm": "ep-data-drift", "datapoint_time": T0, "known_at": T0}]
    fig = plots.pages_timeline(pages, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=5))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ep-data-drift", "ep-rmse"]
    assert len(ax.get_lines()) == 3 * len(pages)  # delay segment, window end, known-at per page
    empty = plots.pages_timeline([])
    assert "no pages" in empty.axes[0].texts[0].get_text()


def test_drift_heatmap_and_champion_challenger():
    fh = pd.DataFrame({"window": ["w1", "w1", "w2", "w2"], "feature": ["a", "b", "a", "b"],
                       "effect": [0.1, 0.9, 0.2, 1.5], "drifted": [False, True, False, True]})
    assert isinstance(plots.drift_heatmap(fh), Figure)
    per_decade = pd.DataFrame({"segment": ["1990s", "2000s"], "champion": [7.0, 8.0], "challenger": [6.0, 7.5],
                               "relative_change": [-0.14, -0.06], "holdout_share": [0.5, 0.5], "gating": [True, True]})
    assert isinstance(plots.champion_challenger(per_decade), Figure)


def test_workflow_path_fills_the_visited_states_and_draws_every_state():
    from monitor_utils import config, workflow

    defn = workflow.definition(config.validate({}))
    visited = ["Prepare", "Decide", "ReadDecision", "NeedsRetraining", "NotifyNotNeeded", "NotNeeded"]
    fig = plots.workflow_path(defn, visited)
    boxes = {t.get_text(): t.get_bbox_patch().get_facecolor() for t in fig.axes[0].texts if t.get_text()}
    assert set(boxes) == set(defn["States"])
    from matplotlib.colors import to_rgba

    filled = {n for n, c in boxes.items() if c == to_rgba(plots.PATH_COLOUR)}
    assert filled == set(visited)
    arrows = [t.arrow_patch for t in fig.axes[0].texts if not t.get_text()]
    bold = [a for a in arrows if a.get_edgecolor() == to_rgba(plots.PATH_COLOUR)]
    assert len(bold) == len(visited) - 1 and len(arrows) > len(bold)
    assert plots.workflow_path(defn, None).axes[0].get_title().endswith("(not executed in this run)")


def test_a_month_of_alarm_backtest_or_pages_keeps_its_date_labels_apart():
    now = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
    ends = pd.date_range(now - dt.timedelta(days=29), now, freq="D")
    timeline = pd.DataFrame({"timestamp": ends, "value": np.linspace(6, 12, len(ends))})
    fig = Figure(figsize=(12, 2.6), layout="constrained")  # as the alerting report draws each backtest
    ax = fig.subplots()
    plots.alarm_backtest(timeline, [(ends[20], ends[-1])], 9.0, "rmse: fired 1 time(s)", ax=ax)
    ax.set_xlim(now - dt.timedelta(days=30), now + dt.timedelta(hours=6))
    assert date_labels_apart(fig, ax)
    pages = [{"alarm": "ep-error-rate", "datapoint_time": t, "known_at": t + dt.timedelta(hours=1)} for t in ends[::6]]
    fig = plots.pages_timeline(pages, now - dt.timedelta(days=30), now + dt.timedelta(hours=6))  # as the report
    assert date_labels_apart(fig, fig.axes[0])


def test_a_month_of_label_coverage_keeps_its_date_labels_apart():
    ends = pd.date_range(dt.datetime(2026, 11, 6, tzinfo=dt.timezone.utc), periods=27, freq="D")  # across a month's turn
    n = len(ends)
    fig = plots.label_coverage(pd.DataFrame({"end": ends, "captured": [1000] * n, "labelled": [900] * n,
                                             "label_coverage": [0.9] * n}))
    assert date_labels_apart(fig, fig.axes[0])
