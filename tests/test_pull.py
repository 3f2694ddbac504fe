"""Guards: curator.cli.cache, curator.cli.pull, curator.cli.registry, curator.cli.share,
  curator.compile.manifest, curator.errors, curator.jsonio, curator.cache.modeldir, curator.registry,
  curator.share.publish, curator.share.pull

curator pull of a published registry entry: publish then pull against the loopback Hub, every
sha256 checked before anything is placed, Foundry Local registration in a subprocess (its manager
is a process-wide singleton)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.cache.modeldir import sha256_file
from curator.errors import InputFileError, NotFound, UsageProblem
from curator.jsonio import write_json_atomic
from curator.registry import find_model, load_registry
from curator.share.publish import publish
from curator.share.pull import PullRefused, pull_all, pull_model
from tests.conftest import TINY_MODEL_ID, run_curator
from tests.fakehub.plugin import fake_hub_server, hub
from tests.fakehub.server import FakeHub
from tests.test_publish import REPO, cache_dir, local_model, registry_file, writer

__all__ = ["fake_hub_server", "hub", "local_model", "writer"]

TARGET = Path("local") / TINY_MODEL_ID.replace(":", "-")


@pytest.fixture
def published(writer: FakeHub, local_model: Path, tmp_path: Path) -> Path:
    """The tiny model published to REPO; returns a teammate's empty Foundry cache."""
    publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
    teammate = tmp_path / "teammate-cache"
    teammate.mkdir()
    return teammate


def _left_behind(cache: Path) -> list[str]:
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*"))


def test_publish_then_pull_round_trip(published: Path, local_model: Path) -> None:
    result = run_curator("pull", TINY_MODEL_ID, "--cache-dir", str(published), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["action"] == "downloaded"
    assert report["foundry_action"] == "registered" and report["completion_tokens"] > 0

    placed = published / TARGET
    entry = find_model(load_registry(registry_file()), TINY_MODEL_ID)
    assert entry is not None
    for item in entry["build"]["artifacts"]:
        assert sha256_file(placed / item["path"]) == item["sha256"], item["path"]
    expected = {a["path"] for a in entry["build"]["artifacts"]} | {"curator-manifest.json"}
    assert {p.name for p in placed.iterdir()} == expected  # no .cache, no compile.log
    assert sha256_file(placed / "curator-manifest.json") == sha256_file(
        local_model / "curator-manifest.json"
    )
    rows = run_curator("cache", "ls", "--json", "--cache-dir", str(published))
    assert rows.returncode == 0, rows.stderr
    (row,) = [r for r in json.loads(rows.stdout) if r["id"] == TINY_MODEL_ID]
    assert row["foundry_registered"] is True and Path(row["path"]) == placed

    # --all brings the machine up to the registry: the model is there already.
    again = run_curator("pull", "--all", "--fit", "--cache-dir", str(published), "--json")
    assert again.returncode == 0, again.stderr
    (done,) = json.loads(again.stdout)["pulled"]
    assert done["action"] == "already present" and done["downloaded_bytes"] == 0


@pytest.mark.parametrize("damage", ["flip a byte", "truncate"])
def test_a_tampered_file_is_refused_and_nothing_is_placed(
    published: Path, writer: FakeHub, damage: str
) -> None:
    files = writer.repos[REPO].files
    data = files["model.onnx.data"]
    files["model.onnx.data"] = (
        data[:100] + bytes([data[100] ^ 1]) + data[101:] if damage == "flip a byte" else data[:-1]
    )
    with pytest.raises(PullRefused, match=r"model\.onnx\.data") as refused:
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    assert "nothing was placed" in refused.value.message
    assert "genai_config.json" not in refused.value.message  # only the bad file is named
    assert _left_behind(published) == []


def test_a_file_missing_from_the_repository_is_named(published: Path, writer: FakeHub) -> None:
    del writer.repos[REPO].files["tokenizer.json"]
    result = run_curator("pull", TINY_MODEL_ID, "--cache-dir", str(published))
    assert result.returncode == 1
    assert "tokenizer.json: missing" in result.stderr and "nothing was placed" in result.stderr
    assert _left_behind(published) == []


def test_an_entry_whose_files_differ_from_its_build_is_not_downloaded(
    published: Path, writer: FakeHub
) -> None:
    # `curator registry` edits refuse this (a violation); a hostile pull request writes the file.
    document = load_registry(registry_file())
    document["models"][0]["distribution"]["files"][0]["sha256"] = "0" * 64
    write_json_atomic(registry_file(), document)
    writer.requests.clear()
    with pytest.raises(InputFileError, match=r"differ from build\.artifacts"):
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    assert writer.requests == [] and _left_behind(published) == []


def test_an_unsafe_path_in_a_hostile_entry_is_refused_before_any_download(
    published: Path, writer: FakeHub
) -> None:
    document = load_registry(registry_file())
    entry = document["models"][0]
    for listed in (entry["build"]["artifacts"], entry["distribution"]["files"]):
        listed.append({"path": "../../escape.py", "sha256": "1" * 64, "bytes": 1})
    write_json_atomic(registry_file(), document)
    writer.requests.clear()
    with pytest.raises(InputFileError, match=r"'\.\./\.\./escape\.py' must not contain"):
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    assert writer.requests == [] and _left_behind(published) == []


def test_pull_of_an_unpublished_entry_says_how_to_publish(local_model: Path) -> None:
    with pytest.raises(NotFound, match="not published") as missing:
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=cache_dir())
    assert missing.value.hint is not None and "curator publish" in missing.value.hint


