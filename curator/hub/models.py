"""What search, info and the local search return: frozen dataclasses, plain values only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RecipeFit:
    """Whether one recipe can compile a model on this machine, and the memory it predicts."""

    recipe: str
    device: str
    precision: str
    can_compile: bool
    reason: str | None
    reason_kind: str | None
    needs: tuple[str, ...]
    compile_peak_bytes: int | None
    run_bytes: int | None


@dataclass(frozen=True)
class ModelSummary:
    """One search result, from the listing alone (no per-model requests)."""

    repo_id: str
    parameters: int | None
    download_bytes: int | None
    license: str | None
    gated: bool
    downloads: int | None
    likes: int | None
    last_modified: str | None
    architecture: str | None
    pipeline_tag: str | None
    library: str | None
    tags: tuple[str, ...]
    compilable_recipes: tuple[str, ...]
    int4_run_bytes: int | None


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int | None


@dataclass(frozen=True)
class FactGap:
    """A fact ``curator info`` could not give, and why: ``unknown`` when the Hub does not hold it,
    ``failed`` when the request that would have fetched it failed (``reason`` says how)."""

    fact: str
    state: str
    reason: str


@dataclass(frozen=True)
class ModelFacts:
    """Everything ``curator info`` reports about one repository at one commit. ``None`` is a fact
    not known; ``gaps`` says why for each one. ``renamed_from`` is the id asked for when the Hub
    answered under a new name (``repo_id``)."""

    repo_id: str
    renamed_from: str | None
    revision: str | None
    sha: str
    url: str
    license: str | None
    license_link: str | None
    gated: bool
    gate: str | None
    architecture: str | None
    model_type: str | None
    auto_map: bool
    chat_template: bool | None
    parameters: int | None
    parameters_by_dtype: dict[str, int]
    weight_format: str | None
    download_bytes: int | None
    download_files: tuple[FileEntry, ...]
    repo_bytes: int | None
    pipeline_tag: str | None
    library: str | None
    downloads: int | None
    likes: int | None
    last_modified: str | None
    recipes: tuple[RecipeFit, ...]
    gaps: tuple[FactGap, ...]
    # What the repository holds (curator.compile.source's kinds): checkpoint, genai (ONNX Runtime
    # GenAI, ``variants`` its subfolders), adapter (``base_model`` its base) or gguf.
    kind: str = "checkpoint"
    variants: tuple[str, ...] = ()
    base_model: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalModel:
    """A model found on this machine: a Hugging Face cache repo or a compiled Foundry model."""

    source: str
    name: str
    path: Path
    size_bytes: int
    revisions: tuple[str, ...]
    architecture: str | None
    parameters: int | None
    last_modified: str | None
