"""Guards: curator.cache.inventory, curator.cache.modeldir

Tests that bite (issue 17), cache verification: each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from curator.cache.inventory import VerifyResult, verify_cache, verify_dir
from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from tests.bites import compiled_dir


def test_verify_accepts_an_untouched_model(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    result = verify_dir(model)
    assert result == VerifyResult("tiny-generic-cpu:1", model, 2, (), (), None) and result.ok
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["id"] = "renamed-generic-cpu:7"  # the manifest's id wins over the directory name
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).id == "renamed-generic-cpu:7"


def test_verify_sees_a_same_size_change_by_its_hash(tmp_path: Path) -> None:
    """Bug: `cache verify` checks sizes only (a swapped file of the same size passes)."""
    model = compiled_dir(tmp_path)
    (model / "model.onnx").write_bytes(b"WEIGHTS" * 100)
    result = verify_dir(model)
    assert not result.ok and result.changed == ("model.onnx",) and result.missing == ()


def test_verify_sees_a_size_change_and_a_missing_file(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["build"]["artifacts"][1]["sha256"] = sha256_file(model / "model.onnx")
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    with (model / "model.onnx").open("ab") as handle:
        handle.write(b"")  # same content: passes
    assert verify_dir(model).ok
    manifest["build"]["artifacts"][1]["bytes"] += 1
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).changed == ("model.onnx",)
    del manifest["build"]["artifacts"][1]["bytes"]  # no size listed: the hash alone decides
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).ok
    (model / "genai_config.json").unlink()
    (model / "model.onnx").unlink()
    result = verify_dir(model, "given:1")
    assert result == VerifyResult(
        "given:1", model, 2, ("genai_config.json", "model.onnx"), (), None
    )
    assert not result.ok


def test_verify_never_reads_outside_the_model_directory(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    (tmp_path / "secret").write_text("x")
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["build"]["artifacts"].append({"path": "../../secret", "sha256": "0" * 64, "bytes": 1})
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = verify_dir(model)
    assert result == VerifyResult(
        "tiny-generic-cpu:1",
        model,
        3,
        (),
        (),
        "manifest path '../../secret': must not contain '..'",
    )
    assert not result.ok


def test_verify_without_a_usable_manifest_is_a_problem_not_a_pass(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    (model / MANIFEST_NAME).write_text(json.dumps({"id": "x:1", "build": {"artifacts": []}}))
    empty = verify_dir(model)
    assert empty == VerifyResult(
        "x:1", model, 0, (), (), "cannot verify: the manifest lists no artifacts"
    )
    assert not empty.ok
    (model / MANIFEST_NAME).unlink()
    none = verify_dir(model)
    expected = VerifyResult(
        "tiny-generic-cpu:1", model, 0, (), (), f"cannot verify: no {MANIFEST_NAME}"
    )
    assert none == expected and not none.ok
    (model / MANIFEST_NAME).write_text("[1]")
    broken = verify_dir(model)
    assert (broken.id, broken.path, broken.checked, broken.missing, broken.changed) == (
        "tiny-generic-cpu:1",
        model,
        0,
        (),
        (),
    )
    assert not broken.ok and broken.problem is not None
    assert broken.problem.startswith("cannot verify: ") and "not a JSON object" in broken.problem
    assert verify_dir(model, "given:2").id == "given:2"


def test_a_catalog_download_has_nothing_to_check_and_says_so(tmp_path: Path) -> None:
    model = tmp_path / "Microsoft" / "phi-4-generic-cpu-1"
    model.mkdir(parents=True)
    (model / "genai_config.json").write_text("{}")
    (model / "inference_model.json").write_text(json.dumps({"Name": "phi-4-generic-cpu:1"}))
    result = verify_dir(model)
    assert result == VerifyResult(
        "phi-4-generic-cpu:1",
        model,
        0,
        (),
        (),
        None,
        "a Foundry catalog download: no compile manifest to check it against",
    )
    assert result.ok
    (model / "download.tmp").write_text("")  # unfinished: not vouched for
    unfinished = verify_dir(model)
    assert unfinished.problem == f"cannot verify: no {MANIFEST_NAME}" and unfinished.note is None
    assert not unfinished.ok


def test_two_directories_claiming_one_id_both_fail(tmp_path: Path) -> None:
    """Bug: verify passes a model whose id another directory also claims (which one Foundry
    loads is then a matter of luck)."""
    cache = tmp_path / "cache"
    first = compiled_dir(cache, "dup-generic-cpu-1")
    second = compiled_dir(cache, "copy-generic-cpu-1")
    manifest = json.loads((second / MANIFEST_NAME).read_text())
    manifest["id"] = "dup-generic-cpu:1"
    (second / MANIFEST_NAME).write_text(json.dumps(manifest))
    alone = compiled_dir(cache, "alone-generic-cpu-1")
    expected = {
        first: f"id dup-generic-cpu:1 is also held by {second}",
        second: f"id dup-generic-cpu:1 is also held by {first}",
    }
    by_id = verify_cache(cache, "dup-generic-cpu:1")
    assert {r.path: r.problem for r in by_id} == expected
    assert all(not r.ok and r.checked == 2 and r.id == "dup-generic-cpu:1" for r in by_id)
    everything = {r.path: r.problem for r in verify_cache(cache)}
    assert everything == {**expected, alone: None}
    (second / "model.onnx").unlink()  # its own problem comes first
    assert {r.path: r.missing for r in verify_cache(cache, "dup-generic-cpu:1")}[second] == (
        "model.onnx",
    )


def test_verify_cache_checks_every_model_or_the_one_asked_for(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = compiled_dir(cache, "good-generic-cpu-1")
    bad = compiled_dir(cache, "bad-generic-cpu-1")
    (bad / "model.onnx").write_bytes(b"x")
    results = verify_cache(cache)
    assert [(r.path, r.ok) for r in results] == [(bad, False), (good, True)]
    (only,) = verify_cache(cache, "good-generic-cpu:1")
    assert only.path == good and only.ok and only.id == "good-generic-cpu:1"
