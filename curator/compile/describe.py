"""``curator info`` on a local source: the same kind of facts for every kind compile takes.

A Hugging Face checkpoint directory, a GGUF file, an ONNX Runtime GenAI folder (or one laid out
like ``microsoft/*-onnx`` with a subfolder per variant) and a PEFT LoRA adapter folder are each
read from their small files and headers only (no tensor data, no torch): parameters, size,
architecture, license, chat template, context, which recipes can compile it here and the memory
they predict, and the command that brings it in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.compile import check, source
from curator.compile.gguf_source import already_quantized_note, model_name
from curator.compile.prequantized import PREQUANTIZED_RECIPE, builder_reads, prequantized
from curator.errors import CuratorError
from curator.formats.gguf import read_gguf_facts
from curator.hub.feasibility import int4_run_bytes, recipe_fits
from curator.hub.models import RecipeFit
from curator.recipes import load_recipes

# GGUF general.architecture -> the transformers class its checkpoint is dequantized to.
GGUF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "granite": "GraniteForCausalLM",
    "nemotron": "NemotronForCausalLM",
}
NO_TEMPLATE_NOTE = (
    "no chat template: compile with --chat-template NAME|FILE (curator ships chatml, llama3, "
    "gemma, phi3, zephyr, mistral) or register it as a base model with --completion-only"
)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class SourceFacts:
    """What ``curator info PATH`` reports about a local source; None is a fact not known."""

    source: str
    kind: str  # checkpoint | gguf | genai | adapter (curator.compile.source)
    path: Path
    name: str
    architecture: str | None
    model_type: str | None
    parameters: int | None
    size_bytes: int
    files: int
    license: str | None
    chat_template: bool | None
    context_length: int | None
    quantization: str | None  # GGUF types, a checkpoint's quantization_config, a genai precision
    base_model: str | None  # an adapter's base
    variants: tuple[str, ...]  # a genai folder's variant subfolders
    recipes: tuple[RecipeFit, ...]
    run_bytes: int | None  # predicted memory to run it (int4-cpu, or the files themselves)
    next_command: str
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def card_metadata(directory: Path) -> dict[str, str]:
    """Top-level ``key: value`` scalars of README.md's YAML front matter (license, base_model ...).

    Read without a YAML library: only plain one-line scalars and the first item of a list."""
    try:
        text = (directory / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}
    found: dict[str, str] = {}
    key: str | None = None
    for line in match.group(1).splitlines():
        item = re.match(r"^([A-Za-z_][\w-]*):\s*(.*)$", line)
        if item:
            key, value = item.group(1), item.group(2).strip().strip("'\"")
            if value:
                found[key] = value
            continue
        listed = re.match(r"^\s+-\s+(.+)$", line)
        if listed and key and key not in found:
            found[key] = listed.group(1).strip().strip("'\"")
    return found


def local_license(directory: Path) -> str | None:
    """The card's ``license``, else "see LICENSE" when the folder ships a license file."""
    license_id = card_metadata(directory).get("license")
    if license_id:
        return license_id
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE"):
        if (directory / name).is_file():
            return f"see {name}"
    return None


def _files(directory: Path) -> list[Path]:
    """Every file under ``directory`` except huggingface_hub's download bookkeeping (.cache/)."""
    return [
        p
        for p in directory.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(directory).parts
    ]


def _int4_run_bytes(parameters: int | None) -> int | None:
    return int4_run_bytes(parameters)


def _fits(
    architecture: str | None, parameters: int | None, fmt: str | None, auto_map: bool = False
) -> tuple[RecipeFit, ...]:
    return recipe_fits(architecture, parameters, fmt, auto_map=auto_map)


def quantization_label(config: Mapping[str, Any]) -> str | None:
    """``awq 4-bit, group 128`` from a checkpoint's ``quantization_config``; None without one."""
    quant = config.get("quantization_config")
    if not isinstance(quant, Mapping):
        return None
    method = str(quant.get("quant_method") or "quantized")
    bits = quant.get("bits") or quant.get("w_bit")
    group = quant.get("group_size") or quant.get("q_group_size")
    parts = [method] + ([f"{bits}-bit"] if bits else [])
    text = " ".join(parts)
    return f"{text}, group {group}" if group else text


