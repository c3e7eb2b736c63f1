"""The CloudWatch dashboard: a body built from the metric and alarm specs, checked against CloudWatch's rules, and rendered locally."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from .alerting import metric_series
from .aws import Aws
from .config import Params

GRID_COLUMNS = 24
# the rendered figure: inches per grid row, figure width, room above the grid, at the figure's edges, and around
# a metric widget's plot for its title (top), tick labels (left, bottom) and right-hand axis
ROW_IN, FIGURE_WIDTH_IN, TITLE_IN, EDGE_IN = 0.55, 16.0, 0.5, 0.1
PAD_IN = {"left": 0.7, "right": 0.75, "top": 0.3, "bottom": 0.35}
WIDGET_TYPES = {"metric": ("metrics",), "text": ("markdown",), "alarm": ("alarms",), "log": ("query",),
                "explorer": ("metrics",)}
METRIC_OPTION_KEYS = {"id", "label", "color", "stat", "period", "visible", "yAxis", "expression", "region", "accountId"}


class DashboardBodyError(ValueError):
    """A dashboard body CloudWatch would reject."""


def _metric_widget(cfg: Params, title: str, metrics: list, x: int, y: int, *, width: int = 12, height: int = 6,
                   stat: str = "Average", period: int = 86_400, annotations: list | None = None) -> dict:
    props = {"title": title, "region": cfg.region, "view": "timeSeries", "stacked": False, "metrics": metrics,
             "stat": stat, "period": period}
    if annotations:
        props["annotations"] = {"horizontal": annotations}
    return {"type": "metric", "x": x, "y": y, "width": width, "height": height, "properties": props}


def build_body(cfg: Params, alarm_specs: list[dict], alarm_arns: list[str], reports_uri: str) -> dict:
    """The dashboard body: model quality with thresholds, drift, endpoint traffic, errors and latency, data quality
    and feature attribution, alarms, links."""
    ns, ep, var = cfg.namespace, cfg.endpoint_name, cfg.variant_name
    dims = ["EndpointName", ep, "VariantName", var]
    thr = {s["AlarmName"].removeprefix(f"{ep}-"): s["Threshold"] for s in alarm_specs}
    period = 86_400 if cfg.window == "daily" else 3_600
    widgets = [
        {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": (
            f"# {ep}: model monitoring\nRelease-year predictor on SageMaker. Latest run reports: `{reports_uri}` "
            f"(index.html per run). Quality metrics wait {cfg.label_wait_days} days for labels.")}},
        _metric_widget(cfg, "RMSE (years): realized, and estimated before labels",
                       [[ns, "RMSE", *dims, {"label": "RMSE (labelled)"}],
                        [".", "EstimatedRMSE", ".", ".", ".", ".", {"label": "estimated RMSE (no labels)"}]],
                       0, 2, stat="Maximum", period=period,
                       annotations=[{"label": "RMSE alarm", "value": thr.get("rmse", cfg.thresholds["rmse_max"])},
                                    {"label": "estimated-RMSE alarm",
                                     "value": thr.get("estimated-rmse", cfg.estimated_rmse_max)}]),
        _metric_widget(cfg, "R2", [[ns, "R2", *dims, {"label": "R2"}]], 12, 2, stat="Minimum", period=period,
                       annotations=[{"label": "R2 alarm", "value": thr.get("r2", cfg.thresholds["r2_min"])}]),
        _metric_widget(cfg, "Bias and MAE (years)", [[ns, "Bias", *dims], [".", "MAE", ".", ".", ".", "."]], 0, 8,
                       period=period),
        _metric_widget(cfg, "Label coverage", [[ns, "LabelCoverage", *dims]], 12, 8, period=period),
        _metric_widget(cfg, "Drift", [[ns, "DriftShare", *dims, {"label": "share of features drifted"}],
                                      [".", "DataDrift", ".", ".", ".", ".", {"label": "dataset drift (0/1)"}]],
                       0, 14, stat="Maximum", period=period),
        _metric_widget(cfg, "Invocations", [["AWS/SageMaker", "Invocations", *dims]], 12, 14, stat="Sum", period=3600),
        _metric_widget(cfg, "Invocation errors and error rate", [
            ["AWS/SageMaker", "Invocation4XXErrors", *dims, {"id": "m4xx"}],
            [".", "Invocation5XXErrors", ".", ".", ".", ".", {"id": "m5xx"}],
            [".", "Invocations", ".", ".", ".", ".", {"id": "inv", "visible": False}],
            [{"expression": "IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)", "label": "error rate", "id": "rate",
              "yAxis": "right"}]], 0, 20, stat="Sum", period=3600,
            annotations=[{"label": "error-rate alarm", "value": thr.get("error-rate", cfg.thresholds["error_rate_max"]),
                          "yAxis": "right"}]),
        _metric_widget(cfg, "ModelLatency (microseconds)", [["AWS/SageMaker", "ModelLatency", *dims, {"stat": "p50"}],
                                                            ["...", {"stat": "p99"}]], 12, 20, period=3600,
                       annotations=[{"label": "p99 alarm", "value": thr.get("latency-p99", 0)}]),
        _metric_widget(cfg, "Data quality: Model Monitor's checks violated per window",
                       [[ns, "DataQualityViolations", *dims, {"label": "violations"}]], 0, 26, stat="Maximum",
                       period=period, annotations=[{"label": "data-quality alarm", "value": thr["data-quality"]}]
                       if "data-quality" in thr else None),
        _metric_widget(cfg, "Feature attribution: nDCG against the baseline's ranking",
                       [[ns, "AttributionNDCG", *dims, {"label": "nDCG"}]], 12, 26, stat="Minimum", period=period,
                       annotations=[{"label": "attribution drift below",
                                     "value": cfg.model_monitor["attribution_ndcg_min"]}]),
        {"type": "alarm", "x": 0, "y": 32, "width": 24, "height": 3,
         "properties": {"title": "Alarm status", "alarms": alarm_arns}},
    ]
    return {"start": f"-P{cfg.days}D", "widgets": widgets}


def expand_metrics(rows: list) -> list[dict]:
    """Resolve CloudWatch's metric-array shorthand ('.' repeats the row above, '...' repeats the rest) into queries."""
    out, previous = [], []
    for row in rows:
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        parts = row[:-1] if options else list(row)
        if options.get("expression"):
            out.append({"expression": options["expression"], **options})
            continue
        if parts == ["..."]:
            parts = list(previous)
        else:
            parts = [previous[i] if p == "." and i < len(previous) else p for i, p in enumerate(parts)]
        previous = parts
        dims = {parts[i]: parts[i + 1] for i in range(2, len(parts) - 1, 2)}
        out.append({"namespace": parts[0], "metric": parts[1], "dimensions": dims, **options})
    return out


