"""Guards: curator.compile, curator.devmodels.cache

The other CPU recipes and more architectures, compiled for real (``make test-all``)."""

from __future__ import annotations

import importlib.util
import json
import sysconfig
from pathlib import Path

import pytest

from curator.compile import CompileRequest, compile_model
from curator.devmodels.cache import cached_tiny_model
from tests.conftest import TEST_MODELS_ROOT
from tests.test_compile import check_compiled_dir, generate, op_types

pytestmark = pytest.mark.slow


def calibration_file(path: Path, lines: int = 16) -> Path:
    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:lines]
    path.write_text(
        "".join(json.dumps({"text": p.read_text(encoding="utf-8")[:2000]}) + "\n" for p in sources)
    )
    return path


@pytest.mark.parametrize(
    ("recipe", "expected_op"),
    [
        ("int4-rtn-cpu", "MatMulNBits"),
        ("int8-cpu", "MatMulInteger"),
        ("int4-gptq-cpu", "MatMulNBits"),
    ],
)
def test_cpu_recipe_compiles_and_generates(
    recipe: str, expected_op: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    calibration = None
    if recipe == "int4-gptq-cpu":
        if importlib.util.find_spec("datasets") is None:
            pytest.skip("GPTQ needs the datasets package")
        calibration = calibration_file(tmp_path / "calibration.jsonl")
    model_id = f"tiny-{recipe}-generic-cpu:1"
    result = compile_model(
        CompileRequest(
            source=str(tiny_model_dir), recipe=recipe, model_id=model_id, calibration=calibration
        )
    )
    assert result.path is not None
    manifest = check_compiled_dir(result.path, recipe, model_id)
    assert [p.split(":")[0] for p in _passes_run(result.path)] == [
        step["name"] for step in _recipe_passes(recipe)
    ]
    assert manifest["precision"] == recipe.split("-")[0]
    assert expected_op in op_types(result.path)
    assert len(generate(result.path)["new_tokens"]) >= 1


def _recipe_passes(recipe: str) -> list[dict[str, str]]:
    path = Path(__file__).resolve().parent.parent / "recipes" / f"{recipe}.json"
    passes: list[dict[str, str]] = json.loads(path.read_text())["passes"]
    return passes


def _passes_run(model_dir: Path) -> list[str]:
    log = (model_dir / "compile.log").read_text()
    return [
        line.split("Running pass ")[1].strip()
        for line in log.splitlines()
        if "Running pass " in line
    ]


# Gemma 3 with 6 layers: the sixth is a global-attention layer (the other five are local).
LAYERS = {"gemma3": 6}


@pytest.mark.parametrize("architecture", ["mistral", "phi3", "gemma2", "gemma3"])
def test_more_architectures_compile_with_int4(architecture: str) -> None:
    model = cached_tiny_model(
        TEST_MODELS_ROOT,
        architecture=architecture,
        hidden_size=64,
        num_layers=LAYERS.get(architecture, 2),
    )
    model_id = f"tiny-{architecture}-generic-cpu:1"
    result = compile_model(CompileRequest(source=str(model), recipe="int4-cpu", model_id=model_id))
    assert result.path is not None
    check_compiled_dir(result.path, "int4-cpu", model_id)
    assert len(generate(result.path)["new_tokens"]) >= 1


LOGITS = r"""
import json, sys
import numpy as np
import onnxruntime_genai as og
model = og.Model(sys.argv[1])
params = og.GeneratorParams(model)
params.set_search_options(max_length=128)
generator = og.Generator(model, params)
generator.append_tokens([int(t) for t in sys.argv[2].split(",")])
print(json.dumps(np.asarray(generator.get_output("logits"))[0].tolist()))
"""


@pytest.mark.parametrize(
    ("architecture", "hidden_size", "layers"),
    [("gemma3", 64, 6), ("phi", 128, 2), ("nemotron", 128, 2), ("qwen2", 64, 2)],
)
def test_fp32_compile_matches_transformers_logits(
    architecture: str, hidden_size: int, layers: int
) -> None:
    """Bug: under transformers 5 the builder fails on Gemma 3 ('Gemma3TextConfig' object has no
    attribute 'rope_local_base_freq') or, given only that field, builds the global layers with
    theta 10000 instead of 1000000 (logits then differ by about 1e-2 here, against 5e-7 for a
    faithful build); it builds Phi and Nemotron with whole-head rotary and epsilon 1e-6 (about
    1e-2 off). An fp32 build must give transformers' own logits."""
    import subprocess
    import sys

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    model = cached_tiny_model(
        TEST_MODELS_ROOT, architecture=architecture, hidden_size=hidden_size, num_layers=layers
    )
    model_id = f"tiny-{architecture}-fp32-generic-cpu:1"
    result = compile_model(CompileRequest(source=str(model), recipe="fp32-cpu", model_id=model_id))
    assert result.path is not None
    tokens = list(range(5, 69))
    done = subprocess.run(
        [sys.executable, "-c", LOGITS, str(result.path), ",".join(map(str, tokens))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    onnx_logits = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
    with torch.no_grad():
        expected = reference(torch.tensor([tokens])).logits[0].numpy()
    assert onnx_logits.shape == expected.shape
    assert float(np.abs(onnx_logits - expected).max()) < 1e-4
