"""Whether a window with nothing captured had traffic: the endpoint's own Invocations, and the error a capture misconfiguration raises."""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from . import windows
from .aws import Aws
from .config import Params

MAX_PERIODS = 1440  # datapoints one GetMetricStatistics call may return
CAPTURE_LAYOUT = "<capture_prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl"


class CaptureMissing(RuntimeError):
    """Windows in which the endpoint served traffic but no Data Capture was found where ``capture_prefix`` points."""


def invocations(aws: Aws, cfg: Params, ws: Sequence[windows.Window]) -> dict[str, float]:
    """The endpoint's ``Invocations`` (namespace AWS/SageMaker, dimensions EndpointName and VariantName) summed per
    window of ``ws``, as CloudWatch has them; 0 for a window without a datapoint.

    One GetMetricStatistics call per run of up to 1440 windows (period: the window's length).
    """
    out = {w.label: 0.0 for w in ws}
    if not ws:
        return out
    period = windows.LENGTH[cfg.window]
    dims = [{"Name": "EndpointName", "Value": cfg.endpoint_name}, {"Name": "VariantName", "Value": cfg.variant_name}]
    cw = aws.client("cloudwatch")
    ordered = sorted(ws)
    start, last = ordered[0].start, ordered[-1].end
    while start < last:
        end = min(last, start + period * MAX_PERIODS)
        got = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dims,
                                       StartTime=start, EndTime=end, Period=int(period.total_seconds()),
                                       Statistics=["Sum"])
        for point in got["Datapoints"]:
            label = windows.containing(point["Timestamp"], cfg.window).label
            if label in out:
                out[label] += float(point["Sum"])
        start = end
    return out


def split_empty(aws: Aws, cfg: Params, empty: Sequence[windows.Window]) -> tuple[list[str], dict[str, float]]:
    """Windows in which nothing was captured: (those without traffic, which close as 'no traffic'; those with
    traffic, label -> invocations, which stay open: capture is not where the params say)."""
    counts = invocations(aws, cfg, empty)
    quiet = [w.label for w in empty if counts[w.label] <= 0]
    busy = {w.label: counts[w.label] for w in empty if counts[w.label] > 0}
    return quiet, busy


def capture_missing(cfg: Params, capture_uri: str, busy: dict[str, float], stage: str) -> CaptureMissing:
    """The error of a stage that found traffic but no capture: names ``capture_prefix``, the S3 place listed and
    what was expected there, and says the windows stay open."""
    labels = sorted(busy)
    span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
    return CaptureMissing(
        f"{stage}: capture_prefix looks wrong: no Data Capture under {capture_uri.rstrip('/')}/ for {len(labels)} "
        f"window(s) ({span}), yet the endpoint {cfg.endpoint_name} (variant {cfg.variant_name}) served "
        f"{int(sum(busy.values()))} invocation(s) then (CloudWatch AWS/SageMaker Invocations). Expected SageMaker's "
        f"layout {CAPTURE_LAYOUT}, i.e. {capture_uri.rstrip('/')}/yyyy/mm/dd/hh/*.jsonl; capture_prefix is "
        f"{cfg.capture_uri!r} and must equal the endpoint config's DataCaptureConfig.DestinationS3Uri. These windows "
        "stay open: the next run with the right capture_prefix computes and publishes them.")


def window_start(cfg: Params):
    """A function from a window label to its start (for :meth:`monitor_utils.watermark.Watermark.first_open`)."""
    return lambda label: windows.from_label(label, cfg.window).start


def label_deadline(cfg: Params, w: windows.Window) -> dt.datetime:
    """When a window whose records have no labels at all stops waiting and closes as 'unlabelled'."""
    return w.end + dt.timedelta(days=cfg.max_label_wait_days)
