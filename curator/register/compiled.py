"""``curator register`` of a compiled directory: into Foundry Local's local catalog (load-tested)
and into the team registry, with provenance from the compile manifest.

Flow: resolve the directory -> the id on the command line, the directory's name and the manifest
agree -> check every artifact the manifest lists is there -> register with Foundry (replacing an
earlier registration of the id) -> load and generate a few tokens, measuring peak memory -> on
failure unregister and stop -> add or update the registry entry.

A name that is not a compiled model (an alias or id ``curator pull`` brought from Foundry's
catalog, or a directory holding a finished catalog download) goes to :mod:`.catalog`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.cache.modeldir import (
    GENAI_CONFIG,
    MANIFEST_NAME,
    artifacts,
    dir_model_id,
    find_model_dir,
    id_from_dir_name,
    inside,
    manifest_id,
    read_manifest,
)
from curator.errors import CuratorError, InputFileError, NotFound, UsageProblem
from curator.foundry import runtime
from curator.foundry.catalog import finished_download_id
from curator.foundry.sizing import compiled_kv_shape, kv_cache_bytes, onnx_files_bytes
from curator.foundry.types import MODEL_ID_RE
from curator.jsonio import read_json
from curator.register.catalog import register_catalog_model
from curator.register.entry import (
    build_of,
    context_length,
    foundry_metadata,
    manifest_str,
    publisher_of,
    registry_entry,
    runtime_of,
    source_of,
    variant_of,
)
from curator.register.loadtest import min_ram_for, register_load_tested, serving_floor_gb
from curator.register.types import RegisterResult
from curator.registry import find_model, load_registry, upsert_model


def register(
    target: str,
    *,
    cache_dir: Path,
    registry: Path,
    model_id: str | None = None,
    alias: str | None = None,
    capabilities: tuple[str, ...] = (),
    license: str | None = None,
    min_ram_gb: float | None = None,
) -> RegisterResult:
    """Register a compiled directory (or an id in the cache) with Foundry Local and the registry.

    Re-registering an id replaces the Foundry registration and updates the registry entry (keeping
    its benchmarks, fidelity and notes). A model that fails to load or generate is unregistered.
    """
    catalog_id = _catalog_download_of(target)
    if catalog_id is not None or _is_catalog_target(target, cache_dir):
        return register_catalog_model(
            catalog_id or target,
            cache_dir=cache_dir,
            registry=registry,
            model_id=model_id,
            alias=alias,
            capabilities=capabilities,
            license=license,
            min_ram_gb=min_ram_gb,
        )
    path = resolve_model_dir(target, cache_dir)
    manifest = read_manifest(path)
    config = check_model_dir(path, manifest)
    if manifest is None or not artifacts(manifest):
        raise InputFileError(
            f"{path} has no {MANIFEST_NAME} listing its artifacts: the registry needs its provenance",
            hint="compile it with curator compile SOURCE --recipe NAME",
        )
    check_one_id(target, path, manifest, model_id, cache_dir)
    chosen_id = model_id or dir_model_id(path, manifest)
    if not chosen_id or not MODEL_ID_RE.match(chosen_id):
        raise UsageProblem(
            f"cannot tell the model id of {path} (got {chosen_id!r})",
            hint="pass --id NAME-VARIANT:VERSION, e.g. tiny-qwen2-generic-cpu:1",
        )
    variant_match = variant_of(chosen_id)
    if variant_match is None:
        raise UsageProblem(
            f"model id {chosen_id!r} does not end in a variant such as -generic-cpu",
            hint="use NAME-VARIANT:VERSION, e.g. tiny-qwen2-generic-cpu:1",
        )
    existing = find_model(load_registry(registry), chosen_id)
    chosen_license = license or manifest_str(manifest, "license") or (existing or {}).get("license")
    if not chosen_license:
        raise UsageProblem(
            f"no license known for {chosen_id}", hint="pass --license SPDX-ID, e.g. --license mit"
        )
    name = chosen_id.rsplit(":", 1)[0]
    chosen_alias = alias or (existing or {}).get("alias") or name[: variant_match.start()]
    listed = artifacts(manifest)
    completion_only = bool(manifest.get("completionOnly"))  # issue 21: continues text, no chat
    entry = registry_entry(
        model_id=chosen_id,
        alias=chosen_alias,
        display_name=manifest_str(manifest, "displayName")
        or (existing or {}).get("displayName")
        or chosen_alias,
        task="text-generation" if completion_only else "chat-completion",
        license=chosen_license,
        publisher=publisher_of(path, manifest, existing, cache_dir),
        capabilities=list(capabilities)
        or (existing or {}).get("capabilities")
        or ([] if completion_only else ["chat"]),
        file_size_mb=round(sum(int(a.get("bytes", 0)) for a in listed) / 2**20, 2),
        min_ram_gb=0.0,  # from the load test, below
        context_length=context_length(config),
        runtime=runtime_of(config, manifest),
        source=source_of(path, manifest, config),
        build=build_of(manifest, listed),
        existing=existing,
    )
    registration = register_load_tested(
        cache_dir, path, chosen_id, foundry_metadata(entry, context_length(config))
    )
    test = registration.load_test
    floor = serving_floor(path, config, runtime_of(config, manifest)[0])
    ram = entry["minRamGb"] = min_ram_for(min_ram_gb, test, existing, floor)
    try:
        action = upsert_model(registry, entry)
    except CuratorError:
        registration.undo()
        raise
    return RegisterResult(
        id=chosen_id,
        path=path,
        foundry_action=registration.action,
        registry_action=action,
        registry=registry,
        min_ram_gb=ram,
        load_test=test,
        entry=entry,
    )


def resolve_model_dir(target: str, cache_dir: Path) -> Path:
    """A directory path, or a model id looked up in the cache."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path.absolute()
    if ":" in target and "/" not in target:
        found = find_model_dir(cache_dir, target)
        if found is None and cache_dir.is_dir():
            registered = runtime(cache_dir).get(target)
            found = registered.path if registered is not None else None
        if found is not None and found.is_dir():
            return found.absolute()
        raise NotFound(
            f"no compiled directory for {target} in {cache_dir}",
            hint="curator compile SOURCE --recipe int4-cpu, or pass the directory",
        )
    raise NotFound(f"no such directory: {target}", hint="pass a compiled model directory or id")


