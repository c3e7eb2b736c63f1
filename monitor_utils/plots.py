"""Figures for the stage reports: metric timelines, estimated against realized RMSE, coverage, residuals by decade, drift heatmaps, ECDF overlays and alarm backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def concise_date_ticks(ax: Axes) -> None:
    """Date ticks that stay apart on a narrow axis: the day of month, the month or year only where it changes."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _times(frame: pd.DataFrame, column: str = "end") -> pd.Series:
    return pd.to_datetime(frame[column], utc=True)


def metric_timelines(history: pd.DataFrame, thresholds: dict[str, float] | None = None,
                     baseline: dict | None = None) -> Figure:
    """RMSE, R2, MAE and bias per window, with bootstrap bands, alarm thresholds and the baseline test-set value."""
    thresholds = thresholds or {}
    fig = Figure(figsize=(12, 6), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    if history.empty:
        fig.suptitle("no window has been published yet")
        return fig
    t = _times(history)
    for ax, key, title in zip(axes, ("rmse", "r2", "mae", "bias"), ("RMSE (years)", "R2", "MAE (years)", "Bias (years)")):
        y = pd.to_numeric(history[key], errors="coerce")
        ax.plot(t, y, marker="o", linewidth=1.2, label=key.upper())
        if f"{key}_low" in history:
            ax.fill_between(t, pd.to_numeric(history[f"{key}_low"], errors="coerce"),
                            pd.to_numeric(history[f"{key}_high"], errors="coerce"), alpha=0.2, label="90% bootstrap")
        if key in thresholds:
            ax.axhline(thresholds[key], color="tab:red", linestyle="--", linewidth=1, label="alarm threshold")
        if baseline and baseline.get(key) is not None:
            ax.axhline(baseline[key], color="tab:green", linestyle=":", linewidth=1, label="baseline test set")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle("Model quality per window (labelled invocations only)")
    return fig


def label_coverage(history: pd.DataFrame) -> Figure:
    """Captured and labelled invocations per window, and the share labelled."""
    fig = Figure(figsize=(12, 3), layout="constrained")
    ax = fig.subplots()
    if history.empty:
        return fig
    t = _times(history)
    ax.bar(t, history["captured"], width=0.8 if len(t) < 2 else (t.iloc[1] - t.iloc[0]) * 0.8, label="captured", alpha=0.5)
    ax.bar(t, history["labelled"], width=0.8 if len(t) < 2 else (t.iloc[1] - t.iloc[0]) * 0.8, label="labelled", alpha=0.8)
    ax2 = ax.twinx()
    ax2.plot(t, history["label_coverage"], color="black", marker=".", label="coverage")
    ax2.set_ylim(0, 1.05)
    ax.set_title("Label coverage per window")
    concise_date_ticks(ax)  # a month across the 29th/1st: full dates collided there
    ax2.set_ylabel("share labelled", fontsize=8)
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    # above the plot, right: inside, the legend covered the first windows' bars
    ax.legend(h1 + h2, l1 + l2, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=7, frameon=False)
    return fig


def estimated_vs_realized(estimates: list[dict], threshold: float | None = None) -> Figure:
    """Label-free estimated RMSE per window with its interval, against the realized RMSE where labels have landed."""
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax = fig.subplots()
    if not estimates:
        ax.text(0.5, 0.5, "no window has been estimated yet", ha="center", va="center", transform=ax.transAxes)
        return fig
    frame = pd.DataFrame(estimates)
    t = _times(frame)
    est = pd.to_numeric(frame["estimated_rmse"], errors="coerce")
    ax.fill_between(t, pd.to_numeric(frame["estimated_rmse_low"], errors="coerce"),
                    pd.to_numeric(frame["estimated_rmse_high"], errors="coerce"), color="tab:orange", alpha=0.2,
                    label="estimate's interval")
    ax.plot(t, est, color="tab:orange", marker="o", linewidth=1.2, label="estimated RMSE (no labels, the day it closes)")
    realized = pd.to_numeric(frame["realized_rmse"], errors="coerce")
    ax.plot(t, realized, color="tab:blue", marker="s", linewidth=1.2, label="realized RMSE (once labels land)")
    waiting = realized.isna() & est.notna()
    if waiting.any():
        ax.scatter(t[waiting], est[waiting], s=80, facecolors="none", edgecolors="tab:orange", zorder=3,
                   label="labels still pending")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label="estimated-rmse alarm")
    ax.set_ylabel("RMSE (years)")
    ax.set_xlabel("window end")
    ax.set_title("Estimated against realized RMSE per window")
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return fig


def segment_rmse(segments: pd.DataFrame) -> Figure:
    """RMSE per release decade over the windows (residual spread by decade)."""
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    ax = fig.subplots()
    if segments.empty:
        return fig
    pivot = segments.pivot_table(index="window", columns="segment", values="rmse")
    for col in pivot.columns:
        ax.plot(pivot.index, pivot[col], marker=".", label=col)
    ax.set_title("RMSE by release decade per window")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=7, ncol=4)
    return fig


