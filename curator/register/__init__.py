"""``curator register`` and ``curator pull``: compiled and catalog models into Foundry Local and the
registry.

- :mod:`.compiled`: a compiled directory (or its id in the cache) -> Foundry's local catalog and
  the registry, with provenance from the compile manifest;
- :mod:`.catalog`: a Foundry catalog model (``curator pull``, and its registry entry);
- :mod:`.loadtest`: the load test both share (register, load, generate, peak memory, put back);
- :mod:`.entry`: the registry entry both write, and the Foundry metadata registered from it.
"""

from __future__ import annotations

from curator.register.catalog import pull_catalog_model, register_catalog_model
from curator.register.compiled import check_model_dir, check_one_id, register, resolve_model_dir
from curator.register.entry import KEPT_ON_REREGISTER, foundry_metadata, registry_entry
from curator.register.loadtest import (
    FoundryRegistration,
    LoadTest,
    min_ram_from_peak,
    register_load_tested,
)
from curator.register.types import CatalogPullResult, RegisterResult

__all__ = [
    "KEPT_ON_REREGISTER",
    "CatalogPullResult",
    "FoundryRegistration",
    "LoadTest",
    "RegisterResult",
    "check_model_dir",
    "check_one_id",
    "foundry_metadata",
    "min_ram_from_peak",
    "pull_catalog_model",
    "register",
    "register_catalog_model",
    "register_load_tested",
    "registry_entry",
    "resolve_model_dir",
]
