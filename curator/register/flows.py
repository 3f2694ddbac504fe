"""``curator register``: a compiled directory into Foundry Local's local catalog (load-tested) and
into the team registry, with provenance from the compile manifest.

Flow: resolve the directory -> the id on the command line, the directory's name and the manifest
agree -> check every artifact the manifest lists is there -> register with Foundry (replacing an
earlier registration of the id) -> load and generate a few tokens, measuring peak memory -> on
failure unregister and stop -> add or update the registry entry.

A Foundry catalog model (an alias or id ``curator pull`` brought into the cache) takes the same load
test and gets a registry entry whose ``source`` is the catalog (no build: curator did not compile
it); ``pull_catalog_model`` is ``curator pull`` for such models.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, FoundryError, InputFileError, NotFound, UsageProblem
from curator.jsonio import read_json
from curator.modeldir import (
    GENAI_CONFIG,
    MANIFEST_NAME,
    artifacts,
    dir_bytes,
    dir_model_id,
    find_model_dir,
    id_from_dir_name,
    manifest_id,
    read_manifest,
)
from curator.portable import peak_rss_bytes

HEADROOM_FACTOR = 1.5
HEADROOM_GB = 0.25
LOAD_TEST_MESSAGES = [{"role": "user", "content": "Hello! Who are you?"}]
LOAD_TEST_TOKENS = 8
_VARIANT_RE = re.compile(r"-(?P<variant>[a-z0-9]+-(?P<device>cpu|gpu|npu))$")
_PUBLISHER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCHEMA_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]:[1-9][0-9]{0,5}$")
_PROVIDERS = {
    "cuda": ("GPU", "CUDAExecutionProvider"),
    "dml": ("GPU", "DmlExecutionProvider"),
    "webgpu": ("GPU", "WebGpuExecutionProvider"),
    "openvino": ("NPU", "OpenVINOExecutionProvider"),
    "qnn": ("NPU", "QNNExecutionProvider"),
    "vitisai": ("NPU", "VitisAIExecutionProvider"),
}


@dataclass(frozen=True)
class LoadTest:
    """The load test's figures: load time, the short answer's usage, the process's peak RSS."""

    load_ms: float
    generate_ms: float
    prompt_tokens: int
    completion_tokens: int
    peak_rss_mb: float


@dataclass(frozen=True)
class RegisterResult:
    id: str
    path: Path
    foundry_action: str  # "registered" | "re-registered"
    registry_action: str  # "added" | "updated"
    registry: Path
    min_ram_gb: float
    load_test: LoadTest
    entry: dict[str, Any]


