"""Guards: curator.cli.compile, curator.cli.imports, curator.cli.search, curator.compile.adapter,
  curator.compile.adapter_child, curator.compile.describe, curator.compile.source, curator.formats.gguf

Issue 21: `curator info` takes every source `compile` takes, one classifier for both; a source
without a chat template is refused in seconds, before any heavy work."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import run_curator
from tests.fakehub.fixtures import card, write_safetensors
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.repo import FakeRepo
from tests.fakehub.server import FakeHub
from tests.test_compile_failures import assert_refused_before_olive


def _header_parameters(model: Path) -> int:
    from curator.compile.source import read_model_config, weight_facts

    facts = weight_facts(model, read_model_config(model))
    assert facts.parameters
    return facts.parameters


def _info_json(*args: str, cwd: Path | None = None) -> dict[str, object]:
    done = run_curator("info", *args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def genai_folder(directory: Path, *, template: bool = True) -> Path:
    """An ONNX Runtime GenAI folder's files (a model.onnx stand-in: info reads no tensors)."""
    directory.mkdir(parents=True)
    config = {
        "model": {
            "type": "qwen2",
            "context_length": 4096,
            "decoder": {"filename": "model.onnx"},
        }
    }
    (directory / "genai_config.json").write_text(json.dumps(config))
    (directory / "model.onnx").write_bytes(b"\0" * 1000)
    (directory / "model.onnx.data").write_bytes(b"\0" * 5000)
    (directory / "tokenizer.json").write_text("{}")
    tokenizer_config: dict[str, object] = {"eos_token": "<|im_end|>"}
    if template:
        tokenizer_config["chat_template"] = "{{ messages[0]['content'] }}"
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return directory


def adapter_folder(directory: Path, base: str) -> Path:
    """A PEFT LoRA adapter's files: config, a safetensors of A/B matrices, a card."""
    import struct

    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "base_model_name_or_path": base,
                "r": 4,
                "lora_alpha": 8,
                "target_modules": ["q_proj", "v_proj"],
                "task_type": "CAUSAL_LM",
            }
        )
    )
    zeros = struct.pack("<" + "f" * 256, *([0.0] * 256))
    (directory / "adapter_model.safetensors").write_bytes(
        write_safetensors(
            {
                "base_model.model.layers.0.q_proj.lora_A.weight": ("F32", [4, 64], zeros),
                "base_model.model.layers.0.q_proj.lora_B.weight": ("F32", [64, 4], zeros),
            }
        )
    )
    (directory / "README.md").write_bytes(card("mit", base_model=base, library_name="peft"))
    return directory


# --- local folders: absolute, ./relative, a/b/c ----------------------------------------------


