"""Guards: curator.registry

The README's "Sharing models with your team" and "Compiling many models" commands run as
written: publish against the loopback Hub, pull on a teammate's machine (its own Foundry cache),
pull --all, and the matrix of the shipped candidates file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.registry import add_model, find_model, load_registry
from tests.conftest import REPO_ROOT, run_curator
from tests.fakehub.plugin import fake_hub_server, hub
from tests.fakehub.server import FakeHub
from tests.test_publish import entry_for, writer
from tests.test_readme_quickstart import readme_commands

__all__ = ["fake_hub_server", "hub", "writer"]

MODEL_ID = "qwen2.5-0.5b-instruct-generic-cpu:1"


def test_sharing_section_runs_as_written(
    writer: FakeHub,
    install_compiled: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = readme_commands("Sharing models with your team")
    assert [c[:2] for c in commands] == [
        ["publish", MODEL_ID],
        ["pull", MODEL_ID],
        ["pull", "--all"],
    ]
    workdir = tmp_path / "checkout"
    monkeypatch.delenv("CURATOR_REGISTRY")  # the README uses the default registry/models.json
    registry = workdir / "registry" / "models.json"
    add_model(registry, entry_for(install_compiled(model_id=MODEL_ID)))

    published = run_curator(*commands[0], cwd=workdir)
    assert published.returncode == 0, published.stderr
    entry = find_model(load_registry(registry), MODEL_ID)
    assert entry is not None
    repo_id = commands[0][commands[0].index("--to") + 1]
    repo = writer.repos[repo_id]
    assert entry["distribution"]["commit"] == repo.heads["int4-cpu"]  # type: ignore[attr-defined]
    assert repo.private  # type: ignore[attr-defined]

    teammate = {"FOUNDRY_CACHE_DIR": str(tmp_path / "teammate-cache")}
    pulled = run_curator(*commands[1], "--json", cwd=workdir, env=teammate)
    assert pulled.returncode == 0, pulled.stderr
    report = json.loads(pulled.stdout)
    assert report["action"] == "downloaded" and report["foundry_action"] == "registered"
    assert (Path(report["path"]) / "model.onnx.data").is_file()

    everything = run_curator(*commands[2], "--json", cwd=workdir, env=teammate)
    assert everything.returncode == 0, everything.stderr
    assert [p["id"] for p in json.loads(everything.stdout)["pulled"]] == [MODEL_ID]
    assert os.environ["FOUNDRY_CACHE_DIR"] != teammate["FOUNDRY_CACHE_DIR"]


def test_compiling_section_runs_as_written() -> None:
    commands = readme_commands("Compiling many models")
    assert commands == [["registry", "matrix", "registry/candidates.json"]]
    result = run_curator(*commands[0], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "curator-team/qwen2.5-0.5b-instruct@int4-cuda" in result.stdout
