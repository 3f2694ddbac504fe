"""Guards: curator.cli.foundry, curator.cli.share, curator.errors, curator.registry,
  curator.registry.diff, curator.share.publish

curator publish against the loopback Hub with the real huggingface_hub client (Git LFS uploads,
multipart for model.onnx.data), and the registry's distribution rule.

Fixtures here are shared with tests/test_pull.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curator.errors import HubError, InputFileError
from curator.registry import add_model, find_model, load_registry, validate_document
from curator.registry.diff import diff_documents
from curator.share.publish import publish
from tests.conftest import TINY_MODEL_ID, run_curator
from tests.fakehub.plugin import fake_hub_server, hub
from tests.fakehub.server import FakeHub
from tests.fakehub.upload import UploadedRepo, reset, state_of
from tests.samples import make_document, make_entry

__all__ = ["fake_hub_server", "hub"]

WRITE_TOKEN = "hf_fake_writer"
REPO = "team/tiny-qwen2-int4"


def registry_file() -> Path:
    return Path(os.environ["CURATOR_REGISTRY"])


def cache_dir() -> Path:
    return Path(os.environ["FOUNDRY_CACHE_DIR"])


@pytest.fixture
def writer(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """The fake Hub with a write token in HF_TOKEN; model.onnx.data (300 KB) goes multipart."""
    hub.tokens[WRITE_TOKEN] = frozenset()
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    state = reset(hub)
    state.multipart_threshold = 128 * 1024
    state.part_size = 100 * 1024
    return hub


def entry_for(model_dir: Path) -> dict[str, Any]:
    """A registry entry for a compiled directory, as `curator register` would write (no Foundry)."""
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    artifacts = manifest["build"]["artifacts"]
    return make_entry(
        id=manifest["id"],
        alias=manifest["id"].rsplit(":", 1)[0].removesuffix("-generic-cpu"),
        publisher="local",
        license="apache-2.0",
        contextLength=512,
        fileSizeMb=round(sum(a["bytes"] for a in artifacts) / 2**20, 2),
        source={"repo": "local:tiny-qwen2", "architecture": "Qwen2ForCausalLM"},
        build={
            "recipe": manifest["build"]["recipe"],
            "recipeSha256": manifest["build"]["recipeSha256"],
            "tools": {},
            "artifacts": artifacts,
        },
    )


@pytest.fixture
def local_model(install_compiled: Callable[..., Path]) -> Path:
    """The compiled tiny model in this test's Foundry cache, with its registry entry."""
    model_dir = install_compiled()
    add_model(registry_file(), entry_for(model_dir))
    return model_dir


def test_publish_uploads_the_build_over_lfs_and_records_the_commit(
    writer: FakeHub, local_model: Path
) -> None:
    result = run_curator("publish", TINY_MODEL_ID, "--to", REPO, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    repo = writer.repos[REPO]
    assert isinstance(repo, UploadedRepo)
    assert report["commit"] == repo.heads["main"]
    entry = find_model(load_registry(registry_file()), TINY_MODEL_ID)
    assert entry is not None
    distribution = entry["distribution"]
    assert distribution["repo"] == REPO and distribution["commit"] == repo.heads["main"]
    assert distribution["files"] == entry["build"]["artifacts"]
    assert validate_document(load_registry(registry_file())).valid
    # Exactly the build plus the manifest, byte for byte; no compile.log.
    listed = {a["path"] for a in entry["build"]["artifacts"]}
    assert set(repo.files) == listed | {"curator-manifest.json"}
    for path, content in repo.files.items():
        assert content == (local_model / path).read_bytes(), path
    manifest_bytes = (local_model / "curator-manifest.json").read_bytes()
    assert distribution["manifest"] == {
        "sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "bytes": len(manifest_bytes),
    }
    # The large file took the Hub's multipart LFS path; the small LFS file a single PUT.
    parts = writer.seen("PUT", "/part/")
    data_bytes = (local_model / "model.onnx.data").stat().st_size
    part_size = state_of(writer).part_size
    assert len(parts) == -(-data_bytes // part_size) >= 2  # every part sent once, none skipped
    data_oid = hashlib.sha256((local_model / "model.onnx.data").read_bytes()).hexdigest()
    assert {p.path.split("/")[2] for p in parts} == {data_oid}
    assert [r for r in writer.seen("POST", data_oid) if r.path.endswith("/complete")]
    onnx_oid = hashlib.sha256((local_model / "model.onnx").read_bytes()).hexdigest()
    assert writer.seen("PUT", f"/fake-lfs/{onnx_oid}")
    assert "uploading" in result.stderr  # progress on stderr, JSON alone on stdout


def test_an_interrupted_publish_resumes_without_uploading_again(
    writer: FakeHub, local_model: Path
) -> None:
    state_of(writer).fail_commits = 1  # the upload finishes, the commit is cut off
    with pytest.raises(HubError, match="500"):
        publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
    entry = find_model(load_registry(registry_file()), TINY_MODEL_ID)
    assert entry is not None and "distribution" not in entry
    uploaded = len(writer.seen("PUT"))
    assert uploaded > 0

    result = publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
    assert len(writer.seen("PUT")) == uploaded  # every LFS object was already held
    assert result.commit == writer.repos[REPO].sha

    again = publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
    assert again.commit == result.commit  # nothing changed: no new commit
    assert len(state_of(writer).commits) == 1


def test_publish_to_a_branch_of_a_private_repository(writer: FakeHub, local_model: Path) -> None:
    result = publish(
        TINY_MODEL_ID,
        repo=REPO,
        cache_dir=cache_dir(),
        registry=registry_file(),
        revision="int4-cpu",
        private=True,
    )
    repo = writer.repos[REPO]
    assert isinstance(repo, UploadedRepo) and repo.private
    assert repo.heads["int4-cpu"] == result.commit != repo.heads.get("main")
    entry = find_model(load_registry(registry_file()), TINY_MODEL_ID)
    assert entry is not None and entry["distribution"]["branch"] == "int4-cpu"


def test_a_directory_changed_since_register_is_not_published(
    writer: FakeHub, local_model: Path
) -> None:
    data = local_model / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-1] + b"\x00")
    with pytest.raises(InputFileError, match=r"model\.onnx\.data: sha256 differs"):
        publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
    assert REPO not in writer.repos
    assert not writer.seen("POST")