def test_info_on_a_folder_absolute_dot_relative_and_nested_relative(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    nested = tmp_path / "work" / "models" / "team" / "tiny"
    shutil.copytree(tiny_model_dir, nested)
    expected = _header_parameters(nested)
    absolute = _info_json(str(nested))
    dotted = _info_json("./models/team/tiny", cwd=tmp_path / "work")
    plain = _info_json("models/team/tiny", cwd=tmp_path / "work")  # a/b/c: never a Hub id
    for facts in (absolute, dotted, plain):
        assert facts["kind"] == "checkpoint"
        assert facts["parameters"] == expected
        assert facts["architecture"] == "Qwen2ForCausalLM"
        assert facts["chat_template"] is True
        assert facts["size_bytes"] == sum(p.stat().st_size for p in nested.iterdir())
        fits = {f["recipe"]: f for f in facts["recipes"]}  # type: ignore[union-attr, index]
        assert fits["int4-cpu"]["can_compile"] is True
        assert fits["int4-cpu"]["compile_peak_bytes"] > 0
    assert dotted["next_command"] == "curator compile ./models/team/tiny --recipe int4-cpu"
    human = run_curator("info", "models/team/tiny", cwd=tmp_path / "work")
    assert human.returncode == 0, human.stderr
    assert "Hugging Face model directory" in human.stdout and f"{expected:,}" in human.stdout
    assert "RUN RAM" in human.stdout


def test_info_on_a_missing_path_says_so_and_never_asks_the_hub(tmp_path: Path) -> None:
    for missing in ("./gone", "a/b/c", str(tmp_path / "gone")):
        done = run_curator("info", missing, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert f"source {missing} is neither an existing file or directory" in done.stderr
        assert "Traceback" not in done.stderr


def test_info_reads_the_license_from_the_folder_card(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_model_dir, tmp_path / "licensed")
    (model / "README.md").write_bytes(card("apache-2.0"))
    assert _info_json(str(model))["license"] == "apache-2.0"


# --- GGUF, ONNX Runtime GenAI, adapter ---------------------------------------------------------


def test_info_on_a_gguf_gives_the_same_facts_as_a_folder(smollm2_gguf: Path) -> None:
    from curator.formats.gguf import read_gguf_facts

    facts = _info_json(str(smollm2_gguf))
    header = read_gguf_facts(smollm2_gguf)
    assert facts["kind"] == "gguf"
    assert facts["parameters"] == header.parameter_count
    assert facts["architecture"] == "LlamaForCausalLM"
    assert facts["license"] == header.metadata["general.license"]
    assert facts["chat_template"] is True
    assert facts["details"]["quantizationTypes"] == list(header.quantization_types)  # type: ignore[index]
    assert any(f["can_compile"] for f in facts["recipes"])  # type: ignore[union-attr]


def test_info_on_a_genai_folder_and_on_a_folder_of_variants(tmp_path: Path) -> None:
    single = genai_folder(tmp_path / "one")
    facts = _info_json(str(single))
    assert facts["kind"] == "genai" and facts["model_type"] == "qwen2"
    assert facts["context_length"] == 4096 and facts["chat_template"] is True
    assert facts["size_bytes"] == sum(p.stat().st_size for p in single.iterdir())
    assert not any(f["can_compile"] for f in facts["recipes"])  # type: ignore[union-attr]
    assert facts["next_command"] == f"curator import {single}"
    repo = tmp_path / "phi-onnx"
    genai_folder(repo / "cpu_and_mobile" / "cpu-int4-rtn-block-32")
    genai_folder(repo / "cuda" / "cuda-fp16")
    facts = _info_json(str(repo))
    assert facts["kind"] == "genai"
    assert facts["variants"] == ["cpu_and_mobile/cpu-int4-rtn-block-32", "cuda/cuda-fp16"]
    assert facts["quantization"] == "int4"


def test_info_on_an_adapter_names_its_base_and_license(tmp_path: Path) -> None:
    adapter = adapter_folder(tmp_path / "my-lora", "HuggingFaceTB/SmolLM2-135M-Instruct")
    facts = _info_json(str(adapter))
    assert facts["kind"] == "adapter"
    assert facts["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert facts["license"] == "mit"
    assert facts["parameters"] == 2 * 4 * 64
    assert facts["details"]["r"] == 4  # type: ignore[index]
    assert "--adapter" in str(facts["next_command"])


# --- compile shares the classifier --------------------------------------------------------------


def test_compile_on_a_genai_folder_says_import(tmp_path: Path, isolated_env: Path) -> None:
    folder = genai_folder(tmp_path / "prebuilt")
    done = run_curator("compile", str(folder), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "already an ONNX Runtime GenAI model" in done.stderr
    assert f"curator import {folder}" in done.stderr


def test_compile_on_an_adapter_says_adapter(tmp_path: Path, isolated_env: Path) -> None:
    adapter = adapter_folder(tmp_path / "lora", "org/base")
    done = run_curator("compile", str(adapter), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "is a LoRA adapter" in done.stderr and "--adapter" in done.stderr


def test_a_source_without_a_chat_template_is_refused_in_seconds(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    base = shutil.copytree(tiny_model_dir, tmp_path / "base-model")
    (base / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer_config = json.loads((base / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    info = _info_json(str(base))
    assert info["chat_template"] is False
    assert any("--chat-template" in n for n in info["notes"])  # type: ignore[union-attr]
    start = time.monotonic()
    done = run_curator("compile", str(base), "--recipe", "int4-cpu")
    assert time.monotonic() - start < 20
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "has no chat template" in done.stderr
    assert "--chat-template chatml" in done.stderr and "--completion-only" in done.stderr


# --- Hub repos: the kind from the file list -----------------------------------------------------


@pytest.fixture
def hub_kinds(hub: FakeHub, tmp_path: Path) -> FakeHub:  # noqa: F811
    variant_a = genai_folder(tmp_path / "a")
    files = {"README.md": card("mit")}
    for prefix, folder in (
        ("cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4", variant_a),
        ("cuda/cuda-int4-rtn-block-32", variant_a),
    ):
        for path in folder.iterdir():
            files[f"{prefix}/{path.name}"] = path.read_bytes()
    hub.add(FakeRepo("microsoft/Tiny-onnx", files, card_data={"license": "mit"}))
    adapter = adapter_folder(tmp_path / "ad", "fixture/tiny-qwen2")
    hub.add(
        FakeRepo(
            "team/tiny-lora",
            {p.name: p.read_bytes() for p in adapter.iterdir()},
            card_data={"license": "mit", "base_model": "fixture/tiny-qwen2"},
            library_name="peft",
        )
    )
    return hub


def test_info_on_hub_repos_says_what_they_hold(hub_kinds: FakeHub) -> None:
    onnx = _info_json("microsoft/Tiny-onnx")
    assert onnx["kind"] == "genai"
    assert onnx["variants"] == [
        "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4",
        "cuda/cuda-int4-rtn-block-32",
    ]
    assert not any(f["can_compile"] for f in onnx["recipes"])  # type: ignore[union-attr]
    assert any("curator import microsoft/Tiny-onnx" in n for n in onnx["notes"])  # type: ignore[union-attr]
    lora = _info_json("team/tiny-lora")
    assert lora["kind"] == "adapter" and lora["base_model"] == "fixture/tiny-qwen2"
    assert lora["license"] == "mit"
    plain = _info_json("fixture/tiny-qwen2")
    assert plain["kind"] == "checkpoint"
