"""``curator import SOURCE``: a model that is already ONNX Runtime GenAI, into the Foundry cache.

SOURCE is a local folder (holding ``genai_config.json``, or variant subfolders that do, as
``microsoft/*-onnx`` repositories are laid out) or a Hub repo id. A Hub repo's files are listed
with their LFS sha256 (git blob sha1 for small files) and only the chosen variant is downloaded;
every downloaded file is checked against the Hub's hash, and every file genai_config.json names
(and every external-data file its ONNX graphs name) must be there. The model is assembled in a work
directory beside the cache, given ``inference_model.json`` and a manifest (recipe ``imported``,
provenance: repo, revision, subfolder, each source file's sha256), and renamed into
``<cache>/<publisher>/<id>`` in one step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.compile import chat_templates, check, manifest, placement, preflight, runtime_options
from curator.compile import source as sources
from curator.compile.types import Artifact
from curator.errors import CompileError, PreflightError, UsageProblem
from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.endpoint import hf_cache_dir
from curator.hub.transport import hub_deadline
from curator.jsonio import dumps_stable
from curator.paths import foundry_cache_dir
from curator.progress import Progress

RECIPE = "imported"
GENAI_CONFIG = sources.GENAI_CONFIG


class ImportFailed(CompileError):
    """An import found a missing, altered or unusable file."""


@dataclass(frozen=True)
class SourceFile:
    """One file of the imported variant as its source states it (path relative to the variant)."""

    path: str
    sha256: str | None  # the Hub's LFS sha256 (None for a small file: ``git_sha1`` then)
    bytes: int | None
    git_sha1: str | None = None


@dataclass(frozen=True)
class ImportRequest:
    source: str
    subfolder: str | None = None
    model_id: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    device: str | None = None  # cpu | gpu; default: a GPU variant only on a machine with one
    chat_template: str | None = None
    completion_only: bool = False
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class ImportPlan:
    model_id: str
    publisher: str
    target: Path
    source_repo: str
    source_revision: str | None
    subfolder: str | None
    variants: tuple[str, ...]
    device: str
    files: tuple[SourceFile, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    plan: ImportPlan
    dry_run: bool
    path: Path | None = None
    manifest_path: Path | None = None
    wall_seconds: float | None = None
    artifacts: tuple[Artifact, ...] = field(default_factory=tuple)

    @property
    def model_id(self) -> str:
        return self.plan.model_id


# --- variants ------------------------------------------------------------------------------------


def variant_device(subfolder: str) -> str:
    """``gpu`` for a CUDA/DirectML/GPU variant, ``npu`` for an NPU one, else ``cpu``."""
    lowered = subfolder.lower()
    if re.search(r"cuda|gpu|directml|dml|rocm|webgpu|trt", lowered):
        return "gpu"
    if re.search(r"npu|qnn|vitis|openvino", lowered):
        return "npu"
    return "cpu"


def choose_variant(variants: tuple[str, ...], device: str, repo: str) -> str:
    """The variant for ``device``: the only one, else the first for that device (int4 first)."""
    if len(variants) == 1:
        return variants[0]
    fitting = [v for v in variants if variant_device(v) == device]
    if not fitting:
        raise PreflightError(
            f"{repo} has no {device} variant among {', '.join(variants)}",
            hint=f"choose one: curator import {repo} --subfolder {variants[0]}",
        )
    fitting.sort(key=lambda v: (0 if "int4" in v.lower() else 1, v))
    return fitting[0]


def _machine_device(asked: str | None) -> str:
    if asked:
        return asked
    return "gpu" if preflight.has_cuda_gpu() else "cpu"


# --- the Hub -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _HubListing:
    repo: str
    sha: str
    files: dict[str, SourceFile]  # by path in the repo
    license: str | None


def _hub_listing(repo_id: str, revision: str | None) -> _HubListing:
    check_repo_id(repo_id)
    api = make_api()
    with hub_errors(repo_id, revision), hub_deadline():
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    files: dict[str, SourceFile] = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        files[sibling.rfilename] = SourceFile(
            sibling.rfilename,
            lfs.sha256 if lfs is not None else None,
            sibling.size,
            None if lfs is not None else sibling.blob_id,
        )
    card = info.card_data
    license_id = getattr(card, "license", None) if card is not None else None
    return _HubListing(info.id or repo_id, info.sha or "", files, license_id)


def _hub_variants(listing: _HubListing) -> tuple[str, ...]:
    found = sorted(
        (p.rsplit("/", 1)[0] if "/" in p else "")
        for p in listing.files
        if p == GENAI_CONFIG or p.endswith("/" + GENAI_CONFIG)
    )
    return tuple(found)


def _download(listing: _HubListing, subfolder: str, progress: Progress | None) -> Path:
    """The variant's files in the HF cache (snapshot dir of the variant)."""
    from huggingface_hub import snapshot_download

    api = make_api()
    pattern = f"{subfolder}/*" if subfolder else "*"
    if progress:
        progress(f"downloading {listing.repo} {subfolder or ''}".rstrip())
    with hub_errors(listing.repo, listing.sha), hub_deadline(progress=True):
        folder = snapshot_download(
            listing.repo,
            revision=listing.sha,
            cache_dir=hf_cache_dir(),
            endpoint=api.endpoint,
            allow_patterns=[pattern] if subfolder else None,
        )
    return Path(folder) / subfolder if subfolder else Path(folder)


