"""The registry entry both flows write, built in one place (:func:`registry_entry`), the Foundry
metadata registered from it (:func:`foundry_metadata`), and what a compiled directory's manifest
and genai_config tell about it (publisher, source, build, runtime).

A re-registration keeps what was measured or written by people (KEPT_ON_REREGISTER); the rest is
what this registration knows."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curator.cache.modeldir import inside
from curator.foundry.types import MODEL_ID_RE, ModelMetadata

VARIANT_RE = re.compile(r"-(?P<variant>[a-z0-9]+-(?P<device>cpu|gpu|npu))$")
PUBLISHER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PROVIDERS = {
    "cuda": ("GPU", "CUDAExecutionProvider"),
    "dml": ("GPU", "DmlExecutionProvider"),
    "webgpu": ("GPU", "WebGpuExecutionProvider"),
    "openvino": ("NPU", "OpenVINOExecutionProvider"),
    "qnn": ("NPU", "QNNExecutionProvider"),
    "vitisai": ("NPU", "VitisAIExecutionProvider"),
}

# What a re-registration keeps from the entry it replaces: what was measured or written by people.
KEPT_ON_REREGISTER = (
    "benchmarks",
    "fidelity",
    "notes",
    "licenseDescription",
    "maxOutputTokens",
    "supportsToolCalling",
)


def variant_of(model_id: str) -> re.Match[str] | None:
    """The ``-<variant>-<device>`` ending of a registry id (``None`` if the id has none or is not
    of the registry's form ``<name>-<variant>:<version>``)."""
    if not MODEL_ID_RE.match(model_id):
        return None
    return VARIANT_RE.search(model_id.rsplit(":", 1)[0])


def registry_entry(
    *,
    model_id: str,
    alias: str,
    display_name: str,
    task: str,
    license: str,
    publisher: str,
    capabilities: list[str],
    file_size_mb: float,
    min_ram_gb: float,
    context_length: int | None,
    runtime: tuple[str, str],
    source: dict[str, Any],
    build: dict[str, Any] | None = None,
    existing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The entry for ``model_id``: what the entry it replaces keeps, then what is known now.
    ``model_id`` must have a variant (see :func:`variant_of`)."""
    match = variant_of(model_id)
    if match is None:
        raise ValueError(f"{model_id!r} is not a registry id with a variant")
    entry = {key: value for key, value in (existing or {}).items() if key in KEPT_ON_REREGISTER}
    entry.update(
        {
            "id": model_id,
            "alias": alias,
            "displayName": display_name,
            "variant": match["variant"],
            "task": task,
            "license": license,
            "publisher": publisher,
            "capabilities": capabilities,
            "fileSizeMb": max(float(file_size_mb), 0.01),
            "minRamGb": min_ram_gb,
            "contextLength": context_length or 1,
            "runtime": {"deviceType": runtime[0], "executionProvider": runtime[1]},
            "source": source,
        }
    )
    if build is not None:
        entry["build"] = build
    return entry


def foundry_metadata(entry: Mapping[str, Any], context_length: int | None = None) -> ModelMetadata:
    """What Foundry's local catalog records for an entry's model (compiled, or pulled from a team
    registry). ``context_length`` overrides the entry's (whose unknown value is 1)."""
    declared = entry.get("runtime")
    runtime: Mapping[str, Any] = declared if isinstance(declared, dict) else {}
    return ModelMetadata(
        display_name=entry.get("displayName"),
        publisher=entry.get("publisher"),
        license=entry.get("license"),
        file_size_mb=max(1, round(float(entry.get("fileSizeMb", 1)))),
        context_length=context_length if context_length is not None else entry.get("contextLength"),
        device_type=runtime.get("deviceType"),
        execution_provider=runtime.get("executionProvider"),
    )


def context_length(config: dict[str, Any]) -> int | None:
    model, search = config.get("model"), config.get("search")
    for value in (
        model.get("context_length") if isinstance(model, dict) else None,
        search.get("max_length") if isinstance(search, dict) else None,
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def runtime_of(config: dict[str, Any], manifest: dict[str, Any] | None) -> tuple[str, str]:
    """(deviceType, executionProvider): the manifest's if given, else from genai_config."""
    declared = (manifest or {}).get("runtime")
    if (
        isinstance(declared, dict)
        and declared.get("deviceType")
        and declared.get("executionProvider")
    ):
        return str(declared["deviceType"]), str(declared["executionProvider"])
    try:
        options = config["model"]["decoder"]["session_options"]["provider_options"]
    except (KeyError, TypeError):
        options = []
    for option in options if isinstance(options, list) else []:
        for name in option if isinstance(option, dict) else {}:
            if name.lower() in _PROVIDERS:
                return _PROVIDERS[name.lower()]
    return "CPU", "CPUExecutionProvider"


def manifest_str(manifest: dict[str, Any], key: str) -> str | None:
    for holder in (manifest, manifest.get("source")):
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            return str(holder[key])
    return None


def publisher_of(
    path: Path, manifest: dict[str, Any], existing: dict[str, Any] | None, cache_dir: Path
) -> str:
    declared = manifest_str(manifest, "publisher") or (existing or {}).get("publisher")
    if declared and PUBLISHER_RE.match(declared):
        return str(declared)
    # <cache>/<publisher>/<model>: the parent names the publisher (not for <cache>/<model>)
    if inside(path.parent, cache_dir, strictly=True) and PUBLISHER_RE.match(path.parent.name):
        return path.parent.name
    return "local"


def source_of(path: Path, manifest: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    raw = manifest.get("source")
    declared: dict[str, Any] = raw if isinstance(raw, dict) else {}
    source: dict[str, Any] = {}
    repo = declared.get("repo") or declared.get("repoId")
    if (
        isinstance(repo, str)
        and re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$", repo)
    ) or (isinstance(repo, str) and repo.startswith("local:")):
        source["repo"] = repo
    else:
        local_name = Path(str(declared.get("path") or repo or path.name)).name
        source["repo"] = "local:" + (
            re.sub(r"[^A-Za-z0-9._-]", "-", local_name).lstrip("._-") or "model"
        )
    revision = declared.get("revision")
    if isinstance(revision, str) and re.match(r"^[0-9a-f]{40}$", revision):
        source["revision"] = revision
    source["architecture"] = _architecture(path, declared, config)
    parameters = declared.get("parameters")
    if isinstance(parameters, int) and parameters > 0:
        source["parameters"] = parameters
    source.update(_byom_source(manifest, declared))
    return source


_LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
# A relative folder inside the repo: no "." or ".." part (the schema's subfolder pattern).
_SUBFOLDER_RE = re.compile(r"^(?!\.\.?(/|$))[A-Za-z0-9._-]+(/(?!\.\.?(/|$))[A-Za-z0-9._-]+)*$")


def _byom_source(manifest: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """Issue 21: the base's license, an imported variant's subfolder, a merged adapter."""
    found: dict[str, Any] = {}
    license_id = declared.get("license")
    if isinstance(license_id, str) and _LICENSE_RE.match(license_id):
        found["license"] = license_id
    subfolder = declared.get("subfolder")
    if isinstance(subfolder, str) and _SUBFOLDER_RE.fullmatch(subfolder):
        found["subfolder"] = subfolder
    adapter = manifest.get("adapter")
    if isinstance(adapter, dict) and isinstance(adapter.get("repo"), str):
        from curator.compile.types import files_digest  # start-up: curator.compile loads its api

        record: dict[str, Any] = {"repo": adapter["repo"], "sha256": files_digest(adapter)}
        if isinstance(adapter.get("revision"), str) and re.match(
            r"^[0-9a-f]{40}$", adapter["revision"]
        ):
            record["revision"] = adapter["revision"]
        if isinstance(adapter.get("license"), str) and _LICENSE_RE.match(adapter["license"]):
            record["license"] = adapter["license"]
        if isinstance(adapter.get("rank"), int) and adapter["rank"] > 0:
            record["rank"] = adapter["rank"]
        found["adapter"] = record
    return found


def _architecture(path: Path, declared: dict[str, Any], config: dict[str, Any]) -> str:
    value = declared.get("architecture")
    if isinstance(value, str) and re.match(r"^[A-Za-z0-9]+$", value):
        return value
    hf_config = path / "config.json"
    if hf_config.is_file():
        try:
            names = json.loads(hf_config.read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError, AttributeError):
            names = []
        if names and isinstance(names[0], str) and re.match(r"^[A-Za-z0-9]+$", names[0]):
            return str(names[0])
    model_type = (
        config.get("model", {}).get("type") if isinstance(config.get("model"), dict) else None
    )
    return re.sub(r"[^A-Za-z0-9]", "", str(model_type or "unknown")) or "unknown"


def build_of(manifest: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, Any]:
    raw = manifest.get("build")
    declared: dict[str, Any] = raw if isinstance(raw, dict) else manifest
    build: dict[str, Any] = {
        "recipe": declared.get("recipe"),
        "recipeSha256": declared.get("recipeSha256"),
        "tools": declared.get("tools") if isinstance(declared.get("tools"), dict) else {},
        "artifacts": [
            {"path": a["path"], "sha256": a.get("sha256"), "bytes": a.get("bytes")} for a in listed
        ],
    }
    compiled_at = declared.get("compiledAt") or manifest.get("compiledAt")
    if isinstance(compiled_at, str):
        build["compiledAt"] = compiled_at
    return build
