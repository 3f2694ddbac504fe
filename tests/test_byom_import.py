"""Guards: curator.cli.compile, curator.cli.foundry, curator.cli.imports, curator.compile.imported,
  curator.compile.manifest, curator.cache.modeldir

Issue 21 item 2: `curator import` for models already in ONNX Runtime GenAI format, from a local
folder or from a Hub repo laid out like microsoft/*-onnx (built here from compiled tiny models),
checked file by file against the Hub's hashes, then registered and smoke-tested in Foundry Local."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.compile.manifest import INFERENCE_MODEL_NAME, LOG_NAME
from tests.conftest import LIVENESS_PROMPTS, run_curator
from tests.fakehub.fixtures import card
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.repo import FakeRepo
from tests.fakehub.server import FakeHub

REPO = "microsoft/Tiny-onnx"
CPU_VARIANT = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"
GPU_VARIANT = "cuda/cuda-fp32"
NOT_PUBLISHED = {MANIFEST_NAME, INFERENCE_MODEL_NAME, LOG_NAME}  # curator's, not the publisher's


def published_files(compiled: Path) -> dict[str, bytes]:
    """The files a publisher's ONNX Runtime GenAI folder holds (curator's own files left out)."""
    return {
        p.relative_to(compiled).as_posix(): p.read_bytes()
        for p in sorted(compiled.rglob("*"))
        if p.is_file() and p.name not in NOT_PUBLISHED
    }


@dataclass
class TamperedRepo(FakeRepo):
    """Serves ``files`` but lists the LFS sha256 and size of ``listed`` (what the publisher
    uploaded) for the paths it names: a download altered on the way."""

    listed: dict[str, bytes] = field(default_factory=dict)

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry = super().tree_entry(path)
        if path in self.listed and "lfs" in entry:
            original = self.listed[path]
            entry["lfs"] = {**entry["lfs"], "oid": hashlib.sha256(original).hexdigest()}
        return entry


def onnx_repo(repo_id: str, variants: dict[str, dict[str, bytes]]) -> dict[str, bytes]:
    files = {"README.md": card("mit")}
    for prefix, content in variants.items():
        files.update({f"{prefix}/{name}": data for name, data in content.items()})
    return files


@pytest.fixture
def onnx_hub(
    hub: FakeHub,  # noqa: F811
    compiled_tiny_int4: Path,
    compiled_tiny_fp32: Path,
) -> FakeHub:
    int4 = published_files(compiled_tiny_int4)
    fp32 = published_files(compiled_tiny_fp32)
    hub.add(
        FakeRepo(
            REPO,
            onnx_repo(REPO, {CPU_VARIANT: int4, GPU_VARIANT: fp32}),
            card_data={"license": "mit"},
            library_name="onnxruntime-genai",
        )
    )
    incomplete = {k: v for k, v in int4.items() if k != "model.onnx.data"}
    hub.add(FakeRepo("vendor/Missing-onnx", onnx_repo("", {CPU_VARIANT: incomplete})))
    altered = dict(int4)
    data = bytearray(altered["model.onnx.data"])
    data[len(data) // 2] ^= 0xFF
    altered["model.onnx.data"] = bytes(data)
    hub.add(
        TamperedRepo(
            "vendor/Tampered-onnx",
            onnx_repo("", {CPU_VARIANT: altered}),
            listed={f"{CPU_VARIANT}/model.onnx.data": int4["model.onnx.data"]},
        )
    )
    return hub


def _cache() -> Path:
    return Path(os.environ["FOUNDRY_CACHE_DIR"])


def _cache_files() -> list[str]:
    return sorted(p.relative_to(_cache()).as_posix() for p in _cache().rglob("*") if p.is_file())


def test_hub_import_picks_the_cpu_variant_checks_every_file_and_runs_in_foundry(
    onnx_hub: FakeHub, compiled_tiny_int4: Path
) -> None:
    done = run_curator("import", REPO, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["subfolder"] == CPU_VARIANT  # no GPU here: the cpu variant, chosen by device
    assert result["variants"] == [CPU_VARIANT, GPU_VARIANT]
    assert result["model_id"] == "tiny-generic-cpu:1"
    model_dir = Path(result["path"])
    assert model_dir == _cache() / "microsoft" / "tiny-generic-cpu-1"
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    repo = onnx_hub.repos[REPO]
    assert manifest["build"]["recipe"] == "imported"
    assert manifest["source"]["repo"] == REPO and manifest["source"]["revision"] == repo.sha
    assert manifest["source"]["subfolder"] == CPU_VARIANT
    listed = {f["path"]: f for f in manifest["source"]["files"]}
    published = published_files(compiled_tiny_int4)
    assert set(listed) == set(published)
    for name, content in published.items():
        if name.endswith((".onnx", ".data")):  # LFS files: the Hub's sha256
            assert listed[name]["sha256"] == hashlib.sha256(content).hexdigest()
    assert (model_dir / INFERENCE_MODEL_NAME).is_file()
    for artifact in manifest["build"]["artifacts"]:
        assert sha256_file(model_dir / artifact["path"]) == artifact["sha256"]
    assert manifest["license"] == "mit"
    assert not [p for p in _cache_files() if p.startswith(".curator-work/")]

    registered = run_curator("register", str(model_dir), "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    entry = json.loads(Path(os.environ["CURATOR_REGISTRY"]).read_text())["models"][0]
    assert entry["build"]["recipe"] == "imported" and entry["license"] == "mit"
    assert entry["source"]["repo"] == REPO and entry["source"]["revision"] == repo.sha
    smoke = run_curator("smoke", "tiny-generic-cpu:1", "--prompts", str(LIVENESS_PROMPTS))
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


def test_hub_import_of_a_named_variant_and_the_variant_list(onnx_hub: FakeHub) -> None:
    plan = run_curator(
        "import", REPO, "--subfolder", GPU_VARIANT, "--id", "tiny-fp32-cuda-gpu:1", "--dry-run",
        "--json",
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["subfolder"] == GPU_VARIANT and data["device"] == "gpu"
    assert _cache_files() == []  # a dry run downloads nothing
    wrong = run_curator("import", REPO, "--subfolder", "cpu/nope")
    assert wrong.returncode == 2
    assert f"has no variant 'cpu/nope'; variants: {CPU_VARIANT}, {GPU_VARIANT}" in wrong.stderr


def test_a_missing_file_is_refused_and_nothing_is_placed(onnx_hub: FakeHub) -> None:
    done = run_curator("import", "vendor/Missing-onnx")
    assert done.returncode == 1, done.stderr
    assert "model.onnx.data missing" in done.stderr and "Traceback" not in done.stderr
    assert _cache_files() == []


def test_a_tampered_file_is_refused_by_its_sha256(onnx_hub: FakeHub) -> None:
    done = run_curator("import", "vendor/Tampered-onnx")
    assert done.returncode == 1, done.stderr
    assert "model.onnx.data: sha256" in done.stderr and "does not match the Hub's" in done.stderr
    assert _cache_files() == []


def test_local_folder_import_and_compile_pointing_at_it(
    compiled_tiny_int4: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "downloads" / "tiny-int4-onnx"
    folder.mkdir(parents=True)
    for name, content in published_files(compiled_tiny_int4).items():
        (folder / name).write_bytes(content)
    compiled = run_curator("compile", str(folder), "--recipe", "int4-cpu")
    assert compiled.returncode == 1 and f"curator import {folder}" in compiled.stderr
    done = run_curator("import", "./downloads/tiny-int4-onnx", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["model_id"] == "tiny-int4-generic-cpu:1"
    manifest = json.loads((Path(result["path"]) / MANIFEST_NAME).read_text())
    assert manifest["source"]["repo"] == "local:tiny-int4-onnx"
    assert {f["path"]: f["sha256"] for f in manifest["source"]["files"]} == {
        p.name: sha256_file(p) for p in folder.iterdir()
    }
    again = run_curator("import", str(folder))
    assert again.returncode == 1 and "already exists" in again.stderr
    (folder / "model.onnx.data").unlink()
    broken = run_curator("import", str(folder), "--force")
    assert broken.returncode == 1 and "model.onnx.data missing" in broken.stderr
    shutil.rmtree(folder)


def test_onboard_imports_a_genai_folder_and_skips_fidelity_without_a_reference(
    compiled_tiny_int4: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "tiny-int4-onnx"
    folder.mkdir()
    for name, content in published_files(compiled_tiny_int4).items():
        (folder / name).write_bytes(content)
    done = run_curator(
        "onboard", str(folder), "--license", "mit", "--rounds", "1", "--max-tokens", "8",
        "--prompts", str(LIVENESS_PROMPTS), "--out", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {s["name"]: s for s in json.loads(done.stdout)["steps"]}
    assert list(steps) == ["info", "import", "register", "smoke", "bench", "fidelity"]
    assert steps["fidelity"]["detail"].startswith("skipped: an imported model has no fp32")
    entry = json.loads(Path(os.environ["CURATOR_REGISTRY"]).read_text())["models"][0]
    assert entry["build"]["recipe"] == "imported" and entry["benchmarks"]