def validate_body(body: dict, region: str) -> None:
    """Check a dashboard body against CloudWatch's rules (the local server accepts anything).

    Raises
    ------
    DashboardBodyError
        Naming the widget (by index and title) and the rule it breaks.
    """
    if not isinstance(body.get("widgets"), list) or not body["widgets"]:
        raise DashboardBodyError("dashboard body needs a non-empty 'widgets' list")
    for i, w in enumerate(body["widgets"]):
        props = w.get("properties", {})
        where = f"widget {i} ({props.get('title', w.get('type'))!r})"
        kind = w.get("type")
        if kind not in WIDGET_TYPES:
            raise DashboardBodyError(f"{where}: type {kind!r} is not one of {', '.join(WIDGET_TYPES)}")
        for key in WIDGET_TYPES[kind]:
            if key not in props:
                raise DashboardBodyError(f"{where}: a {kind} widget needs properties.{key}")
        x, y, width, height = w.get("x", 0), w.get("y", 0), w.get("width", 6), w.get("height", 6)
        if not (0 <= x < GRID_COLUMNS and 1 <= width <= GRID_COLUMNS and x + width <= GRID_COLUMNS):
            raise DashboardBodyError(f"{where}: x={x}, width={width} leave the {GRID_COLUMNS}-column grid")
        if y < 0 or not (1 <= height <= 1000):
            raise DashboardBodyError(f"{where}: y={y}, height={height} out of range (y >= 0, height 1-1000)")
        if kind == "metric":
            if props.get("region") != region:
                raise DashboardBodyError(f"{where}: region {props.get('region')!r} differs from the dashboard's {region!r}")
            for j, row in enumerate(props["metrics"]):
                if not isinstance(row, list) or not row:
                    raise DashboardBodyError(f"{where}: metrics[{j}] must be a non-empty array")
                opts = row[-1] if isinstance(row[-1], dict) else {}
                unknown = set(opts) - METRIC_OPTION_KEYS
                if unknown:
                    raise DashboardBodyError(f"{where}: metrics[{j}] has unknown options {sorted(unknown)}")
                parts = row[:-1] if opts else row
                if opts.get("expression"):
                    if parts:
                        raise DashboardBodyError(f"{where}: metrics[{j}] is an expression and must hold only its options")
                    continue
                if parts != ["..."] and (len(parts) < 2 or len(parts) % 2 != 0):
                    raise DashboardBodyError(f"{where}: metrics[{j}] must be [namespace, name, dim, value, ...]")
                if not all(isinstance(p, str) for p in parts):
                    raise DashboardBodyError(f"{where}: metrics[{j}] names and dimension values must be strings")
        if kind == "alarm" and not all(isinstance(a, str) and a.startswith("arn:") for a in props["alarms"]):
            raise DashboardBodyError(f"{where}: alarms must be alarm ARNs")
    if len(json.dumps(body)) > 1_000_000:
        raise DashboardBodyError("dashboard body exceeds 1 MB")


def put_dashboard(aws: Aws, name: str, body: dict) -> bool:
    """PutDashboard unless the stored body is already the same; return True when it was put."""
    cw = aws.client("cloudwatch")
    try:
        current = json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"])
    except cw.exceptions.ResourceNotFound:
        current = None
    except Exception:  # noqa: BLE001 - the emulator may answer differently for a missing dashboard
        current = None
    if current == body:
        return False
    resp = cw.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
    problems = resp.get("DashboardValidationMessages") or []
    if problems:
        raise DashboardBodyError(f"CloudWatch rejected parts of dashboard {name}: {problems}")
    return True


