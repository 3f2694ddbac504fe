"""JSON Schema checks against the files in schemas/, with problems named by JSON path."""

from __future__ import annotations

import json
import re
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
    import jsonschema_rs

    return jsonschema_rs.validator_for(load_schema(name), validate_formats=True)


def schema_problems(instance: Any, name: str, root: str = "") -> list[Problem]:
    """Every violation of ``schemas/<name>.schema.json``, in document order.

    jsonschema-rs (Rust) checks a 10,000-entry registry in about 0.1 s, where the pure-Python
    jsonschema took 4-5 s on this machine.
    """
    validator = _validator(name)
    try:
        if validator.is_valid(instance):
            return []
        errors = sorted(
            validator.iter_errors(instance), key=lambda e: list(map(str, e.instance_path))
        )
    except ValueError as exc:  # jsonschema-rs: "Recursion limit reached" and the like
        return [Problem(root or "$", "schema.unreadable", elide(str(exc)))]
    return [
        Problem(
            json_path(error.instance_path, root), f"schema.{_rule(error)}", elide(error.message)
        )
        for error in errors
    ]


MESSAGE_LIMIT = 300
# Control, bidirectional and invisible formatting characters (what the schema's "line" excludes):
# refused in paths by the rules, shown as ⟨U+XXXX⟩ by the review, never obeyed.
CONTROL_CHARACTERS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def elide(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` shortened in the middle to at most about ``limit`` characters.

    The middle goes because both ends carry meaning: a schema message starts with the offending
    value and ends with the reason (``"xxx…" is longer than 2000 characters``)."""
    if len(text) <= limit:
        return text
    keep_end = limit // 2
    keep_start = limit - keep_end - 30
    cut = len(text) - keep_start - keep_end
    return f"{text[:keep_start]}… ({cut:,} characters elided) …{text[-keep_end:]}"


def _rule(error: Any) -> str:
    kind = type(error.kind).__name__
    return kind[0].lower() + kind[1:]
