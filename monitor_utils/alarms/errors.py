"""Errors of the alarm package and the helpers that word them (alarm, field, problem, fix)."""

from __future__ import annotations

from typing import Any, Mapping


class AlarmSpecError(ValueError):
    """An alarm spec (or an evaluation request) that CloudWatch would reject or this package cannot evaluate."""


class ExpressionError(ValueError):
    """A metric math expression that cannot be parsed or evaluated."""


def alarm_name(spec: Mapping[str, Any]) -> str:
    """The spec's AlarmName, or ``<unnamed>``."""
    return str(spec.get("AlarmName") or "<unnamed>")


def spec_error(spec: Mapping[str, Any], where: str, problem: str, fix: str) -> AlarmSpecError:
    """An AlarmSpecError naming the alarm, the field (``where``), the problem and the fix (the caller raises it)."""
    return AlarmSpecError(f"alarm {alarm_name(spec)!r}: {where}: {problem}. Fix: {fix}")


def require_int(spec: Mapping[str, Any], value: Any, where: str) -> int:
    """``value`` if it is an integer (not a bool), else raise an AlarmSpecError for field ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise spec_error(spec, where, f"expected an integer, got {value!r}", f"set {where} to a whole number")
    return value
