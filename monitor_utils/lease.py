"""One runner at a time per bucket and prefix: a lease in S3 (``state/lease.json``), taken with a conditional write,
renewed while the run runs, released at its end, and taken over once it expires."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from .aws import Aws, PreconditionFailed, error_code, get_json_etag, put_json_if
from .config import Params, parse_time
from .windows import iso

HOLDER_ENV = "MONITOR_UTILS_LEASE_HOLDER"  # the run id holding the lease, in the stages' kernels' environment


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LeaseError(RuntimeError):
    """The lease could not be read or written (credentials, access, network)."""


class LeaseHeld(RuntimeError):
    """Another run holds the lease; ``holder`` is its content (run id, host, pid, start time, expiry)."""

    def __init__(self, message: str, holder: dict) -> None:
        super().__init__(message)
        self.holder = holder


def key(cfg: Params) -> str:
    """S3 key of the lease: ``<prefix>/state/lease.json``."""
    return cfg.key("state", "lease.json")


def describe(holder: dict) -> str:
    """The holder in words: run id, host, pid, start time and expiry."""
    return (f"run {holder.get('run_id')} on host {holder.get('host')} (pid {holder.get('pid')}), started "
            f"{holder.get('started')}, lease expires {holder.get('expires')} unless renewed")


@dataclass
class Lease:
    """The S3 lease of one run.

    Parameters
    ----------
    aws, cfg
        Session and params (``bucket``, ``prefix``, ``lease_seconds``).
    run_id : str
        The run taking the lease.
    clock : Callable
        Wall clock (injected in tests); the lease's start and expiry are on it.
    """

    aws: Aws
    cfg: Params
    run_id: str
    clock: Callable[[], dt.datetime] = _utcnow
    etag: str | None = None
    content: dict = field(default_factory=dict)
    lost: str = ""  # why the lease was lost while held (another run took it over), else empty
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def seconds(self) -> int:
        """Lease length (``lease_seconds``)."""
        return int(self.cfg.lease_seconds)

    def _body(self, started: str | None = None) -> dict:
        now = self.clock()
        return {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                "started": started or iso(now), "renewed": iso(now),
                "expires": iso(now + dt.timedelta(seconds=self.seconds))}

    def try_acquire(self) -> dict | None:
        """Take the lease if it is free or expired; return None when taken, else the live holder's content."""
        for _ in range(5):  # each loop follows another writer's move (created, released, taken over)
            body = self._body()
            try:
                self.etag = put_json_if(self.aws, self.cfg.bucket, key(self.cfg), body, None)
                self.content = body
                return None
            except PreconditionFailed:
                pass
            holder, etag = get_json_etag(self.aws, self.cfg.bucket, key(self.cfg))
            if holder is None:
                continue  # released meanwhile: create again
            if parse_time(holder["expires"]) > self.clock():
                return holder
            try:  # expired: take it over, conditional on the ETag of the expired lease read
                self.etag = put_json_if(self.aws, self.cfg.bucket, key(self.cfg), body, etag)
                self.content = {**body, "took_over_from": holder.get("run_id")}
                return None
            except PreconditionFailed:
                continue  # another runner took it over first: read again
        holder, _ = get_json_etag(self.aws, self.cfg.bucket, key(self.cfg))
        return holder or {}

    def acquire(self, wait: bool = False, progress: Callable[[str], None] = print,
                sleep: Callable[[float], None] = time.sleep, poll_seconds: float | None = None) -> None:
        """Take the lease; without ``wait`` raise :class:`LeaseHeld` naming the holder, with it poll until free.

        ``poll_seconds`` defaults to a tenth of the lease (at least 5 s); each poll prints a progress line.
        """
        poll = poll_seconds if poll_seconds is not None else max(5.0, self.seconds / 10)
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
            where = f"s3://{self.cfg.bucket}/{key(self.cfg)}"
            if not wait:
                raise LeaseHeld(f"another run holds the lease {where}: {describe(holder)}. Let it finish, run with "
                                "--wait-for-lease to queue behind it, or delete the lease object if that run is "
                                "known dead (it expires by itself otherwise)", holder)
            progress(f"waiting for the lease {where}: held by {describe(holder)}; next try in {poll:g} s")
            sleep(poll)

    def renew(self) -> bool:
        """Extend the lease, conditional on the ETag held; False (and ``lost`` says why) when another run took it."""
        body = self._body(self.content.get("started"))
        try:
            self.etag = put_json_if(self.aws, self.cfg.bucket, key(self.cfg), body, self.etag)
        except PreconditionFailed:
            holder, _ = get_json_etag(self.aws, self.cfg.bucket, key(self.cfg))
            self.lost = (f"the lease was taken over by {describe(holder)}" if holder
                         else "the lease object was deleted by someone else")
            return False
        self.content = body
        return True

    def start_renewing(self, interval: float | None = None) -> None:
        """Renew every ``interval`` seconds (default a third of the lease) in a daemon thread until :meth:`release`."""
        every = interval if interval is not None else self.seconds / 3

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    if not self.renew():
                        return
                except Exception:  # noqa: BLE001 - a failed renewal is retried at the next tick; expiry is the bound
                    continue

        self._thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lease, conditional on the ETag held (a lease taken over is left alone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.lost or self.etag is None:
            return
        try:
            self.aws.client("s3").delete_object(Bucket=self.cfg.bucket, Key=key(self.cfg), IfMatch=self.etag)
        except ClientError as exc:
            if error_code(exc) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
        self.etag = None


@contextlib.contextmanager
def holding(aws: Aws, cfg: Params, run_id: str, wait: bool = False,
            progress: Callable[[str], None] = print) -> Iterator[Lease]:
    """Hold the lease for the block (renewed in the background; released at the end), with
    ``MONITOR_UTILS_LEASE_HOLDER`` set to ``run_id`` meanwhile so the stages know no other run publishes.

    Raises
    ------
    LeaseHeld
        Another run holds it (and ``wait`` is false).
    LeaseError
        S3 could not be asked (no credentials, no access to the bucket, no network).
    """
    held = Lease(aws, cfg, run_id)
    try:
        held.acquire(wait=wait, progress=progress)
    except (BotoCoreError, ClientError) as exc:
        raise LeaseError(f"could not take the run lease s3://{cfg.bucket}/{key(cfg)}: {type(exc).__name__}: {exc}. "
                         "The run needs s3:GetObject, s3:PutObject and s3:DeleteObject there (see iam-policy); "
                         "-p run_lease=false runs without the lease") from None
    previous = os.environ.get(HOLDER_ENV)
    os.environ[HOLDER_ENV] = run_id
    held.start_renewing()
    try:
        yield held
    finally:
        try:
            held.release()
        except (BotoCoreError, ClientError):
            pass  # S3 unreachable at the end: the lease expires by itself after lease_seconds
        if previous is None:
            os.environ.pop(HOLDER_ENV, None)
        else:
            os.environ[HOLDER_ENV] = previous
