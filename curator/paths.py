"""Where curator reads and writes: its home, the Foundry Local model cache, the team registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRY = Path("registry") / "models.json"
DEFAULT_FOUNDRY_CACHE = Path("~/.foundry/cache/models")


def curator_home() -> Path:
    """``$CURATOR_HOME``, else the platform's user data directory."""
    env = os.environ.get("CURATOR_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("curator", appauthor=False))


def foundry_cache_dir(explicit: Path | str | None = None) -> Path:
    """``--cache-dir``, else ``$FOUNDRY_CACHE_DIR``, else the Foundry CLI's default."""
    chosen = explicit or os.environ.get("FOUNDRY_CACHE_DIR") or DEFAULT_FOUNDRY_CACHE
    return Path(chosen).expanduser()


def registry_path(explicit: Path | str | None = None) -> Path:
    """``--registry``, else ``$CURATOR_REGISTRY``, else ``registry/models.json`` here."""
    chosen = explicit or os.environ.get("CURATOR_REGISTRY") or DEFAULT_REGISTRY
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class Paths:
    registry: Path
    foundry_cache: Path
    home: Path


def resolve_paths(registry: Path | str | None = None, cache_dir: Path | str | None = None) -> Paths:
    return Paths(
        registry=registry_path(registry).absolute(),
        foundry_cache=foundry_cache_dir(cache_dir).absolute(),
        home=curator_home().absolute(),
    )
