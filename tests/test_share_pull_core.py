"""Guards: curator.share.pull

``curator pull`` in process: the entry checks before any download, the download from the loopback
fake Hub (a repository built here at one commit), the sha256 and size refusals, placement in the
Foundry cache, the load-tested registration with a real Foundry Local runtime (the tiny compiled
model), the take-back when the load test fails, and ``pull --all``'s selection. The CLI round trip
with ``curator publish`` is tests/test_pull.py.
"""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curator.errors import InputFileError, NotFound, UsageProblem
from curator.jsonio import write_json_atomic
from curator.share.pull import (
    PullFailure,
    PullRefused,
    PullResult,
    is_published,
    pull_all,
    pull_model,
)
from tests.conftest import TINY_MODEL_ID
from tests.fakehub import FakeHub
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.upload import UploadedRepo
from tests.memory_foundry import Runtime, runtime  # noqa: F401
from tests.samples import make_document, make_entry

REPO = "team/pulled"
REFUSED_HINT = (
    "the published files were changed after publishing; the publisher runs curator publish {} "
    "again and the registry records the new commit"
)


def record(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class Published:
    """A build published at one commit of REPO on the fake Hub, and its registry entry."""

    def __init__(self, hub: FakeHub, files: dict[str, bytes], model_id: str) -> None:
        self.hub = hub
        self.files = dict(files)
        self.manifest = files["curator-manifest.json"]
        artifacts = [record(p, d) for p, d in sorted(files.items()) if p != "curator-manifest.json"]
        self.repo = UploadedRepo(repo_id=REPO, files={})
        self.commit = self.repo.commit("main", files, "publish")
        hub.repos[REPO] = self.repo
        self.entry = make_entry(
            0,
            id=model_id,
            publisher="team",
            build={**make_entry()["build"], "artifacts": artifacts},
            distribution={
                "repo": REPO,
                "commit": self.commit,
                "files": copy.deepcopy(artifacts),
                "manifest": {
                    "sha256": hashlib.sha256(self.manifest).hexdigest(),
                    "bytes": len(self.manifest),
                },
            },
        )

    def registry(self, path: Path, *extra: dict[str, Any]) -> Path:
        write_json_atomic(path, make_document([self.entry, *extra]))
        return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "models.json"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """The cache pull is given (--cache-dir): not $FOUNDRY_CACHE_DIR."""
    return tmp_path / "team-cache"


@pytest.fixture
def fake_build(hub: FakeHub) -> Iterator[Published]:
    """Files Foundry registers but cannot load (genai_config.json names no model)."""
    files = {
        "genai_config.json": b"{}",
        "model.onnx": b"not a graph" * 10,
        "curator-manifest.json": json.dumps({"id": "fake-generic-cpu:1"}).encode(),
    }
    yield Published(hub, files, "fake-generic-cpu:1")
    hub.repos.pop(REPO, None)


@pytest.fixture
def real_build(hub: FakeHub, compiled_tiny_int4: Path) -> Iterator[Published]:
    """The tiny compiled model (loads in Foundry Local in about a second)."""
    manifest = json.loads((compiled_tiny_int4 / "curator-manifest.json").read_text())
    files = {
        a["path"]: (compiled_tiny_int4 / a["path"]).read_bytes()
        for a in manifest["build"]["artifacts"]
    }
    files["curator-manifest.json"] = (compiled_tiny_int4 / "curator-manifest.json").read_bytes()
    yield Published(hub, files, TINY_MODEL_ID)
    hub.repos.pop(REPO, None)


def left_behind(cache: Path) -> list[str]:
    return (
        sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) if cache.exists() else []
    )


# --- which entries are published ----------------------------------------------------------------


def test_is_published_needs_a_distribution_object() -> None:
    published = make_entry(0, distribution={"repo": "a/b"})
    local = make_entry(1)
    odd = make_entry(2, distribution="a/b")
    document = make_document([published, local, odd])
    assert is_published(document, published["id"]) is True
    assert is_published(document, local["id"]) is False
    assert is_published(document, odd["id"]) is False
    assert is_published(document, "missing-generic-cpu:1") is False
    assert is_published({"models": "not a list"}, published["id"]) is False


# --- refusals before any download ---------------------------------------------------------------


