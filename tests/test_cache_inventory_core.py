"""Guards: curator.cache.inventory

``cache ls``, ``cache rm`` and ``cache verify`` in process, against the real Foundry Local runtime
and the one in memory mutation testing uses (tests/memory_foundry.py; registration checks only
that genai_config.json exists, so tiny directories written here are enough) and a registry file written here: which directories are listed with which states, what a
removal deletes, keeps and unregisters, and where verify looks for a model registered from
elsewhere.
"""

# ruff: noqa: F811 - the runtime fixture is imported, and tests take it as an argument
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curator import foundry
from curator.cache.inventory import (
    CachedModel,
    RemoveResult,
    VerifyResult,
    list_cache,
    remove_model,
    verify_cache,
)
from curator.errors import NotFound
from curator.foundry.catalog import DOWNLOAD_SIGNAL
from curator.jsonio import write_json_atomic
from curator.registry import find_model, load_registry
from tests.bites import compiled_dir
from tests.memory_foundry import Runtime, runtime  # noqa: F401
from tests.samples import make_document, make_entry


def model_dir(parent: Path, name: str, size: int = 0) -> Path:
    """A directory Foundry accepts for registration (genai_config.json), ``size`` more bytes."""
    path = parent / name
    path.mkdir(parents=True)
    (path / "genai_config.json").write_text("{}")
    if size:
        (path / "weights.bin").write_bytes(b"\0" * size)
    return path


def registry_with(path: Path, *ids: str) -> Path:
    entries = [make_entry(n, id=model_id) for n, model_id in enumerate(ids)]
    write_json_atomic(path, make_document(entries))
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """The cache the commands are given (--cache-dir): not $FOUNDRY_CACHE_DIR, which stays empty."""
    path = tmp_path / "team-cache"
    path.mkdir()
    assert Path(os.environ["FOUNDRY_CACHE_DIR"]) != path
    return path


def test_no_cache_directory_lists_nothing(tmp_path: Path) -> None:
    assert list_cache(tmp_path / "nowhere", tmp_path / "models.json") == []


def test_ls_lists_each_directory_with_its_states(
    runtime: Runtime, cache: Path, tmp_path: Path
) -> None:
    registry = registry_with(tmp_path / "models.json", "b-generic-cpu:1")
    a = model_dir(cache / "local", "a-generic-cpu-1", size=1_234_567)  # 1.177 MiB
    b = compiled_dir(cache, "b-generic-cpu-1")  # cache/curator-test/..., with a manifest
    copy = model_dir(cache / "other", "copy-of-b", size=2**19)
    (copy / "curator-manifest.json").write_text((b / "curator-manifest.json").read_text())
    partial = model_dir(cache / "pub", "p-generic-cpu-1")
    (partial / DOWNLOAD_SIGNAL).write_text("")
    outside = model_dir(tmp_path / "elsewhere", "ext-generic-cpu-1", size=2_345_678)
    gone = model_dir(tmp_path / "elsewhere", "gone-generic-cpu-1")
    moved = model_dir(tmp_path / "elsewhere", "moved-generic-cpu-1")
    moved_here = model_dir(cache / "local", "moved-generic-cpu-1")
    rt = runtime(cache)
    rt.register_model_dir(a, "a-generic-cpu:1", foundry.ModelMetadata())
    rt.register_model_dir(copy, "b-generic-cpu:1", foundry.ModelMetadata())
    rt.register_model_dir(outside, "ext-generic-cpu:1", foundry.ModelMetadata())
    rt.register_model_dir(gone, "gone-generic-cpu:1", foundry.ModelMetadata())
    rt.register_model_dir(moved, "moved-generic-cpu:1", foundry.ModelMetadata())
    for directory in (gone, moved):
        (directory / "genai_config.json").unlink()
        directory.rmdir()

    rows = list_cache(cache, registry)
    assert rows == [
        CachedModel(
            "a-generic-cpu:1", a, 1.18, True, False, False, True, (), unfinished_download=False
        ),
        CachedModel(
            "b-generic-cpu:1",
            b,
            round(sum(f.stat().st_size for f in b.iterdir()) / 2**20, 2),
            False,  # Foundry's registration points at the copy, not at this directory
            True,
            True,
            True,
            (copy,),
        ),
        CachedModel("b-generic-cpu:1", copy, 0.5, True, True, True, True, (b,)),
        CachedModel("ext-generic-cpu:1", outside, 2.24, True, False, False, False),
        CachedModel("gone-generic-cpu:1", None, None, True, False, False, False),  # SDK: no path
        # registered where nothing is now; the directory of its id in the cache is the one
        CachedModel("moved-generic-cpu:1", moved_here, 0.0, True, False, False, True),
        CachedModel(
            "p-generic-cpu:1", partial, 0.0, False, False, False, True, unfinished_download=True
        ),
    ]


def test_a_registration_outside_with_a_manifest_has_one(
    runtime: Runtime, cache: Path, tmp_path: Path
) -> None:
    outside = compiled_dir(tmp_path / "elsewhere", "ext-generic-cpu-1")
    cache.mkdir(exist_ok=True)
    runtime(cache).register_model_dir(outside, "ext-generic-cpu:1", foundry.ModelMetadata())
    (row,) = list_cache(cache, tmp_path / "models.json")
    assert (row.id, row.path, row.has_manifest, row.in_cache) == (
        "ext-generic-cpu:1",
        outside,
        True,
        False,
    )


