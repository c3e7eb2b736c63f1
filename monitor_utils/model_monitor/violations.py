"""Model Monitor's data-quality ``constraint_violations.json``: its records, written and read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from .jackson import java_double

#: ``constraint_check_type`` values of data-quality violations (the analyzer's docs).
CHECK_TYPES = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
               "extra_column_check", "categorical_values_check")


@dataclass(frozen=True)
class Violation:
    """One entry of ``{"violations": [...]}``."""

    feature_name: str
    constraint_check_type: str
    description: str


def violations_document(violations: Iterable[Violation]) -> dict:
    """``{"violations": [{feature_name, constraint_check_type, description}, ...]}``."""
    return {"violations": [asdict(v) for v in violations]}


def read_violations(doc: Any, where: str = "constraint_violations.json") -> list[Violation]:
    """The violations of a parsed ``constraint_violations.json``; ``where`` names the file in errors."""
    if not isinstance(doc, dict) or not isinstance(doc.get("violations"), list):
        raise ValueError(f"{where}: expected an object with a 'violations' list")
    out = []
    for i, v in enumerate(doc["violations"]):
        try:
            out.append(Violation(str(v["feature_name"]), str(v["constraint_check_type"]), str(v.get("description", ""))))
        except (KeyError, TypeError):
            raise ValueError(f"{where}: violations[{i}] needs feature_name and constraint_check_type") from None
    return out


def baseline_drift_description(distance: float, threshold: float) -> str:
    """The drift violation's description in the analyzer's wording (as quoted by AWS users; no analyzer-written
    drift violation file is public): ``Numerical distance: 0.27 exceeds numerical threshold: 0.1``."""
    return f"Numerical distance: {java_double(distance)} exceeds numerical threshold: {java_double(threshold)}"