# --- checks --------------------------------------------------------------------------------------


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def verify_against_listing(variant_dir: Path, files: tuple[SourceFile, ...]) -> None:
    """Every file the Hub lists is there with the Hub's hash; ImportFailed names the first that
    is missing or altered."""
    for entry in files:
        local = variant_dir / entry.path
        if not local.is_file():
            raise ImportFailed(
                f"{entry.path} (listed by the Hub) is missing from the download",
                hint="run the import again; if it persists the repository is incomplete",
            )
        if entry.sha256 is not None:
            actual = sha256_file(local)
            if actual != entry.sha256:
                raise ImportFailed(
                    f"{entry.path}: sha256 {actual} does not match the Hub's {entry.sha256}",
                    hint="the file was altered in transit or in the cache: delete it from the "
                    "Hugging Face cache and import again",
                )
        elif entry.git_sha1 is not None and _git_blob_sha1(local) != entry.git_sha1:
            raise ImportFailed(
                f"{entry.path}: content does not match the Hub's git blob {entry.git_sha1}",
                hint="delete it from the Hugging Face cache and import again",
            )


def _named_files(node: Any) -> Iterator[str]:
    """Every ``filename`` value anywhere in genai_config.json."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "filename" and isinstance(value, str):
                yield value
            else:
                yield from _named_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _named_files(item)


def _external_data(onnx_path: Path) -> set[str]:
    """The external-data files an ONNX graph names (read without loading any tensor data)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    names: set[str] = set()
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                names.add(entry.value)
    return names


def check_genai_folder(model_dir: Path) -> dict[str, Any]:
    """genai_config.json readable, and every file it names and their external data present;
    returns the config. ImportFailed names each missing file."""
    path = model_dir / GENAI_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImportFailed(f"{path} is unreadable: {exc}", hint="check the model folder") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ImportFailed(f"{path} has no 'model' section", hint="check the model folder")
    named = sorted(set(_named_files(config["model"])))
    if not named:
        raise ImportFailed(f"{path} names no model file", hint="check the model folder")
    missing = [n for n in named if not (model_dir / n).is_file()]
    for name in named:
        if name.endswith(".onnx") and (model_dir / name).is_file():
            missing += [d for d in sorted(_external_data(model_dir / name))
                        if not (model_dir / d).is_file()]  # fmt: skip
    missing += [n for n in check.REQUIRED_FILES if not (model_dir / n).is_file()]
    if missing:
        raise ImportFailed(
            f"{model_dir.name}: {', '.join(sorted(set(missing)))} missing (named by "
            f"genai_config.json or its ONNX graph, or needed by the tokenizer)",
            hint="import a complete folder, or check --subfolder",
        )
    return config


# --- plan and import -----------------------------------------------------------------------------


def _default_name(repo_name: str, subfolder: str | None) -> str:
    base = re.sub(r"[-_.]onnx$", "", repo_name, flags=re.IGNORECASE) or repo_name
    return sources.slug(base)


def _variant_suffix(device: str) -> str:
    return {"gpu": "cuda-gpu", "npu": "npu"}.get(device, "generic-cpu")


def _model_id(request: ImportRequest, name: str, device: str) -> str:
    model_id = request.model_id or f"{name}-{_variant_suffix(device)}:1"
    if not preflight.ID_PATTERN.match(model_id):
        raise UsageProblem(
            f"model id {model_id!r} is not NAME-VARIANT:VERSION in lower case",
            hint=f"e.g. --id {name}-{_variant_suffix(device)}:1",
        )
    if not re.search(r"-[a-z0-9]+-(cpu|gpu|npu):", model_id):
        raise UsageProblem(
            f"model id {model_id!r} does not end in a variant such as -generic-cpu",
            hint=f"e.g. --id {name}-{_variant_suffix(device)}:1",
        )
    return model_id


