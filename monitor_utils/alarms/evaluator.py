"""Local alarm evaluation with CloudWatch's documented alarm-state semantics (M of N, missing data, premature alarms)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .constants import (
    ALARM,
    BREACHING,
    IGNORE,
    INSUFFICIENT_DATA,
    MISSING,
    NOT_BREACHING,
    OK,
    STATES,
    STATIC_OPERATORS,
    TREAT_MISSING_DATA,
)
from .errors import AlarmSpecError, alarm_name, require_int, spec_error
from .metric_math import is_missing


def evaluate(alarm: Mapping[str, Any], datapoints: Sequence[float | None], current_state: str = OK) -> str:
    """Evaluate a static-threshold alarm the way CloudWatch documents it.

    Parameters
    ----------
    alarm
        Alarm spec (EvaluationPeriods, DatapointsToAlarm, Threshold, ComparisonOperator, TreatMissingData).
    datapoints
        The evaluation range, oldest first, one value per period; ``None`` (or NaN) is a missing period.
        It may be longer than N = EvaluationPeriods: CloudWatch retrieves more points than N (5 for N = 3 in the
        docs' examples) and uses the extra older ones when recent ones are missing. A shorter list is padded
        with missing points on the old side up to N.
    current_state
        The alarm state before this evaluation; returned when "ignore" (or premature-alarm) keeps it.

    Returns
    -------
    str
        "OK", "ALARM" or "INSUFFICIENT_DATA", following "Configuring how CloudWatch alarms treat missing data":

        * at least N real points in the range: the most recent N real points decide (ALARM when at least
          M breach); TreatMissingData is not used;
        * no real point: missing -> INSUFFICIENT_DATA, ignore -> current state, breaching -> ALARM,
          notBreaching -> OK;
        * 1..N-1 real points: all of them are used and N - real points are filled with the treatment
          (breaching counts them as breaching; the others as not breaching); ALARM when at least M breach;
          otherwise, for missing/ignore, the premature-alarm rule gives ALARM (missing) or keeps the current
          state (ignore) when every real point breaches and the oldest is at least M periods old; else OK.
    """
    if current_state not in STATES:
        raise AlarmSpecError(
            f"alarm {alarm_name(alarm)!r}: current_state: {current_state!r} is not a state. "
            f"Fix: use one of {', '.join(STATES)}"
        )
    rule = static_rule(alarm)
    points = _normalise(datapoints, rule.n)
    real = [(len(points) - i, rule.breaches(v)) for i, v in enumerate(points) if v is not None]
    if len(real) >= rule.n:
        return ALARM if sum(b for _, b in real[-rule.n :]) >= rule.m else OK
    if not real:
        return {MISSING: INSUFFICIENT_DATA, IGNORE: current_state, BREACHING: ALARM, NOT_BREACHING: OK}[rule.treat]
    breaching = sum(b for _, b in real) + (rule.n - len(real) if rule.treat == BREACHING else 0)
    if breaching >= rule.m:
        return ALARM
    if rule.treat in (MISSING, IGNORE) and _premature_alarm(real, rule.m):
        return ALARM if rule.treat == MISSING else current_state
    return OK


def points_to_fill(alarm: Mapping[str, Any], datapoints: Sequence[float | None]) -> int:
    """Return how many of the N needed datapoints must be filled by the TreatMissingData setting.

    This is column 2 of the worked-example tables: ``max(0, EvaluationPeriods - real points in the range)``.
    """
    rule = static_rule(alarm)
    real = sum(v is not None for v in _normalise(datapoints, rule.n))
    return max(0, rule.n - real)


@dataclass(frozen=True)
class _Rule:
    n: int
    m: int
    treat: str
    operator: str
    threshold: float

    def breaches(self, value: float) -> bool:
        t = self.threshold
        return {
            "GreaterThanOrEqualToThreshold": value >= t,
            "GreaterThanThreshold": value > t,
            "LessThanThreshold": value < t,
            "LessThanOrEqualToThreshold": value <= t,
        }[self.operator]


def static_rule(alarm: Mapping[str, Any]) -> _Rule:
    """Extract and check the fields the evaluator needs (static-threshold alarms only)."""
    if "EvaluationPeriods" not in alarm:
        raise spec_error(alarm, "EvaluationPeriods", "missing", "set EvaluationPeriods (N)")
    n = require_int(alarm, alarm["EvaluationPeriods"], "EvaluationPeriods")
    m = require_int(alarm, alarm.get("DatapointsToAlarm", n), "DatapointsToAlarm")
    if n < 1 or not 1 <= m <= n:
        raise spec_error(
            alarm,
            "DatapointsToAlarm/EvaluationPeriods",
            f"M={m}, N={n}",
            "use 1 <= DatapointsToAlarm <= EvaluationPeriods",
        )
    treat = alarm.get("TreatMissingData", MISSING)
    if treat not in TREAT_MISSING_DATA:
        raise spec_error(alarm, "TreatMissingData", f"{treat!r} is not valid", f"use one of {', '.join(TREAT_MISSING_DATA)}")
    op = alarm.get("ComparisonOperator")
    if op not in STATIC_OPERATORS:
        raise spec_error(
            alarm,
            "ComparisonOperator",
            f"{op!r} cannot be evaluated locally",
            f"use one of {', '.join(STATIC_OPERATORS)} (anomaly bands are not evaluated)",
        )
    threshold = alarm.get("Threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise spec_error(alarm, "Threshold", f"expected a number, got {threshold!r}", "set a numeric Threshold")
    return _Rule(n, m, treat, op, float(threshold))


def _normalise(datapoints: Iterable[float | None], n: int) -> list[float | None]:
    points = [None if is_missing(v) else float(v) for v in datapoints]
    return [None] * max(0, n - len(points)) + points


def _premature_alarm(real: list[tuple[int, bool]], m: int) -> bool:
    """The "Avoiding premature transitions to alarm state" rule for too few real points.

    ``real`` holds ``(age, breaching)`` of every real point in the range, oldest first, age 1 being the most
    recent period. With all real points breaching (the rest missing), the alarm goes to ALARM once the oldest
    breaching point is at least M periods old. A non-breaching real point anywhere in the range blocks the rule:
    the 2-of-3 table row ``0 - X - -`` stays OK with "missing".
    """
    return bool(real) and all(b for _, b in real) and real[0][0] >= m
