"""Guards: curator.cli.compile, curator.cli.search, curator.compile.child, curator.compile.gguf_child,
  curator.compile.gguf_source, curator.errors, curator.cache.modeldir

A GGUF file as a compile source (issue 11): a local .gguf, a directory with --gguf-file, a Hub
repo with --gguf-file. The plan says plainly that the source was already quantized; the work area
dequantizes it once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curator.cache.modeldir import sha256_file
from curator.compile.gguf_source import model_name, repo_model_name
from tests.conftest import DEFAULT_RECIPE, SMOLLM2_MODEL_ID, run_curator
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.repo import FakeRepo
from tests.fakehub.server import FakeHub

GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
        ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "qwen2.5-0.5b-instruct"),
        ("Llama-3.2-1B-Instruct-IQ3_XS.gguf", "Llama-3.2-1B-Instruct"),
        ("phi-3-mini-4k-instruct-fp16.gguf", "phi-3-mini-4k-instruct"),
        ("model.gguf", "model"),
    ],
)
def test_the_model_name_leaves_out_the_quantization_tag(file: str, expected: str) -> None:
    assert model_name(file) == expected


def test_a_gguf_repo_name_leaves_out_its_suffix() -> None:
    assert repo_model_name("SmolLM2-135M-Instruct-GGUF") == "SmolLM2-135M-Instruct"
    assert repo_model_name("gguf") == "gguf"


def test_dry_run_of_a_gguf_says_it_was_quantized_and_converts_nothing(
    smollm2_gguf: Path, isolated_env: Path
) -> None:
    result = run_curator("compile", str(smollm2_gguf), "--recipe", DEFAULT_RECIPE, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "was already quantized (" not in result.stdout  # types are known after conversion
    assert f"the source {smollm2_gguf.name} was already quantized" in result.stdout
    assert "GGUF: dequantized when compiling" in result.stdout

    as_json = run_curator(
        "compile", str(smollm2_gguf), "--recipe", DEFAULT_RECIPE, "--dry-run", "--json"
    )
    plan = json.loads(as_json.stdout)["plan"]
    assert plan["model_id"] == SMOLLM2_MODEL_ID and plan["publisher"] == "local"
    assert plan["source_repo"] == "local:smollm2-135m-instruct"
    assert plan["source_gguf"] == {"file": smollm2_gguf.name}
    assert 130e6 < plan["parameters"] < 140e6  # from the GGUF header, before any conversion
    assert plan["predicted_peak_bytes"] > 0
    assert any("already quantized" in note for note in plan["notes"])
    assert not (isolated_env / "home" / "gguf").exists()  # nothing was dequantized
    assert not any((isolated_env / "foundry-cache").iterdir())


def test_a_directory_with_gguf_file_names_the_file(smollm2_gguf: Path) -> None:
    folder = str(smollm2_gguf.parent)
    ok = run_curator(
        "compile", folder, "--gguf-file", smollm2_gguf.name, "--recipe", DEFAULT_RECIPE,
        "--dry-run", "--json",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["plan"]["model_id"] == SMOLLM2_MODEL_ID

    missing = run_curator(
        "compile", folder, "--gguf-file", "nope.gguf", "--recipe", DEFAULT_RECIPE, "--dry-run"
    )
    assert missing.returncode == 1
    assert "no GGUF file nope.gguf" in missing.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--gguf-file", "x.gguf"), "--gguf-file names a file inside a Hub repo or a directory"),
        (("--revision", "main"), "--revision applies only to a Hub repo id"),
    ],
)
def test_options_that_do_not_fit_a_local_gguf_are_usage_errors(
    smollm2_gguf: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_curator("compile", str(smollm2_gguf), "--recipe", DEFAULT_RECIPE, *extra)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_file_that_is_neither_gguf_nor_a_model_is_refused(tmp_path: Path) -> None:
    stray = tmp_path / "weights.bin"
    stray.write_bytes(b"\0" * 64)
    result = run_curator("compile", str(stray), "--recipe", DEFAULT_RECIPE)
    assert result.returncode == 1
    assert "is a file, not a model directory or a .gguf file" in result.stderr


def test_a_missing_gguf_path_is_not_taken_for_a_hub_repo() -> None:
    result = run_curator("compile", "models/absent.gguf", "--recipe", DEFAULT_RECIPE, "--dry-run")
    assert result.returncode == 1
    assert "GGUF file not found: models/absent.gguf" in result.stderr


def test_a_truncated_gguf_is_a_clean_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 30)
    result = run_curator("compile", str(broken), "--recipe", DEFAULT_RECIPE, "--dry-run")
    assert result.returncode == 1
    assert f"truncated: {broken} holds 38 bytes and ends inside its header" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hub_gguf_file_is_downloaded_pinned_and_checked(
    hub: FakeHub,  # noqa: F811
    smollm2_gguf: Path,
) -> None:
    from curator.compile.gguf_source import download_gguf
    from curator.errors import PreflightError

    payload = b"GGUF" + bytes(range(256)) * 64  # the download does not parse it
    repo = FakeRepo(
        GGUF_REPO,
        {"README.md": b"# SmolLM2 GGUF\n", smollm2_gguf.name: payload},
        library_name="gguf",
    )
    hub.add(repo)
    local, sha = download_gguf(GGUF_REPO, smollm2_gguf.name, None)
    assert sha == repo.sha
    assert local.read_bytes() == payload
    assert Path(os.environ["HF_HOME"]) in local.parents  # the Hugging Face cache
    with pytest.raises(PreflightError) as refused:
        download_gguf(GGUF_REPO, "SmolLM2-135M-Instruct.Q8_0.gguf", None)
    assert f"its GGUF files: {smollm2_gguf.name}" in str(refused.value.hint)

    plan = run_curator(
        "compile", GGUF_REPO, "--gguf-file", smollm2_gguf.name, "--recipe", DEFAULT_RECIPE,
        "--dry-run", "--json",
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)["plan"]
    assert planned["model_id"] == SMOLLM2_MODEL_ID
    assert planned["publisher"] == "HuggingFaceTB"
    assert planned["source_repo"] == GGUF_REPO


@pytest.mark.slow
def test_a_hub_gguf_compiles_with_its_provenance(
    hub: FakeHub,  # noqa: F811
    smollm2_gguf: Path,
    use_dequantized_smollm2: Path,
    isolated_env: Path,
) -> None:
    repo = FakeRepo(GGUF_REPO, {smollm2_gguf.name: smollm2_gguf.read_bytes()})
    hub.add(repo)
    # the fake Hub hashes the 93 MB file on each request: give it time under load
    slow_hub = {"CURATOR_HUB_TIMEOUT": "120", "CURATOR_HUB_DEADLINE": "300"}
    result = run_curator(
        "compile", GGUF_REPO, "--gguf-file", smollm2_gguf.name, "--recipe", DEFAULT_RECIPE,
        env=slow_hub,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "was already quantized (F32, Q4_1, Q8_0)" in result.stdout
    model_dir = (
        isolated_env / "foundry-cache" / "HuggingFaceTB" / "smollm2-135m-instruct-generic-cpu-1"
    )
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    assert manifest["source"] == {
        "repo": GGUF_REPO,
        "revision": repo.sha,
        "architecture": "LlamaForCausalLM",
        "parameters": manifest["source"]["parameters"],
        "license": "apache-2.0",  # the GGUF's general.license, recorded since issue 21
    }
    assert manifest["gguf"]["sha256"] == sha256_file(smollm2_gguf)


def test_info_on_a_gguf_file_reads_its_header(smollm2_gguf: Path) -> None:
    human = run_curator("info", str(smollm2_gguf))
    assert human.returncode == 0, human.stderr
    assert "F32, Q4_1, Q8_0" in human.stdout and "134,515,008" in human.stdout
    assert f"the source {smollm2_gguf.name} was already quantized" in human.stdout
    facts = json.loads(run_curator("info", str(smollm2_gguf), "--json").stdout)
    # the same facts as every other source (issue 21): the transformers class compile builds
    assert facts["architecture"] == "LlamaForCausalLM" and facts["chat_template"] is True
    assert facts["details"]["ggufArchitecture"] == "llama"
    assert facts["details"]["quantizationTypes"] == ["F32", "Q4_1", "Q8_0"]


def test_dequantizing_keeps_torch_out_of_the_calling_process(
    smollm2_gguf: Path, use_dequantized_smollm2: Path
) -> None:
    """Bug: onboard dequantized in its own process, and the bench that followed measured 2.3 GB
    peak memory (torch and fp32 weights) for a model that needs about 0.6."""
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from curator.compile.gguf_source import dequantize\n"
        "checkpoint, origin = dequantize(Path(sys.argv[1]))\n"
        "print(json.dumps([str(checkpoint), origin.sha256, 'torch' in sys.modules]))\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, str(smollm2_gguf)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    checkpoint, sha, torch_loaded = json.loads(done.stdout)
    assert Path(checkpoint) == use_dequantized_smollm2 / sha
    assert sha == sha256_file(smollm2_gguf)
    assert torch_loaded is False