def _local_files(variant_dir: Path) -> tuple[SourceFile, ...]:
    return tuple(
        SourceFile(p.relative_to(variant_dir).as_posix(), sha256_file(p), p.stat().st_size)
        for p in sorted(variant_dir.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(variant_dir).parts
    )


def import_model(request: ImportRequest, progress: Progress | None = None) -> ImportResult:
    """Import ``request.source`` (see the module docstring)."""
    started = time.monotonic()
    say = progress or (lambda _m: None)
    template = _template(request)
    kind = sources.classify_source(request.source)
    device = _machine_device(request.device)
    cache_root = foundry_cache_dir(request.cache_dir).absolute()
    listing: _HubListing | None = None
    if kind.is_local:
        assert kind.path is not None
        if kind.kind != sources.GENAI:
            raise PreflightError(
                f"{request.source} is not an ONNX Runtime GenAI model (no genai_config.json)",
                hint=f"compile it instead: curator compile {request.source} --recipe int4-cpu"
                if kind.kind in (sources.CHECKPOINT, sources.GGUF)
                else "curator info SOURCE says what it is",
            )
        if request.revision:
            raise UsageProblem("--revision applies only to a Hub repo id", hint="drop --revision")
        root = kind.path
        variants = ("",) if (root / GENAI_CONFIG).is_file() else sources.genai_variants(root)
        repo = f"local:{sources.slug(root.resolve().name)}"
        publisher, name = "local", _default_name(root.resolve().name, None)
        revision = None
    else:
        listing = _hub_listing(request.source, request.revision)
        variants = _hub_variants(listing)
        if not variants:
            raise PreflightError(
                f"{listing.repo} holds no genai_config.json: it is not an ONNX Runtime GenAI model",
                hint=f"curator info {listing.repo} says what it holds",
            )
        repo, revision = listing.repo, listing.sha
        publisher, repo_name = repo.split("/", 1)
        name = _default_name(repo_name, None)
    subfolder = _subfolder(request, variants, device, repo)
    device = variant_device(subfolder) if subfolder else device
    model_id = _model_id(request, name, device)
    target = placement.target_dir(cache_root, publisher, model_id)
    preflight.check_target(target, request.force)
    if listing is not None:
        prefix = f"{subfolder}/" if subfolder else ""
        files = tuple(
            SourceFile(p[len(prefix):], f.sha256, f.bytes, f.git_sha1)
            for p, f in sorted(listing.files.items())
            if p.startswith(prefix) and (subfolder or "/" not in p)
        )  # fmt: skip
    else:
        assert kind.path is not None
        files = _local_files(kind.path / subfolder if subfolder else kind.path)
    notes = []
    if len([v for v in variants if v]) > 1:
        notes.append(f"variant {subfolder} of {', '.join(v for v in variants if v)}")
    plan = ImportPlan(
        model_id, publisher, target, repo, revision, subfolder or None,
        tuple(v for v in variants if v), device, files, tuple(notes),
    )  # fmt: skip
    if request.dry_run:
        return ImportResult(plan=plan, dry_run=True)

    if listing is not None:
        variant_dir = _download(listing, subfolder, progress)
        verify_against_listing(variant_dir, files)
    else:
        assert kind.path is not None
        variant_dir = kind.path / subfolder if subfolder else kind.path
    check_genai_folder(variant_dir)
    has_template = check.has_chat_template(variant_dir)
    if template is None and not has_template:
        raise PreflightError(
            f"{request.source} {subfolder} has no chat template".replace("  ", " "),
            hint=f"curator import {request.source} --chat-template chatml (or another shipped "
            "name, or a .jinja file), or --completion-only for a base model",
        )
    for stale in placement.remove_stale(cache_root):
        say(f"removed a work directory left by an interrupted compile: {stale.name}")
    with placement.work_directory(cache_root, model_id.replace(":", "-")) as work:
        model_dir = work / "model"
        say(f"copying {variant_dir} -> the Foundry cache")
        shutil.copytree(variant_dir, model_dir, ignore=shutil.ignore_patterns(".cache"))
        for path in model_dir.rglob("*"):  # HF cache entries are symlinks: copies are files
            if path.is_symlink():
                real = path.resolve()
                path.unlink()
                shutil.copyfile(real, path)
        if listing is None:  # a local folder may change under us: hash what was copied
            copied = _local_files(model_dir)
            if [(f.path, f.sha256) for f in copied] != [(f.path, f.sha256) for f in files]:
                raise ImportFailed(
                    f"{variant_dir} changed while it was copied",
                    hint="run the import again when nothing writes to it",
                )
        if template is not None:
            chat_templates.install(template, model_dir)
        threads = runtime_options.session_threads(model_dir)
        if threads is None:
            runtime_options.use_all_cores(model_dir)
            notes.append("genai_config.json: session_options.intra_op_num_threads set to 0 (all "
                         "cores): without it decoding runs at about half speed")  # fmt: skip
        manifest.write_inference_model(model_dir, model_id)
        found = manifest.artifacts(model_dir)
        document = import_manifest(
            plan, request, template, found, time.monotonic() - started, listing, model_dir
        )
        manifest.write_manifest(model_dir, document)
        try:
            placement.place(model_dir, target, work, replace=request.force)
        except OSError as exc:
            raise CompileError(
                f"{target} appeared while importing (another import of the same id?)",
                hint="rerun with --force to replace it, or choose another --id",
            ) from exc
    plan = replace(plan, notes=tuple(notes))
    return ImportResult(
        plan=plan,
        dry_run=False,
        path=target,
        manifest_path=target / MANIFEST_NAME,
        wall_seconds=round(time.monotonic() - started, 3),
        artifacts=found,
    )


def _template(request: ImportRequest) -> chat_templates.ChatTemplate | None:
    if request.completion_only and request.chat_template:
        raise UsageProblem(
            "--completion-only and --chat-template exclude each other",
            hint="a base model: --completion-only; a chat model: --chat-template NAME",
        )
    if request.completion_only:
        return chat_templates.completion_template()
    if request.chat_template:
        return chat_templates.resolve_chat_template(request.chat_template)
    return None


def _subfolder(request: ImportRequest, variants: tuple[str, ...], device: str, repo: str) -> str:
    named = tuple(v for v in variants if v)
    if request.subfolder is not None:
        wanted = request.subfolder.strip("/")
        if wanted not in variants:
            listed = ", ".join(named) or "(the top level only)"
            raise UsageProblem(
                f"{repo} has no variant {wanted!r}; variants: {listed}",
                hint="choose one with --subfolder",
            )
        return wanted
    if "" in variants:
        return ""
    return choose_variant(named, device, repo)


def import_manifest(
    plan: ImportPlan,
    request: ImportRequest,
    template: chat_templates.ChatTemplate | None,
    found: tuple[Artifact, ...],
    wall_seconds: float,
    listing: _HubListing | None,
    model_dir: Path,
) -> dict[str, Any]:
    """The manifest of an imported model: shaped like a compile's (registry fields alike), with
    ``recipe`` "imported" and ``recipeSha256`` the digest of the source file list."""
    files = [
        {k: v for k, v in (("path", f.path), ("sha256", f.sha256), ("bytes", f.bytes),
                           ("gitSha1", f.git_sha1)) if v is not None}
        for f in plan.files
    ]  # fmt: skip
    digest = hashlib.sha256(dumps_stable(files, sort_keys=True).encode()).hexdigest()
    source: dict[str, Any] = {"repo": plan.source_repo, "files": files}
    if plan.source_revision:
        source["revision"] = plan.source_revision
    if plan.subfolder:
        source["subfolder"] = plan.subfolder
    hf_config = (
        sources.read_model_config(model_dir) if (model_dir / "config.json").is_file() else {}
    )
    architectures = hf_config.get("architectures")
    if isinstance(architectures, list) and architectures:
        source["architecture"] = str(architectures[0])
    genai = json.loads((model_dir / GENAI_CONFIG).read_text(encoding="utf-8"))
    provider = _execution_provider(genai)
    document: dict[str, Any] = {
        "sourceDir": None,
        "schemaVersion": 1,
        "id": plan.model_id,
        "publisher": plan.publisher,
        "variant": _variant_suffix(plan.device),
        "precision": _precision(plan.subfolder or model_dir.name),
        "source": source,
        "build": {
            "recipe": RECIPE,
            "recipeSha256": digest,
            "compiledAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": manifest.tool_versions(),
            "artifacts": [{"path": a.path, "sha256": a.sha256, "bytes": a.bytes} for a in found],
        },
        "runtime": {
            "deviceType": "GPU" if provider.startswith(("CUDA", "Dml")) else "CPU",
            "executionProvider": provider,
        },
        "fileSizeMb": round(sum(a.bytes for a in found) / 2**20, 3),
        "imported": {"wallSeconds": round(wall_seconds, 3)},
    }
    if listing is not None and listing.license:
        document["license"] = str(listing.license)
    if template is not None:
        document["chatTemplate"] = template.manifest_record()
    if request.completion_only:
        document["completionOnly"] = True
    context = manifest.context_length(model_dir)
    if context:
        document["contextLength"] = context
    return document


def _execution_provider(genai: dict[str, Any]) -> str:
    try:
        options = genai["model"]["decoder"]["session_options"].get("provider_options") or []
    except (KeyError, TypeError, AttributeError):
        options = []
    for option in options:
        if isinstance(option, dict):
            for name in option:
                return {"cuda": "CUDAExecutionProvider", "dml": "DmlExecutionProvider"}.get(
                    str(name).lower(), f"{name}ExecutionProvider"
                )
    return "CPUExecutionProvider"


def _precision(name: str) -> str:
    match = re.search(r"(int4|int8|fp16|fp32|bf16)", name.lower())
    return match.group(1) if match else "unknown"
