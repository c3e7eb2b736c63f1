"""CloudWatch PutMetricData with AWS's limits enforced in our code and requests batched up to them."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from typing import Iterable

from .aws import Aws

MAX_DATUMS_PER_REQUEST = 1000
MAX_VALUES_PER_DATUM = 150
MAX_PAYLOAD_BYTES = 1_000_000
MAX_DIMENSIONS = 30
VALUE_LIMIT = 2.0**360
MAX_AGE = dt.timedelta(days=14)
MAX_FUTURE = dt.timedelta(hours=2)
MAX_LOG_EVENTS_PER_REQUEST = 10_000
LOG_EVENT_OVERHEAD = 26            # bytes CloudWatch Logs counts per event on top of its message
MAX_LOG_BATCH_SPAN_MS = 24 * 3600 * 1000
LOG_CLOCK_SKEW = dt.timedelta(minutes=5)  # events this close to the 14-day limit count as dropped when in doubt

_log = logging.getLogger(__name__)


class MetricDataError(ValueError):
    """A datum CloudWatch would reject."""


@dataclass
class PublishStats:
    """What one publish did."""

    calls: int = 0
    datums: int = 0
    values: int = 0
    dropped_too_old: int = 0
    outboxed: int = 0

    def __iadd__(self, other: "PublishStats") -> "PublishStats":
        self.calls += other.calls
        self.datums += other.datums
        self.values += other.values
        self.dropped_too_old += other.dropped_too_old
        self.outboxed += other.outboxed
        return self


#: A datum's own namespace (removed before sending); datums without it go to the suite's ``namespace``.
NAMESPACE_KEY = "Namespace"


def datum(name: str, value: float, timestamp: dt.datetime, dimensions: dict[str, str] | None = None,
          unit: str = "None") -> dict:
    """One MetricData entry."""
    return {"MetricName": name, "Timestamp": timestamp, "Value": float(value), "Unit": unit,
            "Dimensions": [{"Name": k, "Value": str(v)} for k, v in (dimensions or {}).items()]}


def _check_value(where: str, v: float) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise MetricDataError(f"{where}: value {v!r} is not a number")
    if not math.isfinite(v):
        raise MetricDataError(f"{where}: value {v} is not finite; CloudWatch rejects NaN and infinity")
    if abs(v) > VALUE_LIMIT:
        raise MetricDataError(f"{where}: value {v} is outside CloudWatch's range (-2^360, 2^360)")


def validate_datum(d: dict) -> None:
    """Raise MetricDataError for anything PutMetricData would reject (name, dimensions, values, counts)."""
    name = d.get("MetricName")
    where = f"metric {name!r}"
    if not name or len(name) > 255:
        raise MetricDataError(f"{where}: MetricName must be 1-255 characters")
    dims = d.get("Dimensions", [])
    if len(dims) > MAX_DIMENSIONS:
        raise MetricDataError(f"{where}: {len(dims)} dimensions, CloudWatch allows {MAX_DIMENSIONS}")
    for dim in dims:
        if not dim.get("Name") or not str(dim.get("Value", "")):
            raise MetricDataError(f"{where}: dimension {dim} needs a non-empty Name and Value")
    has_value, has_values, has_stats = "Value" in d, "Values" in d, "StatisticValues" in d
    if has_value + has_values + has_stats != 1:
        raise MetricDataError(f"{where}: give exactly one of Value, Values or StatisticValues")
    if has_value:
        _check_value(where, d["Value"])
    if has_values:
        values, counts = d["Values"], d.get("Counts")
        if not values or len(values) > MAX_VALUES_PER_DATUM:
            raise MetricDataError(f"{where}: {len(values)} values; a datum holds 1-{MAX_VALUES_PER_DATUM}")
        if counts is not None and len(counts) != len(values):
            raise MetricDataError(f"{where}: {len(values)} values but {len(counts)} counts")
        for v in values + list(counts or []):
            _check_value(where, v)
    if has_stats:
        s = d["StatisticValues"]
        for k in ("SampleCount", "Sum", "Minimum", "Maximum"):
            _check_value(f"{where} {k}", s[k])
        if s["SampleCount"] <= 0 or s["Minimum"] > s["Maximum"]:
            raise MetricDataError(f"{where}: StatisticValues need SampleCount > 0 and Minimum <= Maximum")


def _size(d: dict) -> int:
    return len(json.dumps(d, default=str)) + 64


def batches(datums: list[dict]) -> list[list[dict]]:
    """Split datums into requests of at most 1000 datums and under 1 MB each."""
    out: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for d in datums:
        s = _size(d)
        if current and (len(current) >= MAX_DATUMS_PER_REQUEST or size + s > MAX_PAYLOAD_BYTES - 10_000):
            out.append(current)
            current, size = [], 0
        current.append(d)
        size += s
    if current:
        out.append(current)
    return out


def _inside_time_window(aws: Aws, datums: Iterable[dict], now: dt.datetime | None, enforce_age: bool | None,
                       stats: PublishStats) -> list[dict]:
    """Validate every datum and keep those inside CloudWatch's timestamp window (14 days back, 2 hours ahead).

    The window applies in aws mode (or when ``enforce_age`` says so); datums older than it are counted in
    ``stats.dropped_too_old``, a datum more than 2 hours ahead of ``now`` raises before anything is sent.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    enforce_age = (aws.mode == "aws") if enforce_age is None else enforce_age
    keep = []
    for d in datums:
        validate_datum(d)
        ts = d.get("Timestamp")
        if enforce_age and ts is not None:
            if ts < now - MAX_AGE:
                stats.dropped_too_old += 1
                continue
            if ts > now + MAX_FUTURE:
                raise MetricDataError(f"metric {d['MetricName']!r}: timestamp {ts} is more than 2 hours ahead")
        keep.append(d)
    return keep