def test_a_different_directory_in_the_way_needs_force(published: Path, local_model: Path) -> None:
    in_the_way = published / TARGET
    in_the_way.mkdir(parents=True)
    (in_the_way / "genai_config.json").write_text("{}")
    with pytest.raises(UsageProblem, match="not the build the registry lists") as refused:
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    assert refused.value.hint is not None and "--force" in refused.value.hint
    assert (in_the_way / "genai_config.json").read_text() == "{}"


def test_pull_all_chooses_by_capability_and_ram(
    published: Path,
    install_compiled: Callable[..., Path],
) -> None:
    """Selection only: every chosen model here is skipped or fails before Foundry is reached."""
    document = load_registry(registry_file())
    (tiny,) = document["models"]
    big = copy.deepcopy(tiny)
    big.update(id="tiny-qwen2-big-generic-cpu:1", alias="tiny-big", minRamGb=512.0)
    coder = copy.deepcopy(tiny)
    coder.update(id="tiny-qwen2-code-generic-cpu:1", alias="tiny-code", capabilities=["code"])
    unpublished = copy.deepcopy(tiny)
    unpublished.update(id="tiny-qwen2-local-generic-cpu:1", alias="tiny-local")
    del unpublished["distribution"]
    npu = copy.deepcopy(tiny)
    npu.update(
        id="tiny-qwen2-qnn-npu:1",
        alias="tiny-qnn",
        variant="qnn-npu",
        runtime={"deviceType": "NPU", "executionProvider": "QNNExecutionProvider"},
    )
    document["models"] = [tiny, big, coder, unpublished, npu]
    write_json_atomic(registry_file(), document)
    # The chosen published one fails before Foundry: its directory is in the way.
    (published / TARGET).mkdir(parents=True)

    result = pull_all(
        registry=registry_file(), cache_dir=published, capabilities=("chat",), ram_gb=16.0
    )
    assert result.pulled == ()
    assert [f.id for f in result.failed] == [TINY_MODEL_ID]
    skipped = dict(result.skipped)
    assert set(skipped) == {
        "tiny-qwen2-big-generic-cpu:1",
        "tiny-qwen2-code-generic-cpu:1",
        "tiny-qwen2-local-generic-cpu:1",
        "tiny-qwen2-qnn-npu:1",
    }
    assert "QNNExecutionProvider" in skipped["tiny-qwen2-qnn-npu:1"]
    assert "512" in skipped["tiny-qwen2-big-generic-cpu:1"]
    assert "lacks capability chat" in skipped["tiny-qwen2-code-generic-cpu:1"]
    assert "not published" in skipped["tiny-qwen2-local-generic-cpu:1"]


def test_a_pulled_model_that_fails_its_load_test_is_taken_back(
    writer: FakeHub, install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    """--force replaces a different directory; when the new model cannot load, the replaced
    directory comes back and nothing stays registered."""
    from curator.compile import manifest as compile_manifest
    from curator.registry import add_model
    from tests.test_publish import entry_for

    broken = install_compiled()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    document = json.loads((broken / "curator-manifest.json").read_text())
    document["build"]["artifacts"] = [
        {"path": a.path, "sha256": a.sha256, "bytes": a.bytes}
        for a in compile_manifest.artifacts(broken)
    ]
    compile_manifest.write_manifest(broken, document)
    add_model(registry_file(), entry_for(broken))
    publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())

    teammate = tmp_path / "teammate-cache"
    old = teammate / TARGET
    old.mkdir(parents=True)
    (old / "genai_config.json").write_text('{"old": true}')
    result = run_curator("pull", TINY_MODEL_ID, "--force", "--cache-dir", str(teammate))
    assert result.returncode == 1
    assert "load test failed" in result.stderr, result.stderr
    assert (old / "genai_config.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in old.iterdir()) == ["genai_config.json"]
    rows = run_curator("cache", "ls", "--json", "--cache-dir", str(teammate))
    assert all(not r.get("foundry_registered") for r in json.loads(rows.stdout))


def test_pull_all_from_a_registry_that_is_not_there_is_an_error_not_zero_pulled(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "models.json"
    result = run_curator("pull", "--all", "--registry", str(missing), "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["error"] == f"registry not found: {missing}"
    assert "--registry" in error["hint"]
