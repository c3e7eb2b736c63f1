"""Checks of parameter values against the rest of the suite: alarm names, capture columns, the schema's features, files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import Params, ParamsError

SEGMENT_OTHER_COLUMNS = ("prediction",)  # besides the features, the one column of a captured record worth cutting by


def _features() -> list[str]:
    from .data import FEATURES

    return FEATURES


def _feature_ranges() -> str:
    from .data import TIMBRE_AVERAGES, TIMBRE_COVARIANCES

    return (f"{TIMBRE_AVERAGES[0]}..{TIMBRE_AVERAGES[-1]}, {TIMBRE_COVARIANCES[0]}..{TIMBRE_COVARIANCES[-1]} "
            f"({len(TIMBRE_AVERAGES) + len(TIMBRE_COVARIANCES)} features)")


def alarm_overrides(cfg: Params) -> None:
    """Every alarm named in ``alarm_overrides`` exists and its fields make a valid PutMetricAlarm request."""
    if not cfg.alarm_overrides:
        return
    from . import alarms, alerting

    topic = "arn:aws:sns:us-east-1:000000000000:params-check"  # a placeholder: only the alarm fields are checked
    try:
        alerting.alarm_specs(cfg, topic)
    except alarms.AlarmSpecError as exc:
        reason = str(exc).removeprefix("alarm_overrides: ")
        raise ParamsError(f"parameter 'alarm_overrides' is {dict(cfg.alarm_overrides)!r}: {reason}") from None


def segment_columns(cfg: Params) -> None:
    """Each of ``segment_columns`` is a column of the captured records: a feature or the prediction."""
    allowed = set(_features()) | set(SEGMENT_OTHER_COLUMNS)
    bad = [c for c in cfg.segment_columns if c not in allowed]
    if bad:
        raise ParamsError(f"parameter 'segment_columns' is {list(cfg.segment_columns)!r}: {', '.join(map(repr, bad))} "
                          f"is not a column of the captured records; use {', '.join(SEGMENT_OTHER_COLUMNS)} or a "
                          f"feature: {_feature_ranges()}")


def broken_feature(cfg: Params) -> None:
    """``world.broken_feature`` is a feature of the schema."""
    value = cfg.world["broken_feature"]
    if value not in _features():
        raise ParamsError(f"parameter 'world.broken_feature' is {value!r}, not a feature of the schema; use one of "
                          f"{_feature_ranges()}")


def data_path(cfg: Params) -> None:
    """A local ``data_path`` is a file (an ``s3://`` one is checked with a HEAD before setup creates anything)."""
    value = cfg.data_path
    if value and not value.startswith("s3://") and not Path(value).expanduser().is_file():
        raise ParamsError(f"parameter 'data_path' is {value!r}, which is not a file on this machine; give the path of "
                          "YearPredictionMSD.txt or its .zip (or an s3:// URI), or leave it empty for the "
                          "synthetic data")


CHECKS: tuple[tuple[str, Callable[[Params], None]], ...] = (
    ("alarm_overrides", alarm_overrides), ("segment_columns", segment_columns),
    ("world.broken_feature", broken_feature))
"""(key, check) pairs :func:`config.validate` runs after the schema's own checks."""

FILE_CHECKS: tuple[tuple[str, Callable[[Params], None]], ...] = (("data_path", data_path),)
"""(key, check) pairs of parameters naming files on this machine (:func:`config.check_files`)."""
