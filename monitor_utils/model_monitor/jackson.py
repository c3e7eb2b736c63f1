"""JSON text as Model Monitor's analyzer writes it (Jackson's pretty printer), and its number conventions."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def json_float(x: float) -> float | str:
    """A float as the analyzer writes it: NaN as the string ``"NaN"``, infinities as ``"Infinity"`` /
    ``"-Infinity"`` (Jackson's quoted non-numeric numbers), other values as floats."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def read_float(value: Any, where: str) -> float:
    """Inverse of :func:`json_float` for a value read from a file (``where`` names it in errors)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise ValueError(f"{where}: expected a number or \"NaN\"/\"Infinity\", got {value!r}")


def java_double(x: float) -> str:
    """Java's ``Double.toString`` text of a finite float (``1.0``, ``0.64``, ``1.0E-5``, ``2.5E7``)."""
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        text = repr(float(x))
        return text if ("." in text or "e" in text) else text + ".0"
    mantissa, exponent = np.format_float_scientific(float(x), unique=True, trim="-").split("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}E{int(exponent)}"


def dumps(obj: Any) -> str:
    """``obj`` in the analyzer's layout: ``"key" : value``, 2-space indent per object level, arrays inline
    (``[ 1.0, 2.0 ]``, ``[ {`` ... ``}, {`` ... ``} ]``), floats as Java prints them, non-finite floats quoted."""
    return _write(obj, 0)


def _write(obj: Any, level: int) -> str:
    if isinstance(obj, dict):
        if not obj:
            return "{ }"
        pad = "  " * (level + 1)
        entries = [f"\n{pad}{json.dumps(str(k), ensure_ascii=False)} : {_write(v, level + 1)}" for k, v in obj.items()]
        return "{" + ",".join(entries) + "\n" + "  " * level + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[ ]"
        if all(type(v) is float and math.isfinite(v) for v in obj):  # a sketch level, written fast
            return "[ " + ", ".join(repr(v) if 1e-3 <= abs(v) < 1e7 else java_double(v) for v in obj) + " ]"
        return "[ " + ", ".join(_write(v, level) for v in obj) + " ]"
    if obj is None:
        return "null"
    if isinstance(obj, (bool, np.bool_)):
        return "true" if obj else "false"
    if isinstance(obj, (int, np.integer)):
        return str(int(obj))
    if isinstance(obj, (float, np.floating)):
        value = json_float(obj)
        return json.dumps(value) if isinstance(value, str) else java_double(value)
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False)
    raise TypeError(f"cannot write {type(obj).__name__} {obj!r} as JSON")