def resolve_model_dir(target: str, cache_dir: Path) -> Path:
    """A directory path, or a model id looked up in the cache."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path.absolute()
    if ":" in target and "/" not in target:
        found = find_model_dir(cache_dir, target)
        if found is None and cache_dir.is_dir():
            from curator.foundry import runtime

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


def _peak_rss_mb() -> float:
    return peak_rss_bytes() / 2**20


# What a re-registration keeps from the entry it replaces: what was measured or written by people.
KEPT_ON_REREGISTER = (
    "benchmarks",
    "fidelity",
    "notes",
    "licenseDescription",
    "maxOutputTokens",
    "supportsToolCalling",
)


def _kept_on_reregister(existing: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (existing or {}).items() if key in KEPT_ON_REREGISTER}


def min_ram_from_peak(peak_rss_mb: float) -> float:
    """GiB to ask for: the measured peak with headroom, rounded up to 0.1."""
    needed = peak_rss_mb / 1024 * HEADROOM_FACTOR + HEADROOM_GB
    return math.ceil(needed * 10) / 10


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
    from curator import foundry
    from curator.registry import find_model, load_registry, upsert_model

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
    if not chosen_id or not _SCHEMA_ID_RE.match(chosen_id):
        raise UsageProblem(
            f"cannot tell the model id of {path} (got {chosen_id!r})",
            hint="pass --id NAME-VARIANT:VERSION, e.g. tiny-qwen2-generic-cpu:1",
        )
    variant_match = _VARIANT_RE.search(chosen_id.rsplit(":", 1)[0])
    if variant_match is None:
        raise UsageProblem(
            f"model id {chosen_id!r} does not end in a variant such as -generic-cpu",
            hint="use NAME-VARIANT:VERSION, e.g. tiny-qwen2-generic-cpu:1",
        )
    variant = variant_match["variant"]
    existing = find_model(load_registry(registry), chosen_id)
    chosen_license = (
        license or _manifest_str(manifest, "license") or (existing or {}).get("license")
    )
    if not chosen_license:
        raise UsageProblem(
            f"no license known for {chosen_id}", hint="pass --license SPDX-ID, e.g. --license mit"
        )
    name = chosen_id.rsplit(":", 1)[0]
    chosen_alias = alias or (existing or {}).get("alias") or name[: variant_match.start()]
    publisher = _publisher(path, manifest, existing, cache_dir)
    display_name = (
        _manifest_str(manifest, "displayName")
        or (existing or {}).get("displayName")
        or chosen_alias
    )
    device_type, provider = runtime_of(config, manifest)
    listed = artifacts(manifest)
    total_bytes = sum(int(a.get("bytes", 0)) for a in listed)
    file_size_mb = max(round(total_bytes / 2**20, 2), 0.01)

    registration = register_load_tested(
        cache_dir,
        path,
        chosen_id,
        foundry.ModelMetadata(
            display_name=display_name,
            publisher=publisher,
            license=chosen_license,
            file_size_mb=max(1, round(total_bytes / 2**20)),
            context_length=context_length(config),
            device_type=device_type,
            execution_provider=provider,
        ),
    )
    test = registration.load_test

    ram = _min_ram_gb(min_ram_gb, test, existing)
    entry = _kept_on_reregister(existing)
    entry.update(
        {
            "id": chosen_id,
            "alias": chosen_alias,
            "displayName": display_name,
            "variant": variant,
            "task": "chat-completion",
            "license": chosen_license,
            "publisher": publisher,
            "capabilities": list(capabilities) or (existing or {}).get("capabilities") or ["chat"],
            "fileSizeMb": file_size_mb,
            "minRamGb": ram,
            "contextLength": context_length(config) or 1,
            "runtime": {"deviceType": device_type, "executionProvider": provider},
            "source": _source(path, manifest, config),
            "build": _build(manifest, listed),
        }
    )
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
    if _inside(path, cache_dir):
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


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _catalog_download_of(target: str) -> str | None:
    """The catalog id of a directory holding a finished Foundry catalog download (no manifest)."""
    path = Path(target).expanduser()
    if not path.is_dir() or (path / MANIFEST_NAME).is_file():
        return None
    from curator.foundry.catalog import finished_download_id

    return finished_download_id(path)


def _is_catalog_target(target: str, cache_dir: Path) -> bool:
    """Not a directory, not a compiled model in the cache, not a local registration: a name for
    Foundry's catalog (an alias, or an id whose directory holds no compile manifest)."""
    if Path(target).expanduser().is_dir() or "/" in target:
        return False
    found = find_model_dir(cache_dir, target) if ":" in target else None
    if found is not None:
        from curator.foundry.catalog import finished_download_id

        return not (found / MANIFEST_NAME).is_file() and finished_download_id(found) is not None
    if ":" in target and cache_dir.is_dir():
        from curator.foundry import runtime

        registered = runtime(cache_dir).get(target)
        if registered is not None and not registered.catalog:
            return False
    return True