def test_an_unpublished_entry_says_how_to_publish(registry: Path, cache: Path) -> None:
    entry = make_entry(0)
    write_json_atomic(registry, make_document([entry]))
    with pytest.raises(NotFound) as exc:
        pull_model(entry["id"], registry=registry, cache_dir=cache)
    assert (exc.value.message, exc.value.hint) == (
        f"{entry['id']} is in the registry but not published: it has no distribution",
        f"whoever compiled it runs: curator publish {entry['id']} --to ORG/NAME",
    )
    with pytest.raises(NotFound, match="no model 'other-generic-cpu:1'"):
        pull_model("other-generic-cpu:1", registry=registry, cache_dir=cache)


def refused_entry(
    fake_build: Published, registry: Path, cache: Path, change: Any
) -> InputFileError:
    entry = copy.deepcopy(fake_build.entry)
    change(entry)
    write_json_atomic(registry, make_document([entry]))
    fake_build.hub.requests.clear()
    with pytest.raises(InputFileError) as exc:
        pull_model(entry["id"], registry=registry, cache_dir=cache)
    assert fake_build.hub.requests == [] and left_behind(cache) == []
    assert exc.value.hint == "curator registry validate"
    assert exc.value.message.startswith("the registry entry fake-generic-cpu:1 cannot be pulled: ")
    return exc.value


def test_a_hostile_entry_is_refused_before_any_download(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    def differ(entry: dict[str, Any]) -> None:
        entry["distribution"]["files"][0]["sha256"] = "0" * 64

    error = refused_entry(fake_build, registry, cache, differ)
    assert error.message == (
        "the registry entry fake-generic-cpu:1 cannot be pulled: distribution.files differ from "
        "build.artifacts: changed: genai_config.json"
    )

    def no_manifest(entry: dict[str, Any]) -> None:
        del entry["distribution"]["manifest"]

    error = refused_entry(fake_build, registry, cache, no_manifest)
    assert error.message == (
        "the registry entry fake-generic-cpu:1 cannot be pulled: distribution.manifest is missing"
    )

    def both(entry: dict[str, Any]) -> None:
        differ(entry)
        no_manifest(entry)

    error = refused_entry(fake_build, registry, cache, both)
    assert error.message.endswith("; distribution.manifest is missing")

    def bad_schema(entry: dict[str, Any]) -> None:
        entry["distribution"]["commit"] = "main"

    error = refused_entry(fake_build, registry, cache, bad_schema)
    assert "main" in error.message and "distribution.manifest" not in error.message

    def manifest_listed(entry: dict[str, Any]) -> None:
        for listed in (entry["build"]["artifacts"], entry["distribution"]["files"]):
            listed.append(record("curator-manifest.json", b"{}"))

    error = refused_entry(fake_build, registry, cache, manifest_listed)
    assert error.message == (
        "the registry entry fake-generic-cpu:1 cannot be pulled: 'curator-manifest.json' is the "
        "manifest's name"
    )


# --- downloads, refusals and the load test ------------------------------------------------------


def test_a_file_of_another_size_on_the_hub_is_refused_before_its_bytes(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    fake_build.repo.files["model.onnx"] = b"longer than listed" * 20
    fake_build.repo.commits[fake_build.commit]["model.onnx"] = fake_build.repo.files["model.onnx"]
    fake_build.registry(registry)
    with pytest.raises(PullRefused) as exc:
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache)
    assert exc.value.message == (
        f"fake-generic-cpu:1: refused {REPO}@{fake_build.commit[:12]}, nothing was placed: "
        "model.onnx: the Hub holds 360 bytes, the registry lists 110"
    )
    assert exc.value.hint == REFUSED_HINT.format("fake-generic-cpu:1")
    assert left_behind(cache) == []


def test_a_changed_or_missing_file_is_named_and_nothing_is_placed(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    changed = b"NOT a graph" * 10  # same size, other bytes
    fake_build.repo.files["model.onnx"] = changed
    fake_build.repo.commits[fake_build.commit]["model.onnx"] = changed
    del fake_build.repo.files["genai_config.json"]
    del fake_build.repo.commits[fake_build.commit]["genai_config.json"]
    fake_build.registry(registry)
    said: list[str] = []
    with pytest.raises(PullRefused) as exc:
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache, progress=said.append)
    assert exc.value.message == (
        f"fake-generic-cpu:1: refused {REPO}@{fake_build.commit[:12]}, nothing was placed: "
        "genai_config.json: missing; model.onnx: sha256 differs from the registry's"
    )
    assert exc.value.hint == REFUSED_HINT.format("fake-generic-cpu:1")
    total = sum(len(d) for d in fake_build.files.values())
    assert said == [
        f"downloading 3 files ({total / 2**20:.1f} MiB) from {REPO}@{fake_build.commit}"
    ]
    assert left_behind(cache) == []


def test_a_build_that_fails_its_load_test_gives_back_what_it_replaced(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    fake_build.registry(registry)
    target = cache / "team" / "fake-generic-cpu-1"
    target.mkdir(parents=True)
    (target / "genai_config.json").write_text('{"old": true}')
    with pytest.raises(UsageProblem) as exc:
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache)
    assert (exc.value.message, exc.value.hint) == (
        f"{target} exists and is not the build the registry lists for fake-generic-cpu:1",
        "curator pull fake-generic-cpu:1 --force replaces it (curator cache verify shows how it "
        "differs)",
    )
    with pytest.raises(Exception, match="load test failed"):
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache, force=True)
    assert (target / "genai_config.json").read_text() == '{"old": true}'
    assert [p.name for p in target.iterdir()] == ["genai_config.json"]
    assert not (cache / ".curator-work").exists()

    (target / "genai_config.json").unlink()
    target.rmdir()
    with pytest.raises(Exception, match="load test failed"):  # nothing to give back
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache)
    assert not target.exists()


