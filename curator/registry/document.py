"""Reading a registry document from a file or a git revision, and canonical ordering."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError, NotFound, RegistryError, RegistryInvalid
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
    """The file ``path`` (a path on disk, through symlinks and ``..``) as committed at ``revision``;
    None only when git says the revision has no such file. Any other failure is an error: a
    base that cannot be read must never pass for an empty one (the change would then be judged
    by its own policy)."""
    directory = path.absolute().parent
    _git(
        ["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        directory if directory.is_dir() else Path.cwd(),
        what=f"unknown git revision {revision!r}",
    )
    if not directory.is_dir():
        raise RegistryError(
            f"cannot read {path} at {revision}: directory {directory} does not exist",
            hint="run inside the repository's checkout or pass --registry",
        )
    # Resolved, so that a symlinked checkout or a ../ path names the file inside the repository.
    directory = directory.resolve()
    top = Path(_git(["rev-parse", "--show-toplevel"], directory).strip()).resolve()
    if not directory.is_relative_to(top):
        raise RegistryError(
            f"{path} is outside the git repository {top}", hint="pass a path inside the checkout"
        )
    relative = (directory.relative_to(top) / path.name).as_posix()
    listed = _git(["ls-tree", "-z", "--name-only", "--full-tree", revision, "--", relative], top)
    if relative not in listed.split("\0"):
        return None
    return _git(["show", f"{revision}:{relative}"], top)


def _git(args: list[str], cwd: Path, what: str | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise RegistryError("git is not installed", hint="install git or pass file paths") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace").strip()
        message = what or (stderr.splitlines() or ["git failed"])[-1]
        raise RegistryError(message, hint="run inside the repository, e.g. git fetch origin main")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"git {args[0]} gave text that is not UTF-8: {exc}", hint="check the file"
        ) from None


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


def require_model(document: Document, model_id: str, path: Path) -> Entry:
    """The entry ``model_id`` of the registry at ``path``; NotFound (naming the command that lists
    the ids) when there is none."""
    entry = find_model(document, model_id)
    if entry is None:
        raise NotFound(
            f"no model {model_id!r} in {path}",
            hint=f"`curator registry list --registry {path}` shows the ids",
        )
    return entry


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
            model["benchmarks"] = sorted(model["benchmarks"], key=lambda b: _field_key(b, "date"))
        build = model.get("build")
        if isinstance(build, dict) and isinstance(build.get("artifacts"), list):
            model["build"] = {
                **build,
                "artifacts": sorted(build["artifacts"], key=lambda a: _field_key(a, "path")),
            }
    # Entries that are not objects stay (validation reports them), after the real ones.
    return {**document, "models": sorted(models, key=_sort_key)}


def _field_key(record: Any, field: str) -> tuple[int, str]:
    """Records by ``field``; anything that is not an object (validation reports it) after them."""
    if isinstance(record, dict):
        return (0, str(record.get(field, "")))
    return (1, json.dumps(record, sort_keys=True))


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