def publish(aws: Aws, namespace: str, datums: Iterable[dict], *, now: dt.datetime | None = None,
            enforce_age: bool | None = None) -> PublishStats:
    """Validate every datum, then send them in as few PutMetricData calls as the limits allow.

    Parameters
    ----------
    aws : Aws
        Session; its mode decides whether CloudWatch's timestamp window (14 days back, 2 hours ahead)
        is enforced (aws mode) or not (local mode, where the simulated history is backfilled).
    namespace : str
        CloudWatch namespace.
    datums : Iterable[dict]
        MetricData entries (see :func:`datum`).
    now : datetime, optional
        Clock used for the timestamp window.
    enforce_age : bool, optional
        Override the mode's default for the timestamp window.

    Returns
    -------
    PublishStats
        Calls made, datums and values sent, datums dropped as too old for CloudWatch.
    """
    if not namespace or namespace.startswith("AWS/"):
        raise MetricDataError(f"namespace {namespace!r}: custom metrics cannot use an 'AWS/' namespace")
    stats = PublishStats()
    keep = _inside_time_window(aws, datums, now, enforce_age, stats)
    cw = aws.client("cloudwatch")
    for batch in batches(keep):
        cw.put_metric_data(Namespace=namespace, MetricData=batch)
        stats.calls += 1
        stats.datums += len(batch)
        stats.values += sum(len(d.get("Values", [1])) for d in batch)
    return stats


def emf_documents(namespace: str, datums: list[dict]) -> list[dict]:
    """Embedded Metric Format documents: one per (timestamp, dimension set), holding that group's values."""
    groups: dict = {}
    for d in datums:
        validate_datum(d)
        if "Value" not in d:
            raise MetricDataError(f"metric {d['MetricName']!r}: EMF here carries single values only")
        dims = tuple((x["Name"], x["Value"]) for x in d.get("Dimensions", []))
        groups.setdefault((d["Timestamp"], dims), []).append(d)
    docs = []
    for (ts, dims), group in groups.items():
        doc = {"_aws": {"Timestamp": int(ts.timestamp() * 1000), "CloudWatchMetrics": [{
            "Namespace": namespace, "Dimensions": [[k for k, _ in dims]],
            "Metrics": [{"Name": d["MetricName"], "Unit": d.get("Unit", "None")} for d in group]}]}}
        doc.update({k: v for k, v in dims})
        doc.update({d["MetricName"]: d["Value"] for d in group})
        docs.append(doc)
    return docs


