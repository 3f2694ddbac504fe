"""What a compiled directory says about itself: inference_model.json and curator-manifest.json."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from curator import __version__
from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.compile.adapter import governing_license
from curator.compile.types import Artifact, CompilePlan
from curator.jsonio import write_json_atomic
from curator.recipes import Recipe

INFERENCE_MODEL_NAME = "inference_model.json"
LOG_NAME = "compile.log"
# Not artifacts: the manifest cannot hash itself, and the log differs on every run.
NOT_ARTIFACTS = frozenset({MANIFEST_NAME, LOG_NAME})
TOOL_PACKAGES = (
    "olive-ai",
    "onnxruntime-genai",
    "onnxruntime",
    "transformers",
    "tokenizers",
    "torch",
)
_SENTINEL = "\u2063CURATOR-CONTENT\u2063"


def tool_versions() -> dict[str, str]:
    tools = {"curator": __version__, "python": platform.python_version()}
    for package in TOOL_PACKAGES:
        try:
            tools[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return dict(sorted(tools.items()))


def chat_template_text(model_dir: Path) -> str | None:
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name, key in (
        ("chat_template.json", "chat_template"),
        ("tokenizer_config.json", "chat_template"),
    ):
        try:
            data = json.loads((model_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # named templates: take "default"
            for item in value:
                if isinstance(item, dict) and item.get("name") == "default":
                    return str(item.get("template", ""))
    return None


def _special_tokens(model_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    tokens: dict[str, str] = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


def prompt_template(model_dir: Path) -> dict[str, str]:
    """Foundry's PromptTemplate ({Content} placeholders) rendered from the model's chat template."""
    source = chat_template_text(model_dir)
    if not source:
        return {}
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def strftime_now(fmt: str) -> str:
        return dt.datetime.now().strftime(fmt)

    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now  # used by some templates (as transformers offers)
    template = env.from_string(source)
    specials = _special_tokens(model_dir)

    def render(role: str, generation_prompt: bool) -> str | None:
        messages = [{"role": role, "content": _SENTINEL}]
        try:
            text = template.render(
                messages=messages, add_generation_prompt=generation_prompt, **specials
            )
        except Exception:  # a template may refuse a role (e.g. no system messages)
            return None
        if _SENTINEL not in text:
            return None
        return text.replace(_SENTINEL, "{Content}")

    result: dict[str, str] = {}
    for role in ("system", "user", "assistant"):
        rendered = render(role, False)
        if rendered is not None:
            result[role] = rendered
    prompt = render("user", True)
    if prompt is not None:
        result["prompt"] = prompt
    return result


def write_inference_model(model_dir: Path, model_id: str) -> Path:
    path = model_dir / INFERENCE_MODEL_NAME
    write_json_atomic(
        path, {"Name": model_id.split(":", 1)[0], "PromptTemplate": prompt_template(model_dir)}
    )
    return path


def artifacts(model_dir: Path) -> tuple[Artifact, ...]:
    """Every file in the directory (relative path, sha256, bytes), except the manifest and log."""
    found = []
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if relative in NOT_ARTIFACTS:
            continue
        found.append(Artifact(relative, sha256_file(path), path.stat().st_size))
    return tuple(found)


def context_length(model_dir: Path) -> int | None:
    try:
        config = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
        return int(config["model"]["context_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def manifest_document(
    *,
    plan: CompilePlan,
    recipe: Recipe,
    found: tuple[Artifact, ...],
    compiled_at: str,
    wall_seconds: float,
    olive_seconds: float,
    peak_rss_bytes: int,
    context: int | None,
    predicted_run_bytes: int | None,
) -> dict[str, Any]:
    """Provenance, with ``source``/``build``/``runtime`` shaped like a registry entry's."""
    source: dict[str, Any] = {"repo": plan.source_repo}
    if plan.source_revision:
        source["revision"] = plan.source_revision
    if plan.architecture:
        source["architecture"] = plan.architecture
    if plan.parameters:
        source["parameters"] = plan.parameters
    total = sum(a.bytes for a in found)
    document: dict[str, Any] = {
        # Where the fp32 weights were read from: the reference `curator fidelity` compares with.
        "sourceDir": str(plan.source_dir) if plan.source_dir else None,
        "schemaVersion": 1,
        "id": plan.model_id,
        "publisher": plan.publisher,
        "variant": recipe.variant,
        "precision": recipe.precision,
        "source": source,
        "build": {
            "recipe": recipe.name,
            "recipeSha256": recipe.sha256,
            "compiledAt": compiled_at,
            "tools": tool_versions(),
            "artifacts": [{"path": a.path, "sha256": a.sha256, "bytes": a.bytes} for a in found],
        },
        "runtime": {
            "deviceType": recipe.device.upper(),
            "executionProvider": recipe.execution_provider,
        },
        "fileSizeMb": round(total / 2**20, 3),
        "compile": {
            "wallSeconds": round(wall_seconds, 3),
            "oliveSeconds": round(olive_seconds, 3),
            "peakRssBytes": peak_rss_bytes,
        },
    }
    if plan.chat_template is not None:  # --chat-template / --completion-only (issue 21)
        document["chatTemplate"] = plan.chat_template.manifest_record()
    if plan.completion_only:
        document["completionOnly"] = True
    if plan.source_license:
        source["license"] = plan.source_license
    if plan.source_adapter is not None:  # --adapter (issue 21): base and adapter both recorded
        document["adapter"] = plan.source_adapter.manifest_record()
        governing = governing_license(plan.source_license, plan.source_adapter.license)
        if governing:
            document["license"] = governing
    if plan.source_gguf is not None:  # already quantized: which file, which types (issue 11)
        document["gguf"] = plan.source_gguf.manifest_record()
    if predicted_run_bytes:
        document["predictedRunBytes"] = predicted_run_bytes
    if context:
        document["contextLength"] = context
    return document


def write_manifest(model_dir: Path, document: dict[str, Any]) -> Path:
    path = model_dir / MANIFEST_NAME
    write_json_atomic(path, document)
    return path