def test_rm_unregisters_deletes_and_removes_the_entry(
    runtime: Runtime, cache: Path, tmp_path: Path
) -> None:
    registry = registry_with(tmp_path / "models.json", "a-generic-cpu:1", "keep-generic-cpu:1")
    a = model_dir(cache / "local", "a-generic-cpu-1")
    runtime(cache).register_model_dir(a, "a-generic-cpu:1", foundry.ModelMetadata())
    result = remove_model("a-generic-cpu:1", cache, registry)
    assert result == RemoveResult("a-generic-cpu:1", True, a, None, True, False)
    assert not a.exists() and not (cache / "local").exists()  # the empty publisher goes too
    assert runtime(cache).get("a-generic-cpu:1") is None
    document = load_registry(registry)
    assert find_model(document, "a-generic-cpu:1") is None
    assert find_model(document, "keep-generic-cpu:1") is not None
    assert not [p for p in cache.rglob("*") if ".removing-" in p.name]  # nothing left aside


def test_rm_keeps_a_directory_outside_the_cache_and_a_sibling(
    runtime: Runtime, cache: Path, tmp_path: Path
) -> None:
    outside = model_dir(tmp_path / "elsewhere", "ext-generic-cpu-1")
    sibling = model_dir(cache / "local", "sib-generic-cpu-1")
    runtime(cache).register_model_dir(outside, "ext-generic-cpu:1", foundry.ModelMetadata())
    result = remove_model("ext-generic-cpu:1", cache)
    assert result == RemoveResult("ext-generic-cpu:1", True, None, outside, False, False)
    assert (outside / "genai_config.json").is_file()
    # Not registered, no entry asked for: the directory in the cache goes, its publisher stays.
    second = model_dir(cache / "local", "two-generic-cpu-1")
    assert remove_model("two-generic-cpu:1", cache) == RemoveResult(
        "two-generic-cpu:1", False, second, None, False, False
    )
    assert not second.exists() and sibling.is_dir()
    assert [p.name for p in (cache / "local").iterdir()] == ["sib-generic-cpu-1"]


def test_rm_of_an_entry_only_and_of_nothing(runtime: Runtime, cache: Path, tmp_path: Path) -> None:
    registry = registry_with(tmp_path / "models.json", "a-generic-cpu:1")
    assert remove_model("a-generic-cpu:1", cache, registry) == RemoveResult(
        "a-generic-cpu:1", False, None, None, True, False
    )
    assert load_registry(registry)["models"] == []
    with pytest.raises(NotFound) as exc:
        remove_model("a-generic-cpu:1", cache, registry)
    assert (exc.value.message, exc.value.hint) == (
        f"a-generic-cpu:1 is neither registered nor in {cache}",
        "curator cache ls",
    )
    with pytest.raises(NotFound):
        remove_model("a-generic-cpu:1", cache)


def test_rm_of_a_catalog_download_deletes_it_without_unregistering(
    runtime: Runtime, cache: Path
) -> None:
    download = cache / "Microsoft" / "phi-mini-1"
    download.mkdir(parents=True)
    (download / "inference_model.json").write_text(json.dumps({"Name": "phi-mini:1"}))
    result = remove_model("phi-mini:1", cache)
    assert result == RemoveResult("phi-mini:1", False, download, None, False, True)
    assert not download.exists()


def test_verify_finds_a_model_registered_from_elsewhere(
    runtime: Runtime, cache: Path, tmp_path: Path
) -> None:
    outside = compiled_dir(tmp_path / "elsewhere", "ext-generic-cpu-1")
    cache.mkdir(exist_ok=True)
    runtime(cache).register_model_dir(outside, "ext-generic-cpu:1", foundry.ModelMetadata())
    assert verify_cache(cache, "ext-generic-cpu:1") == [
        VerifyResult("ext-generic-cpu:1", outside, 2, (), (), None)
    ]
    for f in outside.iterdir():
        f.unlink()
    outside.rmdir()  # registered, but its directory is gone
    with pytest.raises(NotFound) as exc:
        verify_cache(cache, "ext-generic-cpu:1")
    assert (exc.value.message, exc.value.hint) == (
        f"no directory for ext-generic-cpu:1 in {cache}",
        "curator cache ls",
    )
    with pytest.raises(NotFound, match="no directory for nobody-generic-cpu:1"):
        verify_cache(cache, "nobody-generic-cpu:1")


def test_rm_never_deletes_the_cache_directory_itself(runtime: Runtime, cache: Path) -> None:
    """A model registered at the cache's own root: unregistered, and the cache is kept."""
    (cache / "genai_config.json").write_text("{}")
    other = model_dir(cache / "local", "other-generic-cpu-1")
    runtime(cache).register_model_dir(cache, "root-generic-cpu:1", foundry.ModelMetadata())
    result = remove_model("root-generic-cpu:1", cache)
    assert result == RemoveResult("root-generic-cpu:1", True, None, cache, False, False)
    assert (cache / "genai_config.json").is_file() and other.is_dir()
