"""AWS API requests checked against botocore's service models: its validation plus the lengths and patterns it skips."""

from __future__ import annotations

import re
from typing import Any


class RequestError(ValueError):
    """A generated request breaks the API's model (what the SDK or the service would reject)."""


def validate_request(service: str, operation: str, request: dict) -> None:
    """Check ``request`` with botocore's own validation against the service model, plus the model's ``max`` length
    and ``pattern`` of every string and list, which botocore leaves to the service.

    Raises
    ------
    RequestError
        Naming every problem found.
    """
    from botocore.validate import ParamValidator

    from .aws import service_model

    shape = service_model(service).operation_model(operation).input_shape
    problems = []
    report = ParamValidator().validate(request, shape)
    if report.has_errors():
        problems.append(report.generate_report())

    def walk(value: Any, shape, where: str) -> None:
        meta = shape.metadata
        if shape.type_name == "structure" and isinstance(value, dict):
            for k, v in value.items():
                if k in shape.members:
                    walk(v, shape.members[k], f"{where}.{k}")
        elif shape.type_name == "list" and isinstance(value, list):
            if "max" in meta and len(value) > meta["max"]:
                problems.append(f"{where}: {len(value)} items, at most {meta['max']}")
            for i, v in enumerate(value):
                walk(v, shape.member, f"{where}[{i}]")
        elif shape.type_name == "map" and isinstance(value, dict):
            if "max" in meta and len(value) > meta["max"]:
                problems.append(f"{where}: {len(value)} entries, at most {meta['max']}")
            for k, v in value.items():
                walk(k, shape.key, f"{where} key {k!r}")
                walk(v, shape.value, f"{where}[{k!r}]")
        elif shape.type_name == "string" and isinstance(value, str):
            if "max" in meta and len(value) > meta["max"]:
                problems.append(f"{where}: {len(value)} characters, at most {meta['max']}")
            if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
                problems.append(f"{where}: {value!r} does not match {meta['pattern']!r}")
        elif shape.type_name in ("integer", "long") and isinstance(value, int):
            if "max" in meta and value > meta["max"]:
                problems.append(f"{where}: {value}, at most {meta['max']}")

    walk(request, shape, operation)
    if problems:
        raise RequestError(f"{service} {operation} request is invalid: " + "; ".join(problems))