def widget_data(aws: Aws, widget: dict, start: dt.datetime, end: dt.datetime) -> dict[str, pd.Series]:
    """Each line of a metric widget as a series (expressions evaluated locally from the lines they name)."""
    from .alarms import evaluate_expression

    props = widget["properties"]
    lines: dict[str, pd.Series] = {}
    by_id: dict[str, list] = {}
    grid = None
    for q in expand_metrics(props["metrics"]):
        if "expression" in q:
            continue
        stat, period = q.get("stat", props.get("stat", "Average")), q.get("period", props.get("period", 300))
        s = metric_series(aws, {"Metric": {"Namespace": q["namespace"], "MetricName": q["metric"],
                                           "Dimensions": [{"Name": k, "Value": v} for k, v in q["dimensions"].items()]},
                                "Period": period, "Stat": stat}, start, end)
        grid = s.index
        if "id" in q:
            by_id[q["id"]] = [None if pd.isna(v) else float(v) for v in s]
        if q.get("visible", True):
            lines[q.get("label") or f"{q['metric']} {stat}"] = s
    for q in expand_metrics(props["metrics"]):
        if "expression" in q and grid is not None:
            vals = evaluate_expression(q["expression"], by_id)
            lines[q.get("label", q["id"])] = pd.Series([float("nan") if v is None else v for v in vals], index=grid)
    return lines


def render(aws: Aws, body: dict, start: dt.datetime, end: dt.datetime, alarm_states: dict[str, str] | None = None) -> Any:
    """The dashboard as one matplotlib Figure laid out on the same grid (metric widgets from get_metric_data)."""
    from matplotlib.figure import Figure

    from .plots import concise_date_ticks

    metric_widgets = [w for w in body["widgets"] if w["type"] == "metric"]
    rows = max(w["y"] + w["height"] for w in body["widgets"])
    width, height = FIGURE_WIDTH_IN, TITLE_IN + rows * ROW_IN
    fig = Figure(figsize=(width, height))  # placed by hand: a layout engine collapses axes spanning many grid rows

    def place(w: dict) -> list[float]:
        """The widget's cell on CloudWatch's grid, less room for its title, tick labels and a right-hand axis."""
        column = (width - 2 * EDGE_IN) / GRID_COLUMNS
        left = EDGE_IN + w["x"] * column + (PAD_IN["left"] if w["type"] == "metric" else 0.1)
        right = EDGE_IN + (w["x"] + w["width"]) * column - (PAD_IN["right"] if w["type"] == "metric" else 0.1)
        top = TITLE_IN + w["y"] * ROW_IN + PAD_IN["top"]
        bottom = TITLE_IN + (w["y"] + w["height"]) * ROW_IN - (PAD_IN["bottom"] if w["type"] == "metric" else 0.05)
        return [left / width, 1 - bottom / height, (right - left) / width, (bottom - top) / height]

    for w in body["widgets"]:
        ax = fig.add_axes(place(w))
        props = w["properties"]
        if w["type"] == "metric":
            series = widget_data(aws, w, start, end)
            for label, s in series.items():
                right = label == "error rate"
                target = ax.twinx() if right else ax
                target.plot(s.index, s.to_numpy(), marker=".", label=label, color="tab:red" if right else None)
                if right:
                    target.set_ylabel("rate", fontsize=7)
                    target.tick_params(labelsize=7)
            for a in props.get("annotations", {}).get("horizontal", []):
                if not a.get("yAxis"):
                    ax.axhline(a["value"], color="tab:red", linestyle="--", linewidth=1, label=a.get("label"))
            ax.set_title(props.get("title", ""), fontsize=10)
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
            if any(len(s) for s in series.values()):
                ax.set_xlim(pd.Timestamp(start), pd.Timestamp(end))  # as CloudWatch: every widget shows the range
                concise_date_ticks(ax)
        elif w["type"] == "text":
            ax.axis("off")
            ax.text(0, 0.5, props["markdown"].replace("# ", ""), fontsize=9, va="center", wrap=True)
        elif w["type"] == "alarm":
            ax.axis("off")
            states = alarm_states or {}
            colours = {"ALARM": "#cf222e", "OK": "#1a7f37", "INSUFFICIENT_DATA": "#6e7781"}
            names = [a.rsplit(":", 1)[-1] for a in props["alarms"]]
            for k, n in enumerate(names):
                st = states.get(n, "?")
                ax.text(k / max(len(names), 1), 0.5, f"{n}\n{st}", ha="left", va="center", fontsize=8,
                        bbox={"facecolor": colours.get(st, "white"), "alpha": 0.25})
            ax.set_title(props.get("title", "Alarms"), fontsize=10)
    fig.suptitle(f"CloudWatch dashboard (rendered locally from get_metric_data), {len(metric_widgets)} metric widgets",
                 y=1 - 0.15 / height, va="top")
    return fig