def _metric_count(event: dict) -> int:
    return len(json.loads(event["message"])["_aws"]["CloudWatchMetrics"][0]["Metrics"])


def _emf_batches(events: list[dict]) -> list[list[dict]]:
    """Split time-ordered log events into PutLogEvents requests: at most 10,000 events, 1 MB, and 24 hours each."""
    out: list[list[dict]] = []
    batch: list[dict] = []
    size = 0
    for e in events:
        e_size = len(e["message"].encode()) + LOG_EVENT_OVERHEAD
        if batch and (len(batch) >= MAX_LOG_EVENTS_PER_REQUEST or size + e_size > MAX_PAYLOAD_BYTES
                      or e["timestamp"] - batch[0]["timestamp"] >= MAX_LOG_BATCH_SPAN_MS):
            out.append(batch)
            batch, size = [], 0
        batch.append(e)
        size += e_size
    if batch:
        out.append(batch)
    return out


def rejected_events(info: dict | None, timestamps_ms: list[int], service_now: dt.datetime) -> tuple[int, int | None]:
    """Read PutLogEvents' ``rejectedLogEventsInfo``: (how many leading events were rejected as too old or
    expired, index of the first event rejected as too new or None).

    AWS documents ``tooOldLogEventEndIndex`` as exclusive (events before it were rejected) and
    ``tooNewLogEventStartIndex`` as inclusive; ``expiredLogEventEndIndex`` (older than the log group's
    retention) is read like ``tooOldLogEventEndIndex``. The moto emulator instead answers with the index
    of the last too-old event (and of the last too-new one). So the event at the too-old end index is
    judged by its own timestamp: it counts as rejected when it is older than ``service_now`` minus 14 days
    plus ``LOG_CLOCK_SKEW``. An event that close to the limit counts as dropped, so an event is never
    reported published unless it was accepted. Likewise the too-new start moves back over events more
    than 2 hours plus ``LOG_CLOCK_SKEW`` ahead of ``service_now``, which no service accepted.

    Parameters
    ----------
    info : dict or None
        ``rejectedLogEventsInfo`` of the response (absent when every event was accepted).
    timestamps_ms : list[int]
        The request's event timestamps, in the (chronological) order sent.
    service_now : datetime
        The log service's clock, as near as we know it (the wall clock when the response arrived).

    Returns
    -------
    tuple[int, int | None]
        Rejected-as-old count (a prefix of the request) and the first too-new index (a suffix starts there).
    """
    info = info or {}
    n = len(timestamps_ms)
    ends = [int(info[k]) for k in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex") if info.get(k) is not None]
    old = min(max(ends), n) if ends else 0
    if ends and old < n:
        cutoff_ms = int((service_now - MAX_AGE + LOG_CLOCK_SKEW).timestamp() * 1000)
        if timestamps_ms[old] < cutoff_ms:  # the emulator's inclusive end index
            old += 1
    new = info.get("tooNewLogEventStartIndex")
    if new is None:
        return old, None
    new = max(old, min(int(new), n - 1))
    ahead_ms = int((service_now + MAX_FUTURE + LOG_CLOCK_SKEW).timestamp() * 1000)
    while new > old and timestamps_ms[new - 1] > ahead_ms:  # the emulator names the last too-new event
        new -= 1
    return old, new


def write_emf(aws: Aws, log_group: str, stream: str, namespace: str, datums: list[dict], *,
              now: dt.datetime | None = None, enforce_age: bool | None = None) -> PublishStats:
    """Write datums as EMF log events and count only what CloudWatch Logs accepted.

    Events go in time order, in requests of at most 10,000 events, 1 MB and 24 hours. In aws mode (or with
    ``enforce_age``) datums outside CloudWatch's window around ``now`` are handled as in :func:`publish`
    before anything is sent. Each response's ``rejectedLogEventsInfo`` is then the truth: events the service
    rejected as too old or expired (CloudWatch Logs and the emulator both take 14 days before their own
    clock) are counted in ``dropped_too_old``, never in ``datums``.

    Parameters
    ----------
    aws : Aws
        Session (its mode decides the default of ``enforce_age``).
    log_group : str
        Existing log group (the setup stage creates it).
    stream : str
        Log stream, created when missing.
    namespace : str
        CloudWatch namespace written into each EMF document.
    datums : list[dict]
        MetricData entries with a single ``Value`` each (see :func:`datum`).
    now : datetime, optional
        Run clock for the window checked before sending (default: the wall clock).
    enforce_age : bool, optional
        Override the mode's default for that check.

    Returns
    -------
    PublishStats
        Calls made, datums accepted (metrics inside accepted events), datums dropped as too old.

    Raises
    ------
    MetricDataError
        When a datum is invalid or more than 2 hours ahead of ``now``, or when CloudWatch Logs rejects
        an event as too new (the message names its metrics and timestamp; earlier events were written).
    """
    stats = PublishStats()
    keep = _inside_time_window(aws, datums, now, enforce_age, stats)
    logs = aws.client("logs")
    try:
        logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    events = sorted(({"timestamp": doc["_aws"]["Timestamp"], "message": json.dumps(doc)}
                     for doc in emf_documents(namespace, keep)), key=lambda e: e["timestamp"])
    for batch in _emf_batches(events):
        resp = logs.put_log_events(logGroupName=log_group, logStreamName=stream, logEvents=batch)
        stats.calls += 1
        old, new = rejected_events(resp.get("rejectedLogEventsInfo"), [e["timestamp"] for e in batch],
                                   dt.datetime.now(dt.timezone.utc))
        accepted = batch[old:new]
        dropped = sum(_metric_count(e) for e in batch[:old])
        stats.dropped_too_old += dropped
        stats.datums += sum(_metric_count(e) for e in accepted)
        stats.values += sum(_metric_count(e) for e in accepted)
        if dropped:
            _log.warning("log group %s stream %s: CloudWatch Logs rejected %d EMF event(s) (%d datums) as older "
                         "than 14 days or the group's retention, from %s to %s; they are counted as dropped",
                         log_group, stream, old, dropped, _ms_iso(batch[0]["timestamp"]),
                         _ms_iso(batch[old - 1]["timestamp"]))
        if new is not None:
            doc = json.loads(batch[new]["message"])
            names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
            raise MetricDataError(
                f"log group {log_group!r} stream {stream!r}: CloudWatch Logs rejected the EMF event of metrics "
                f"{', '.join(names)} at {_ms_iso(batch[new]['timestamp'])} (and any later ones) as more than 2 hours "
                f"ahead of its clock; {stats.datums} datum(s) before it were written. Check the host's clock and "
                f"the `now` parameter")
    return stats


def _ms_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def by_namespace(datums: Iterable[dict], default: str) -> dict[str, list[dict]]:
    """Datums grouped by their :data:`NAMESPACE_KEY` (``default`` when they carry none), the key removed."""
    out: dict[str, list[dict]] = {}
    for d in datums:
        out.setdefault(d.get(NAMESPACE_KEY, default), []).append({k: v for k, v in d.items() if k != NAMESPACE_KEY})
    return out


def transport(aws: Aws, cfg, datums: list[dict], now: dt.datetime, stream: str) -> PublishStats:
    """Publish through the configured transport (``metrics_transport``: PutMetricData or EMF log lines in ``stream``),
    each datum to its own namespace (:data:`NAMESPACE_KEY`, e.g. Model Monitor's), else ``cfg.namespace``.

    Delivery with the outbox for what still fails after retries is :func:`monitor_utils.outbox.send`.
    """
    stats = PublishStats()
    for namespace, group in by_namespace(datums, cfg.namespace).items():
        if cfg.metrics_transport == "emf":
            stats += write_emf(aws, cfg.log_group, stream, namespace, group, now=now)
        else:
            stats += publish(aws, namespace, group, now=now)
    return stats