def register_catalog_model(
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
    """A cached Foundry catalog model (ALIAS|ID, brought in by ``curator pull``): load-test it and
    add or update its registry entry, ``source`` naming the catalog's id, version, publisher and
    license. Foundry Local already knows it (its catalog): nothing is registered with Foundry."""
    from curator import foundry
    from curator.foundry import catalog
    from curator.registry import find_model, load_registry, upsert_model

    rt = foundry.runtime(cache_dir)
    model = catalog.describe(catalog.cached_variant(rt, target))
    if model_id is not None and model_id != model.id:
        raise UsageProblem(
            f"--id {model_id} differs from the catalog's id {model.id} for {target}",
            hint="a catalog model is registered under its catalog id: leave out --id",
        )
    name = model.id.rsplit(":", 1)[0]
    variant_match = _VARIANT_RE.search(name)
    if not _SCHEMA_ID_RE.match(model.id) or variant_match is None:
        raise UsageProblem(
            f"the catalog id {model.id!r} does not fit the registry's id form "
            "<name>-<variant>:<version> (lower case)",
            hint="register a compiled model instead (curator compile)",
        )
    catalog_license = license or model.license
    if not catalog_license or not model.publisher:
        raise UsageProblem(
            f"the catalog lists no {'license' if not catalog_license else 'publisher'} for "
            f"{model.id}",
            hint="pass --license SPDX-ID" if not catalog_license else "curator catalog show",
        )
    test = _load_test(rt, model.id)
    existing = find_model(load_registry(registry), model.id)
    ram = _min_ram_gb(min_ram_gb, test, existing)
    size_mb = model.file_size_mb or (
        round(dir_bytes(model.path) / 2**20, 2) if model.path is not None else 0.01
    )
    config_context = None
    if model.path is not None and (model.path / GENAI_CONFIG).is_file():
        config = read_json(model.path / GENAI_CONFIG, GENAI_CONFIG)
        config_context = context_length(config) if isinstance(config, dict) else None
    entry = _kept_on_reregister(existing)
    source: dict[str, Any] = {
        "catalog": "foundry-local",
        "id": model.id,
        "version": model.version,
        "publisher": model.publisher,
        "license": catalog_license,
    }
    if model.uri:
        source["uri"] = model.uri
    entry.update(
        {
            "id": model.id,
            "alias": alias or model.alias or name[: variant_match.start()],
            "displayName": model.display_name or model.alias or name,
            "variant": variant_match["variant"],
            "task": model.task or "chat-completion",
            "license": catalog_license.lower(),
            "publisher": model.publisher,
            "capabilities": list(capabilities) or (existing or {}).get("capabilities") or ["chat"],
            "fileSizeMb": max(float(size_mb), 0.01),
            "minRamGb": ram,
            "contextLength": model.context_length or config_context or 1,
            "runtime": {
                "deviceType": model.device_type or "CPU",
                "executionProvider": model.execution_provider or "CPUExecutionProvider",
            },
            "source": source,
        }
    )
    action = upsert_model(registry, entry)
    return RegisterResult(
        id=model.id,
        path=model.path or cache_dir,
        foundry_action="in Foundry's catalog (cached)",
        registry_action=action,
        registry=registry,
        min_ram_gb=ram,
        load_test=test,
        entry=entry,
    )


@dataclass(frozen=True)
class CatalogPullResult:
    """``curator pull`` of a catalog model: where it is, whether it was downloaded, the load test."""

    id: str
    alias: str | None
    path: Path | None
    action: str  # "downloaded" | "already cached"
    load_test: LoadTest


def pull_catalog_model(
    target: str, *, cache_dir: Path, progress: Callable[[float], None] | None = None
) -> CatalogPullResult:
    """Download a Foundry catalog model (ALIAS|ID) into the cache, then load-test it as register
    does. ``progress`` gets the download's percent. A failed or interrupted download leaves nothing
    that looks cached."""
    from curator import foundry
    from curator.foundry import catalog

    rt = foundry.runtime(cache_dir)
    done = catalog.download(rt, target, progress)
    try:
        test = _load_test(rt, done.model.id)
    except FoundryError as exc:
        raise FoundryError(
            f"{done.model.id} is {done.action} but failed the load test: {exc.message}",
            hint=f"curator cache rm {done.model.id}, then curator pull {target} again",
        ) from None
    return CatalogPullResult(done.model.id, done.model.alias, done.model.path, done.action, test)


@dataclass(frozen=True)
class FoundryRegistration:
    """A load-tested registration, and what it replaced (``undo`` puts that back)."""

    runtime: Any
    id: str
    path: Path
    previous: Any
    load_test: LoadTest

    @property
    def action(self) -> str:
        return "re-registered" if self.previous is not None else "registered"

    def undo(self) -> None:
        self.runtime.unregister(self.id)
        _restore(self.runtime, self.previous, self.path)


def register_load_tested(
    cache_dir: Path, path: Path, model_id: str, metadata: Any
) -> FoundryRegistration:
    """Register ``path`` as ``model_id`` with Foundry Local (replacing an earlier registration)
    and load-test it; on failure unregister, put back the previous registration, raise."""
    from curator import foundry

    rt = foundry.runtime(cache_dir)
    previous = rt.get(model_id)
    if previous is not None and previous.catalog:
        previous = None  # a downloaded catalog model: nothing registered to put back
    rt.register_model_dir(path, model_id, metadata)
    try:
        test = _load_test(rt, model_id)
    except FoundryError as exc:
        rt.unregister(model_id)
        kept = _restore(rt, previous, path)
        state = (
            f"the previous registration ({previous.path}) kept"
            if kept and previous is not None
            else "left unregistered"
        )
        raise FoundryError(
            f"load test failed, {model_id} {state}: {exc.message}",
            hint=f"curator cache verify {model_id}; recompile with --force",
        ) from None
    except BaseException:  # Ctrl-C or another failure mid-test: leave what was there before
        rt.unregister(model_id)
        _restore(rt, previous, path)
        raise
    return FoundryRegistration(rt, model_id, path, previous, test)


def _restore(rt: Any, previous: Any, new_path: Path) -> bool:
    """Put back a registration that a failed re-register replaced, unless it pointed at the same
    directory (that directory just failed, and no registration may point at a broken one)."""
    from curator import foundry

    if previous is None or previous.path is None or previous.path == new_path:
        return False
    if not previous.path.is_dir():
        return False
    rt.register_model_dir(
        previous.path,
        previous.id,
        foundry.ModelMetadata(
            display_name=previous.display_name,
            publisher=previous.publisher,
            license=previous.license,
            file_size_mb=previous.file_size_mb,
            context_length=previous.context_length,
            device_type=previous.device_type,
            execution_provider=previous.execution_provider,
        ),
    )
    return True


def _load_test(rt: Any, model_id: str) -> LoadTest:
    start = time.perf_counter()
    loaded = rt.load(model_id)
    loaded_at = time.perf_counter()
    try:
        result = loaded.chat(LOAD_TEST_MESSAGES, max_tokens=LOAD_TEST_TOKENS)
    finally:
        done_at = time.perf_counter()
        peak = _peak_rss_mb()
        loaded.unload()
    if result.usage.completion_tokens < 1:
        raise FoundryError(f"{model_id} generated no tokens", hint="curator smoke")
    return LoadTest(
        load_ms=round((loaded_at - start) * 1000, 1),
        generate_ms=round((done_at - loaded_at) * 1000, 1),
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        peak_rss_mb=round(peak, 1),
    )


def _min_ram_gb(given: float | None, test: LoadTest, existing: dict[str, Any] | None) -> float:
    """The entry's minRamGb: ``given`` (--min-ram-gb), else the load test's peak with headroom,
    raised to cover the entry's latest benchmark."""
    if given is not None:
        return given
    return max(min_ram_from_peak(test.peak_rss_mb), _benchmark_floor(existing))


def _benchmark_floor(existing: dict[str, Any] | None) -> float:
    """minRamGb must cover the latest benchmark's peak memory (a registry rule)."""
    benchmarks = (existing or {}).get("benchmarks") or []
    if not benchmarks:
        return 0.0
    latest = max(benchmarks, key=lambda b: str(b.get("date", "")))
    return math.ceil(float(latest.get("peakMemoryMb", 0)) / 1024 * 10) / 10


def _manifest_str(manifest: dict[str, Any], key: str) -> str | None:
    for holder in (manifest, manifest.get("source")):
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            return str(holder[key])
    return None


def _publisher(
    path: Path, manifest: dict[str, Any], existing: dict[str, Any] | None, cache_dir: Path
) -> str:
    declared = _manifest_str(manifest, "publisher") or (existing or {}).get("publisher")
    if declared and _PUBLISHER_RE.match(declared):
        return str(declared)
    try:
        inside = path.parent.resolve() != cache_dir.resolve()
        path.resolve().relative_to(cache_dir.resolve())
    except ValueError:
        inside = False
    if inside and _PUBLISHER_RE.match(path.parent.name):
        return path.parent.name
    return "local"


def _source(path: Path, manifest: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
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
    return source


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


def _build(manifest: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, Any]:
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
