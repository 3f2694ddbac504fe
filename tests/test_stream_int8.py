"""Guards: curator.quant.int8, curator.compile.stream.int8_matmul, curator.compile.stream.olive_pass

int8-cpu streamed (issue 20 items 1-2): each MatMul weight quantized to int8 as the streaming
builder makes it gives the model today's two-pass int8-cpu gave (the builder's fp32 model, then
Olive's OnnxDynamicQuantization, i.e. onnxruntime's ``quantize_dynamic``, on the whole model;
kept as tests/data/recipes/int8-cpu-reference.json).

"The same model": the same initializers, value for value (the int8 weights, their scales and zero
points, every float tensor), and the same nodes (names, op types, inputs, outputs, attributes),
once the reference's pre-processing is accounted for: onnxruntime's optimizer turned the builder's
Constant nodes into initializers of the same name and value (compared as such). Then the logits
of both models on the same tokens must be equal, bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, TEST_MODELS_ROOT, run_curator
from tests.test_stream_compile import FIXTURES, bf16_tied_copy

REFERENCE_RECIPE = REPO_ROOT / "tests" / "data" / "recipes" / "int8-cpu-reference.json"
TOKENS = [1, 5, 9, 200, 17, 3, 44, 8, 120, 2, 77, 31]


# --- the quantizer, tensor by tensor ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "onnx_type"),
    [({}, 3), ({"precision": "uint8"}, 2), ({"reduce_range": True}, 3), ({"precision": "uint8", "weight_symmetric": True}, 2)],
)  # fmt: skip
def test_chunked_quantization_is_onnxruntimes(options: dict[str, Any], onnx_type: int) -> None:
    """Range found chunk by chunk, values quantized chunk by chunk: onnxruntime's quantize_data
    on the whole tensor, as quantize_initializer_impl calls it for MatMulInteger's weight."""
    from onnxruntime.quantization.quant_utils import quantize_data

    from curator.quant.int8 import DynamicInt8, quantize_tensor

    config = DynamicInt8.from_json(options)
    rng = np.random.default_rng(7)
    weight = (rng.standard_normal((300, 97)) * 0.05).astype(np.float32)
    weight[17, 3] = 0.9  # an outlier sets the range
    zero_point, scale, expected = quantize_data(
        weight.flatten(),
        onnx_type,
        config.symmetric,
        reduce_range=config.reduce_range,
        min_real_range=None,
    )
    got, params = quantize_tensor(weight, config, rows_per_chunk=7)
    assert got.dtype == expected.dtype and np.array_equal(got.reshape(-1), expected)
    assert params.scale.dtype == np.float32 and params.scale == scale
    assert params.zero_point.dtype == zero_point.dtype and params.zero_point == zero_point
    if config.symmetric and config.signed:
        assert int(params.zero_point) == 0 and int(np.abs(got).max()) == 127 - 63 * (
            config.reduce_range
        )


def test_options_a_recipe_cannot_get_are_refused() -> None:
    from curator.quant.int8 import DynamicInt8
    from curator.quant.plan import PlanError

    with pytest.raises(PlanError, match="per_channel"):
        DynamicInt8.from_json({"per_channel": True})
    with pytest.raises(PlanError, match="precision"):
        DynamicInt8.from_json({"precision": "int4"})
    with pytest.raises(PlanError, match="unknown"):
        DynamicInt8.from_json({"op_types_to_quantize": ["Gather"]})
    assert (
        DynamicInt8.from_json({}).symmetric
        and not DynamicInt8.from_json({"precision": "uint8"}).symmetric
    )


# --- whole compiles: streamed vs today's two passes ------------------------------------------


