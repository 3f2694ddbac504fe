"""Guards: curator.cli.compile, curator.cli.search, curator.hub, curator.hub.download,
  curator.hub.errors, curator.hub.files

``download_for_compile`` (the compile's download path) and ``curator compile ORG/NAME``
downloading from the fake Hub for real; ``curator search --local`` finding what was fetched."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curator.hub import download_for_compile, search_local
from curator.hub.errors import HubGated, HubOffline, HubStalled
from curator.hub.files import compile_files
from tests.conftest import run_curator
from tests.fakehub import BERT, CUSTOM, GATED, SHARDED, TINY, FakeHub
from tests.fakehub.misbehaving import StallingServer
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401


def test_downloads_only_what_a_compile_needs(hub: FakeHub, tiny_model_dir: Path) -> None:
    folder, sha = download_for_compile(TINY, None)
    assert sha == hub.repos[TINY].sha
    assert folder.name == sha
    assert folder.is_relative_to(Path(os.environ["HF_HOME"]))
    expected = compile_files(p.name for p in tiny_model_dir.iterdir() if p.is_file())
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    for name in expected:
        assert (folder / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert not (folder / "README.md").exists()


def test_revision_is_pinned_and_recorded(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    folder, sha = download_for_compile(SHARDED, "main", cache_dir=cache)
    assert sha == hub.repos[SHARDED].sha
    repo_dir = cache / f"models--{SHARDED.replace('/', '--')}"
    assert (repo_dir / "refs" / "main").read_text() == sha
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert {(folder / shard).is_file() for shard in index["weight_map"].values()} == {True}
    # Files are fetched at the commit, not at the branch name.
    resolves = [r.path for r in hub.seen("GET", "/resolve/")]
    assert resolves and all(f"/resolve/{sha}/" in p for p in resolves)


def test_weight_format_and_repository_code(hub: FakeHub) -> None:
    bert, _ = download_for_compile(BERT, None)
    assert (bert / "model.safetensors").is_file()
    assert not (bert / "pytorch_model.bin").exists()
    custom, _ = download_for_compile(CUSTOM, None)
    assert (custom / "modeling_fancy.py").is_file()  # auto_map points at repository code


def test_offline_reuses_the_cached_snapshot(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    first = download_for_compile(TINY, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    assert download_for_compile(TINY, None) == first
    assert hub.requests == []
    with pytest.raises(HubOffline) as caught:
        download_for_compile(SHARDED, None)
    assert "not in the local Hugging Face cache" in caught.value.message


def test_gated_download_needs_access(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubGated):
        download_for_compile(GATED, None)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_granted")
    folder, _ = download_for_compile(GATED, None)
    assert (folder / "model.safetensors").is_file()


def test_search_local_finds_hf_cache_and_foundry_models(hub: FakeHub, isolated_env: Path) -> None:
    download_for_compile(TINY, None)
    compiled = isolated_env / "foundry-cache" / "local" / "tiny-qwen2-generic-cpu-1"
    compiled.mkdir(parents=True)
    (compiled / "genai_config.json").write_text(json.dumps({"model": {"type": "qwen2"}}))
    found = {m.name: m for m in search_local("tiny")}
    cached = found[TINY]
    assert cached.source == "hf-cache"
    assert cached.revisions == (hub.repos[TINY].sha,)
    assert cached.architecture == "Qwen2ForCausalLM"
    assert cached.parameters == hub.repos[TINY].safetensors()["total"]  # type: ignore[index]
    compiled_model = found["tiny-qwen2-generic-cpu:1"]  # by model id (no manifest: the folder's)
    assert compiled_model.source == "foundry" and compiled_model.path == compiled
    assert compiled_model.architecture == "qwen2"  # genai_config's model type
    assert search_local("no-such-model") == ()

    done = run_curator("search", "tiny", "--local", "--json")  # HF_HUB_OFFLINE=1: no Hub needed
    assert done.returncode == 0, done.stderr
    assert {m["name"] for m in json.loads(done.stdout)} == set(found)


def test_compile_downloads_from_the_fake_hub(hub: FakeHub, isolated_env: Path) -> None:
    """``curator compile FIXTURE/REPO --recipe int4-cpu``: a real download, a real compile."""
    cache = isolated_env / "foundry-cache"
    done = run_curator(
        "compile", TINY, "--recipe", "int4-cpu", "--json",
        env={"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    weights = [r for r in hub.seen("GET", "/resolve/") if r.path.endswith("model.safetensors")]
    assert any("range" not in r.headers for r in weights)  # the whole file came from the fake Hub
    models = list(cache.rglob("genai_config.json"))
    assert len(models) == 1
    manifest = json.loads((models[0].parent / "curator-manifest.json").read_text())
    assert hub.repos[TINY].sha in json.dumps(manifest["source"])


def test_a_stalled_hub_falls_back_to_the_cached_snapshot(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = download_for_compile(TINY, None)
    monkeypatch.setenv("CURATOR_HUB_TIMEOUT", "1")
    with StallingServer() as stalling:
        monkeypatch.setenv("HF_ENDPOINT", stalling.url)
        assert download_for_compile(TINY, None) == first
        with pytest.raises(HubStalled) as caught:
            download_for_compile(SHARDED, None)
    assert caught.value.message.startswith(f"{SHARDED} is not in the local Hugging Face cache and ")
    assert "stalled" in caught.value.message
