"""Guards: curator.registry.store

Tests that bite (issue 17), the locked, validated registry edits: each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from curator.errors import InputFileError, NotFound, RegistryError, RegistryInvalid
from curator.registry import store
from tests.samples import make_document, make_entry


def registry_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "nested" / "dir" / "models.json"
    store.upsert_model(path, entries[0]) if entries else None
    for entry in entries[1:]:
        store.add_model(path, entry)
    return path


def test_edits_are_written_canonically_and_create_the_directory(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(2), make_entry(1))
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert [m["id"] for m in data["models"]] == ["model1-generic-cpu:1", "model2-generic-cpu:1"]
    assert text.endswith("}\n") and '\n  "models": [' in text
    assert list(data["models"][0]) == sorted(data["models"][0])  # keys sorted


def test_an_edit_runs_under_the_registry_lock(tmp_path: Path) -> None:
    """Bug: registry edits without the file lock (two writers lose each other's entries)."""
    from filelock import FileLock, Timeout

    path = registry_file(tmp_path, make_entry(0))
    assert store.lock_path(path) == path.parent / ".models.json.lock"

    def mutate(document: dict[str, Any]) -> str:
        with pytest.raises(Timeout):
            FileLock(str(store.lock_path(path)), timeout=0).acquire()
        document["models"][0]["minRamGb"] = 3.0
        return "done"

    assert store.edit_registry(path, mutate) == "done"
    assert json.loads(path.read_text())["models"][0]["minRamGb"] == 3.0


def test_an_edit_that_breaks_a_rule_is_refused_and_leaves_the_file(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0))
    before = path.read_bytes()

    def shrink(entry: dict[str, Any]) -> None:
        entry["fileSizeMb"] = 1.0

    with pytest.raises(RegistryInvalid) as raised:
        store.update_model(path, "model0-generic-cpu:1", shrink)
    assert path.read_bytes() == before
    assert raised.value.message == f"edit refused: it would leave {path} invalid (1 problem(s))"
    assert raised.value.problems == (
        "models[id=model0-generic-cpu:1].fileSizeMb: fileSizeMb 1.0 but the artifacts add up to "
        "95.37 MiB [file-size-matches-artifacts]",
    )
    assert "curator registry validate" in (raised.value.hint or "")


def test_a_broken_registry_can_be_repaired_edit_by_edit(tmp_path: Path) -> None:
    """Problems the file already had do not block an unrelated edit, even after re-sorting."""
    path = tmp_path / "models.json"
    broken = make_entry(5, license="llama3")
    duplicate = make_entry(6, alias="model5")
    path.write_text(json.dumps(make_document([broken, duplicate])))
    store.add_model(path, make_entry(0))  # sorts first: indices of the old problems shift
    ids = [m["id"] for m in json.loads(path.read_text())["models"]]
    assert ids == ["model0-generic-cpu:1", "model5-generic-cpu:1", "model6-generic-cpu:1"]
    with pytest.raises(RegistryInvalid) as raised:
        store.add_model(path, make_entry(7, alias="model0"))
    assert raised.value.problems == (
        "models[id=model7-generic-cpu:1].alias: alias 'model0' with variant 'generic-cpu' is also "
        "models[…] [unique-alias-per-variant]",
    )


def test_add_update_upsert_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    assert store.upsert_model(path, make_entry(0)) == "added"
    assert store.upsert_model(path, make_entry(0, minRamGb=2.0)) == "updated"
    with pytest.raises(RegistryError) as taken:
        store.add_model(path, make_entry(0))
    assert taken.value.message == f"'model0-generic-cpu:1' is already in {path}"
    assert taken.value.hint == "use `curator registry update model0-generic-cpu:1`"
    store.add_model(path, make_entry(1))
    updated = store.update_model(path, "model1-generic-cpu:1", lambda e: e.update(minRamGb=4.0))
    assert updated["minRamGb"] == 4.0
    assert store.remove_model(path, "model0-generic-cpu:1")["minRamGb"] == 2.0
    models = json.loads(path.read_text())["models"]
    assert [(m["id"], m["minRamGb"]) for m in models] == [("model1-generic-cpu:1", 4.0)]
    for edit in (
        lambda: store.remove_model(path, "model0-generic-cpu:1"),
        lambda: store.update_model(path, "model0-generic-cpu:1", lambda e: None),
    ):
        with pytest.raises(NotFound) as missing:
            edit()
        assert missing.value.message == f"no model 'model0-generic-cpu:1' in {path}"
        assert missing.value.hint == f"`curator registry list --registry {path}` shows the ids"


