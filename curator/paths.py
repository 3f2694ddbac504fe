"""Where curator reads and writes: its home, the Foundry Local model cache, the team registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Below the cache root a model sits at <publisher>/<name>-<variant>-<version>[/v<n>]: room for a
# typical publisher and Foundry model name (on top of what the model directory itself holds).
CACHE_ENTRY_RESERVE = 80

DEFAULT_REGISTRY = Path("registry") / "models.json"


def curator_home() -> Path:
    """``$CURATOR_HOME``, else the platform's user data directory."""
    env = os.environ.get("CURATOR_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("curator", appauthor=False))


def foundry_cache_dir(explicit: Path | str | None = None) -> Path:
    """``--cache-dir``, else ``$FOUNDRY_CACHE_DIR``, else the Foundry CLI's default for this
    platform (``%USERPROFILE%\\.foundry\\cache\\models`` on Windows, ``~/.foundry/cache/models``
    elsewhere)."""
    if not (explicit or os.environ.get("FOUNDRY_CACHE_DIR")):
        from curator.portable import default_foundry_cache  # start-up: every command imports paths

        return default_foundry_cache()
    chosen = explicit or os.environ["FOUNDRY_CACHE_DIR"]
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
    platform: str = ""
    # Problems with these paths on this platform, e.g. a cache so deep Windows cannot open models.
    warnings: tuple[str, ...] = ()


def resolve_paths(registry: Path | str | None = None, cache_dir: Path | str | None = None) -> Paths:
    from curator.portable import (  # start-up: every command imports paths
        LONG_PATHS_HINT,
        MODEL_DIR_RESERVE,
        long_path_problem,
        platform_name,
    )

    cache = foundry_cache_dir(cache_dir).absolute()
    warnings: tuple[str, ...] = ()
    if too_long := long_path_problem(cache, reserve=CACHE_ENTRY_RESERVE + MODEL_DIR_RESERVE):
        warnings = (f"{too_long.message()}; {LONG_PATHS_HINT}",)
    return Paths(
        registry=registry_path(registry).absolute(),
        foundry_cache=cache,
        home=curator_home().absolute(),
        platform=platform_name(),
        warnings=warnings,
    )