def drift_heatmap(feature_history: pd.DataFrame, value: str = "effect", top: int = 30) -> Figure:
    """Per-feature drift over the windows (effect size), the ``top`` most drifted features, drifted cells marked."""
    fig = Figure(figsize=(12, 0.25 * min(top, 40) + 2), layout="constrained")
    ax = fig.subplots()
    if feature_history.empty:
        return fig
    pivot = feature_history.pivot_table(index="feature", columns="window", values=value, aggfunc="max")
    flags = feature_history.pivot_table(index="feature", columns="window", values="drifted", aggfunc="max")
    order = pivot.max(axis=1).sort_values(ascending=False).index[:top]
    pivot, flags = pivot.loc[order], flags.loc[order].reindex(columns=pivot.columns)
    im = ax.imshow(pivot.to_numpy(dtype=float), aspect="auto", cmap="magma_r")
    ys, xs = np.nonzero(flags.fillna(False).to_numpy(dtype=bool))
    ax.scatter(xs, ys, marker="x", color="cyan", s=12, label="drifted")
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=60, fontsize=7)
    fig.colorbar(im, ax=ax, label=value)
    ax.set_title(f"Drift {value} per feature and window (top {len(order)} features)")
    if len(xs):
        ax.legend(loc="upper right", fontsize=7)
    return fig


