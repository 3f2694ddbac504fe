"""What a compile is asked to do and what it reports back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.compile.chat_templates import ChatTemplate
from curator.compile.gguf_source import GgufOrigin


@dataclass(frozen=True)
class AdapterOrigin:
    """The adapter a compile merged (recorded in the manifest as ``adapter``)."""

    repo: str  # org/name, or local:<name>
    revision: str | None
    path: Path
    files: tuple[tuple[str, str], ...]  # (file name, sha256)
    license: str | None
    base_model: str | None  # as adapter_config.json names it
    peft_type: str
    rank: int | None
    target_modules: tuple[str, ...]

    def manifest_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "repo": self.repo,
            "files": [{"path": name, "sha256": sha} for name, sha in self.files],
            "peftType": self.peft_type,
            "merged": True,
        }
        record["sha256"] = files_digest(record)
        for key, value in (
            ("revision", self.revision),
            ("license", self.license),
            ("baseModel", self.base_model),
            ("rank", self.rank),
        ):
            if value is not None:
                record[key] = value
        if self.target_modules:
            record["targetModules"] = list(self.target_modules)
        return record

    @property
    def sha256(self) -> str:
        """One digest over the adapter's files (names and contents)."""
        return files_digest(self.manifest_record())

    def note(self, base: str) -> str:
        return (
            f"LoRA adapter {self.repo} (rank {self.rank or '?'}) merged into {base} before the "
            f"build; the merged fp32 checkpoint is fidelity's reference"
        )


def files_digest(record: dict[str, Any]) -> str:
    """One sha256 over a manifest ``adapter`` record's files: ``name sha256`` lines, in order."""
    lines = [
        f"{f.get('path')} {f.get('sha256')}"
        for f in record.get("files") or []
        if isinstance(f, dict)
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class CompileRequest:
    """``curator compile SOURCE --recipe NAME ...`` as plain values."""

    source: str
    recipe: str
    model_id: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    calibration: Path | None = None
    trust_remote_code: bool = False
    force: bool = False
    dry_run: bool = False
    gguf_file: str | None = None  # a GGUF file of a Hub repo (or of a local directory)
    chat_template: str | None = None  # a shipped template's name or a .jinja file (issue 21)
    completion_only: bool = False  # a base model: no chat template, registered for completions
    adapter: str | None = None  # a PEFT LoRA adapter (folder or Hub repo) merged into SOURCE
    adapter_revision: str | None = None
    # --context-length: the context the runtime sizes each request's KV cache for (None: the
    # model's own); written into genai_config.json (curator.compile.runtime_options)
    context_length: int | None = None


@dataclass(frozen=True)
class SourceModel:
    """The model to compile, as found on disk (a Hub source has been downloaded first)."""

    local_dir: Path | None
    repo: str  # org/name, or local:<name>
    revision: str | None
    publisher: str
    name: str
    is_local: bool
    gguf_path: Path | None = None  # a GGUF source: the local file (None until downloaded)
    gguf_file: str | None = None  # a GGUF source: its file name
    gguf: GgufOrigin | None = None  # a GGUF source once dequantized into ``local_dir``
    adapter: AdapterOrigin | None = None  # --adapter: merged into ``local_dir`` (once merged)
    base_dir: Path | None = None  # with an adapter: the base checkpoint it was merged into


@dataclass(frozen=True)
class CompilePlan:
    """Everything decided before Olive starts (``--dry-run`` prints this).

    For a Hub source in a dry run nothing is downloaded: ``source_dir``, ``architecture`` and
    ``parameters`` are None and ``source_revision`` is the revision as given, not yet a sha.
    """

    model_id: str
    publisher: str
    target: Path
    recipe: str
    recipe_sha256: str
    source_repo: str
    source_revision: str | None
    source_dir: Path | None
    architecture: str | None
    parameters: int | None
    context_length: int | None
    predicted_peak_bytes: int | None
    available_ram_bytes: int
    predicted_disk_bytes: int | None
    free_disk_bytes: int
    olive_config: dict[str, Any] = field(default_factory=dict)
    source_gguf_file: str | None = None  # the source is a GGUF file (already quantized)
    source_gguf: GgufOrigin | None = None  # ... and its sha256 and types, once dequantized
    notes: tuple[str, ...] = ()  # what the user must know (e.g. an already quantized source)
    chat_template: ChatTemplate | None = None  # installed into the output (--chat-template)
    completion_only: bool = False  # a base model: registered for completions, not chat
    source_adapter: AdapterOrigin | None = None  # --adapter, merged before the build
    source_license: str | None = None  # the base's license, when its files state one
    unknown_because: tuple[tuple[str, str], ...] = ()  # (field, why) for a fact left unknown
    predicted_seconds: float | None = None  # wall time on an idle machine (curator.compile.cost)
    prediction_basis: str | None = None  # what the peak prediction is made of (one line)
    # the context the compiled model runs with (--context-length, else the model's own) and the
    # KV cache the runtime allocates per request at that length; the memory to serve it
    serving_context_length: int | None = None
    predicted_kv_bytes: int | None = None
    predicted_serving_bytes: int | None = None


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class CompileResult:
    """A finished compile (or, with ``dry_run``, only its plan)."""

    plan: CompilePlan
    dry_run: bool
    path: Path | None = None
    manifest_path: Path | None = None
    log_path: Path | None = None
    wall_seconds: float | None = None
    peak_rss_bytes: int | None = None
    artifacts: tuple[Artifact, ...] = ()

    @property
    def model_id(self) -> str:
        return self.plan.model_id

    @property
    def total_bytes(self) -> int:
        return sum(a.bytes for a in self.artifacts)
