"""Shared fixtures. Every test runs with its own curator home, Foundry cache, Hugging Face home and
registry path, and with the Hub offline unless a test points HF_ENDPOINT at the loopback fake Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every path curator and its libraries use into ``tmp_path``."""
    for name, sub in (
        ("CURATOR_HOME", "home"),
        ("FOUNDRY_CACHE_DIR", "foundry-cache"),
        ("HF_HOME", "hf-home"),
    ):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("CURATOR_REGISTRY", str(tmp_path / "registry" / "models.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("OLIVE_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("CURATOR_DEBUG", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield tmp_path


def run_curator(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real ``curator`` command line in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "curator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
