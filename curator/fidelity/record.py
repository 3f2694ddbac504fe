"""Write a fidelity result where reviewers see it: the compile manifest and the registry entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME
from curator.fidelity.types import FidelityResult
from curator.jsonio import read_json, write_json_atomic
from curator.registry import update_model


def record_in_manifest(model_dir: Path, result: FidelityResult) -> Path | None:
    """Set ``fidelity`` in ``<model_dir>/curator-manifest.json``; None when there is no manifest."""
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    manifest = read_json(path, "compile manifest")
    if not isinstance(manifest, dict):
        return None
    manifest["fidelity"] = result.to_record()
    write_json_atomic(path, manifest)
    return path


def record_in_registry(registry: Path, model_id: str, result: FidelityResult) -> dict[str, Any]:
    """Set the entry's ``fidelity`` (validated, locked, atomic); NotFound when it is not there."""
    record = result.to_record()

    def change(entry: dict[str, Any]) -> None:
        entry["fidelity"] = record

    return update_model(registry, model_id, change)