def test_pull_downloads_places_and_registers(
    runtime: Runtime, real_build: Published, registry: Path, cache: Path
) -> None:
    real_build.registry(registry)
    real_build.hub.requests.clear()
    stale = cache / ".curator-work" / "pull-12345678"
    stale.mkdir(parents=True)
    os.utime(stale, (1, 1))  # an interrupted pull's, long ago
    said: list[str] = []
    result = pull_model(TINY_MODEL_ID, registry=registry, cache_dir=cache, progress=said.append)
    target = cache / "team" / TINY_MODEL_ID.replace(":", "-")
    total = sum(len(d) for d in real_build.files.values())
    assert said == [
        f"downloading {len(real_build.files)} files ({total / 2**20:.1f} MiB) from "
        f"{REPO}@{real_build.commit}"
    ]
    assert result == PullResult(
        id=TINY_MODEL_ID,
        repo=REPO,
        commit=real_build.commit,
        path=target,
        action="downloaded",
        downloaded_bytes=total,
        foundry_action="registered",
        load_ms=result.load_ms,
        completion_tokens=result.completion_tokens,
    )
    assert result.load_ms >= 0 and result.completion_tokens > 0
    assert sorted(p.name for p in target.iterdir()) == sorted(real_build.files)
    for name, data in real_build.files.items():
        assert (target / name).read_bytes() == data
    assert not (cache / ".curator-work").exists()  # the stale work directory too
    fetched = [r.path for r in real_build.hub.seen("GET", "/resolve/")]
    asked = [r.path for r in real_build.hub.seen("HEAD", "/resolve/")]
    assert len(fetched) == len(real_build.files) and len(asked) >= len(fetched)
    assert all(f"/resolve/{real_build.commit}/" in p for p in fetched + asked)  # at the commit
    registered = runtime(cache).get(TINY_MODEL_ID)  # registered with the cache it was pulled to
    assert registered is not None and registered.path == target

    again = pull_model(TINY_MODEL_ID, registry=registry, cache_dir=cache)
    assert (again.action, again.downloaded_bytes, again.foundry_action) == (
        "already present",
        0,
        "re-registered",
    )


# --- pull --all -----------------------------------------------------------------------------------


