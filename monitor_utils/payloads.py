"""Request, response and label bodies of SageMaker Data Capture and ground truth, parsed into records."""

from __future__ import annotations

import ast
import base64
import binascii
import json
import math
import re
from typing import Any, Sequence

import numpy as np


class BodyError(ValueError):
    """A captured body that cannot be read whole; the message says why (it becomes a quarantine reason)."""


_CSV_SPLIT = re.compile(r"[,\n]")


def lines(text: str) -> list[str]:
    """The lines of a body: split at ``\n`` only, a trailing ``\r`` stripped (no other character ends a line)."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def decode(side: dict) -> str:
    """The body text of one ``captureData`` side or ``groundTruthData`` (BASE64 decoded; CSV and JSON as stored).

    Raises
    ------
    BodyError
        For an unknown encoding, a ``data`` that is not a string, or BASE64 that is not valid UTF-8 text.
    """
    encoding = side.get("encoding", "CSV")
    data = side.get("data")
    if not isinstance(data, str):
        raise BodyError(f"'data' is {type(data).__name__}, SageMaker stores bodies as strings")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BodyError(f"BASE64 body is not valid base64 of UTF-8 text ({exc})") from None
    if encoding not in ("CSV", "JSON"):
        raise BodyError(f"unknown encoding {encoding!r} (SageMaker writes CSV, JSON or BASE64)")
    return data


def body_kind(side: dict, text: str) -> str:
    """'jsonlines', 'json' or 'csv': from ``observedContentType``, else from the body itself."""
    ctype = (side.get("observedContentType") or "").lower()
    if "jsonl" in ctype or "json-lines" in ctype or "x-ndjson" in ctype:
        return "jsonlines"
    if "json" in ctype:
        return "json"
    if "csv" in ctype:
        return "csv"
    return "json" if text.lstrip()[:1] in ("{", "[") else "csv"


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"{what} is not valid JSON ({exc})") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _row(item: Any, features: Sequence[str], where: str) -> list[float]:
    """One record: a list of numbers, ``{"features": [...]}`` or a mapping of feature names to values."""
    if isinstance(item, dict) and "features" in item:
        item = item["features"]
    if isinstance(item, list):
        if len(item) != len(features):
            raise BodyError(f"{where} has {len(item)} values, the baseline has {len(features)}")
        return item
    if isinstance(item, dict):
        missing = [f for f in features if f not in item]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise BodyError(f"{where} names {len(item)} features and lacks {shown} of the baseline's {len(features)}")
        return [item[f] for f in features]
    raise BodyError(f"{where} is a {type(item).__name__}, not a list of {len(features)} values or a mapping of features")


def _json_records(obj: Any) -> list:
    """The records of a JSON request: ``{"instances": [...]}``, ``{"inputs": [...]}``, ``{"features": [...]}``,
    a mapping of feature names, a list of records, or a bare list of values (one record)."""
    if isinstance(obj, dict):
        for key in ("instances", "inputs"):
            if key in obj:
                inner = obj[key]
                if not isinstance(inner, list):
                    raise BodyError(f"'{key}' is a {type(inner).__name__}, not a list of records")
                return [inner] if inner and all(_is_number(x) or x is None for x in inner) else inner
        return [obj]
    if isinstance(obj, list):
        return [obj] if obj and all(_is_number(x) or x is None for x in obj) else obj
    raise BodyError(f"JSON request is a {type(obj).__name__}, not records")


def _numeric(rows: list[list], where: str, features: Sequence[str]) -> np.ndarray:
    try:
        return np.array(rows, dtype=float).reshape(len(rows), -1)
    except (TypeError, ValueError, OverflowError):
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                try:
                    float(v if v is not None else "nan")
                except OverflowError:
                    raise BodyError(f"{where} record {i} feature {features[j]!r} is {str(v)[:40]}, out of float "
                                    "range") from None
                except (TypeError, ValueError):
                    hint = " (a header row captured as data?)" if isinstance(v, str) and re.search(r"[A-Za-z_]", v) else ""
                    raise BodyError(f"{where} record {i} value {j} (feature {features[j]!r}) is {str(v)[:40]!r}, "
                                    f"not a number{hint}") from None
        raise BodyError(f"{where} records have unequal lengths") from None


_NOT_A_NUMBER = re.compile(r" record \d+ value \d+ \(feature (?P<feature>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\) "
                           r"is .*, not a number")
HEADER_ROW = "a header row captured as data"


def non_numeric_features(reason: str, features: Sequence[str]) -> list[str]:
    """The features a quarantine ``reason`` says held a value that is not a number: the one a ``... (feature 'f') is
    'x', not a number`` reason names, every feature for a header row captured as data (each of its values is text,
    as Model Monitor's analyzer counts it), else none."""
    m = _NOT_A_NUMBER.search(reason)
    if m is not None:
        name = ast.literal_eval(m.group("feature"))
        return [name] if name in features else []
    return list(features) if HEADER_ROW in reason else []


def parse_input(side: dict, features: Sequence[str]) -> np.ndarray:
    """Feature matrix (records x features, baseline order) of one captured request body.

    Reads CSV with one or many rows (trailing newline or not), JSON (``instances`` of lists or of
    ``{"features": [...]}``, ``{"features": [...]}``, bare lists, records of named features), JSON Lines
    (one record per line) and BASE64 of any of these.

    Raises
    ------
    BodyError
        When any record cannot be read, or has another number of values than the baseline.
    """
    text = decode(side)
    kind = body_kind(side, text)
    if kind == "csv":
        single = text.rstrip("\r\n")
        if "\n" not in single:  # the common case: one row, parsed without building a list of lists
            cells = single.split(",")
            if len(cells) == len(features) and cells[0].strip() != features[0]:
                try:
                    return np.array(cells, dtype=float).reshape(1, -1)
                except ValueError:
                    pass  # the general path below names the bad value
        kept = [line for line in lines(text) if line.strip()]
        if not kept:
            raise BodyError("request body is empty")
        rows = [line.split(",") for line in kept]
        for i, row in enumerate(rows):
            if len(row) != len(features):
                raise BodyError(f"CSV row {i} has {len(row)} values, the baseline has {len(features)}")
        if rows[0][0].strip() == features[0] or rows[0][0].strip().strip('"') == features[0]:
            raise BodyError(f"CSV row 0 is {HEADER_ROW} (it names the features)")
        return _numeric(rows, "CSV", features)
    if kind == "jsonlines":
        items = [_load_json(line, f"JSON Lines record {i}") for i, line in enumerate(lines(text)) if line.strip()]
        rows = [_row(item, features, f"JSON Lines record {i}") for i, item in enumerate(items)]
    else:
        records = _json_records(_load_json(text, "request"))
        rows = [_row(item, features, f"JSON record {i}") for i, item in enumerate(records)]
    if not rows:
        raise BodyError("request holds no records")
    return _numeric(rows, "JSON", features)


def _score(item: Any, where: str) -> float:
    if isinstance(item, dict):
        for key in ("score", "predicted_value", "prediction", "predictions"):
            if key in item:
                return _score(item[key], where)
        raise BodyError(f"{where} has no 'score' ({', '.join(list(item)[:5])})")
    if isinstance(item, list) and len(item) == 1:
        return _score(item[0], where)
    if _is_number(item):
        try:
            return float(item)
        except OverflowError:
            raise BodyError(f"{where} is {str(item)[:40]}, out of float range") from None
    raise BodyError(f"{where} is {str(item)[:40]!r}, not a score")


def parse_output(side: dict) -> np.ndarray:
    """Scores (one per record) of one captured response body.

    Reads CSV (scores separated by newlines or commas), JSON (``{"predictions": [{"score": x}, ...]}``,
    ``{"predictions": [x, ...]}``, pretty-printed or not, a bare score or list) and JSON Lines (one
    ``{"score": x, ...}`` per line), and BASE64 of any of these.

    Raises
    ------
    BodyError
        When a score is missing, not a number or not finite.
    """
    text = decode(side)
    kind = body_kind(side, text)
    if kind == "csv":
        stripped = text.strip()
        cells = [stripped] if "," not in stripped and "\n" not in stripped else \
            [c for c in _CSV_SPLIT.split(stripped) if c.strip()]
        try:
            scores = [float(c) for c in cells]
        except ValueError:
            raise BodyError(f"CSV response {text.strip()[:60]!r} is not a list of scores") from None
    elif kind == "jsonlines":
        scores = [_score(_load_json(line, f"JSON Lines response {i}"), f"JSON Lines response {i}")
                  for i, line in enumerate(lines(text)) if line.strip()]
    else:
        obj = _load_json(text, "response")
        if isinstance(obj, dict) and "predictions" in obj:
            obj = obj["predictions"]
        items = obj if isinstance(obj, list) else [obj]
        scores = [_score(item, f"prediction {i}") for i, item in enumerate(items)]
    if not scores:
        raise BodyError("response holds no scores")
    for i, v in enumerate(scores):
        if not math.isfinite(v):
            raise BodyError(f"prediction {i} is {v}, not finite")
    return np.array(scores, dtype=float)


def _label(item: Any, where: str) -> float:
    if isinstance(item, dict):
        if "label" not in item:
            raise BodyError(f"{where} has no 'label'")
        item = item["label"]
    if isinstance(item, str):
        try:
            item = float(item)
        except ValueError:
            raise BodyError(f"{where} is {item[:40]!r}, not a number") from None
    try:
        finite = _is_number(item) and math.isfinite(item)
    except OverflowError:
        finite = False
    if not finite:
        raise BodyError(f"{where} is {str(item)[:40]!r}, not a finite number")
    return float(item)


def parse_labels(gt: dict) -> np.ndarray:
    """Labels of one ground-truth record (one per record of the request it answers, by position).

    ``groundTruthData`` in CSV (one value, or several separated by newlines or commas) or JSON (a bare
    value, ``{"label": y}``, ``{"instances": [{"label": y}, ...]}`` or a list), or BASE64 of either.
    """
    text = decode(gt)
    kind = "json" if gt.get("encoding") == "JSON" else ("json" if text.lstrip()[:1] in "{[" and text.strip() else "csv")
    if kind == "csv":
        items: list = [c for c in _CSV_SPLIT.split(text.strip()) if c.strip()]
    else:
        obj = _load_json(text, "ground truth")
        if isinstance(obj, dict) and "instances" in obj:
            obj = obj["instances"]
        items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise BodyError("ground truth holds no label")
    return np.array([_label(item, f"label {i}") for i, item in enumerate(items)], dtype=float)


# --- writing: the bodies real clients and containers send and SageMaker captures ------------------

FORMATS = ("csv", "csv_batch", "json_instances", "json_features", "json_named", "jsonlines", "base64")
"""Request shapes the simulated endpoint can capture (``world.capture_formats``).

csv: one ``text/csv`` row, score back as ``text/csv; charset=utf-8`` (XGBoost). csv_batch: several rows,
newline-terminated, scores comma-separated. json_instances: ``{"instances": [[...], ...]}``, TF Serving's
pretty-printed ``{"predictions": [x, ...]}``. json_features: ``{"instances": [{"features": [...]}, ...]}``,
``{"predictions": [{"score": x}, ...]}`` (Linear Learner). json_named: a list of records of named
features. jsonlines: ``application/jsonlines`` with encoding JSON, one ``{"features": [...]}`` per line and
one ``{"score": x}`` per output line, newline-terminated. base64: CSV under a content type the capture
config does not list, so SageMaker stores it BASE64.
"""
MULTI_RECORD = frozenset({"csv_batch", "json_instances", "json_features", "json_named", "jsonlines"})


def _side(text: str, content_type: str, encoding: str, mode: str) -> dict:
    data = base64.b64encode(text.encode()).decode() if encoding == "BASE64" else text
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def _csv_rows(rows: np.ndarray) -> list[str]:
    return [",".join(map(repr, r)) for r in rows.tolist()]


def encode_request(fmt: str, rows: np.ndarray, scores: np.ndarray, features: Sequence[str]) -> tuple[dict, dict]:
    """The ``endpointInput`` and ``endpointOutput`` sides SageMaker captures for one request in shape ``fmt``.

    Parameters
    ----------
    fmt : str
        One of :data:`FORMATS`.
    rows : np.ndarray
        Records x features, in ``features`` order.
    scores : np.ndarray
        One prediction per record.
    features : Sequence[str]
        Feature names (used by ``json_named``).
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    scores = [round(float(s), 4) for s in np.atleast_1d(scores)]
    if fmt not in FORMATS:
        raise ValueError(f"unknown capture format {fmt!r}; formats are {', '.join(FORMATS)}")
    if fmt in ("csv", "base64"):
        enc, ctype = ("CSV", "text/csv") if fmt == "csv" else ("BASE64", "text/csv; charset=utf-8")
        body = "\n".join(_csv_rows(rows))
        return (_side(body, ctype, enc, "INPUT"),
                _side(",".join(f"{s:.4f}" for s in scores), "text/csv; charset=utf-8", enc, "OUTPUT"))
    if fmt == "csv_batch":
        return (_side("".join(r + "\n" for r in _csv_rows(rows)), "text/csv", "CSV", "INPUT"),
                _side(",".join(f"{s:.4f}" for s in scores), "text/csv; charset=utf-8", "CSV", "OUTPUT"))
    if fmt == "json_instances":
        return (_side(json.dumps({"instances": rows.tolist()}), "application/json", "JSON", "INPUT"),
                _side(json.dumps({"predictions": scores}, indent=4), "application/json", "JSON", "OUTPUT"))
    if fmt == "json_features":
        return (_side(json.dumps({"instances": [{"features": r} for r in rows.tolist()]}), "application/json", "JSON", "INPUT"),
                _side(json.dumps({"predictions": [{"score": s} for s in scores]}), "application/json", "JSON", "OUTPUT"))
    if fmt == "json_named":
        records = [dict(zip(features, r)) for r in rows.tolist()]
        return (_side(json.dumps(records), "application/json", "JSON", "INPUT"),
                _side(json.dumps({"predictions": [{"score": s} for s in scores]}), "application/json", "JSON", "OUTPUT"))
    # jsonlines
    return (_side("\n".join(json.dumps({"features": r}, separators=(",", ":")) for r in rows.tolist()),
                  "application/jsonlines", "JSON", "INPUT"),
            _side("".join(json.dumps({"score": s}, separators=(",", ":")) + "\n" for s in scores),
                  "application/jsonlines", "JSON", "OUTPUT"))


def encode_labels(labels: Sequence[float]) -> dict:
    """``groundTruthData`` for one request: a CSV value for one record, JSON ``instances`` mirroring a batch."""
    values = [float(y) for y in labels]
    if len(values) == 1:
        y = values[0]
        return {"data": str(int(y)) if y.is_integer() else repr(y), "encoding": "CSV"}
    return {"data": json.dumps({"instances": [{"label": int(y) if y.is_integer() else y} for y in values]}),
            "encoding": "JSON"}
