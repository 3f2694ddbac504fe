"""Edits to the registry file: under a file lock, validated before writing, written atomically."""

from __future__ import annotations

import contextlib
import copy
import glob
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from curator.errors import RegistryError, RegistryInvalid
from curator.jsonio import require_regular_file, write_json_atomic
from curator.registry.document import (
    Document,
    Entry,
    canonical,
    find_model,
    load_registry,
    require_model,
)
from curator.registry.rules import validate_document
from curator.schemas import Problem

T = TypeVar("T")
LOCK_TIMEOUT_S = 60.0


def lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


def real_path(path: Path) -> Path:
    """The file a registry path names, through any symlinks: edits go to (and lock) the real file
    instead of replacing the link with a regular file."""
    return Path(os.path.realpath(path))


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete the temp files of writers killed mid-write (jsonio.write_text_atomic names them
    ``.<name>.<random>.tmp``). Only call this holding the registry's lock: every writer holds it
    while its temp file exists, so any such file then belongs to a writer that died."""
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


def edit_registry(path: Path, mutate: Callable[[Document], T]) -> T:
    """Load, apply ``mutate`` to a copy, validate, write: all under the registry's lock.

    An edit that introduces a problem is refused and the file is left as it was. Problems the file
    already had before the edit do not block it (so a broken registry can be repaired edit by edit).
    """
    from filelock import FileLock

    path = real_path(path)
    if os.path.lexists(path):  # a FIFO, directory or device is refused before the lock is taken
        require_regular_file(path, "registry")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(path)), timeout=LOCK_TIMEOUT_S):
        remove_stale_temp_files(path)
        before = load_registry(path)
        after = copy.deepcopy(before)
        result = mutate(after)
        after = canonical(after)
        # Both sides in canonical order, so that a problem the file already had (a null benchmark
        # run, say) is not taken for a new one because sorting moved it to another index.
        before = canonical(before)
        introduced = _keyed(after, validate_document(after).problems) - _keyed(
            before, validate_document(before).problems
        )
        if introduced:
            problems = tuple(
                sorted(f"models[id={key}]{p}" if key else str(p) for key, p in introduced)
            )
            raise RegistryInvalid(
                f"edit refused: it would leave {path} invalid ({len(problems)} problem(s))",
                problems,
                hint="fix the entry and retry; `curator registry validate` shows the rules",
            )
        write_json_atomic(path, after, sort_keys=True, strict=True)
        return result


def _keyed(document: Document, problems: tuple[Problem, ...]) -> set[tuple[str, Problem]]:
    """Problems keyed by model id rather than list index, so re-sorting does not make them 'new'."""
    models = document.get("models", []) if isinstance(document, dict) else []
    keyed = set()
    for problem in problems:
        key = ""
        if problem.path.startswith("models["):
            index = int(problem.path[7 : problem.path.index("]")])
            entry = models[index] if index < len(models) else None
            key = str(entry.get("id")) if isinstance(entry, dict) else _value_key(entry)
            tail = problem.path[problem.path.index("]") + 1 :]
            problem = Problem(tail, problem.rule, _strip_indices(problem.message))
        keyed.add((key, problem))
    return keyed


def _value_key(entry: Any) -> str:
    """A non-object entry is known by its value: its index moves when an edit sorts the models."""
    return f"<{type(entry).__name__} {json.dumps(entry, sort_keys=True)[:40]}>"


def _strip_indices(message: str) -> str:
    return re.sub(r"models\[\d+\]", "models[…]", message)


def upsert_model(path: Path, entry: Entry) -> Literal["added", "updated"]:
    """Add ``entry``, or replace the entry with the same id."""

    def mutate(document: Document) -> Literal["added", "updated"]:
        models = document.setdefault("models", [])
        for i, existing in enumerate(models):
            if isinstance(existing, dict) and existing.get("id") == entry.get("id"):
                models[i] = entry
                return "updated"
        models.append(entry)
        return "added"

    return edit_registry(path, mutate)


def add_model(path: Path, entry: Entry) -> None:
    """Add ``entry``; RegistryError (exit 1: the command was well formed, the registry refused it)
    when its id is taken, checked under the lock, so two writers adding one id cannot both succeed."""

    def mutate(document: Document) -> None:
        if find_model(document, str(entry.get("id"))) is not None:
            raise RegistryError(
                f"{entry.get('id')!r} is already in {path}",
                hint=f"use `curator registry update {entry.get('id')}`",
            )
        document.setdefault("models", []).append(entry)

    edit_registry(path, mutate)


def update_model(path: Path, model_id: str, change: Callable[[Entry], None]) -> Entry:
    """Apply ``change`` to the entry ``model_id`` in place; NotFound when there is none."""

    def mutate(document: Document) -> Entry:
        entry = require_model(document, model_id, path)
        change(entry)
        return entry

    return edit_registry(path, mutate)


def remove_model(path: Path, model_id: str) -> Entry:
    def mutate(document: Document) -> Entry:
        entry = require_model(document, model_id, path)
        document["models"].remove(entry)
        return entry

    return edit_registry(path, mutate)