def test_pull_all_skips_what_this_machine_cannot_run_and_collects_failures(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    base = fake_build.entry
    cuda = copy.deepcopy(base)
    cuda.update(
        id="fake-cuda-gpu:1",
        alias="fake-cuda",
        variant="cuda-gpu",
        runtime={"deviceType": "GPU", "executionProvider": "CUDAExecutionProvider"},
    )
    npu = copy.deepcopy(base)
    npu.update(
        id="fake-qnn-npu:1",
        alias="fake-qnn",
        variant="qnn-npu",
        runtime={"deviceType": "NPU", "executionProvider": "QNNExecutionProvider"},
    )
    local = copy.deepcopy(base)
    local.update(id="local-generic-cpu:1", alias="local-only")
    del local["distribution"]
    big = copy.deepcopy(base)
    big.update(id="big-generic-cpu:1", alias="big", minRamGb=64.0)
    embed = copy.deepcopy(base)
    embed.update(id="emb-generic-cpu:1", alias="emb", task="embeddings")
    del embed["distribution"]
    first = copy.deepcopy(base)  # listed last, pulled first: in the order of the ids
    first.update(id="aaa-generic-cpu:1", alias="aaa")
    fake_build.registry(registry, cuda, npu, local, big, embed, first)
    said: list[str] = []
    result = pull_all(registry=registry, cache_dir=cache, ram_gb=16.0, progress=said.append)
    assert result.pulled == () and result.ram_gb == 16.0
    assert [f.id for f in result.failed] == ["aaa-generic-cpu:1", "fake-generic-cpu:1"]
    failure = result.failed[1]
    assert isinstance(failure, PullFailure) and failure.id == "fake-generic-cpu:1"
    assert failure.error.startswith("load test failed")
    assert failure.hint is not None and failure.hint.startswith("curator cache verify")
    skipped = dict(result.skipped)
    assert [s[0] for s in result.skipped] == sorted(skipped)
    assert skipped["fake-cuda-gpu:1"] == "needs an NVIDIA GPU (CUDA); this machine has none"
    assert skipped["fake-qnn-npu:1"] == (
        "runs on QNNExecutionProvider: pull it by id on a machine that has it"
    )
    assert skipped["local-generic-cpu:1"] == "not published (curator publish)"
    assert "64" in skipped["big-generic-cpu:1"]
    assert "emb-generic-cpu:1" in skipped  # not published; its task is listed on its own
    assert [m for m in said if m.startswith("pulling ")] == [
        "pulling aaa-generic-cpu:1",
        "pulling fake-generic-cpu:1",
    ]

    everything = pull_all(registry=registry, cache_dir=cache, capabilities=("vision",))
    assert everything.failed == () and everything.ram_gb is None
    assert {s[0] for s in everything.skipped} >= {"fake-generic-cpu:1", "big-generic-cpu:1"}


def test_pull_all_of_a_missing_registry_is_an_error(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nowhere" / "models.json"
    with pytest.raises(NotFound) as exc:
        pull_all(registry=missing, cache_dir=cache)
    assert (exc.value.message, exc.value.hint) == (
        f"registry not found: {missing}",
        "pass --registry PATH",
    )


def test_pull_all_pulls_what_fits(
    runtime: Runtime, real_build: Published, registry: Path, cache: Path
) -> None:
    real_build.registry(registry)
    said: list[str] = []
    result = pull_all(registry=registry, cache_dir=cache, progress=said.append)
    (pulled,) = result.pulled
    assert (pulled.id, pulled.action, pulled.foundry_action) == (
        TINY_MODEL_ID,
        "downloaded",
        "registered",
    )
    assert result.failed == () and result.skipped == ()
    assert said[0] == f"pulling {TINY_MODEL_ID}" and said[1].startswith("downloading ")
    assert (cache / "team" / TINY_MODEL_ID.replace(":", "-") / "model.onnx").is_file()


def test_an_entry_without_a_runtime_is_pulled_as_a_cpu_model(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    """No execution provider named: nothing to skip it for; the entry check then refuses it."""
    del fake_build.entry["runtime"]
    fake_build.registry(registry)
    result = pull_all(registry=registry, cache_dir=cache)
    assert result.skipped == () and [f.id for f in result.failed] == ["fake-generic-cpu:1"]
    assert result.failed[0].hint == "curator registry validate"


def test_a_repository_gone_from_the_hub_is_a_hub_error_naming_it(
    runtime: Runtime, fake_build: Published, registry: Path, cache: Path
) -> None:
    from curator.errors import HubError

    fake_build.registry(registry)
    del fake_build.hub.repos[REPO]
    with pytest.raises(HubError) as exc:
        pull_model("fake-generic-cpu:1", registry=registry, cache_dir=cache)
    assert REPO in exc.value.message
    assert left_behind(cache) == []