def test_upsert_replaces_in_place_among_other_entries(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0), make_entry(1), make_entry(2))
    assert store.upsert_model(path, make_entry(1, minRamGb=6.0)) == "updated"
    models = json.loads(path.read_text())["models"]
    assert [m["minRamGb"] for m in models] == [1.0, 6.0, 1.0]


def test_an_edit_names_document_level_and_nested_problems(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0))
    with pytest.raises(RegistryInvalid) as top:
        store.edit_registry(path, lambda d: d["policy"].update(maxRegressionPct="x"))
    assert len(top.value.problems) == 1
    assert top.value.problems[0].startswith("policy.maxRegressionPct: ")
    assert top.value.hint == "fix the entry and retry; `curator registry validate` shows the rules"

    def unsafe(document: dict[str, Any]) -> None:
        document["models"][0]["build"]["artifacts"][1]["path"] = "../x"

    with pytest.raises(RegistryInvalid) as nested:
        store.edit_registry(path, unsafe)
    assert nested.value.problems == (
        "models[id=model0-generic-cpu:1].build.artifacts[0].path: '../x': must not contain '..' "
        "[artifact-path-safe]",
    )


def test_a_registry_without_models_takes_its_first(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"schemaVersion": 1, "policy": {"allowedLicenses": ["apache-2.0"]}}))
    store.add_model(path, make_entry(0))
    other = tmp_path / "other.json"
    other.write_text(path.read_text().replace('"models"', '"unused"'))
    assert store.upsert_model(other, make_entry(1)) == "added"


def test_an_edit_removes_the_temp_files_of_writers_that_died(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0))
    stale = [path.parent / ".models.json.abc123.tmp", path.parent / ".models.json.x.tmp"]
    kept = [path.parent / ".other.json.abc.tmp", path.parent / "models.json.bak"]
    for file in stale + kept:
        file.write_text("half a write")
    assert sorted(store.remove_stale_temp_files(path)) == sorted(stale)
    for file in stale:
        file.write_text("half a write")
    store.add_model(path, make_entry(1))
    assert not any(file.exists() for file in stale)
    assert all(file.exists() for file in kept)
    assert store.remove_stale_temp_files(path) == []


def test_a_non_object_entry_is_named_by_its_value(tmp_path: Path) -> None:
    """A problem at a value that is no object is keyed by the value, not its index."""
    path = registry_file(tmp_path, make_entry(5))
    before = path.read_bytes()

    def add_stray(document: dict[str, Any]) -> None:
        document["models"].append(["stray", 7])

    with pytest.raises(RegistryInvalid) as raised:
        store.edit_registry(path, add_stray)
    assert path.read_bytes() == before
    assert raised.value.problems
    assert all(p.startswith('models[id=<list ["stray", 7]>]') for p in raised.value.problems)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_an_edit_through_a_symlink_writes_and_locks_the_real_file(tmp_path: Path) -> None:
    real = registry_file(tmp_path, make_entry(0))
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert store.real_path(link) == real.resolve()

    def locked(document: dict[str, Any]) -> None:
        from filelock import FileLock, Timeout

        with pytest.raises(Timeout):  # the real file's lock is the one held
            FileLock(str(store.lock_path(real)), timeout=0).acquire()
        document["models"][0]["minRamGb"] = 5.0

    store.edit_registry(link, locked)
    assert link.is_symlink()
    assert json.loads(real.read_text())["models"][0]["minRamGb"] == 5.0
    assert not (tmp_path / ".link.json.lock").exists()


def test_a_directory_where_the_registry_should_be_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.mkdir()
    with pytest.raises(InputFileError) as refused:
        store.add_model(path, make_entry(0))
    assert refused.value.message == f"registry {path} is not a regular file (it is a directory)"
    assert path.is_dir() and not (tmp_path / ".models.json.lock").exists()  # refused unlocked


def test_a_non_object_entry_key_is_its_canonical_json_cut_at_40_characters(
    tmp_path: Path,
) -> None:
    path = registry_file(tmp_path, make_entry(5))
    stray = [{"b": 1, "a": 2}, "x" * 50]

    with pytest.raises(RegistryInvalid) as raised:
        store.edit_registry(path, lambda document: document["models"].append(stray))
    key = '<list [{"a": 2, "b": 1}, "' + "x" * 20 + ">"
    assert raised.value.problems
    assert all(p.startswith(f"models[id={key}]") for p in raised.value.problems)