def test_publish_without_a_token_says_how_to_log_in(
    writer: FakeHub, local_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    result = run_curator("publish", TINY_MODEL_ID, "--to", REPO)
    assert result.returncode == 1
    assert "write access" in result.stderr and "hf auth login" in result.stderr
    assert REPO not in writer.repos


def test_publish_refuses_a_bad_repo_id_and_an_unknown_model(writer: FakeHub) -> None:
    bad = run_curator("publish", TINY_MODEL_ID, "--to", "not a repo")
    assert bad.returncode == 2, bad.stderr
    unknown = run_curator("publish", "nope-generic-cpu:1", "--to", REPO)
    assert unknown.returncode == 1 and "no model 'nope-generic-cpu:1'" in unknown.stderr
    assert not writer.seen("POST")


# --- the registry rule ---------------------------------------------------------------------------


def _published(entry: dict[str, Any]) -> dict[str, Any]:
    entry = copy.deepcopy(entry)
    entry["distribution"] = {
        "repo": "team/model0",
        "commit": "a" * 40,
        "files": copy.deepcopy(entry["build"]["artifacts"]),
        "manifest": {"sha256": "b" * 64, "bytes": 10},
    }
    return entry


def test_published_files_must_equal_the_build() -> None:
    good = _published(make_entry(0))
    assert validate_document(make_document([good])).valid

    changed = copy.deepcopy(good)
    changed["distribution"]["files"][1]["sha256"] = "c" * 64
    dropped = copy.deepcopy(good)
    dropped["distribution"]["files"].pop(0)
    extra = copy.deepcopy(good)
    extra["distribution"]["files"].append({"path": "evil.py", "sha256": "d" * 64, "bytes": 1})
    twice = copy.deepcopy(good)
    twice["distribution"]["files"].append(dict(twice["distribution"]["files"][0]))
    for bad, words in (
        (changed, "changed: model.onnx.data"),
        (dropped, "not published: model.onnx"),
        (extra, "not built: evil.py"),
        (twice, "listed twice"),
    ):
        problems = validate_document(make_document([bad])).problems
        assert [p.rule for p in problems] == ["distribution-matches-build"], problems
        assert words in problems[0].message


def test_distribution_shape_is_checked_by_the_schema() -> None:
    entry = _published(make_entry(0))
    entry["distribution"]["commit"] = "main"  # a branch is not a pinned commit
    entry["distribution"]["repo"] = "../../etc"
    rules = {p.path: p.rule for p in validate_document(make_document([entry])).problems}
    assert "models[0].distribution.commit" in rules
    assert "models[0].distribution.repo" in rules


def test_diff_shows_a_republished_file_by_path() -> None:
    base = _published(make_entry(0))
    head = copy.deepcopy(base)
    head["distribution"]["commit"] = "e" * 40
    result = diff_documents(make_document([base]), make_document([head]))
    (model_id, fields), *_ = result.changed
    assert model_id == base["id"]
    assert {f.field for f in fields} == {"distribution.commit"}
    head["build"]["artifacts"][0]["sha256"] = "f" * 64
    head["distribution"]["files"][0]["sha256"] = "f" * 64
    result = diff_documents(make_document([base]), make_document([head]))
    names = {f.field for f in result.changed[0][1]}
    assert "distribution.files[model.onnx]" in names and "build.artifacts[model.onnx]" in names
    assert result.violations == ()
