"""``search_local``: models already on this machine, in the Hugging Face cache and the Foundry cache.

No network: the HF cache is read with huggingface_hub's cache scanner, parameter counts come from
the safetensors headers on disk, compiled models are the Foundry cache's genai_config.json folders.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.formats.safetensors import read_safetensors_header
from curator.hub.endpoint import hf_cache_dir
from curator.hub.models import LocalModel
from curator.paths import foundry_cache_dir

FOUNDRY_DEPTH = 4


def search_local(
    query: str | None, *, foundry_cache: Path | None = None, hf_cache: Path | None = None
) -> tuple[LocalModel, ...]:
    """Local models whose name contains ``query`` (case-insensitive; all if empty), HF cache first."""
    needle = (query or "").lower()
    found = [m for m in hf_cache_models(hf_cache) if needle in m.name.lower()]
    found += [m for m in foundry_models(foundry_cache) if needle in m.name.lower()]
    return tuple(found)


def hf_cache_models(cache: Path | None = None) -> list[LocalModel]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    directory = cache if cache is not None else hf_cache_dir()
    try:
        info = scan_cache_dir(directory)
    except CacheNotFound:
        return []
    models = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        newest = revisions[0].snapshot_path if revisions else None
        config = read_json_object(newest / "config.json") if newest else {}
        models.append(
            LocalModel(
                source="hf-cache",
                name=repo.repo_id,
                path=repo.repo_path,
                size_bytes=repo.size_on_disk,
                revisions=tuple(r.commit_hash for r in revisions),
                architecture=_architecture(config),
                parameters=local_parameter_count(newest) if newest else None,
                last_modified=_iso(repo.last_modified),
            )
        )
    return models


def foundry_models(cache: Path | None = None) -> list[LocalModel]:
    """Folders under the Foundry cache holding a genai_config.json (compiled models), named by
    their model id (the compile manifest's, else from the folder name; issue 25), with the
    parameter count the manifest records."""
    from curator.cache.modeldir import (  # start-up: kept off curator search
        dir_model_id,
        read_manifest,
    )

    root = foundry_cache_dir(cache)
    if not root.is_dir():
        return []
    models = []
    for config_path in sorted(_genai_configs(root, FOUNDRY_DEPTH)):
        folder = config_path.parent
        files = [p for p in folder.rglob("*") if p.is_file()]
        config = read_json_object(folder / "config.json")
        genai = read_json_object(config_path)
        model_section = genai.get("model")
        genai_type = model_section.get("type") if isinstance(model_section, dict) else None
        try:
            manifest = read_manifest(folder) or {}
        except InputFileError:  # one unreadable manifest must not hide the other models
            manifest = {}
        recorded = manifest.get("source")
        recorded = recorded if isinstance(recorded, dict) else {}
        count = recorded.get("parameters")
        architecture = recorded.get("architecture")
        models.append(
            LocalModel(
                source="foundry",
                name=dir_model_id(folder, manifest or None) or folder.relative_to(root).as_posix(),
                path=folder,
                size_bytes=sum(p.stat().st_size for p in files),
                revisions=(),
                architecture=(
                    _architecture(config)
                    or (architecture if isinstance(architecture, str) else None)
                    or (str(genai_type) if genai_type else None)
                ),
                parameters=count
                if isinstance(count, int) and not isinstance(count, bool)
                else None,
                last_modified=_iso(max((p.stat().st_mtime for p in files), default=0.0)),
            )
        )
    return models


def local_parameter_count(folder: Path) -> int | None:
    """Parameters in the top-level safetensors files of ``folder``, from their headers only."""
    total = 0
    seen = False
    for path in sorted(folder.glob("*.safetensors")):
        count = safetensors_file_parameters(path)
        if count is None:
            return None
        total += count
        seen = True
    return total if seen else None


def safetensors_file_parameters(path: Path) -> int | None:
    """Sum of the element counts in one safetensors header; None if the header is unreadable or
    does not match the file (curator.formats.safetensors checks it)."""
    try:
        return read_safetensors_header(path).parameters
    except InputFileError:
        return None


def _genai_configs(root: Path, depth: int) -> list[Path]:
    found = []
    frontier = [root]
    for _ in range(depth):
        next_level = []
        for folder in frontier:
            if (folder / "genai_config.json").is_file():
                found.append(folder / "genai_config.json")
                continue
            try:
                next_level += [p for p in folder.iterdir() if p.is_dir()]
            except OSError:
                continue
        frontier = next_level
    return found


def _architecture(config: dict[str, Any]) -> str | None:
    names = config.get("architectures") or []
    return str(names[0]) if isinstance(names, list) and names else None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file's content; {} when it is missing, unreadable, not JSON or not an object
    (best effort: the caches hold what other tools wrote)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _iso(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
