"""Checks of parameter values against the rest of the suite: alarm names, capture columns, the schema's features, files.

Each check takes the validated values and raises ``ValueError`` naming the parameter, its value and the fix;
:func:`config.validate` (and :func:`config.check_files`) add where the value was set. This module imports nothing
that imports ``config``; the full check of each overridden alarm (CloudWatch's rules) is
:func:`preflight.check_alarm_overrides`, which the runner calls before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from .alarms.constants import OPTIONAL_ALARMS, OVERRIDABLE_FIELDS, SUITE_ALARMS
from .data import FEATURES, TIMBRE_AVERAGES, TIMBRE_COVARIANCES

SEGMENT_OTHER_COLUMNS = ("prediction",)  # besides the features, the one column of a captured record worth cutting by
FEATURE_RANGES = (f"{TIMBRE_AVERAGES[0]}..{TIMBRE_AVERAGES[-1]}, {TIMBRE_COVARIANCES[0]}..{TIMBRE_COVARIANCES[-1]} "
                  f"({len(FEATURES)} features)")


def alarm_overrides(values: Mapping[str, Any]) -> None:
    """Every alarm named in ``alarm_overrides`` is one of the suite's, with a mapping of fields it may change."""
    overrides = values["alarm_overrides"]
    for key, fields in overrides.items():
        if key in OPTIONAL_ALARMS and not values["alarms"][key.replace("-", "_")]:
            raise ValueError(f"parameter 'alarm_overrides' is {dict(overrides)!r}: alarm {key!r} is off; turn it on "
                             f"with alarms.{key.replace('-', '_')}: true")
        if key not in SUITE_ALARMS + OPTIONAL_ALARMS:
            raise ValueError(f"parameter 'alarm_overrides' is {dict(overrides)!r}: unknown alarm {key!r}; alarms are "
                             f"{', '.join(SUITE_ALARMS + OPTIONAL_ALARMS)}")
        if not isinstance(fields, Mapping):
            raise ValueError(f"parameter 'alarm_overrides' is {dict(overrides)!r}: alarm {key!r} must map "
                             f"PutMetricAlarm fields to values, e.g. {{Threshold: 8.5}}")
        bad = [f for f in fields if f not in OVERRIDABLE_FIELDS]
        if bad:
            raise ValueError(f"parameter 'alarm_overrides' is {dict(overrides)!r}: field {bad[0]!r} of alarm {key!r} "
                             f"cannot be overridden; accepted: {', '.join(OVERRIDABLE_FIELDS)}")


def segment_columns(values: Mapping[str, Any]) -> None:
    """Each of ``segment_columns`` is a column of the captured records: a feature or the prediction."""
    allowed = set(FEATURES) | set(SEGMENT_OTHER_COLUMNS)
    bad = [c for c in values["segment_columns"] if c not in allowed]
    if bad:
        raise ValueError(f"parameter 'segment_columns' is {list(values['segment_columns'])!r}: "
                         f"{', '.join(map(repr, bad))} is not a column of the captured records; use "
                         f"{', '.join(SEGMENT_OTHER_COLUMNS)} or a feature: {FEATURE_RANGES}")


def broken_feature(values: Mapping[str, Any]) -> None:
    """``world.broken_feature`` is a feature of the schema."""
    value = values["world"]["broken_feature"]
    if value not in FEATURES:
        raise ValueError(f"parameter 'world.broken_feature' is {value!r}, not a feature of the schema; use one of "
                         f"{FEATURE_RANGES}")


def data_path(values: Mapping[str, Any]) -> None:
    """A local ``data_path`` is a file (an ``s3://`` one is checked with a HEAD before setup creates anything)."""
    value = values["data_path"]
    if value and not value.startswith("s3://") and not Path(value).expanduser().is_file():
        raise ValueError(f"parameter 'data_path' is {value!r}, which is not a file on this machine; give the path of "
                         "YearPredictionMSD.txt or its .zip (or an s3:// URI), or leave it empty for the "
                         "synthetic data")


CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any]], None]], ...] = (
    ("alarm_overrides", alarm_overrides), ("segment_columns", segment_columns),
    ("world.broken_feature", broken_feature))
"""(key, check) pairs :func:`config.validate` runs after the schema's own checks."""

FILE_CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any]], None]], ...] = (("data_path", data_path),)
"""(key, check) pairs of parameters naming files on this machine (:func:`config.check_files`)."""
