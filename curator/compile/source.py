"""Resolve SOURCE (a local Hugging Face model directory or a Hub repo id) and read its facts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.compile import gguf_source
from curator.compile.prequantized import packed_elements, prequantized
from curator.compile.types import SourceModel
from curator.errors import InputFileError, PreflightError, UsageProblem
from curator.formats.safetensors import read_safetensors_header
from curator.hub import download_for_compile
from curator.hub.client import check_repo_id

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


def slug(text: str) -> str:
    """Lower-case id part: runs of anything outside [a-z0-9._-] become '-'."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return cleaned or "model"


def is_hub_id(source: str) -> bool:
    return bool(_REPO_ID.match(source)) and not Path(source).exists()


# What a SOURCE is, decided once for info, compile, onboard and import (issue 21).
CHECKPOINT = "checkpoint"  # a Hugging Face model directory (config.json + weights)
GGUF = "gguf"  # a .gguf file (or --gguf-file NAME of a directory or Hub repo)
GENAI = "genai"  # an ONNX Runtime GenAI folder (genai_config.json), or one with variant subfolders
ADAPTER = "adapter"  # a PEFT LoRA adapter (adapter_config.json)
HUB = "hub"  # an org/name Hub repo id (its kind is known once its file list is read)
GENAI_CONFIG = "genai_config.json"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class SourceKind:
    """``kind`` (one of the names above) and the local ``path`` (None for a Hub repo id)."""

    kind: str
    source: str
    path: Path | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None


def looks_like_path(source: str) -> bool:
    """Written as a path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, ``x.gguf``, ``C:\\x``), so
    never a Hub repo id even when nothing is there."""
    return (
        source.startswith((".", "/", "~", "\\"))
        or source.count("/") >= 2
        or "\\" in source
        or bool(re.match(r"^[A-Za-z]:[\\/]", source))
        or source.lower().endswith(gguf_source.GGUF_SUFFIX)
    )


def genai_variants(directory: Path) -> tuple[str, ...]:
    """Subfolders (relative, posix, up to three levels deep) holding a genai_config.json: the
    variants of a repo laid out like microsoft/*-onnx (``cpu_and_mobile/cpu-int4-...``)."""
    found = []
    for depth in ("*", "*/*", "*/*/*"):
        for config in sorted(directory.glob(f"{depth}/{GENAI_CONFIG}")):
            found.append(config.parent.relative_to(directory).as_posix())
    return tuple(found)


