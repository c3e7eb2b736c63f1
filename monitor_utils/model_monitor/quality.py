"""Model Monitor's data-quality checks of one window against a ``constraints.json``, in the analyzer's wording."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .constraints import Constraints
from .jackson import java_double
from .reference import drift_violations
from .statistics import NUMERIC_TYPES, statistics_document
from .violations import Violation

#: The order checks are written in a window's ``constraint_violations.json``.
CHECK_ORDER = ("missing_column_check", "extra_column_check", "data_type_check", "completeness_check",
               "is_non_negative", "categorical_values_check", "baseline_drift_check")


@dataclass
class ColumnMatch:
    """How a window's columns meet a baseline's features.

    Attributes
    ----------
    columns : dict[str, str]
        Baseline feature -> window column, for the features the window has.
    missing : list[str]
        Baseline features the window lacks (``missing_column_check``).
    extra : list[str]
        Window columns the baseline does not know (``extra_column_check``).
    """

    columns: dict[str, str]
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def match_columns(baseline_names: Sequence[str], window_columns: Sequence[str],
                  prediction: str | None = None) -> ColumnMatch:
    """Match a window's columns with a baseline's features, as the analyzer does, without raising.

    By name when the baseline names any window column: baseline features the window lacks are missing, input
    columns the baseline lacks are extra (never the model's output: a baseline of the inputs alone is complete).
    Otherwise (a headerless baseline ``_c0, _c1, ...``)
    by position, as the analyzer lines up captured data: the model's output first, then the inputs in request
    order (or the inputs alone when the baseline has exactly as many features as inputs); the baseline features
    beyond the window's columns are missing, the window columns beyond the baseline's features are extra.

    Parameters
    ----------
    baseline_names : Sequence[str]
        The baseline's features in file order.
    window_columns : Sequence[str]
        The window's input columns in request order (without the prediction).
    prediction : str | None
        The window's model-output column, if it has one.

    Returns
    -------
    ColumnMatch
    """
    baseline_names, inputs = [str(n) for n in baseline_names], [str(c) for c in window_columns]
    all_columns = inputs + ([prediction] if prediction else [])
    if set(baseline_names) & set(all_columns):
        missing = [n for n in baseline_names if n not in all_columns]
        extra = [c for c in inputs if c not in baseline_names]
        return ColumnMatch({n: n for n in baseline_names if n in all_columns}, missing, extra)
    order = ([prediction] if prediction else []) + inputs
    if len(inputs) == len(baseline_names):
        order = inputs
    columns = dict(zip(baseline_names, order))
    return ColumnMatch(columns, baseline_names[len(order):], order[len(baseline_names):])


def percent(share: float) -> str:
    """A share as the analyzer prints a percentage (Java's double text of share * 100)."""
    return java_double(share * 100.0)


def data_type_description(inferred_type: str, threshold: float, share: float) -> str:
    """``data_type_check``'s description as real monitoring runs write it (NOTES.md section 3)."""
    return (f"Data type match requirement is not met. Expected data type: {inferred_type}, Expected match: "
            f"{percent(threshold)}%. Observed: Only {percent(share)}% of data is {inferred_type}.")


def value_description(value: float) -> str:
    """The analyzer's generic description (the SDK's analyzer-written violations file, for completeness and
    categorical values): ``Value: 0.5 does not meet the constraint requirement! `` (trailing space included)."""
    return f"Value: {java_double(value)} does not meet the constraint requirement! "


def missing_column_description(feature: str, window_columns: int, baseline_features: int) -> str:
    """``missing_column_check``'s description (no analyzer-written one is public: the suite's wording)."""
    return (f"Column {feature} is in the baseline constraints but not in the current dataset. Number of columns in "
            f"current dataset: {window_columns}, number of columns in baseline constraints: {baseline_features}")


def extra_column_description(column: str, window_columns: int, baseline_features: int) -> str:
    """``extra_column_check``'s description (no analyzer-written one is public: the suite's wording)."""
    return (f"Column {column} is in the current dataset but not in the baseline constraints. Number of columns in "
            f"current dataset: {window_columns}, number of columns in baseline constraints: {baseline_features}")


def non_negative_description(minimum: float, negatives: int) -> str:
    """``is_non_negative``'s description (the suite's wording: the analyzer's docs list no such violation)."""
    return (f"Non-negative requirement is not met. Observed: {negatives} negative value(s), minimum "
            f"{java_double(minimum)}.")


@dataclass
class WindowQuality:
    """One window's data quality against constraints.

    Attributes
    ----------
    statistics : dict
        The window's ``statistics.json`` document (same shape as the baseline's), features named as in the
        baseline.
    violations : list[Violation]
        The window's violations in :data:`CHECK_ORDER`, then feature order.
    checks : pd.DataFrame
        One row per feature: ``window_column``, ``inferred_type``, ``type_share``, ``completeness``,
        ``min``, ``domain_share`` (NaN where a check does not apply).
    """

    statistics: dict
    violations: list[Violation]
    checks: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        """Violations per ``constraint_check_type`` (only those that occur)."""
        out: dict[str, int] = {}
        for v in self.violations:
            out[v.constraint_check_type] = out.get(v.constraint_check_type, 0) + 1
        return out


def _typed(column: pd.Series, inferred_type: str) -> tuple[np.ndarray, int]:
    """(float values with NaN for missing and mismatched, count of present values not of ``inferred_type``)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    present = column.notna().to_numpy()
    mismatched = present & np.isnan(values)  # text in a numeric column
    if inferred_type == "Integral":
        with np.errstate(invalid="ignore"):
            mismatched |= present & ~np.isnan(values) & (np.floor(values) != values)
    values = np.where(mismatched, np.nan, values)
    return values, int(mismatched.sum())


def check_window(constraints: Constraints, window: pd.DataFrame, match: ColumnMatch, *,
                 type_mismatches: Mapping[str, int] | None = None,
                 drift: pd.DataFrame | None = None) -> WindowQuality:
    """Check one window against ``constraints`` as Model Monitor's analyzer does; write its statistics too.

    Checks, per constraint feature the window has (``evaluate_constraints`` enabled, in the file and in the
    feature's ``monitoring_config_overrides``):

    - ``data_type_check``: the share of present values of the feature's ``inferred_type`` is below
      ``datatype_check_threshold``. Numeric types: a value that is not a number (text) is a mismatch, and for
      ``Integral`` a number with a fraction; every number is ``Fractional`` (the capture reader holds numbers
      as floats, so CSV ``3`` and ``3.0`` look alike); ``String`` accepts every value.
    - ``completeness_check``: the share of values present (not null; text counts as present) is below the
      feature's ``completeness``.
    - ``is_non_negative``: a numeric feature constrained ``is_non_negative: true`` has a negative value.
    - ``categorical_values_check``: the share of a ``String`` feature's present values inside its ``domains``
      is below ``domain_content_threshold``.
    - ``missing_column_check`` / ``extra_column_check``: from ``match``.
    - ``baseline_drift_check``: the drifted rows of ``drift`` (:func:`~.reference.baseline_drift`), if given.

    Parameters
    ----------
    constraints : Constraints
        The baseline's constraints.
    window : pd.DataFrame
        The window's records (columns as ``match`` names them; numeric columns may hold text).
    match : ColumnMatch
        From :func:`match_columns`.
    type_mismatches : Mapping[str, int] | None
        Values of a window column that never reached ``window`` because they were not numbers (capture lines
        quarantined for a non-numeric feature value, one per line), keyed by window column: counted as present
        values of another type.
    drift : pd.DataFrame | None
        This window's :func:`~.reference.baseline_drift` table, for its ``baseline_drift_check`` violations.

    Returns
    -------
    WindowQuality
    """
    mc = constraints.monitoring_config
    extra_mismatch = dict(type_mismatches or {})
    frame: dict[str, pd.Series] = {}
    types: dict[str, str] = {}
    rows, found = [], {check: [] for check in CHECK_ORDER}
    n_window = len(match.columns) + len(match.extra)
    n_baseline = len(constraints.features) or len(match.columns) + len(match.missing)
    for name in match.missing:
        found["missing_column_check"].append(Violation(name, "missing_column_check",
                                                       missing_column_description(name, n_window, n_baseline)))
    for col in match.extra:
        found["extra_column_check"].append(Violation(col, "extra_column_check",
                                                     extra_column_description(col, n_window, n_baseline)))
    for name, col in match.columns.items():
        fc = constraints.features.get(name)
        t = fc.inferred_type if fc is not None else "Fractional"
        column = window[col] if col in window else pd.Series(np.nan, index=window.index)
        row = {"feature": name, "window_column": col, "inferred_type": t, "type_share": math.nan,
               "completeness": math.nan, "min": math.nan, "domain_share": math.nan}
        if t in NUMERIC_TYPES:
            values, mismatched = _typed(column, t)
            mismatched += int(extra_mismatch.get(col, 0))
            frame[name], types[name] = pd.Series(values, index=window.index), t
            numbers = int((~np.isnan(values)).sum())
            present = numbers + mismatched
            total = len(column) + int(extra_mismatch.get(col, 0))
            row["type_share"] = numbers / present if present else math.nan
            row["min"] = float(np.nanmin(values)) if numbers else math.nan
            negatives = int((values < 0).sum()) if numbers else 0
        else:
            strings = column.where(column.isna(), column.astype(str))
            frame[name], types[name] = strings, "String"
            present, total, negatives = int(column.notna().sum()), len(column), 0
            if fc is not None and fc.domains is not None and present:
                row["domain_share"] = float(strings.dropna().isin(fc.domains).mean())
        row["completeness"] = present / total if total else math.nan
        rows.append(row)
        if fc is None or not mc.evaluate_constraints or fc.overrides.get("evaluate_constraints") == "Disabled":
            continue
        if t in NUMERIC_TYPES and not math.isnan(row["type_share"]) and row["type_share"] < mc.datatype_check_threshold:
            found["data_type_check"].append(Violation(name, "data_type_check", data_type_description(
                t, mc.datatype_check_threshold, row["type_share"])))
        if fc.completeness is not None and not math.isnan(row["completeness"]) \
                and row["completeness"] < fc.completeness:
            found["completeness_check"].append(Violation(name, "completeness_check",
                                                         value_description(row["completeness"])))
        if fc.is_non_negative and negatives:
            found["is_non_negative"].append(Violation(name, "is_non_negative",
                                                      non_negative_description(row["min"], negatives)))
        if not math.isnan(row["domain_share"]) and row["domain_share"] < mc.domain_content_threshold:
            found["categorical_values_check"].append(Violation(name, "categorical_values_check",
                                                               value_description(row["domain_share"])))
    if drift is not None and len(drift):
        found["baseline_drift_check"] += drift_violations(drift)
    if not mc.evaluate_constraints:  # the file turns the constraint checks off; drift has its own switch
        found = {check: (found[check] if check == "baseline_drift_check" else []) for check in CHECK_ORDER}
    stats = statistics_document(pd.DataFrame(frame, index=window.index), types) if frame else \
        {"version": 0.0, "dataset": {"item_count": int(len(window))}, "features": []}
    checks = pd.DataFrame(rows, columns=["feature", "window_column", "inferred_type", "type_share", "completeness",
                                         "min", "domain_share"]).set_index("feature")
    return WindowQuality(stats, [v for check in CHECK_ORDER for v in found[check]], checks)
