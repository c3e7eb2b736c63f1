"""Exactly-once bookkeeping in S3: which windows a stage has published, which are in flight, which are held open.

Every write is conditional on the ETag the watermark was read at (``IfMatch``; the first one ``IfNoneMatch='*'``),
so two runners of the same params never both publish a window: the one whose write loses re-reads the watermark
and leaves the windows the other has published or claimed.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable

from .aws import Aws, PreconditionFailed, get_json_etag, put_json_if
from .config import Params, parse_time
from .outbox import send
from .publish import PublishStats
from .windows import Window, iso

MAX_CONFLICTS = 20  # re-reads after lost conditional writes before giving up (each loss means another runner wrote)


OWNER: ContextVar[str | None] = ContextVar("watermark_owner", default=None)  # set: who claims, in this thread


def owner_id() -> str:
    """Who claims windows: :data:`OWNER` when set in this thread (several runners in one process), else the runner's
    run id (``MONITOR_UTILS_RUN_ID``), else host and process id."""
    return OWNER.get() or os.environ.get("MONITOR_UTILS_RUN_ID") or f"{socket.gethostname()}:{os.getpid()}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Watermark:
    """Published window labels, windows whose publish was started but not confirmed (with who claimed them and
    when), windows held open (with why), the last window end, and the ETag this copy was read at."""

    stage: str
    published: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    last_end: str | None = None
    held: dict[str, str] = field(default_factory=dict)
    claims: dict[str, dict] = field(default_factory=dict)
    etag: str | None = None

    def key(self, cfg: Params) -> str:
        """S3 key of this stage's watermark."""
        return key(cfg, self.stage)

    @property
    def last_end_time(self) -> dt.datetime | None:
        """End of the newest published window."""
        return parse_time(self.last_end) if self.last_end else None

    def first_open(self, window_start: Callable[[str], dt.datetime]) -> dt.datetime | None:
        """Where the next run starts: the earliest window held open, else the end of the newest published one."""
        starts = [window_start(label) for label in self.held]
        if self.last_end:
            starts.append(self.last_end_time)
        return min(starts) if starts else None

    def to_json(self) -> dict:
        """The stored form."""
        return {"stage": self.stage, "published": self.published, "pending": self.pending,
                "last_end": self.last_end, "held": self.held, "claims": self.claims}

    def save(self, aws: Aws, cfg: Params) -> None:
        """Persist to S3, conditional on the ETag read (raises :class:`monitor_utils.aws.PreconditionFailed`)."""
        self.etag = put_json_if(aws, cfg.bucket, self.key(cfg), self.to_json(), self.etag)

    def reload(self, aws: Aws, cfg: Params) -> None:
        """Replace this copy with what S3 holds now."""
        fresh = load(aws, cfg, self.stage)
        self.__dict__.update(fresh.__dict__)

    def claimed_elsewhere(self, label: str, owner: str, now: dt.datetime, live_seconds: float) -> bool:
        """True when ``label`` is pending under another owner's claim younger than ``live_seconds`` (a runner
        that may still be publishing it). A claim without an owner, or older, is from a run that died."""
        claim = self.claims.get(label)
        if label not in self.pending or not claim or claim.get("owner") == owner:
            return False
        return now - parse_time(claim["at"]) < dt.timedelta(seconds=live_seconds)

    def claim(self, aws: Aws, cfg: Params, labels: list[str], *, owner: str | None = None,
              live_seconds: float | None = None, clock: Callable[[], dt.datetime] = _utcnow) -> list[str]:
        """Record windows about to be published, so a crash mid-publish is detected and a second runner leaves
        them alone; return the labels this runner may publish (those not published, nor claimed by a live other).

        Parameters
        ----------
        labels : list[str]
            Windows this runner computed.
        owner : str, optional
            Who claims (default :func:`owner_id`).
        live_seconds : float, optional
            How long another owner's claim counts as live (default ``stage_timeout_seconds``: the runner stops a
            stage after that, so an older claim is a dead run's, whose windows this run publishes).
        clock : Callable
            The wall clock (claims are about processes, not the run's data clock).
        """
        owner = owner or owner_id()
        if live_seconds is None:  # also under the lease: a run with run_lease false may be publishing beside it
            live_seconds = cfg.stage_timeout_seconds
        for _ in range(MAX_CONFLICTS):
            now = clock()
            mine = [lab for lab in labels if lab not in set(self.published)
                    and not self.claimed_elsewhere(lab, owner, now, live_seconds)]
            if not mine:
                return []
            self.pending = sorted(set(self.pending) | set(mine))
            self.claims.update({lab: {"owner": owner, "at": iso(now)} for lab in mine})
            try:
                self.save(aws, cfg)
                return mine
            except PreconditionFailed:
                self.reload(aws, cfg)
        raise RuntimeError(f"{self.stage} watermark s3://{cfg.bucket}/{self.key(cfg)}: lost {MAX_CONFLICTS} "
                           "conditional writes in a row; too many runners at once")

    def commit(self, aws: Aws, cfg: Params, labels: list[str], last_end: dt.datetime | None,
               held: dict[str, str] | None = None) -> None:
        """Mark windows published (and ``held`` ones open, with why), re-reading and re-applying on a lost write."""
        for _ in range(MAX_CONFLICTS):
            self.published = sorted(set(self.published) | set(labels))
            self.pending = sorted(set(self.pending) - set(labels))
            self.claims = {k: v for k, v in self.claims.items() if k in self.pending}
            self.held = {k: v for k, v in {**self.held, **(held or {})}.items() if k not in set(self.published)}
            if last_end is not None and (self.last_end is None or last_end > parse_time(self.last_end)):
                self.last_end = iso(last_end)
            try:
                self.save(aws, cfg)
                return
            except PreconditionFailed:
                self.reload(aws, cfg)
        raise RuntimeError(f"{self.stage} watermark s3://{cfg.bucket}/{self.key(cfg)}: lost {MAX_CONFLICTS} "
                           "conditional writes in a row; too many runners at once")


def key(cfg: Params, stage: str) -> str:
    """S3 key of ``stage``'s watermark."""
    return cfg.key("state", f"{stage}_watermark.json")


def load(aws: Aws, cfg: Params, stage: str) -> Watermark:
    """The stage's watermark and the ETag it was read at (empty, ETag None, when the stage never published)."""
    raw, etag = get_json_etag(aws, cfg.bucket, key(cfg, stage))
    raw = raw or {}
    return Watermark(stage, raw.get("published", []), raw.get("pending", []), raw.get("last_end"),
                     dict(raw.get("held") or {}), dict(raw.get("claims") or {}), etag)


def publish_once(aws: Aws, cfg: Params, mark: Watermark, done: list[Window], datums: list[dict],
                 now: dt.datetime, stream: str, held: dict[str, str] | None = None
                 ) -> tuple[PublishStats, list[str]]:
    """Publish the ``datums`` (stamped at their window's end) of the ``done`` windows between the watermark's claim
    and commit, exactly once: windows another runner published or is publishing meanwhile are left to it. ``held``
    windows are recorded as open (with why). Returns the stats and the labels this run published."""
    if not done and not held:
        return PublishStats(), []
    mine = mark.claim(aws, cfg, [w.label for w in done]) if done else []
    ends = {w.end for w in done if w.label in set(mine)}
    keep = [d for d in datums if d["Timestamp"] in ends]
    stats = send(aws, cfg, keep, now, stream=stream) if keep else PublishStats()
    mark.commit(aws, cfg, mine, max(ends) if ends else None, held)
    return stats, mine
