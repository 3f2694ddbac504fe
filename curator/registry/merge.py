"""``curator registry merge FRAGMENT...``: the registries that parallel compile jobs wrote, merged
into the team registry in one locked, validated, atomic edit.

A fragment is a registry document holding the entries one job produced (``curator registry
fragment ID`` cuts it from the job's working copy of the registry, so a fragment never carries
stale copies of entries the job did not touch). Its entries that equal the registry's are not
edits; the others are (an added id, or a replaced entry). Merging is deterministic: the result does not depend on the order of the fragments, and two
fragments that edit the same id differently are refused together (nothing is written). The
registry's policy is kept: a fragment's policy is never merged, and every merged entry is judged by
the registry's policy. A merge never removes an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError, RegistryInvalid
from curator.jsonio import read_json, write_json_atomic
from curator.registry.document import (
    Document,
    canonical,
    load_registry,
    models_of,
    require_model,
)
from curator.registry.rules import policy_of
from curator.registry.store import edit_registry


@dataclass(frozen=True)
class MergeResult:
    registry: Path
    fragments: tuple[Path, ...]
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: int
    policy_ignored: tuple[Path, ...]  # fragments whose policy differs from the registry's


@dataclass(frozen=True)
class _Edit:
    entry: dict[str, Any]
    fragment: Path


def merge_fragments(registry: Path, fragments: tuple[Path, ...]) -> MergeResult:
    """Apply every fragment's edits to ``registry`` or, on a conflict or a violation, none."""
    loaded = [(path, _load_fragment(path)) for path in fragments]
    counts: dict[str, Any] = {}

    def mutate(document: Document) -> None:
        base = {str(m.get("id")): m for m in canonical(document)["models"] if isinstance(m, dict)}
        edits: dict[str, _Edit] = {}
        conflicts: list[str] = []
        unchanged = 0
        for path, fragment in sorted(loaded, key=lambda item: str(item[0])):
            for entry in canonical(fragment)["models"]:
                model_id = str(entry.get("id"))
                if base.get(model_id) == entry:
                    unchanged += 1
                    continue
                earlier = edits.get(model_id)
                if earlier is None:
                    edits[model_id] = _Edit(entry, path)
                elif earlier.entry != entry:
                    conflicts.append(
                        f"{model_id}: {earlier.fragment} and {path} make different edits"
                    )
        if conflicts:
            raise RegistryInvalid(
                f"merge refused: {len(conflicts)} id(s) edited differently by two fragments; "
                f"{registry} is unchanged",
                tuple(sorted(conflicts)),
                hint="compile each model x recipe in one job only (registry/candidates.json), "
                "or merge the fragments one at a time after review",
            )
        models = document.setdefault("models", [])
        for model_id in sorted(edits):
            entry = edits[model_id].entry
            index = next(
                (
                    i
                    for i, m in enumerate(models)
                    if isinstance(m, dict) and str(m.get("id")) == model_id
                ),
                None,
            )
            if index is None:
                models.append(entry)
            else:
                models[index] = entry
        counts["added"] = tuple(sorted(i for i in edits if i not in base))
        counts["updated"] = tuple(sorted(i for i in edits if i in base))
        counts["unchanged"] = unchanged
        counts["policy_ignored"] = tuple(
            path for path, fragment in loaded if policy_of(fragment) != policy_of(document)
        )

    edit_registry(registry, mutate)
    return MergeResult(
        registry=registry,
        fragments=fragments,
        added=counts["added"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        policy_ignored=counts["policy_ignored"],
    )


def _load_fragment(path: Path) -> Document:
    # read_json refuses a missing path ("registry fragment not found") and anything that is not a
    # regular file (a FIFO would block the merge for ever) before opening it.
    document = read_json(path, "registry fragment")
    if not isinstance(document, dict):
        raise InputFileError(
            f"{path}: a fragment must be a registry document (a JSON object)",
            hint="fragments are the registry files compile jobs wrote",
        )
    models_of(document)  # RegistryInvalid when models is not a list of objects
    return document


def cut_fragment(registry: Path, model_ids: tuple[str, ...], output: Path) -> Document:
    """Write ``output``: ``registry``'s schema and policy with only the entries ``model_ids``."""
    document = load_registry(registry)
    entries = [require_model(document, model_id, registry) for model_id in model_ids]
    fragment = canonical(
        {
            "$schema": document.get("$schema", "../schemas/models.schema.json"),
            "schemaVersion": document.get("schemaVersion", 1),
            "policy": document.get("policy", {}),
            "models": entries,
        }
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, fragment, sort_keys=True, strict=True)
    return fragment
