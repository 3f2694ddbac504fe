"""Guards: curator.devmodels.tiny, curator.devmodels.trained

The small local model builder: a loadable HF model, a working tokenizer, deterministic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.devmodels import tiny


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def test_tiny_model_is_a_loadable_chat_model(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2
    script = f"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r})
model = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r})
prompt = tok.apply_chat_template([{{"role": "user", "content": "def f(x):"}}],
                                 add_generation_prompt=True, tokenize=False)
ids = tok(prompt, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=5, do_sample=False)
print(repr(prompt))
print(tok.eos_token, tok.convert_tokens_to_ids(tok.eos_token), model.config.eos_token_id)
print(out.shape[1] - ids.shape[1])
print(tok.decode(tok("import os\\n").input_ids) == "import os\\n")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    prompt, eos, new_tokens, roundtrip = done.stdout.strip().splitlines()
    assert prompt == repr("<|im_start|>user\ndef f(x):<|im_end|>\n<|im_start|>assistant\n")
    name, token_id, config_eos = eos.split()
    assert name == "<|im_end|>" and token_id == config_eos
    assert 1 <= int(new_tokens) <= 5
    assert roundtrip == "True"


def test_build_is_deterministic_and_seed_matters(tmp_path: Path) -> None:
    first = tiny.build_tiny_model(tmp_path / "a", hidden_size=32, num_layers=1, seed=3)
    second = tiny.build_tiny_model(tmp_path / "b", hidden_size=32, num_layers=1, seed=3)
    other = tiny.build_tiny_model(tmp_path / "c", hidden_size=32, num_layers=1, seed=4)
    assert _digests(first) == _digests(second)
    assert _digests(first)["model.safetensors"] != _digests(other)["model.safetensors"]
    assert _digests(first)["tokenizer.json"] == _digests(other)["tokenizer.json"]


def test_tokenizer_alone_can_be_trained_on_given_text(tmp_path: Path) -> None:
    texts = ["hello world, hello tokenizer\n" * 50, "the quick brown fox\n" * 50]
    tokenizer = tiny.save_tokenizer(tmp_path, vocab_size=300, texts=texts)
    assert (tmp_path / "tokenizer.json").is_file()
    assert (tmp_path / "chat_template.jinja").read_text() == tiny.CHATML_TEMPLATE
    assert 256 < len(tokenizer) <= 300
    ids = tokenizer("hello world").input_ids
    assert tokenizer.decode(ids) == "hello world"
    assert len(ids) < len("hello world")  # merges were learned


def test_corpus_is_capped_and_stable() -> None:
    files = tiny.corpus_files(200_000)
    assert files == tiny.corpus_files(200_000)
    assert sum(f.stat().st_size for f in files) <= 200_000 or len(files) == 1
    assert all(f.suffix == ".py" for f in files)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"architecture .bert.; known: gemma2, gemma3, llama, .*qwen2"
    ):
        tiny.build_tiny_model(tmp_path, architecture="bert", corpus_bytes=50_000)


def test_compiled_fixture_installs_under_another_id(
    compiled_tiny_int4: Path, install_compiled: Callable[..., Path], isolated_env: Path
) -> None:
    manifest = json.loads((compiled_tiny_int4 / "curator-manifest.json").read_text())
    assert manifest["id"] == "tiny-qwen2-generic-cpu:1"
    assert manifest["build"]["recipe"] == "int4-cpu"
    target = install_compiled(model_id="other-generic-cpu:3")
    assert target == isolated_env / "foundry-cache" / "local" / "other-generic-cpu-3"
    assert json.loads((target / "inference_model.json").read_text())["Name"] == "other-generic-cpu"
    copied = json.loads((target / "curator-manifest.json").read_text())
    assert copied["id"] == "other-generic-cpu:3"
    for artifact in copied["build"]["artifacts"]:
        data = (target / artifact["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    original = json.loads((compiled_tiny_int4 / "inference_model.json").read_text())
    assert original["Name"] == "tiny-qwen2-generic-cpu"
