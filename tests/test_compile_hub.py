"""Guards: curator.cli.compile

curator compile with a Hub repo id as SOURCE, against the loopback fake Hub: download, revision
resolved to a commit sha, publisher from the org, and the same refusals as for local models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_curator
from tests.fakehub import BERT, CUSTOM, SHARDED, TINY, FakeHub
from tests.fakehub.plugin import fake_hub_server, hub

__all__ = ["fake_hub_server", "hub"]


def test_hub_repo_compiles_with_resolved_revision(hub: FakeHub, isolated_env: Path) -> None:
    done = run_curator("compile", TINY, "--recipe", "int4-cpu", "--revision", "main", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    target = isolated_env / "foundry-cache" / "fixture" / "tiny-qwen2-generic-cpu-1"
    assert result["path"] == str(target)
    manifest = json.loads((target / "curator-manifest.json").read_text())
    sha = hub.repos[TINY].sha
    assert manifest["source"] == {
        "repo": TINY,
        "revision": sha,
        "architecture": "Qwen2ForCausalLM",
        "parameters": tensor_elements(hub.repos[TINY].files["model.safetensors"]),
    }
    assert manifest["publisher"] == "fixture" and manifest["id"] == "tiny-qwen2-generic-cpu:1"
    assert (target / "genai_config.json").is_file()
    assert hub.seen("GET", "model.safetensors")  # the weights really came over HTTP


def tensor_elements(safetensors_bytes: bytes) -> int:
    """The parameter count as the safetensors library reads the weights the Hub served (not the
    compile's own header parser)."""
    from safetensors.numpy import load

    return sum(int(t.size) for t in load(safetensors_bytes).values())


def test_hub_dry_run_downloads_nothing(hub: FakeHub, isolated_env: Path) -> None:
    done = run_curator("compile", TINY, "--recipe", "int4-cpu", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert plan["publisher"] == "fixture" and plan["source_dir"] is None
    assert not hub.seen("GET", "/resolve/")
    assert list((isolated_env / "foundry-cache").iterdir()) == []


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        (BERT, "architecture BertForMaskedLM is not supported"),
        # Repository code for an architecture the builder lacks: trusting the code would not help.
        (CUSTOM, "architecture FancyForCausalLM is not supported"),
    ],
)
def test_hub_models_refused_before_olive(
    repo: str, expected: str, hub: FakeHub, isolated_env: Path
) -> None:
    done = run_curator("compile", repo, "--recipe", "int4-cpu")
    assert done.returncode == 1, done.stderr
    assert expected in done.stderr and "pass builder" not in done.stderr
    assert [p.name for p in (isolated_env / "foundry-cache").iterdir()] == []


def test_unknown_revision_is_a_hub_error(hub: FakeHub, isolated_env: Path) -> None:
    done = run_curator("compile", TINY, "--recipe", "int4-cpu", "--revision", "no-such-branch")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no-such-branch" in done.stderr
    assert list((isolated_env / "foundry-cache").iterdir()) == []


@pytest.mark.slow
def test_sharded_hub_repo_compiles(hub: FakeHub, isolated_env: Path) -> None:
    done = run_curator("compile", SHARDED, "--recipe", "int4-cpu", "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(Path(json.loads(done.stdout)["manifest"]).read_text())
    assert manifest["source"]["revision"] == hub.repos[SHARDED].sha