def ecdf_overlays(baseline, current: pd.DataFrame, features: list[str]) -> Figure:
    """Reference and current ECDFs of the given features (the baseline's stored sorted values)."""
    n = max(len(features), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, f in zip(axes, features):
        rx, ry = baseline.ecdf_points(f)
        cur = np.sort(pd.to_numeric(current[f], errors="coerce").dropna().to_numpy())
        ax.step(rx, ry, where="post", label="baseline")
        ax.step(cur, np.arange(1, len(cur) + 1) / max(len(cur), 1), where="post", label="current")
        ax.set_title(f, fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes[len(features):]:
        ax.axis("off")
    fig.suptitle("ECDFs of the most drifted features: baseline against the newest window")
    return fig


def champion_challenger(per_decade: pd.DataFrame) -> Figure:
    """RMSE per decade of champion and challenger on the same holdout."""
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.subplots()
    if per_decade is None or per_decade.empty:
        return fig
    x = np.arange(len(per_decade))
    ax.bar(x - 0.2, per_decade["champion"], 0.4, label="champion")
    ax.bar(x + 0.2, per_decade["challenger"], 0.4, label="challenger")
    ax.set_xticks(x, per_decade["segment"])
    ax.set_ylabel("RMSE (years)")
    ax.set_title("Holdout RMSE by release decade")
    ax.legend()
    return fig


def alarm_backtest(timeline: pd.DataFrame, alarm_spans: list[tuple[pd.Timestamp, pd.Timestamp]],
                   threshold: float | None, title: str, ax: Axes | None = None) -> Axes:
    """An alarm's backtest: the watched metric per period, its threshold and the ALARM periods shaded.

    Parameters
    ----------
    timeline : pandas.DataFrame
        ``timestamp`` (period end) and ``value`` per period, as in ``BacktestResult.timeline``.
    alarm_spans : list of (pandas.Timestamp, pandas.Timestamp)
        ``(start, end)`` of each ALARM run.
    threshold : float or None
        The alarm threshold, drawn as a dashed line when given.
    title : str
        Axes title.
    ax : matplotlib.axes.Axes, optional
        Where to draw; without it a standalone ``Figure`` is created (no pyplot, no GUI backend).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    if ax is None:
        ax = Figure(figsize=(10, 3.5)).add_subplot()
    ax.plot(timeline["timestamp"], timeline["value"], marker="o", linewidth=1, label="metric")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    for i, (start, end) in enumerate(alarm_spans):
        ax.axvspan(start, end, color="tab:red", alpha=0.15, label="ALARM" if i == 0 else None)
    ax.set_title(title)
    ax.set_xlabel("period end")
    concise_date_ticks(ax)
    ax.legend(loc="upper left")
    return ax


def pages_timeline(pages: list[dict], start=None, end=None) -> Figure:
    """Each alarm's pages on one row: a hollow marker when the breaching datapoint's window ended, a filled one
    when that datapoint could first exist (``known_at``), joined by the delay."""
    fig = Figure(figsize=(11, 0.5 + 0.45 * max(1, len({p["alarm"] for p in pages}))), layout="constrained")
    ax = fig.subplots()
    names = sorted({p["alarm"] for p in pages})
    for i, name in enumerate(names):
        for p in (p for p in pages if p["alarm"] == name):
            t0, t1 = pd.Timestamp(p["datapoint_time"]), pd.Timestamp(p["known_at"])
            ax.plot([t0, t1], [i, i], color="#cf222e", lw=2, alpha=0.5)
            ax.plot([t0], [i], "o", mfc="white", mec="#cf222e")
            ax.plot([t1], [i], "o", color="#cf222e")
    ax.set_yticks(range(len(names)), names)
    if not names:
        ax.text(0.5, 0.5, "no pages in this history", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    if start is not None and end is not None:
        ax.set_xlim(pd.Timestamp(start), pd.Timestamp(end))
    if names or (start is not None and end is not None):  # a date axis: pages drawn or a time range given
        concise_date_ticks(ax)
    ax.set_title("Pages: window end (hollow) and when the breaching datapoint could first exist (filled)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def show(fig: Figure, dpi: int = 90) -> None:
    """Display a figure in the notebook as a PNG (works without pyplot or an inline backend)."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()  # a laid-out figure fits its canvas already: "tight" would draw it twice
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=None if fig.get_layout_engine() else "tight")
    display(Image(data=buf.getvalue(), format="png"))


def sparkline(series: dict, width_px: int = 240, height_px: int = 48, dpi: int = 100) -> Figure:
    """A word-sized picture of a stage's headline metric over the windows, for the run's index page.

    Parameters
    ----------
    series : dict
        The stage record's ``series``: ``label``, ``windows`` (oldest first), ``values`` (None where a window
        has none) and ``threshold`` (None when there is none).
    width_px, height_px : int
        Size of the picture at ``dpi``.
    dpi : int
        Dots per inch the size is given at (save at a multiple for sharper pictures on dense screens).

    Returns
    -------
    Figure
        A figure on the Agg canvas: the values as a line (gaps where None), the newest value as a dot and the
        threshold as a dashed red line; no axes, ticks or text (the page writes the label and values beside it).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.1, 0.96, 0.8))
    ax.set_axis_off()
    values = np.array([np.nan if v is None else float(v) for v in series.get("values") or []], dtype=float)
    x = np.arange(len(values))
    threshold = series.get("threshold")
    finite = np.isfinite(values)
    if len(values):
        ax.plot(x, values, color="#0969da", linewidth=1.4)
        lone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]  # a value between gaps shows as a dot
        ax.plot(x[lone], values[lone], linestyle="none", marker="o", markersize=2, color="#0969da")
        if finite.any():
            last = np.flatnonzero(finite)[-1]
            ax.plot([x[last]], [values[last]], marker="o", markersize=3.5, color="#0969da")
    if threshold is not None:
        ax.axhline(float(threshold), color="#cf222e", linestyle="--", linewidth=1)
    low = [v for v in (np.nanmin(values) if finite.any() else None, threshold) if v is not None]
    high = [v for v in (np.nanmax(values) if finite.any() else None, threshold) if v is not None]
    if low:
        lo, hi = min(low), max(high)
        pad = (hi - lo) * 0.1 or max(abs(hi), 1.0) * 0.1
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.5, max(len(values) - 1, 0) + 0.5)
    return fig


PATH_COLOUR, IDLE_COLOUR = "tab:orange", "#eeeeee"


def workflow_path(definition: dict, visited: list[str] | None) -> Figure:
    """The workflow's states as boxes (rows by distance from the start, Catch edges left out unless taken), the
    states this execution entered filled and its transitions drawn bold."""
    states = definition["States"]
    visited = list(visited or [])

    def successors(name: str) -> list[str]:
        s = states[name]
        return [c["Next"] for c in s.get("Choices", [])] + [s[k] for k in ("Next", "Default") if k in s]

    depth, order = {definition["StartAt"]: 0}, [definition["StartAt"]]
    for name in order:  # breadth first: a state's row is its shortest distance from the start
        for nxt in successors(name):
            if nxt not in depth:
                depth[nxt] = depth[name] + 1
                order.append(nxt)
    for name in states:  # reached only through a Catch
        depth.setdefault(name, max(depth.values()) + 1)
    rows: dict[int, list[str]] = {}
    for name in states:
        rows.setdefault(depth[name], []).append(name)
    pos = {n: (i - (len(r) - 1) / 2, -d) for d, r in rows.items() for i, n in enumerate(r)}
    fig = Figure(figsize=(9, 0.42 * len(rows) + 1), layout="constrained")
    ax = fig.subplots()
    taken = set(zip(visited, visited[1:]))
    for name in states:
        for nxt in set(successors(name)) | {b for a, b in taken if a == name}:
            bold = (name, nxt) in taken
            ax.annotate("", xy=pos[nxt], xytext=pos[name], zorder=1,
                        arrowprops={"arrowstyle": "-|>", "color": PATH_COLOUR if bold else "#bbbbbb",
                                    "lw": 2.2 if bold else 0.8, "shrinkA": 9, "shrinkB": 9})
    for name, (x, y) in pos.items():
        on_path = name in visited
        ax.text(x, y, name, ha="center", va="center", fontsize=7, zorder=2, gid=f"state:{name}",
                bbox={"boxstyle": "round,pad=0.3", "fc": PATH_COLOUR if on_path else IDLE_COLOUR,
                      "ec": "black" if states[name]["Type"] in ("Succeed", "Fail") else "#888888"})
    xs = [x for x, _ in pos.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-max(depth.values()) - 0.7, 0.7)
    ax.axis("off")
    ax.set_title("Retraining workflow: the path this execution took" if visited else
                 "Retraining workflow (not executed in this run)", fontsize=9)
    return fig
