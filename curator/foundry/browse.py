"""``curator catalog list`` and ``curator catalog show``: Foundry Local's public catalog as seen
from here, or (unreachable) what is cached. These need a runtime (:mod:`.manager`) and the catalog
readers (:mod:`.catalog`), which the runtime itself uses: kept apart so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curator.foundry.catalog import (
    CatalogModel,
    _not_in_catalog,
    _sdk,
    cached_on_disk,
    describe,
    find_variant,
    probe,
)
from curator.foundry.manager import runtime
from curator.foundry.urls import catalog_url


@dataclass(frozen=True)
class CatalogListing:
    """The catalog as seen now: ``reachable`` False means only cached models are listed."""

    url: str
    reachable: bool
    problem: str | None
    models: tuple[CatalogModel, ...]


@dataclass(frozen=True)
class CatalogLookup:
    """What a name means: the variant it resolves to here, and every variant of its alias."""

    name: str
    resolved: CatalogModel
    variants: tuple[CatalogModel, ...]
    reachable: bool
    problem: str | None


def list_catalog(
    cache_dir: Path, *, device: str | None = None, task: str | None = None
) -> CatalogListing:
    """Every catalog variant the SDK offers this machine (filtered by device and task); when the
    catalog is unreachable, the cached ones only (``reachable`` False and ``problem`` say why)."""
    url = catalog_url()
    problem = probe(url)
    if problem is None:
        public = runtime(cache_dir).public_catalog()
        models = [describe(v) for model in _sdk(public.list_models) for v in model.variants]
    else:
        models = cached_on_disk(cache_dir)
    chosen = [
        m
        for m in {m.id: m for m in models}.values()
        if (device is None or (m.device_type or "").lower() == device.lower())
        and (task is None or m.task == task)
    ]
    chosen.sort(key=lambda m: (m.alias or m.name, m.id))
    return CatalogListing(url, problem is None, problem, tuple(chosen))


def look_up(cache_dir: Path, name: str) -> CatalogLookup:
    """``name`` (alias, id or bare name) in the catalog; NotFound names why it is not there.
    Unreachable: the cached models it names (by id, alias or name)."""
    problem = probe(catalog_url())
    if problem is not None:
        matches = [m for m in cached_on_disk(cache_dir) if name in (m.id, m.alias, m.name)]
        if not matches:
            raise _not_in_catalog(name, problem)
        return CatalogLookup(name, matches[0], tuple(matches), False, problem)
    rt = runtime(cache_dir)
    variant = find_variant(rt, name)
    if variant is None:
        raise _not_in_catalog(name, None)
    resolved = describe(variant)
    alias_model = _sdk(rt.public_catalog().get_model, resolved.alias) if resolved.alias else None
    siblings = [describe(v) for v in alias_model.variants] if alias_model is not None else []
    variants = tuple(sorted(siblings or [resolved], key=lambda m: m.id))
    return CatalogLookup(name, resolved, variants, True, None)
