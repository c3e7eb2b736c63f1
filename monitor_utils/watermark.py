"""Exactly-once bookkeeping in S3: which windows a stage has published, and which were in flight when a run died."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .aws import Aws, get_json, put_json
from .config import Params, parse_time
from .windows import iso


@dataclass
class Watermark:
    """Published window labels, windows whose publish was started but not confirmed, and the last window end."""

    stage: str
    published: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    last_end: str | None = None

    def key(self, cfg: Params) -> str:
        """S3 key of this stage's watermark."""
        return cfg.key("state", f"{self.stage}_watermark.json")

    @property
    def last_end_time(self) -> dt.datetime | None:
        """End of the newest published window."""
        return parse_time(self.last_end) if self.last_end else None

    def save(self, aws: Aws, cfg: Params) -> None:
        """Persist to S3."""
        put_json(aws, cfg.bucket, self.key(cfg), {"stage": self.stage, "published": self.published,
                                                  "pending": self.pending, "last_end": self.last_end})

    def begin(self, aws: Aws, cfg: Params, labels: list[str]) -> None:
        """Record windows about to be published (so a crash mid-publish is detected, not duplicated)."""
        self.pending = sorted(set(self.pending) | set(labels))
        self.save(aws, cfg)

    def commit(self, aws: Aws, cfg: Params, labels: list[str], last_end: dt.datetime) -> None:
        """Mark windows published."""
        self.published = sorted(set(self.published) | set(labels))
        self.pending = sorted(set(self.pending) - set(labels))
        if self.last_end is None or last_end > parse_time(self.last_end):
            self.last_end = iso(last_end)
        self.save(aws, cfg)


def load(aws: Aws, cfg: Params, stage: str) -> Watermark:
    """The stage's watermark (empty when the stage never published)."""
    raw = get_json(aws, cfg.bucket, cfg.key("state", f"{stage}_watermark.json")) or {}
    return Watermark(stage, raw.get("published", []), raw.get("pending", []), raw.get("last_end"))