def describe_local(kind: source.SourceKind) -> SourceFacts:
    """Facts about a local source classified by :func:`curator.compile.source.classify_local`."""
    assert kind.path is not None, "a local source"
    describe = {
        source.CHECKPOINT: _checkpoint,
        source.GGUF: _gguf,
        source.GENAI: _genai,
        source.ADAPTER: _adapter,
    }[kind.kind]
    return describe(kind.source, kind.path)


def _checkpoint(given: str, path: Path) -> SourceFacts:
    config = source.read_model_config(path)
    architectures = config.get("architectures")
    architecture = (
        str(architectures[0]) if isinstance(architectures, list) and architectures else None
    )
    weights = source.weight_facts(path, config)
    files = _files(path)
    fmt = (
        "safetensors"
        if any(path.glob("*.safetensors"))
        else ("pytorch" if any(path.glob("*.bin")) else None)
    )
    auto_map = bool(source.custom_code_files(path, config))
    has_template = check.has_chat_template(path)
    raw_context = config.get("max_position_embeddings")
    notes: list[str] = []
    if not has_template:
        notes.append(NO_TEMPLATE_NOTE)
    snapshot = source._hf_cache_snapshot(path.resolve())
    name = snapshot[1] if snapshot else path.resolve().name
    return SourceFacts(
        source=given,
        kind=source.CHECKPOINT,
        path=path,
        name=name,
        architecture=architecture,
        model_type=str(config["model_type"]) if config.get("model_type") else None,
        parameters=weights.parameters,
        size_bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        license=local_license(path),
        chat_template=has_template,
        context_length=raw_context if isinstance(raw_context, int) else None,
        quantization=quantization_label(config),
        base_model=None,
        variants=(),
        recipes=_prequantized_fits(config, _fits(architecture, weights.parameters, fmt, auto_map)),
        run_bytes=_int4_run_bytes(weights.parameters),
        next_command=f"curator compile {given} --recipe {_recipe_for(config)}",
        notes=tuple(notes),
    )


def _recipe_for(config: Mapping[str, Any]) -> str:
    return PREQUANTIZED_RECIPE if prequantized(config) is not None else "int4-cpu"


def _prequantized_fits(
    config: Mapping[str, Any], fits: tuple[RecipeFit, ...]
) -> tuple[RecipeFit, ...]:
    """A pre-quantized checkpoint: only a recipe whose one pass is the builder can read it."""
    from dataclasses import replace

    quant = prequantized(config)
    if quant is None:
        return fits
    readers = {r.name for r in load_recipes() if builder_reads(r)}
    return tuple(
        fit
        if fit.recipe in readers or not fit.can_compile
        else replace(
            fit,
            can_compile=False,
            reason=f"pre-quantized {quant.describe()}: it would quantize the packed weights again",
            reason_kind="pre-quantized",
        )
        for fit in fits
    )


def _gguf(given: str, path: Path) -> SourceFacts:
    header = read_gguf_facts(path)
    architecture = GGUF_ARCHITECTURES.get(header.architecture)
    notes = [already_quantized_note(path.name, header.quantization_types)]
    if architecture is None:
        notes.append(
            f"GGUF architecture {header.architecture} has no transformers class curator knows: "
            "the compile may refuse it"
        )
    if not header.has_chat_template:
        notes.append(NO_TEMPLATE_NOTE)
    license_id = header.metadata.get("general.license")
    return SourceFacts(
        source=given,
        kind=source.GGUF,
        path=path,
        name=str(header.name or model_name(path.name)),
        architecture=architecture or header.architecture,
        model_type=header.architecture,
        parameters=header.parameter_count or None,
        size_bytes=header.size_bytes,
        files=1,
        license=str(license_id) if license_id else None,
        chat_template=header.has_chat_template,
        context_length=header.context_length,
        quantization=", ".join(header.quantization_types),
        base_model=None,
        variants=(),
        recipes=_fits(architecture, header.parameter_count or None, "gguf"),
        run_bytes=_int4_run_bytes(header.parameter_count or None),
        next_command=f"curator compile {given} --recipe int4-cpu",
        notes=tuple(notes),
        details={
            "ggufVersion": header.version,
            "ggufArchitecture": header.architecture,
            "tensorCount": header.tensor_count,
            "vocabSize": header.vocab_size,
            "quantizationTypes": list(header.quantization_types),
        },
    )


