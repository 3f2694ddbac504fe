"""Guards: curator.cli.main, curator.cli.registry

Registry review works from the light install: no torch, Olive, onnxruntime or Foundry SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HEAVY = (
    "torch",
    "olive-ai",
    "onnxruntime",
    "onnxruntime-genai",
    "transformers",
    "foundry-local-sdk",
)


@pytest.mark.slow
def test_validate_and_diff_from_light_install(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "install", "-q", "-c", str(REPO_ROOT / "constraints.txt"), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    installed = subprocess.run(
        [*pip, "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    assert not [name for name in HEAVY if f"\n{name}==" in f"\n{installed}"]
    curator = str(venv / "bin" / "curator")
    registry = str(REPO_ROOT / "registry" / "models.json")
    validate = subprocess.run(
        [curator, "registry", "validate", "--registry", registry],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    diff = subprocess.run(
        [curator, "registry", "diff", registry, registry],
        capture_output=True,
        text=True,
        check=False,
    )
    assert diff.returncode == 0, diff.stderr
    assert "No model changes." in diff.stdout
