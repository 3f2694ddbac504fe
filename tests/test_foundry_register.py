"""Guards: curator.cli.cache, curator.cli.foundry, curator.foundry._native, curator.foundry.manager,
  curator.register.compiled, curator.register.types, curator.registry, curator.schemas

curator register and curator cache ls/rm/verify against the real compiled tiny model, with
Foundry Local in subprocesses (its manager is a process-wide singleton)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from curator.registry import load_registry, validate_document
from curator.schemas import schema_problems
from tests.conftest import LIVENESS_PROMPTS, TINY_MODEL_ID, run_curator


def _registry() -> Path:
    return Path(os.environ["CURATOR_REGISTRY"])


def _cache_rows() -> dict[str, dict[str, object]]:
    result = run_curator("cache", "ls", "--json")
    assert result.returncode == 0, result.stderr
    return {row["id"]: row for row in json.loads(result.stdout)}


def test_register_survives_a_new_process_and_reregister_updates(
    install_compiled: Callable[..., Path],
) -> None:
    model_dir = install_compiled()
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())

    first = run_curator("register", str(model_dir), "--license", "mit", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["id"] == TINY_MODEL_ID
    assert report["foundry_action"] == "registered"
    assert report["registry_action"] == "added"
    assert report["load_test"]["completion_tokens"] > 0
    assert report["load_test"]["peak_rss_mb"] > 0

    # A new process sees the registration (Foundry keeps it in the cache directory).
    rows = _cache_rows()
    assert rows[TINY_MODEL_ID]["foundry_registered"] is True
    assert rows[TINY_MODEL_ID]["in_registry"] is True
    assert Path(str(rows[TINY_MODEL_ID]["path"])) == model_dir

    document = load_registry(_registry())
    assert validate_document(document).valid, validate_document(document).problems
    (entry,) = document["models"]
    assert schema_problems(document, "models") == []
    assert entry["id"] == TINY_MODEL_ID
    assert entry["variant"] == "generic-cpu"
    assert entry["license"] == "mit"
    assert (
        entry["contextLength"]
        == json.loads((model_dir / "genai_config.json").read_text())["model"]["context_length"]
    )
    assert entry["build"]["recipeSha256"] == manifest["build"]["recipeSha256"]
    assert entry["build"]["artifacts"] == manifest["build"]["artifacts"]
    assert entry["source"]["architecture"] == "Qwen2ForCausalLM"
    # minRamGb: the measured peak plus headroom, never below the measured peak.
    assert entry["minRamGb"] >= report["load_test"]["peak_rss_mb"] / 1024

    # Registering again (by id, with options) updates in place: one registration, one entry.
    again = run_curator(
        "register",
        TINY_MODEL_ID,
        "--capability",
        "chat",
        "--capability",
        "code",
        "--min-ram-gb",
        "3",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["foundry_action"], report["registry_action"]) == ("re-registered", "updated")
    (entry,) = load_registry(_registry())["models"]
    assert entry["capabilities"] == ["chat", "code"]
    assert entry["minRamGb"] == 3
    assert entry["license"] == "mit"  # kept from the existing entry
    assert list(_cache_rows()) == [TINY_MODEL_ID]


def test_missing_external_data_is_refused_and_left_unregistered(
    install_compiled: Callable[..., Path],
) -> None:
    model_dir = install_compiled()
    (model_dir / "model.onnx.data").unlink()

    result = run_curator("register", str(model_dir), "--license", "mit")
    assert result.returncode == 1
    assert "model.onnx.data" in result.stderr
    assert "Traceback" not in result.stderr
    assert _cache_rows()[TINY_MODEL_ID]["foundry_registered"] is False
    assert not _registry().exists()


def test_load_test_failure_unregisters(install_compiled: Callable[..., Path]) -> None:
    """A broken model the manifest does not reveal fails the load test and is unregistered."""
    model_dir = install_compiled()
    manifest_path = model_dir / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["build"]["artifacts"] = [
        a for a in manifest["build"]["artifacts"] if a["path"] != "model.onnx.data"
    ]
    manifest_path.write_text(json.dumps(manifest))
    (model_dir / "model.onnx.data").unlink()

    result = run_curator("register", str(model_dir), "--license", "mit")
    assert result.returncode == 1
    assert "load test failed" in result.stderr
    assert "model.onnx.data" in result.stderr
    assert _cache_rows()[TINY_MODEL_ID]["foundry_registered"] is False
    assert not _registry().exists()


def test_failed_reregister_keeps_the_working_registration(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    good = install_compiled()
    assert run_curator("register", str(good), "--license", "mit").returncode == 0
    broken = tmp_path / "broken-copy"
    shutil.copytree(good, broken)
    manifest = json.loads((broken / "curator-manifest.json").read_text())
    manifest["build"]["artifacts"] = [
        a for a in manifest["build"]["artifacts"] if a["path"] != "model.onnx.data"
    ]
    (broken / "curator-manifest.json").write_text(json.dumps(manifest))
    (broken / "model.onnx.data").unlink()

    result = run_curator("register", str(broken), "--id", TINY_MODEL_ID, "--license", "mit")
    assert result.returncode == 1
    assert f"the previous registration ({good}) kept" in result.stderr
    assert _cache_rows()[TINY_MODEL_ID]["foundry_registered"] is True
    assert run_curator("smoke", TINY_MODEL_ID, "--prompts", str(LIVENESS_PROMPTS)).returncode == 0


def test_cache_verify_catches_a_flipped_byte_and_a_missing_file(
    install_compiled: Callable[..., Path],
) -> None:
    model_dir = install_compiled()
    ok = run_curator("cache", "verify", TINY_MODEL_ID)
    assert ok.returncode == 0, ok.stderr + ok.stdout

    data = model_dir / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    (model_dir / "tokenizer.json").unlink()

    bad = run_curator("cache", "verify", "--json")
    assert bad.returncode == 1
    (result,) = json.loads(bad.stdout)
    assert result["ok"] is False
    assert result["changed"] == ["model.onnx.data"]
    assert result["missing"] == ["tokenizer.json"]
    text = run_curator("cache", "verify", TINY_MODEL_ID)
    assert text.returncode == 1
    assert "changed: model.onnx.data" in text.stdout
    assert "missing: tokenizer.json" in text.stdout


def test_cache_rm_unregisters_deletes_and_drops_the_entry(
    install_compiled: Callable[..., Path],
) -> None:
    model_dir = install_compiled()
    assert run_curator("register", str(model_dir), "--license", "mit").returncode == 0

    result = run_curator("cache", "rm", TINY_MODEL_ID, "--registry", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unregistered"] is True
    assert report["registry_entry_removed"] is True
    assert not model_dir.exists()
    assert load_registry(_registry())["models"] == []
    assert _cache_rows() == {}

    missing = run_curator("cache", "rm", TINY_MODEL_ID)
    assert missing.returncode == 1
    assert "curator cache ls" in missing.stderr


def test_a_directory_outside_the_cache_is_listed_and_kept_on_rm(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    outside = install_compiled(cache_dir=tmp_path / "elsewhere")
    assert run_curator("register", str(outside), "--license", "mit").returncode == 0
    row = _cache_rows()[TINY_MODEL_ID]
    assert row["foundry_registered"] is True
    assert row["in_cache"] is False
    assert Path(str(row["path"])) == outside

    removed = run_curator("cache", "rm", TINY_MODEL_ID, "--json")
    assert removed.returncode == 0, removed.stderr
    report = json.loads(removed.stdout)
    assert report["unregistered"] is True
    assert report["kept_dir"] == str(outside)
    assert (outside / "genai_config.json").is_file()
    assert _cache_rows() == {}


def test_a_copied_directory_cannot_take_a_new_id_and_the_cache_flags_both(
    install_compiled: Callable[..., Path],
) -> None:
    """Issue 15 item 6, as a new user tried it: `cp -r` a compiled directory under a new name and
    register the new id. That re-pointed the original id's registration at the copy ("entry
    updated"), and `cache ls` showed two directories with one id, both "registered"."""
    original = install_compiled()
    assert run_curator("register", str(original), "--license", "mit").returncode == 0
    copy = original.parent / "copy-qwen2-generic-cpu-1"
    shutil.copytree(original, copy)
    before = _registry().read_bytes()

    by_id = run_curator("register", "copy-qwen2-generic-cpu:1", "--license", "mit")
    assert by_id.returncode == 2
    assert "the command line says copy-qwen2-generic-cpu:1" in by_id.stderr
    assert (
        "the directory name copy-qwen2-generic-cpu-1 says copy-qwen2-generic-cpu:1" in by_id.stderr
    )
    assert f"the manifest (curator-manifest.json) says {TINY_MODEL_ID}" in by_id.stderr
    by_path = run_curator("register", str(copy), "--license", "mit")
    assert by_path.returncode == 2 and "the model id differs" in by_path.stderr
    renamed = run_curator("register", str(copy), "--id", "copy-qwen2-generic-cpu:1")
    assert renamed.returncode == 2 and "--id says copy-qwen2-generic-cpu:1" in renamed.stderr
    assert _registry().read_bytes() == before

    listed = run_curator("cache", "ls", "--json")
    rows = {row["path"]: row for row in json.loads(listed.stdout)}
    assert rows[str(original)]["id"] == rows[str(copy)]["id"] == TINY_MODEL_ID
    # Foundry's registration still points at the original, and only that row says registered.
    assert rows[str(original)]["foundry_registered"] is True
    assert rows[str(copy)]["foundry_registered"] is False
    assert rows[str(original)]["shares_id_with"] == [str(copy)]
    assert rows[str(copy)]["shares_id_with"] == [str(original)]
    text = run_curator("cache", "ls")
    assert f"id {TINY_MODEL_ID} is held by 2 directories" in text.stderr

    verified = run_curator("cache", "verify")
    assert verified.returncode == 1
    assert f"id {TINY_MODEL_ID} is also held by {copy}" in verified.stdout
    assert f"id {TINY_MODEL_ID} is also held by {original}" in verified.stdout
    one = run_curator("cache", "verify", TINY_MODEL_ID)
    assert one.returncode == 1 and "is also held by" in one.stdout
