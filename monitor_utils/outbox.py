"""A durable outbox: metric data and notifications that still fail after retries wait in S3 and a local folder for the next run."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import uuid
from pathlib import Path
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from . import publish
from .aws import Aws, get_json, list_keys, put_json
from .config import Params
from .paths import repo_root

DELIVERY_ERRORS = (ClientError, BotoCoreError, ConnectionError, OSError)


def local_dir(cfg: Params) -> Path:
    """The local copy of the outbox (``outbox_dir``, else runs/outbox/<bucket>/<prefix> at the repo root)."""
    base = Path(cfg.outbox_dir) if cfg.outbox_dir else repo_root() / "runs" / "outbox"
    return base / cfg.bucket / cfg.prefix.replace("/", "_")


def _encode(payload: dict) -> dict:
    return json.loads(json.dumps(payload, default=lambda o: {"__datetime__": o.isoformat()}
                                 if isinstance(o, dt.datetime) else str(o)))


def _decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__datetime__"}:
            return dt.datetime.fromisoformat(obj["__datetime__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def store(aws: Aws, cfg: Params, kind: str, payload: dict, reason: str) -> str:
    """Keep an undelivered item (kind 'metrics' or 'sns') in S3 when reachable and in the local folder; return its id."""
    item_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    item = {"id": item_id, "kind": kind, "reason": reason[:500], "payload": _encode(payload)}
    folder = local_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{item_id}.json").write_text(json.dumps(item))
    try:
        put_json(aws, cfg.bucket, cfg.key("outbox", f"{item_id}.json"), item)
    except DELIVERY_ERRORS:
        pass  # S3 unreachable too: the local copy is what the next run delivers
    return item_id


def pending(aws: Aws, cfg: Params) -> list[dict]:
    """Undelivered items from S3 and the local folder (one entry per id), oldest first."""
    items: dict[str, dict] = {}
    for path in sorted(local_dir(cfg).glob("*.json")) if local_dir(cfg).exists() else []:
        item = json.loads(path.read_text())
        items[item["id"]] = item
    try:
        for key in list_keys(aws, cfg.bucket, cfg.key("outbox") + "/"):
            item = get_json(aws, cfg.bucket, key)
            if item:
                items.setdefault(item["id"], item)
    except DELIVERY_ERRORS:
        pass
    return [items[k] for k in sorted(items)]


def _remove(aws: Aws, cfg: Params, item_id: str) -> None:
    (local_dir(cfg) / f"{item_id}.json").unlink(missing_ok=True)
    try:
        aws.client("s3").delete_object(Bucket=cfg.bucket, Key=cfg.key("outbox", f"{item_id}.json"))
    except DELIVERY_ERRORS:
        pass


def deliver(aws: Aws, cfg: Params, senders: dict[str, Callable[[dict], None]]) -> dict:
    """Send every pending item with the sender for its kind; an item is removed only after it was delivered.

    Returns
    -------
    dict
        ``delivered`` and ``still_pending`` counts.
    """
    delivered = failed = 0
    folder = local_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".delivering", "a") as lock:  # stages running at once on this machine deliver one by one
        fcntl.flock(lock, fcntl.LOCK_EX)
        for item in pending(aws, cfg):  # read under the lock: what the other delivered is gone
            try:
                senders[item["kind"]](_decode(item["payload"]))
            except DELIVERY_ERRORS:
                failed += 1
                continue
            _remove(aws, cfg, item["id"])
            delivered += 1
    return {"delivered": delivered, "still_pending": failed}


def send(aws: Aws, cfg: Params, datums: list[dict], now: dt.datetime, stream: str) -> publish.PublishStats:
    """Publish through the configured transport; what CloudWatch still refuses after retries waits here.

    Invalid data raises at once. Data that cannot be delivered (unreachable, throttled out) is stored in
    the outbox, which the next run delivers first; ``outboxed`` counts it.
    """
    for d in datums:
        publish.validate_datum(d)
    try:
        return publish.transport(aws, cfg, datums, now, stream)
    except DELIVERY_ERRORS as exc:
        store(aws, cfg, "metrics", {"datums": datums, "stream": stream, "now": now}, f"{type(exc).__name__}: {exc}")
        return publish.PublishStats(outboxed=len(datums))


def deliver_outbox(aws: Aws, cfg: Params) -> dict:
    """Deliver what earlier runs could not publish or notify (before this run publishes anything)."""

    def metrics(p: dict) -> None:
        publish.transport(aws, cfg, p["datums"], p["now"], p["stream"])

    def sns(p: dict) -> None:
        aws.client("sns").publish(**p)

    return deliver(aws, cfg, {"metrics": metrics, "sns": sns})
