"""Compiled model directories in the Foundry cache: find them, read their compile manifest.

``curator compile`` places a model at ``<cache>/<publisher>/<id with ':' as '-'>`` and writes
``curator-manifest.json`` beside it (source, build with every artifact's sha256 and bytes).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.jsonio import read_json

MANIFEST_NAME = "curator-manifest.json"
GENAI_CONFIG = "genai_config.json"
# The model id form Foundry Local and the registry share: <name>:<version>, lower case, where
# <name> ends in the variant (-generic-cpu); the schema's id pattern is the same.
MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]:[1-9][0-9]{0,5}$")
_VERSION_SUFFIX = re.compile(r"^(?P<name>.+)-(?P<version>[1-9][0-9]{0,5})$")


def dir_name_for_id(model_id: str) -> str:
    """``tiny-generic-cpu:1`` -> ``tiny-generic-cpu-1`` (the directory compile creates)."""
    return model_id.replace(":", "-")


def id_from_dir_name(name: str) -> str | None:
    """The inverse of :func:`dir_name_for_id` where the name ends in ``-<version>``."""
    match = _VERSION_SUFFIX.match(name.lower())
    return f"{match['name']}:{match['version']}" if match else None


def inside(path: Path, root: Path, *, strictly: bool = False) -> bool:
    """``path`` is ``root`` or below it, links resolved (``strictly``: below it, not ``root``)."""
    resolved, resolved_root = path.resolve(), root.resolve()
    try:
        resolved.relative_to(resolved_root)
    except ValueError:
        return False
    return not strictly or resolved != resolved_root


def is_model_dir(path: Path) -> bool:
    return (path / GENAI_CONFIG).is_file()


def model_dirs(cache_dir: Path) -> list[Path]:
    """Every directory under the cache (one or two levels down) that holds genai_config.json."""
    if not cache_dir.is_dir():
        return []
    found: list[Path] = []
    for first in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        if first.name.startswith("."):
            continue
        if is_model_dir(first):
            found.append(first)
            continue
        found.extend(
            second
            for second in sorted(p for p in first.iterdir() if p.is_dir())
            if not second.name.startswith(".") and is_model_dir(second)
        )
    return found


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The directory's compile manifest, or None when there is none."""
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    data = read_json(path, "compile manifest")
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: the manifest is not a JSON object", hint="recompile it")
    return data


def manifest_id(manifest: dict[str, Any] | None) -> str | None:
    if not manifest:
        return None
    for key in ("id", "modelId"):
        value = manifest.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def dir_model_id(model_dir: Path, manifest: dict[str, Any] | None = None) -> str | None:
    """The model id of a compiled directory: the manifest's, else from the directory name (also
    when the manifest is unreadable: one broken directory must not hide the others)."""
    if manifest is None:
        try:
            manifest = read_manifest(model_dir)
        except InputFileError:
            manifest = None
    return manifest_id(manifest) or id_from_dir_name(model_dir.name)


def find_model_dir(cache_dir: Path, model_id: str) -> Path | None:
    """The compiled directory of ``model_id`` in the cache, or None."""
    wanted = dir_name_for_id(model_id)
    candidates = model_dirs(cache_dir)
    for path in candidates:
        if path.name == wanted:
            return path
    for path in candidates:
        if dir_model_id(path) == model_id:
            return path
    return None


def artifacts(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The manifest's artifact list (``build.artifacts``: path, sha256, bytes)."""
    if not manifest:
        return []
    build = manifest.get("build")
    listed = build.get("artifacts") if isinstance(build, dict) else manifest.get("artifacts")
    if not isinstance(listed, list):
        return []
    return [a for a in listed if isinstance(a, dict) and isinstance(a.get("path"), str)]


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
