"""What a stage returns: its record (the stage JSON), its report artefacts, its headline and its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    """What a reviewer must know first, in sentences.

    Attributes
    ----------
    text : str
        One to three sentences saying what needs attention now (or that nothing does).
    attention : bool
        True when someone should act (an alarm in ALARM, drift, a failed deploy, quarantined input).
    """

    text: str
    attention: bool = False

    def to_dict(self) -> dict:
        """The ``verdict`` entry of the stage record."""
        return {"text": self.text, "attention": self.attention}


@dataclass
class Series:
    """The stage's headline metric over the windows (the index page draws it as a small picture).

    Attributes
    ----------
    label : str
        What the values are, e.g. 'RMSE (years)'.
    windows : list[str]
        Window labels, oldest first.
    values : list[float | None]
        One value per window (None where there is none).
    threshold : float | None
        Alarm threshold to draw, if any.
    """

    label: str
    windows: list[str]
    values: list[float | None]
    threshold: float | None = None

    @classmethod
    def from_history(cls, history, column: str, label: str, threshold: float | None = None) -> "Series | None":
        """``column`` of a per-window history frame (with a ``window`` column); None when there is none."""
        if history is None or not len(history) or column not in history:
            return None
        values = [None if v is None or v != v else float(v) for v in history[column]]  # v != v: NaN
        return cls(label, [str(w) for w in history["window"]], values, threshold)

    def to_dict(self) -> dict:
        """The ``series`` entry of the stage record."""
        return {"label": self.label, "windows": list(self.windows), "values": list(self.values),
                "threshold": self.threshold}


@dataclass
class StageResult:
    """One stage's outcome.

    Attributes
    ----------
    record : dict
        Exactly the stage's keys of ``NN_stage.json`` (plus ``headline``, ``verdict`` and ``series`` when saved).
    artefacts : dict
        Frames, profiles and reports the notebook shows but the JSON does not hold.
    headline : dict
        A few results for the run's summary and index page.
    verdict : Verdict
        What needs attention now, in sentences.
    series : Series | None
        The headline metric over the windows, when the stage has one.

    Attribute access (``result.history``) reads the record, then the artefacts; ``result["key"]`` reads the record.
    """

    record: dict
    artefacts: dict = field(default_factory=dict)
    headline: dict = field(default_factory=dict)
    verdict: Verdict = field(default_factory=lambda: Verdict("done"))
    series: Series | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for part in ("record", "artefacts"):
            values = self.__dict__.get(part) or {}
            if name in values:
                return values[name]
        raise AttributeError(f"stage result has no {name!r}; record keys: {', '.join(self.__dict__.get('record', {}))}")

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __contains__(self, key: str) -> bool:
        return key in self.record

    def get(self, key: str, default: Any = None) -> Any:
        """A record value, or ``default``."""
        return self.record.get(key, default)

    def to_record(self) -> dict:
        """The JSON record: the stage's keys, its headline, verdict and series."""
        return {**self.record, "headline": self.headline, "verdict": self.verdict.to_dict(),
                "series": self.series.to_dict() if self.series else None}
