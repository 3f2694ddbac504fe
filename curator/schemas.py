"""JSON Schema checks against the files in schemas/, with problems named by JSON path."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from curator.resources import schema_path


@dataclass(frozen=True)
class Problem:
    """One violation: where (``models[3].minRamGb``), which rule, and what is wrong."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


def json_path(parts: Iterable[str | int], root: str = "") -> str:
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "$"


@cache
def load_schema(name: str) -> dict[str, Any]:
    with schema_path(name).open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_problems(instance: Any, name: str, root: str = "") -> list[Problem]:
    """Every violation of ``schemas/<name>.schema.json``, in document order."""
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [
        Problem(json_path(error.absolute_path, root), f"schema.{error.validator}", error.message)
        for error in errors
    ]
