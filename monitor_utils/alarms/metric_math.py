"""CloudWatch metric math: a parser and evaluator for the expressions alarms use, and an alarm's watched series."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import ExpressionError, spec_error


_STRING_RE = re.compile(r'"[^"]*"|\'[^\']*\'')
_IDENT_RE = re.compile(r"(?<![\w.])[a-z][A-Za-z0-9_]*")
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/^(),<>]))"
)
_FUNCTIONS = ("IF", "FILL", "ABS", "CEIL", "FLOOR")
_FILL_KEYWORDS = ("REPEAT", "LINEAR")

_TS = list  # list[float | None]: one value per period
Value = Any  # float (scalar) | _TS | str (FILL keyword)


def evaluate_expression(expression: str, series: dict[str, list[float | None]]) -> list[float | None]:
    """Evaluate a CloudWatch metric math expression over aligned series.

    Supports numbers, Ids, ``+ - * / ^``, unary minus, parentheses, comparisons (``== != < > <= >=``),
    ``AND``/``&&``/``OR``/``||``, ``IF(cond, a[, b])``, ``FILL(ts, value | ts | REPEAT | LINEAR)``, ``ABS``,
    ``CEIL`` and ``FLOOR``, with the documented missing-value rules: between two series a value missing on
    one side is 0 (both missing stays missing); a missing value against a scalar stays missing; a division
    by zero drops the point; IF drops a point whose condition is missing, gives 0 for TRUE with no trueValue
    point, and drops FALSE points when falseValue is omitted.

    Parameters
    ----------
    expression
        The expression, e.g. ``"IF(inv > 0, (FILL(m4xx, 0) + FILL(m5xx, 0)) / inv, 0)"``.
    series
        Values per Id, all the same length (one per period); ``None`` or NaN is missing.

    Returns
    -------
    list[float | None]
        One value per period, ``None`` where the result has no point.
    """
    return _Parser(expression, series).parse()


def alarm_datapoints(alarm: Mapping[str, Any], fetch: Callable[[dict], Sequence[float | None]]) -> list[float | None]:
    """Compute the series an alarm watches from fetched metric data.

    Parameters
    ----------
    alarm
        Single-metric or metric-math alarm spec.
    fetch
        Called with a MetricStat dict (``{"Metric": {...}, "Period": ..., "Stat": ...}``) and returning that
        metric's values, one per period (``None`` for missing).

    Returns
    -------
    list[float | None]
        The single metric's values, or the ReturnData query's result for metric math.
    """
    if "Metrics" not in alarm:
        metric = {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions") if k in alarm}
        stat = alarm.get("Statistic", alarm.get("ExtendedStatistic"))
        return list(fetch({"Metric": metric, "Period": alarm["Period"], "Stat": stat}))
    values: dict[str, list[float | None]] = {
        q["Id"]: list(fetch(q["MetricStat"])) for q in alarm["Metrics"] if "MetricStat" in q
    }
    pending = [q for q in alarm["Metrics"] if "Expression" in q]
    while pending:
        ready = [q for q in pending if set(referenced_ids(q["Expression"])) <= set(values)]
        if not ready:
            raise spec_error(
                alarm,
                "Metrics",
                f"expressions {', '.join(q['Id'] for q in pending)} depend on each other or on undefined Ids",
                "remove the cycle",
            )
        for q in ready:
            values[q["Id"]] = evaluate_expression(q["Expression"], values)
        pending = [q for q in pending if q not in ready]
    (returned,) = [q["Id"] for q in alarm["Metrics"] if q.get("ReturnData", True)]
    return values[returned]


def referenced_ids(expression: str) -> list[str]:
    """Lowercase-initial identifiers of a metric math expression (functions are uppercase; strings are skipped)."""
    return _IDENT_RE.findall(_STRING_RE.sub(" ", expression))


def is_missing(value: Any) -> bool:
    """Whether a datapoint is missing: ``None`` or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    expression = expression.rstrip()
    while pos < len(expression):
        match = _TOKEN_RE.match(expression, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"unexpected character {expression[pos:].lstrip()[:1]!r} at {pos} in {expression!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _arith(op: str, x: float, y: float) -> float | None:
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return None if y == 0 else x / y  # CloudWatch drops a point that divides by zero
        if op == "^":
            result = x**y
            return None if isinstance(result, complex) else float(result)
    except (OverflowError, ZeroDivisionError):
        return None
    if op in ("AND", "&&"):
        return float(bool(x) and bool(y))
    if op in ("OR", "||"):
        return float(bool(x) or bool(y))
    return float({"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op])


def _binary(op: str, a: Value, b: Value) -> Value:
    """Apply a binary operator with CloudWatch's missing-value rules."""
    if isinstance(a, str) or isinstance(b, str):
        raise ExpressionError(f"{a if isinstance(a, str) else b} is only valid as the second argument of FILL")
    if not isinstance(a, list) and not isinstance(b, list):
        result = _arith(op, a, b)
        if result is None:
            raise ExpressionError(f"scalar operation {a} {op} {b} is undefined")
        return result
    if isinstance(a, list) and isinstance(b, list):
        # Between two series a value missing on one side only is treated as 0 (arithmetic and comparisons).
        return [
            None if x is None and y is None else _arith(op, 0.0 if x is None else x, 0.0 if y is None else y)
            for x, y in zip(a, b)
        ]
    if isinstance(a, list):
        return [None if x is None else _arith(op, x, b) for x in a]
    return [None if y is None else _arith(op, a, y) for y in b]


def _if(cond: Value, when_true: Value, when_false: Value | None, n: int) -> _TS:
    """IF(condition, trueValue[, falseValue]) as in "Using IF expressions"."""
    if not isinstance(cond, list):
        chosen = when_true if cond else when_false
        if chosen is None:
            return [None] * n
        return list(chosen) if isinstance(chosen, list) else [float(chosen)] * n
    out: _TS = []
    for i, c in enumerate(cond):
        if c is None:
            out.append(None)  # no condition point: dropped
        elif c:
            v = when_true[i] if isinstance(when_true, list) else when_true
            out.append(0.0 if v is None else v)  # TRUE with no trueValue point: 0
        elif when_false is None:
            out.append(None)  # FALSE with falseValue omitted: dropped
        else:
            out.append(when_false[i] if isinstance(when_false, list) else when_false)
    return out


def _fill(series: Value, filler: Value) -> _TS:
    """FILL(ts, S | TS | REPEAT | LINEAR)."""
    if not isinstance(series, list):
        raise ExpressionError("FILL needs a time series as its first argument")
    if filler == "REPEAT":
        out, last = [], None
        for v in series:
            last = v if v is not None else last
            out.append(last)
        return out
    if filler == "LINEAR":
        known = [i for i, v in enumerate(series) if v is not None]
        out = list(series)
        for lo, hi in zip(known, known[1:]):
            for i in range(lo + 1, hi):
                out[i] = series[lo] + (series[hi] - series[lo]) * (i - lo) / (hi - lo)
        return out
    if isinstance(filler, list):
        return [f if v is None else v for v, f in zip(series, filler)]
    return [float(filler) if v is None else v for v in series]


def _unary_fn(name: str, x: Value) -> Value:
    fn = {"ABS": abs, "CEIL": math.ceil, "FLOOR": math.floor}[name]
    if isinstance(x, list):
        return [None if v is None else float(fn(v)) for v in x]
    return float(fn(x))


class _Parser:
    """Recursive-descent evaluator for the metric math subset used by alarms."""

    def __init__(self, expression: str, series: Mapping[str, Sequence[float | None]]):
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.pos = 0
        self.series = {k: [None if is_missing(v) else float(v) for v in vals] for k, vals in series.items()}
        lengths = {len(v) for v in self.series.values()}
        if len(lengths) > 1:
            raise ExpressionError(f"series have different lengths {sorted(lengths)}; align them on the same periods")
        self.n = lengths.pop() if lengths else 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExpressionError(
                f"unexpected end of {self.expression!r}" + (f"; expected {expected!r}" if expected else "")
            )
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r} but found {token[1]!r} in {self.expression!r}")
        self.pos += 1
        return token

    def parse(self) -> _TS:
        value = self.logical()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.peek()!r} in {self.expression!r}")
        if not isinstance(value, list):
            raise ExpressionError(
                f"{self.expression!r} evaluates to a scalar; an alarm expression must give a time series"
            )
        return value

    def _left_assoc(self, sub: Callable[[], Value], ops: tuple[str, ...]) -> Value:
        value = sub()
        while self.peek() in ops:
            op = self.take()[1]
            value = _binary(op, value, sub())
        return value

    def logical(self) -> Value:
        value = self._left_assoc(self.comparison, ("AND", "&&"))
        while self.peek() in ("OR", "||"):
            op = self.take()[1]
            value = _binary(op, value, self._left_assoc(self.comparison, ("AND", "&&")))
        return value

    def comparison(self) -> Value:
        return self._left_assoc(self.additive, ("==", "!=", "<=", ">=", "<", ">"))

    def additive(self) -> Value:
        return self._left_assoc(self.multiplicative, ("+", "-"))

    def multiplicative(self) -> Value:
        return self._left_assoc(self.unary, ("*", "/"))

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _binary("*", -1.0, self.unary())
        return self.power()

    def power(self) -> Value:
        base = self.primary()
        if self.peek() == "^":
            self.take()
            return _binary("^", base, self.unary())
        return base

    def primary(self) -> Value:
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if text == "(":
            value = self.logical()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.expression!r}")
        if self.peek() == "(":
            return self.call(text)
        if text in _FILL_KEYWORDS:
            return text
        if text not in self.series:
            raise ExpressionError(
                f"unknown Id {text!r} in {self.expression!r}; defined: {', '.join(self.series) or '(none)'}"
            )
        return list(self.series[text])

    def call(self, name: str) -> Value:
        if name not in _FUNCTIONS:
            raise ExpressionError(f"function {name}() is not supported here; supported: {', '.join(_FUNCTIONS)}")
        self.take("(")
        args = [self.logical()]
        while self.peek() == ",":
            self.take()
            args.append(self.logical())
        self.take(")")
        if name == "IF":
            if len(args) not in (2, 3):
                raise ExpressionError("IF takes (condition, trueValue[, falseValue])")
            return _if(args[0], args[1], args[2] if len(args) == 3 else None, self.n)
        if name == "FILL":
            if len(args) != 2:
                raise ExpressionError("FILL takes (series, value | series | REPEAT | LINEAR)")
            return _fill(args[0], args[1])
        if len(args) != 1:
            raise ExpressionError(f"{name} takes one argument")
        return _unary_fn(name, args[0])