def check_model_dir(path: Path, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """genai_config.json parses and every artifact the manifest lists exists; returns the config."""
    if not (path / GENAI_CONFIG).is_file():
        raise InputFileError(
            f"{path} has no {GENAI_CONFIG}: not an ONNX Runtime GenAI model directory",
            hint="curator compile SOURCE --recipe int4-cpu",
        )
    config = read_json(path / GENAI_CONFIG, GENAI_CONFIG)
    if not isinstance(config, dict):
        raise InputFileError(f"{path / GENAI_CONFIG} is not a JSON object", hint="recompile")
    wanted = [str(a["path"]) for a in artifacts(manifest)]
    decoder = (
        config.get("model", {}).get("decoder", {}) if isinstance(config.get("model"), dict) else {}
    )
    filename = decoder.get("filename") if isinstance(decoder, dict) else None
    if isinstance(filename, str):
        wanted.append(filename)
    missing = sorted({rel for rel in wanted if not (path / rel).is_file()})
    if missing:
        raise InputFileError(
            f"{path} is incomplete: missing {', '.join(missing)}",
            hint="recompile it (curator compile ... --force); curator cache verify shows changes",
        )
    return config


def check_one_id(
    target: str,
    path: Path,
    manifest: dict[str, Any] | None,
    model_id: str | None,
    cache_dir: Path,
) -> None:
    """One id, one directory: the id on the command line (or ``--id``), the directory's name (for
    a directory in the cache, where compile names it after the id) and the manifest must agree.

    A directory copied under a new name still carries the old id in its manifest; registering it
    would re-point the old id's registration at the copy. Raises UsageProblem naming each source.
    """
    given = target if not Path(target).expanduser().is_dir() else None
    said: list[tuple[str, str]] = []
    if given is not None:
        said.append(("the command line", given))
    if model_id is not None:
        said.append(("--id", model_id))
    if inside(path, cache_dir):
        from_name = id_from_dir_name(path.name)
        if from_name is not None:
            said.append((f"the directory name {path.name}", from_name))
    declared = manifest_id(manifest)
    if declared is not None:
        said.append((f"the manifest ({MANIFEST_NAME})", declared))
    if len({value for _, value in said}) > 1:
        raise UsageProblem(
            f"{path}: the model id differs: "
            + ", ".join(f"{where} says {value}" for where, value in said),
            hint="a copied directory keeps its manifest's id: compile the model under the new id "
            "(curator compile SOURCE --id NEW) instead of copying it",
        )


def _catalog_download_of(target: str) -> str | None:
    """The catalog id of a directory holding a finished Foundry catalog download (no manifest)."""
    path = Path(target).expanduser()
    if not path.is_dir() or (path / MANIFEST_NAME).is_file():
        return None
    return finished_download_id(path)


def _is_catalog_target(target: str, cache_dir: Path) -> bool:
    """Not a directory, not a compiled model in the cache, not a local registration: a name for
    Foundry's catalog (an alias, or an id whose directory holds no compile manifest)."""
    if Path(target).expanduser().is_dir() or "/" in target:
        return False
    found = find_model_dir(cache_dir, target) if ":" in target else None
    if found is not None:
        return not (found / MANIFEST_NAME).is_file() and finished_download_id(found) is not None
    if ":" in target and cache_dir.is_dir():
        registered = runtime(cache_dir).get(target)
        if registered is not None and not registered.catalog:
            return False
    return True


def serving_floor(path: Path, config: dict[str, Any], device_type: str) -> float:
    """minRamGb's floor for a compiled directory: its ONNX files plus the KV cache its runtime
    allocates at its context length (0.0 when genai_config.json lacks the sizes)."""
    kv = kv_cache_bytes(compiled_kv_shape(path, device_type), context_length(config))
    return 0.0 if kv is None else serving_floor_gb(onnx_files_bytes(path), kv)