def _no_recipe(reason: str) -> tuple[RecipeFit, ...]:
    return tuple(
        RecipeFit(r.name, r.device, r.precision, False, reason, "not a checkpoint", (), None, None)
        for r in load_recipes()
    )


def _genai(given: str, path: Path) -> SourceFacts:
    variants = () if (path / source.GENAI_CONFIG).is_file() else source.genai_variants(path)
    model_dir = path if not variants else path / variants[0]
    genai = _read_json(model_dir / source.GENAI_CONFIG)
    model = genai.get("model") if isinstance(genai.get("model"), dict) else {}
    assert isinstance(model, dict)
    files = _files(model_dir)
    weights = sum(p.stat().st_size for p in files if p.suffix in (".onnx", ".data") or
                  p.name.endswith(".onnx.data"))  # fmt: skip
    notes = ["already ONNX Runtime GenAI: nothing to compile; import brings it in as it is"]
    if variants:
        notes.append(
            f"{len(variants)} variants; facts are for {variants[0]} (choose with --subfolder)"
        )
    has_template = check.has_chat_template(model_dir)
    if not has_template:
        notes.append(NO_TEMPLATE_NOTE.replace("compile with", "import with"))
    context = model.get("context_length")
    hf_config = _read_json(model_dir / "config.json")
    architectures = hf_config.get("architectures")
    command = f"curator import {given}"
    if variants:
        command += f" --subfolder {variants[0]}"
    return SourceFacts(
        source=given,
        kind=source.GENAI,
        path=path,
        name=path.resolve().name,
        architecture=(
            str(architectures[0]) if isinstance(architectures, list) and architectures else None
        ),
        model_type=str(model["type"]) if model.get("type") else None,
        parameters=None,
        size_bytes=sum(p.stat().st_size for p in _files(path)),
        files=len(_files(path)),
        license=local_license(path) or local_license(model_dir),
        chat_template=has_template,
        context_length=context if isinstance(context, int) else None,
        quantization=_genai_precision(model_dir.name),
        base_model=None,
        variants=variants,
        recipes=_no_recipe("already ONNX Runtime GenAI: use curator import"),
        run_bytes=int(weights * 1.15) + 300_000_000 if weights else None,
        next_command=command,
        notes=tuple(notes),
    )


def _genai_precision(name: str) -> str | None:
    match = re.search(r"(int4|int8|fp16|fp32|bf16|q4|uint8)", name.lower())
    return match.group(1) if match else None


def _adapter(given: str, path: Path) -> SourceFacts:
    config = _read_json(path / source.ADAPTER_CONFIG)
    card = card_metadata(path)
    base = str(config.get("base_model_name_or_path") or card.get("base_model") or "") or None
    weights = sorted(path.glob("adapter_model*.safetensors"))
    parameters = None
    try:
        parameters = sum(source._safetensors_numel(w) for w in weights) if weights else None
    except (OSError, ValueError, KeyError, TypeError, CuratorError):
        parameters = None
    files = _files(path)
    has_template = check.has_chat_template(path)
    rank = config.get("r")
    targets = config.get("target_modules")
    notes = [
        f"{config.get('peft_type', 'PEFT')} adapter"
        + (f", rank {rank}" if rank else "")
        + (f", on {', '.join(map(str, targets))}" if isinstance(targets, list) else "")
        + ": merged into its base before the build"
    ]
    command = f"curator compile {base or 'BASE'} --adapter {given} --recipe int4-cpu"
    return SourceFacts(
        source=given,
        kind=source.ADAPTER,
        path=path,
        name=path.resolve().name,
        architecture=None,
        model_type=None,
        parameters=parameters,
        size_bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        license=local_license(path),
        chat_template=has_template if has_template else None,
        context_length=None,
        quantization=None,
        base_model=base,
        variants=(),
        recipes=_no_recipe(f"an adapter: compile its base {base or ''} with --adapter".strip()),
        run_bytes=None,
        next_command=command,
        notes=tuple(notes),
        details={
            key: config[key]
            for key in ("peft_type", "r", "lora_alpha", "target_modules", "task_type")
            if key in config
        },
    )
