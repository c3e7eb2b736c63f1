"""Tests for monitor_utils.dashboard: each of CloudWatch's body rules validate_body enforces rejects a body that breaks
it; the local rendering stays readable."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from conftest import date_labels_apart
from monitor_utils import alerting, config, dashboard

REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


@pytest.fixture(scope="module")
def body() -> dict:
    cfg = config.validate({})
    specs = alerting.alarm_specs(cfg, TOPIC)
    arns = [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{s['AlarmName']}" for s in specs]
    return dashboard.build_body(cfg, specs, arns, "s3://bucket/prefix/reports/")


def first(body: dict, kind: str) -> int:
    return next(i for i, w in enumerate(body["widgets"]) if w["type"] == kind)


def test_the_suites_own_body_passes(body):
    dashboard.validate_body(body, REGION)
    assert {w["type"] for w in body["widgets"]} >= {"metric", "alarm", "text"}


def broken(body: dict, kind: str, change) -> tuple[dict, int]:
    out = copy.deepcopy(body)
    i = first(out, kind)
    change(out["widgets"][i])
    return out, i


@pytest.mark.parametrize("kind, change, message", [
    ("metric", lambda w: w.update(type="graph"), "type 'graph' is not one of"),
    ("metric", lambda w: w["properties"].pop("metrics"), "needs properties.metrics"),
    ("text", lambda w: w["properties"].pop("markdown"), "needs properties.markdown"),
    ("metric", lambda w: w.update(x=20, width=6), "leave the 24-column grid"),
    ("metric", lambda w: w.update(width=0), "leave the 24-column grid"),
    ("metric", lambda w: w.update(y=-1), "out of range"),
    ("metric", lambda w: w.update(height=1001), "out of range"),
    ("metric", lambda w: w["properties"].update(region="eu-west-1"), "region 'eu-west-1' differs"),
    ("metric", lambda w: w["properties"]["metrics"].insert(0, []), "metrics[0] must be a non-empty array"),
    ("metric", lambda w: w["properties"]["metrics"].insert(0, ["NS", "M", {"colour": "red"}]), "unknown options ['colour']"),
    ("metric", lambda w: w["properties"]["metrics"].insert(0, ["NS", "M", {"expression": "m1*2", "id": "e9"}]),
     "is an expression and must hold only its options"),
    ("metric", lambda w: w["properties"]["metrics"].insert(0, ["NS", "M", "EndpointName"]), "[namespace, name, dim, value, ...]"),
    ("metric", lambda w: w["properties"]["metrics"].insert(0, ["NS", "M", "EndpointName", 7]), "must be strings"),
    ("alarm", lambda w: w["properties"].update(alarms=["my-alarm"]), "alarms must be alarm ARNs"),
])
def test_each_rule_rejects_naming_the_widget(body, kind, change, message):
    bad, i = broken(body, kind, change)
    with pytest.raises(dashboard.DashboardBodyError) as err:
        dashboard.validate_body(bad, REGION)
    assert f"widget {i} " in str(err.value) and message in str(err.value)


def test_empty_and_oversized_bodies_are_rejected(body):
    with pytest.raises(dashboard.DashboardBodyError, match="non-empty 'widgets'"):
        dashboard.validate_body({"widgets": []}, REGION)
    huge = copy.deepcopy(body)
    huge["widgets"].append({"type": "text", "x": 0, "y": 0, "width": 6, "height": 6,
                            "properties": {"markdown": "x" * 1_000_001}})
    with pytest.raises(dashboard.DashboardBodyError, match="exceeds 1 MB"):
        dashboard.validate_body(huge, REGION)


def test_a_rendered_month_keeps_each_widgets_date_labels_apart(body, monkeypatch):
    import datetime as dt

    import matplotlib.dates as mdates

    end = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
    days = pd.date_range(end - dt.timedelta(days=30), end, freq="D")

    def month_of_data(aws, widget, start, stop):  # what GetMetricData gives the widget: a month, day by day
        return {f"line {i}": pd.Series(range(len(days)), index=days, dtype=float)
                for i, _ in enumerate(widget["properties"]["metrics"][:2])}

    monkeypatch.setattr(dashboard, "widget_data", month_of_data)
    shown = (end - dt.timedelta(days=31), end + dt.timedelta(hours=1))  # the dashboard's time range
    fig = dashboard.render(None, body, *shown, {})
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    metric_titles = [w["properties"]["title"] for w in body["widgets"] if w["type"] == "metric"]
    assert metric_titles and all(t in titled for t in metric_titles)
    for title in metric_titles:
        assert date_labels_apart(fig, titled[title]), title
        # every widget spans the dashboard's range, as on CloudWatch, whatever its own data covers
        assert titled[title].get_xlim() == pytest.approx(tuple(mdates.date2num(pd.Timestamp(t)) for t in shown))
