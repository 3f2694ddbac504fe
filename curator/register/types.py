"""What the register flows return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.register.loadtest import LoadTest


@dataclass(frozen=True)
class RegisterResult:
    id: str
    path: Path
    foundry_action: str  # "registered" | "re-registered" | "in Foundry's catalog (cached)"
    registry_action: str  # "added" | "updated"
    registry: Path
    min_ram_gb: float
    load_test: LoadTest
    entry: dict[str, Any]


@dataclass(frozen=True)
class CatalogPullResult:
    """``curator pull`` of a catalog model: where it is, whether it was downloaded, the load test."""

    id: str
    alias: str | None
    path: Path | None
    action: str  # "downloaded" | "already cached"
    load_test: LoadTest