def compile_both(
    source: Path, work: Path, label: str, env: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """``curator compile`` with the shipped int8-cpu and with today's two-pass reference."""
    cache = work / "cache"
    env = {**(env or {}), "CURATOR_INT8_CHUNK_ELEMENTS": "1000"}  # weights span several chunks
    for recipe, model_id in (
        ("int8-cpu", f"{label}-generic-cpu:1"),
        (str(REFERENCE_RECIPE), f"{label}ref-generic-cpu:1"),
    ):
        result = run_curator(
            "compile", str(source), "--recipe", recipe, "--id", model_id,
            "--cache-dir", str(cache), "--json", env=env, timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    streamed = cache / "local" / f"{label}-generic-cpu-1"
    assert "curator-stream: streaming" in (streamed / "compile.log").read_text()
    return cache / "local" / f"{label}ref-generic-cpu-1", streamed


def _graph(model_dir: Path) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """Initializers (with Constant nodes' values, as the reference's optimizer folds them) and
    nodes by name (Constant nodes left out)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_dir / "model.onnx"))
    values = {
        t.name: numpy_helper.to_array(t, base_dir=str(model_dir)) for t in model.graph.initializer
    }
    nodes = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            continue
        attributes = tuple(
            sorted((a.name, repr(onnx.helper.get_attribute_value(a))) for a in n.attribute)
        )
        nodes[n.name] = (n.op_type, n.domain, tuple(n.input), tuple(n.output), attributes)
    return values, nodes


def _logits(model_dir: Path, tokens: list[int]) -> np.ndarray[Any, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    ids = np.array([tokens], dtype=np.int64)
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for spec in session.get_inputs():
        if spec.name == "input_ids":
            feeds[spec.name] = ids
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones_like(ids)
        else:  # an empty KV cache: batch 1, no past tokens
            shape = [d if isinstance(d, int) else (1 if "batch" in d else 0) for d in spec.shape]
            feeds[spec.name] = np.zeros(shape, dtype=np.float32)
    out: np.ndarray[Any, Any] = session.run(["logits"], feeds)[0]
    return out


def assert_same_int8_model(reference: Path, streamed: Path, tokens: list[int]) -> None:
    ref_values, ref_nodes = _graph(reference)
    new_values, new_nodes = _graph(streamed)
    # onnxruntime's quantizer drops initializers no node reads (Gemma 3's global rotary caches in
    # a 2-layer model); the builder keeps them, streamed or not
    used = {name for node in new_nodes.values() for name in node[2]}
    unused = {name for name in set(new_values) - set(ref_values) if name not in used}
    assert set(ref_values) == set(new_values) - unused
    differing = [
        name
        for name, value in ref_values.items()
        if value.dtype != new_values[name].dtype
        or value.shape != new_values[name].shape
        or not np.array_equal(value, new_values[name])
    ]
    assert differing == []
    assert ref_nodes == new_nodes
    quantized = [name for name, node in new_nodes.items() if node[0] == "MatMulInteger"]
    assert len(quantized) >= 5 and "/lm_head/MatMul_quant" in quantized
    assert not any(node[0] == "MatMul" for node in new_nodes.values())
    unused_bytes = sum(int(new_values[name].nbytes) for name in unused)
    assert (streamed / "model.onnx.data").stat().st_size <= (
        reference / "model.onnx.data"
    ).stat().st_size + 4096 * len(ref_values) + unused_bytes  # no float copy of a weight
    assert np.array_equal(_logits(reference, tokens), _logits(streamed, tokens))


def test_streamed_int8_is_todays_int8_cpu(tmp_path: Path) -> None:
    """A bf16 tied Qwen2 fixture with biases: the same initializers, nodes and logits."""
    from curator.devmodels.cache import cached_tiny_model

    tiny = cached_tiny_model(TEST_MODELS_ROOT, architecture="qwen2", hidden_size=64, num_layers=2)
    # non-zero attention biases: the int8 MatMuls then feed an Add, as in a real Qwen2
    source = bf16_tied_copy(tiny, tmp_path / "qwen2-bf16-tied-biased", bias_seed=3)
    reference, streamed = compile_both(source, tmp_path, "tq8")
    _, nodes = _graph(streamed)
    assert any(node[0] == "Add" and "qkv_proj" in name for name, node in nodes.items())
    assert_same_int8_model(reference, streamed, TOKENS)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(FIXTURES))
def test_streamed_int8_on_every_fixture(architecture: str, tmp_path: Path) -> None:
    from curator.devmodels.cache import cached_tiny_model

    source = cached_tiny_model(
        TEST_MODELS_ROOT,
        architecture=architecture,
        hidden_size=FIXTURES[architecture],
        num_layers=2,
    )
    reference, streamed = compile_both(source, tmp_path, f"f{architecture}")
    assert_same_int8_model(reference, streamed, TOKENS)


@pytest.mark.slow
def test_smollm2_streamed_int8_is_todays_int8_cpu(smollm2_gguf_home: Path, tmp_path: Path) -> None:
    """Real weights (SmolLM2-135M-Instruct, tied embedding, dequantized from its GGUF)."""
    (checkpoint,) = [p for p in (smollm2_gguf_home / "gguf").iterdir() if p.is_dir()]
    env = {"CURATOR_HOME": str(smollm2_gguf_home)}
    reference, streamed = compile_both(checkpoint, tmp_path, "smol8", env=env)
    assert_same_int8_model(reference, streamed, [1, 504, 3458, 282, 4649, 314, 253, 1345, 30])


@pytest.mark.slow
def test_a_build_that_does_not_stream_gets_todays_int8(tmp_path: Path) -> None:
    """``stream: false`` (as a build that cannot stream): the builder's own fp32 build, then
    onnxruntime's pre-processing and quantize_dynamic on the saved model, as the two passes did."""
    from curator.devmodels.cache import cached_tiny_model

    source = cached_tiny_model(TEST_MODELS_ROOT, architecture="llama", hidden_size=64, num_layers=2)
    recipe = json.loads((REPO_ROOT / "recipes" / "int8-cpu.json").read_text())
    recipe["name"] = "int8-cpu-nostream"
    recipe["passes"][0]["config"]["stream"] = False
    path = tmp_path / "int8-cpu-nostream.json"
    path.write_text(json.dumps(recipe))
    cache = tmp_path / "cache"
    for chosen, model_id in (
        (str(path), "ns-generic-cpu:1"),
        (str(REFERENCE_RECIPE), "nsref-generic-cpu:1"),
    ):
        result = run_curator(
            "compile", str(source), "--recipe", chosen, "--id", model_id,
            "--cache-dir", str(cache), "--json", timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    built = cache / "local" / "ns-generic-cpu-1"
    assert (
        "quantizing the MatMuls to int8 on the saved model" in (built / "compile.log").read_text()
    )
    assert_same_int8_model(cache / "local" / "nsref-generic-cpu-1", built, TOKENS)
