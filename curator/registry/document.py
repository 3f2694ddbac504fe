"""Reading a registry document from a file or a git revision, and canonical ordering."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError, RegistryError, RegistryInvalid
from curator.jsonio import parse_json, read_json

SCHEMA_VERSION = 1
DEFAULT_POLICY: dict[str, Any] = {
    "allowedLicenses": ["apache-2.0", "bsd-3-clause", "mit"],
    "maxRegressionPct": 10,
}

Document = dict[str, Any]
Entry = dict[str, Any]


def empty_document() -> Document:
    return {
        "$schema": "../schemas/models.schema.json",
        "schemaVersion": SCHEMA_VERSION,
        "policy": {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_POLICY.items()},
        "models": [],
    }


def load_registry(path: Path) -> Document:
    """The registry at ``path``; a missing file is an empty registry with the default policy."""
    if not path.exists():
        return empty_document()
    data = read_json(path, "registry")
    return _require_object(data, str(path))


@dataclass(frozen=True)
class GitSource:
    """``git:REV`` or ``git:REV:PATH``: a registry as committed at a revision."""

    revision: str
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> GitSource | None:
        if not text.startswith("git:"):
            return None
        revision, _, path = text[4:].partition(":")
        if not revision:
            raise InputFileError(
                f"no revision in {text!r}", hint="write git:REV, e.g. git:origin/main"
            )
        return cls(revision, path or None)


@dataclass(frozen=True)
class RegistrySource:
    document: Document
    label: str
    exists: bool  # False: the revision has no such file (it is being added), an empty registry


def load_registry_source(spec: str, default_path: Path) -> RegistrySource:
    """A registry from a path or ``git:REV[:PATH]``, with a label naming where it came from."""
    git = GitSource.parse(spec)
    if git is None:
        path = Path(spec)
        if not path.exists():
            raise InputFileError(
                f"registry not found: {path}", hint="check the path or use git:REV"
            )
        return RegistrySource(load_registry(path), str(path), True)
    path = Path(git.path) if git.path else default_path
    text = _git_show(git.revision, path)
    label = f"{git.revision}:{path}"
    if text is None:
        return RegistrySource(empty_document(), label, False)
    return RegistrySource(_require_object(parse_json(text, label, "registry"), label), label, True)


def _git_show(revision: str, path: Path) -> str | None:
    absolute = path.absolute()
    workdir = absolute.parent if absolute.parent.exists() else Path.cwd()
    top = _git(["rev-parse", "--show-toplevel"], workdir).strip()
    relative = (
        absolute.relative_to(Path(top).resolve())
        if absolute.is_relative_to(Path(top).resolve())
        else Path(path)
    )
    _git(
        ["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        workdir,
        what=f"unknown git revision {revision!r}",
    )
    try:
        return _git(["show", f"{revision}:{relative.as_posix()}"], workdir)
    except RegistryError:
        return None


def _git(args: list[str], cwd: Path, what: str | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RegistryError("git is not installed", hint="install git or pass file paths") from None
    if done.returncode != 0:
        message = what or (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise RegistryError(message, hint="run inside the repository, e.g. git fetch origin main")
    return done.stdout


def _require_object(data: Any, origin: str) -> Document:
    if not isinstance(data, dict):
        raise InputFileError(
            f"{origin}: the registry must be a JSON object",
            hint="start from registry/models.json in the repository",
        )
    return data


def models_of(document: Document) -> list[Entry]:
    """The entries, or RegistryInvalid when ``models`` is not a list of objects."""
    models = document.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise RegistryInvalid(
            "the registry's models are not a list of objects",
            (),
            hint="`curator registry validate` names the broken entries",
        )
    return models


def find_model(document: Document, model_id: str) -> Entry | None:
    for entry in models_of(document):
        if entry.get("id") == model_id:
            return entry
    return None


def canonical(document: Document) -> Document:
    """Order that carries no meaning made stable: models by id, benchmarks by date, artifacts by path.

    Keys are sorted when written (jsonio.dumps_stable with sort_keys), so diffs show only changes.
    """
    raw = document.get("models", [])
    if not isinstance(raw, list):
        return document
    models = [dict(m) if isinstance(m, dict) else m for m in raw]
    for model in models:
        if not isinstance(model, dict):
            continue
        if isinstance(model.get("benchmarks"), list):
            model["benchmarks"] = sorted(model["benchmarks"], key=lambda b: str(b.get("date", "")))
        build = model.get("build")
        if isinstance(build, dict) and isinstance(build.get("artifacts"), list):
            model["build"] = {
                **build,
                "artifacts": sorted(build["artifacts"], key=lambda a: str(a.get("path", ""))),
            }
    # Entries that are not objects stay (validation reports them), after the real ones.
    return {**document, "models": sorted(models, key=_sort_key)}


def _sort_key(model: Any) -> tuple[int, str]:
    if isinstance(model, dict):
        return (0, str(model.get("id", "")))
    return (1, json.dumps(model, sort_keys=True))


def merged(base: Entry, change: Entry) -> Entry:
    """``change`` laid over ``base``: objects merge key by key, anything else is replaced."""
    result = dict(base)
    for key, value in change.items():
        old = result.get(key)
        result[key] = (
            merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return result