def classify_local(path: Path, source: str | None = None) -> SourceKind:
    """The kind of an existing local file or directory; PreflightError when it is none of them."""
    given = source if source is not None else str(path)
    if gguf_source.is_gguf_file(path):
        return SourceKind(GGUF, given, path)
    if not path.is_dir():
        raise PreflightError(
            f"source {given} is a file, not a model directory or a .gguf file",
            hint="pass a Hugging Face model directory, a .gguf file, an ONNX Runtime GenAI folder, "
            "a LoRA adapter folder or an org/name repo id",
        )
    if (path / GENAI_CONFIG).is_file():
        return SourceKind(GENAI, given, path)
    if (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file():
        return SourceKind(ADAPTER, given, path)
    if (path / "config.json").is_file():
        return SourceKind(CHECKPOINT, given, path)
    if genai_variants(path):
        return SourceKind(GENAI, given, path)
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if ggufs:
        raise PreflightError(
            f"{given} holds GGUF files, not a Hugging Face model: {', '.join(ggufs[:4])}",
            hint=f"name one: curator info {Path(given) / ggufs[0]}",
        )
    raise PreflightError(
        f"{given} holds no config.json, genai_config.json, adapter_config.json or .gguf file",
        hint="point SOURCE at a Hugging Face model directory, a .gguf file, an ONNX Runtime GenAI "
        "folder or a LoRA adapter folder",
    )


def classify_source(source: str) -> SourceKind:
    """What ``source`` is: a local path of one of the kinds above, else a Hub repo id (HUB).

    A source written as a path that does not exist, or neither a path nor an org/name id, is a
    PreflightError naming what was looked for; a malformed Hub repo id is a UsageProblem.
    """
    path = Path(source).expanduser()
    if path.exists():
        return classify_local(path.absolute(), source)
    if source.lower().endswith(gguf_source.GGUF_SUFFIX):
        raise PreflightError(f"GGUF file not found: {source}", hint="check the path")
    if not looks_like_path(source) and not _REPO_ID.match(source):
        check_repo_id(source)  # a malformed Hub repo id is a usage error (exit 2) with its reason
    if looks_like_path(source) or not _REPO_ID.match(source):
        raise PreflightError(
            f"source {source} is neither an existing file or directory nor an org/name Hub repo id",
            hint="check the path (relative to the current directory), or use curator search to "
            "find a repo id",
        )
    return SourceKind(HUB, source)


def refuse_for_compile(kind: SourceKind) -> None:
    """The kinds compile cannot take as SOURCE, each with the command that can."""
    if kind.kind == GENAI:
        raise PreflightError(
            f"{kind.source} is already an ONNX Runtime GenAI model (genai_config.json): there is "
            "nothing to compile",
            hint=f"bring it in as it is: curator import {kind.source}",
        )
    if kind.kind == ADAPTER:
        raise PreflightError(
            f"{kind.source} is a LoRA adapter (adapter_config.json), not a whole model",
            hint=f"compile its base with it: curator compile BASE --adapter {kind.source} "
            "(curator info shows the base it names)",
        )


def resolve_source(
    source: str, revision: str | None, *, download: bool, gguf_file: str | None = None
) -> SourceModel:
    """A local directory as is; a Hub repo id downloaded (unless ``download`` is False).

    A GGUF source (a local ``.gguf`` file, ``--gguf-file NAME`` of a Hub repo or of a local
    directory) is dequantized into an fp32 checkpoint, which becomes ``local_dir`` (unless
    ``download`` is False: then only its facts are known).
    """
    path = Path(source).expanduser()
    if path.exists():
        if not gguf_file:
            refuse_for_compile(classify_local(path.absolute(), source))
        if revision:
            raise UsageProblem(
                "--revision applies only to a Hub repo id, not to a local path",
                hint="drop --revision",
            )
        if path.is_dir() and gguf_file:
            path = path / gguf_file
            if not path.is_file():
                raise PreflightError(
                    f"no GGUF file {gguf_file} in {source}", hint="check --gguf-file"
                )
        elif gguf_file:
            raise UsageProblem(
                "--gguf-file names a file inside a Hub repo or a directory, not inside a file",
                hint=f"pass the GGUF file itself: curator compile {source}",
            )
        if gguf_source.is_gguf_file(path):
            return _local_gguf(path.resolve(), download)
        if not path.is_dir():
            raise PreflightError(
                f"source {source} is a file, not a model directory or a .gguf file",
                hint="pass a Hugging Face model directory, a .gguf file or an org/name repo id",
            )
        resolved = path.resolve()
        snapshot = _hf_cache_snapshot(resolved)
        if snapshot is not None:  # a Hub download in the HF cache: keep its provenance
            org, repo_name, sha = snapshot
            return SourceModel(resolved, f"{org}/{repo_name}", sha, org, slug(repo_name), True)
        name = slug(resolved.name)
        return SourceModel(resolved, f"local:{name}", None, "local", name, True)
    classify_source(source)  # a path that is not there, or not an org/name id: PreflightError
    org, repo_name = source.split("/", 1)
    if gguf_file:
        return _hub_gguf(source, org, repo_name, gguf_file, revision, download)
    if not download:
        return SourceModel(None, source, revision, org, slug(repo_name), False)
    local_dir, commit = download_for_compile(source, revision)
    return SourceModel(Path(local_dir), source, commit, org, slug(repo_name), False)


def _local_gguf(path: Path, dequantize: bool) -> SourceModel:
    name = slug(gguf_source.model_name(path.name))
    if not dequantize:
        return SourceModel(
            None, f"local:{name}", None, "local", name, True, gguf_path=path, gguf_file=path.name
        )
    checkpoint, origin = gguf_source.dequantize(path)
    return SourceModel(
        checkpoint, f"local:{name}", None, "local", name, True, path, path.name, origin
    )


def _hub_gguf(
    repo: str, org: str, repo_name: str, file: str, revision: str | None, download: bool
) -> SourceModel:
    name = slug(gguf_source.repo_model_name(repo_name))
    if not download:
        return SourceModel(None, repo, revision, org, name, False, gguf_file=file)
    local, commit = gguf_source.download_gguf(repo, file, revision)
    checkpoint, origin = gguf_source.dequantize(local)
    return SourceModel(checkpoint, repo, commit, org, name, False, local, file, origin)


def _hf_cache_snapshot(path: Path) -> tuple[str, str, str] | None:
    """(org, name, sha) for ``.../models--org--name/snapshots/<40-hex sha>``, else None."""
    if path.parent.name != "snapshots" or not re.fullmatch(r"[0-9a-f]{40}", path.name):
        return None
    match = re.fullmatch(r"models--([^/]+?)--(.+)", path.parent.parent.name)
    if not match or not _REPO_ID.match(f"{match.group(1)}/{match.group(2)}"):
        return None
    return match.group(1), match.group(2), path.name


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """config.json as a dict; PreflightError if missing, unreadable or not a JSON object."""
    path = model_dir / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PreflightError(
            f"no config.json in {model_dir}", hint="point SOURCE at a Hugging Face model directory"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PreflightError(f"cannot read {path}: {exc}", hint="check the file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PreflightError(
            f"{path}:{exc.lineno}:{exc.colno}: config.json is not valid JSON: {exc.msg}",
            hint="fix or re-download config.json",
        ) from None
    if not isinstance(data, dict):
        raise PreflightError(f"{path} is not a JSON object", hint="re-download config.json")
    return data


@dataclass(frozen=True)
class WeightFacts:
    parameters: int | None
    weight_bytes: int


def _safetensors_numel(path: Path) -> int:
    """Elements in one safetensors file, from its header checked against the file
    (curator.formats.safetensors: InputFileError, never a traceback, for a hostile header)."""
    return read_safetensors_header(path).parameters


def _counted(path: Path, config: dict[str, Any]) -> int:
    """Parameters in one safetensors file; a pre-quantized checkpoint's packed int32 ``qweight``
    counts 32/bits values per element and its qzeros/scales/g_idx none (issue 21)."""
    quant = prequantized(config)
    if quant is None:
        return _safetensors_numel(path)
    return sum(
        packed_elements(t.name, t.elements, t.dtype, quant.bits)
        for t in read_safetensors_header(path).tensors
    )


def weight_facts(model_dir: Path, config: dict[str, Any]) -> WeightFacts:
    """Parameter count from safetensors headers (no tensor is read); else estimated from bytes."""
    files = sorted(model_dir.glob("*.safetensors"))
    weight_bytes = sum(f.stat().st_size for f in files)
    if files:
        try:
            return WeightFacts(sum(_counted(f, config) for f in files), weight_bytes)
        except (OSError, ValueError, InputFileError):
            pass
    others = [*model_dir.glob("*.bin"), *model_dir.glob("*.pt")]
    weight_bytes += sum(f.stat().st_size for f in others)
    if not weight_bytes:
        return WeightFacts(None, 0)
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return WeightFacts(weight_bytes // _DTYPE_BYTES.get(dtype, 2), weight_bytes)


def custom_code_files(model_dir: Path, config: dict[str, Any]) -> list[str]:
    """Why the model needs its repository's own code: auto_map entries and *.py files."""
    auto_map = config.get("auto_map")
    if auto_map and not isinstance(auto_map, dict):
        auto_map = {"(malformed)": auto_map}  # still repository code: refuse, never guess
    reasons = [f"auto_map {key}" for key in sorted(auto_map or {})]
    reasons += sorted(p.name for p in model_dir.glob("*.py"))
    return reasons
