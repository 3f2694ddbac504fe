"""``--adapter PATH|ORG/NAME``: a PEFT LoRA adapter merged into its base before the build.

The adapter (a local folder or a Hub repo: ``adapter_config.json`` + ``adapter_model.safetensors``)
is merged into the base checkpoint once, in a child process (torch and peft stay out of the
caller), into ``$CURATOR_HOME/merged/<key>/``; the recipe then compiles that checkpoint like any
other. The key covers the adapter files' sha256 and the base checkpoint's identity (its weight
files' names, sizes and modification times, and its recorded revision), so a changed adapter or
base is merged again. The manifest records the adapter (repo, revision, sha256 of each file,
license, rank, target modules) beside the base, and the license that governs: the stricter one.

A separate ONNX Runtime GenAI adapter file (multi-LoRA, one compiled base serving several
adapters) is not built: see :data:`SEPARATE_ADAPTER_BLOCKED`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from curator.cache.modeldir import sha256_file
from curator.compile import source as sources
from curator.compile.child import child_answer
from curator.compile.types import AdapterOrigin
from curator.errors import PreflightError
from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.endpoint import hf_cache_dir
from curator.hub.transport import hub_deadline
from curator.paths import curator_home

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
# Small files a Hub adapter repo may carry with it (its card, tokenizer and chat template).
SUPPORT_FILES = (
    "README.md",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
)
MARKER = ".curator-merged.json"
SEPARATE_ADAPTER_BLOCKED = (
    "a separate adapter file is not built: the pinned model builder (onnxruntime-genai 0.14.1) "
    "given adapter_path bakes the LoRA A/B matrices into the graph as constant MatMul branches "
    "(make_matmul_lora), not as the graph inputs an .onnx_adapter file feeds; and Foundry Local "
    "(foundry-local-sdk 2.2.1) has no call to load or select an adapter (its Python API and "
    "libfoundry_local.so never use OgaLoadAdapter / OgaSetActiveAdapter, which genai-core 0.18.0 "
    "exports), so one compiled base cannot serve an adapter through Foundry Local"
)
# SPDX ids from most to least permissive; an id not listed counts as the strictest.
_PERMISSIVE = ("mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "isc", "unlicense", "cc0-1.0")


def governing_license(base: str | None, adapter: str | None) -> str | None:
    """The stricter of two licenses (None when either is unknown): both apply to the merge."""
    if not base or not adapter:
        return None
    base, adapter = base.lower(), adapter.lower()
    if base == adapter:
        return base

    def rank(license_id: str) -> int:
        return _PERMISSIVE.index(license_id) if license_id in _PERMISSIVE else len(_PERMISSIVE)

    if rank(base) == rank(adapter) == len(_PERMISSIVE):
        return None  # two different restrictive licenses: a person must decide
    return base if rank(base) >= rank(adapter) else adapter


def _read_config(adapter_dir: Path, given: str) -> dict[str, Any]:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PreflightError(
            f"{given} has no adapter_config.json: it is not a PEFT adapter",
            hint=f"curator info {given} says what it is",
        ) from None
    except (OSError, ValueError) as exc:
        raise PreflightError(
            f"{given}: adapter_config.json is unreadable: {exc}", hint="check the adapter"
        ) from None
    if not isinstance(config, dict):
        raise PreflightError(f"{given}: adapter_config.json is not an object", hint="check it")
    peft_type = str(config.get("peft_type") or "")
    if peft_type.upper() != "LORA":
        raise PreflightError(
            f"{given} is a {peft_type or 'unknown'} adapter; only LoRA adapters can be merged",
            hint="train a LoRA adapter (peft LoraConfig)",
        )
    if not any((adapter_dir / name).is_file() for name in ADAPTER_FILES[1:]):
        raise PreflightError(
            f"{given} has no adapter_model.safetensors", hint="check the adapter folder"
        )
    return config


def resolve_adapter(given: str, revision: str | None = None) -> AdapterOrigin:
    """A local adapter folder, or a Hub adapter repo downloaded into the HF cache."""
    from curator.compile.describe import card_metadata, local_license  # start-up: kept off --help

    kind = sources.classify_source(given)
    if kind.is_local:
        assert kind.path is not None
        if kind.kind != sources.ADAPTER:
            raise PreflightError(
                f"--adapter {given} is not a LoRA adapter folder (it holds a {kind.kind})",
                hint=f"curator info {given} says what it is",
            )
        adapter_dir = kind.path
        repo = f"local:{sources.slug(adapter_dir.resolve().name)}"
        sha = None
        license_id = local_license(adapter_dir)
    else:
        adapter_dir, sha, license_id = _download(given, revision)
        repo = given
    config = _read_config(adapter_dir, given)
    card = card_metadata(adapter_dir)
    names = sorted(
        p.name for p in adapter_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    targets = config.get("target_modules")
    return AdapterOrigin(
        repo=repo,
        revision=sha,
        path=adapter_dir,
        files=tuple((name, sha256_file(adapter_dir / name)) for name in names),
        license=license_id if license_id and not license_id.startswith("see ") else None,
        base_model=str(config.get("base_model_name_or_path") or card.get("base_model") or "")
        or None,
        peft_type="LORA",
        rank=config.get("r") if isinstance(config.get("r"), int) else None,
        target_modules=tuple(sorted(map(str, targets))) if isinstance(targets, list) else (),
    )


def _download(repo_id: str, revision: str | None) -> tuple[Path, str, str | None]:
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id)
    api = make_api()
    with hub_errors(repo_id, revision):
        with hub_deadline():
            info = api.model_info(repo_id, revision=revision)
        names = {s.rfilename for s in info.siblings or []}
        if "adapter_config.json" not in names:
            raise PreflightError(
                f"{repo_id} has no adapter_config.json: it is not a PEFT adapter",
                hint=f"curator info {repo_id} says what it holds",
            )
        sha = info.sha or revision or "main"
        with hub_deadline(progress=True):
            folder = snapshot_download(
                repo_id,
                revision=sha,
                cache_dir=hf_cache_dir(),
                endpoint=api.endpoint,
                allow_patterns=[n for n in (*ADAPTER_FILES, *SUPPORT_FILES) if n in names],
            )
    card = info.card_data
    license_id = getattr(card, "license", None) if card is not None else None
    return Path(folder), sha, str(license_id) if license_id else None


def _base_identity(base_dir: Path, base_revision: str | None) -> str:
    parts = [f"revision {base_revision or '-'}"]
    for path in sorted(base_dir.iterdir()):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json"):
            stat = path.stat()
            parts.append(f"{path.name} {stat.st_size} {stat.st_mtime_ns}")
    return "\n".join(parts)


def merged_dir(base_dir: Path, base_revision: str | None, adapter: AdapterOrigin) -> Path:
    key = hashlib.sha256(
        f"{_base_identity(base_dir, base_revision)}\n{adapter.sha256}".encode()
    ).hexdigest()
    return curator_home() / "merged" / key[:32]


def merge(base_dir: Path, base_revision: str | None, adapter: AdapterOrigin) -> Path:
    """The merged fp32 checkpoint of base + adapter (built once per key, in a child process)."""
    target = merged_dir(base_dir, base_revision, adapter)
    if (target / MARKER).is_file():
        return target
    answer = child_answer(
        "curator.compile.adapter_child",
        str(base_dir.absolute()),
        str(adapter.path.absolute()),
        str(target),
        failed=f"merging {adapter.repo} into {base_dir.name} failed",
        hint="check that the adapter was trained on this base (curator info ADAPTER)",
    )
    if "error" in answer:
        raise PreflightError(str(answer["error"]), hint=answer.get("hint"))
    return Path(answer["mergedDir"])


def check_base_matches(adapter: AdapterOrigin, base_repo: str) -> str | None:
    """A note when the adapter names a different base than the one given (never a refusal: a
    local copy of the same base has another name)."""
    if adapter.base_model and adapter.base_model != base_repo:
        return (
            f"the adapter names {adapter.base_model} as its base; merging into {base_repo} "
            "(the merge checks every tensor's shape)"
        )
    return None
