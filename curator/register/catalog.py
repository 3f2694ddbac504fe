"""A Foundry catalog model (an alias or id ``curator pull`` brought into the cache): ``curator pull``
downloads and load-tests it; ``curator register`` load-tests it and writes its registry entry,
whose ``source`` names the catalog (curator did not compile it, so there is no build). Foundry
Local already knows such a model (its catalog): nothing is registered with Foundry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator import foundry
from curator.cache.modeldir import GENAI_CONFIG, dir_bytes
from curator.errors import FoundryError, UsageProblem
from curator.foundry import catalog
from curator.jsonio import read_json
from curator.register.entry import context_length, registry_entry, variant_of
from curator.register.loadtest import load_test, min_ram_for
from curator.register.types import CatalogPullResult, RegisterResult
from curator.registry import find_model, load_registry, upsert_model


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
    rt = foundry.runtime(cache_dir)
    model = catalog.describe(catalog.cached_variant(rt, target))
    if model_id is not None and model_id != model.id:
        raise UsageProblem(
            f"--id {model_id} differs from the catalog's id {model.id} for {target}",
            hint="a catalog model is registered under its catalog id: leave out --id",
        )
    name = model.id.rsplit(":", 1)[0]
    variant_match = variant_of(model.id)
    if variant_match is None:
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
    test = load_test(rt, model.id)
    existing = find_model(load_registry(registry), model.id)
    ram = min_ram_for(min_ram_gb, test, existing)
    size_mb = model.file_size_mb or (
        round(dir_bytes(model.path) / 2**20, 2) if model.path is not None else 0.01
    )
    config_context = None
    if model.path is not None and (model.path / GENAI_CONFIG).is_file():
        config = read_json(model.path / GENAI_CONFIG, GENAI_CONFIG)
        config_context = context_length(config) if isinstance(config, dict) else None
    source: dict[str, Any] = {
        "catalog": "foundry-local",
        "id": model.id,
        "version": model.version,
        "publisher": model.publisher,
        "license": catalog_license,
    }
    if model.uri:
        source["uri"] = model.uri
    entry = registry_entry(
        model_id=model.id,
        alias=alias or model.alias or name[: variant_match.start()],
        display_name=model.display_name or model.alias or name,
        task=model.task or "chat-completion",
        license=catalog_license.lower(),
        publisher=model.publisher,
        capabilities=list(capabilities) or (existing or {}).get("capabilities") or ["chat"],
        file_size_mb=float(size_mb),
        min_ram_gb=ram,
        context_length=model.context_length or config_context,
        runtime=(
            model.device_type or "CPU",
            model.execution_provider or "CPUExecutionProvider",
        ),
        source=source,
        existing=existing,
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


def pull_catalog_model(
    target: str, *, cache_dir: Path, progress: Callable[[float], None] | None = None
) -> CatalogPullResult:
    """Download a Foundry catalog model (ALIAS|ID) into the cache, then load-test it as register
    does. ``progress`` gets the download's percent. A failed or interrupted download leaves nothing
    that looks cached."""
    rt = foundry.runtime(cache_dir)
    done = catalog.download(rt, target, progress)
    try:
        test = load_test(rt, done.model.id)
    except FoundryError as exc:
        raise FoundryError(
            f"{done.model.id} is {done.action} but failed the load test: {exc.message}",
            hint=f"curator cache rm {done.model.id}, then curator pull {target} again",
        ) from None
    return CatalogPullResult(done.model.id, done.model.alias, done.model.path, done.action, test)
