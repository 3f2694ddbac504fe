"""Guards: curator.compile.stream.builder_patch, curator.quant.kernels, curator.quant.plan,
  curator.budget.formats, curator.budget.recipe

float16 MatMulNBits scales in a float32 model (``half_scales``). The streamed build with the
option is checked against the same build without it, both made in one child process
(tests.tied_check): the packed weights and zero points are the same bytes, each scale is the
float32 scale rounded to float16, every MatMulNBits reads its activations and writes its output
under the full build's names and reads its scales through a Cast of the float16 initializer to
float32, which onnxruntime folds when it loads the model (no Cast left to run per token), the
data file is smaller by exactly half the scales' bytes, and the logits stay within the float16
rounding of the full build's. A tied table shared with the embedding gather is float16 too: the
gather's output (its type follows the scales) is cast back to float32, and the lm_head reads the
same scales through its own Cast. The budget's recipes ask for it and price a scale at 2 bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curator.budget.formats import CANDIDATES, EMBEDDING_CANDIDATES, parse_format
from curator.budget.recipe import plan_recipe
from curator.budget.search import Choice, Plan
from curator.quant.kernels import quantize_matmul
from curator.quant.plan import LM_HEAD_NODE, PlanError, TensorQuant, plan_for
from tests.test_stream_compile import bf16_tied_copy
from tests.test_tied_sharing import _build, _initializers, _logits

LM_8 = {"match": LM_HEAD_NODE, "bits": 8, "block_size": 32, "symmetric": True, "algo": "rtn"}
DOWN_8 = {"match": "/model/layers.1/mlp/down_proj/MatMul", "bits": 8, "block_size": 16}


def _config(half: bool, share: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"tensor_overrides": [DOWN_8, LM_8]}
    if half:
        config["half_scales"] = True
    if share:
        config["share_tied_embedding"] = True
        config["embedding_quant"] = {"bits": 4, "block_size": 32, "symmetric": False}
    return config


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("half")
    tied = bf16_tied_copy(tiny_model_dir, work / "qwen2-bf16-tied")
    plans = {
        "full": (tiny_model_dir, _config(False)),
        "half": (tiny_model_dir, _config(True)),
        "tied-full": (tied, _config(False, share=True)),
        "tied-half": (tied, _config(True, share=True)),
    }
    specs = [
        {"model": str(model), "out": str(work / label), "config": config}
        for label, (model, config) in plans.items()
    ]
    result = _build(specs, work)
    assert all(result[str(work / label)]["streamed"] for label in plans)
    return {label: work / label for label in plans}


def _graph(model_dir: Path) -> Any:
    import onnx

    return onnx.load(str(model_dir / "model.onnx"), load_external_data=False).graph


def _matmuls(graph: Any) -> list[Any]:
    return [n for n in graph.node if n.op_type == "MatMulNBits"]


def _scales(graph: Any, node: Any) -> str:
    """The initializer a MatMulNBits reads its scales from, through the Cast of a half build."""
    producers = {out: n for n in graph.node for out in n.output}
    cast = producers.get(node.input[2])
    return str(node.input[2] if cast is None else cast.input[0])


def test_half_scales_keep_the_weights_and_round_only_the_scales(builds: dict[str, Path]) -> None:
    full, half = _initializers(builds["full"]), _initializers(builds["half"])
    assert full.keys() == half.keys()
    graph = _graph(builds["half"])
    scales = [_scales(graph, n) for n in _matmuls(graph)]
    assert len(scales) == 2 * 5 + 1  # 2 layers x (qkv, o, gate, up, down) + lm_head
    for name, array in full.items():
        if name in scales:
            assert array.dtype == np.float32 and half[name].dtype == np.float16, name
            np.testing.assert_array_equal(half[name], array.astype(np.float16))
        else:  # packed weights, zero points, norms, the embedding's own table: the same bytes
            assert half[name].dtype == array.dtype, name
            np.testing.assert_array_equal(half[name], array, err_msg=name)
    saved = sum(full[name].nbytes // 2 for name in scales)
    data = [(builds[k] / "model.onnx.data").stat().st_size for k in ("full", "half")]
    assert data[0] - data[1] >= saved > 0  # alignment padding may shrink too, never grow


def test_every_half_node_reads_its_scales_through_a_cast_under_the_same_names(
    builds: dict[str, Path],
) -> None:
    from onnx import TensorProto, helper

    full, half = _graph(builds["full"]), _graph(builds["half"])
    producers = {out: n for n in half.node for out in n.output}
    initializers = {t.name: t for t in half.initializer}
    full_nodes = {n.name: n for n in _matmuls(full)}
    for node in _matmuls(half):
        before = full_nodes[node.name]
        # the rest of the graph is untouched: the node reads and writes what it did in float32
        assert (node.input[0], node.output[0]) == (before.input[0], before.output[0]), node.name
        assert node.input[1] == before.input[1] and node.input[3:] == before.input[3:]
        cast = producers[node.input[2]]
        assert cast.op_type == "Cast", node.name
        assert helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT
        assert initializers[cast.input[0]].data_type == TensorProto.FLOAT16, node.name
    assert len(_matmuls(half)) == len(full_nodes)
    assert sum(n.op_type == "Cast" for n in half.node) - sum(
        n.op_type == "Cast" for n in full.node
    ) == len(full_nodes)  # one per node, on its scales: none on the activations


@pytest.mark.parametrize("kind", ["", "tied-"])
def test_onnxruntime_folds_the_scale_casts_when_it_loads(
    builds: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()  # the default level, as onnxruntime-genai loads a model
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", "optimized.onnx.data"
    )
    model = builds[f"{kind}half"] / "model.onnx"
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(tmp_path / "optimized.onnx"), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    nodes = _matmuls(graph)
    assert len(nodes) == len(_matmuls(_graph(builds[f"{kind}half"])))
    for node in nodes:  # each reads folded float32 scales: nothing computes them per call
        assert node.input[2] in constants, node.name
    assert not [n.name for n in graph.node if n.name.endswith("/ScalesToFloat")]


@pytest.mark.parametrize("kind", ["", "tied-"])
def test_half_scales_change_the_logits_by_float16_rounding_only(
    builds: dict[str, Path], kind: str
) -> None:
    ids = [1, 17, 42, 99, 3, 250, 7, 64]
    full, half = _logits(builds[f"{kind}full"], ids), _logits(builds[f"{kind}half"], ids)
    assert half.dtype == np.float32 and half.shape == full.shape
    scale = float(np.abs(full).max())
    assert float(np.abs(half - full).max()) <= 2e-2 * scale  # float16: 2^-11 per rounding
    assert not np.array_equal(half, full)  # the scales did change
    np.testing.assert_array_equal(half.argmax(-1), full.argmax(-1))


def test_a_table_shared_with_the_gather_is_half_and_cast_back(builds: dict[str, Path]) -> None:
    from onnx import TensorProto, helper

    graph = _graph(builds["tied-half"])
    full, half = _initializers(builds["tied-full"]), _initializers(builds["tied-half"])
    assert full.keys() == half.keys()  # still one table: no second copy appeared
    head = next(n for n in _matmuls(graph) if n.name.startswith(LM_HEAD_NODE))
    scales = _scales(graph, head)
    np.testing.assert_array_equal(half[scales], full[scales].astype(np.float16))
    assert all(half[_scales(graph, n)].dtype == np.float16 for n in _matmuls(graph))
    # the gather (through a Reshape of the scales, or directly) reads the head's float16 scales,
    # the head its Cast of them, and the gather's output reaches the first layer through a Cast
    # to float32
    readers = sorted(n.op_type for n in graph.node if scales in n.input)
    assert readers in (["Cast", "Reshape"], ["Cast", "GatherBlockQuantized"])
    cast = next(n for n in graph.node if n.name == "/model/embed_tokens/CastFromFloat16")
    assert helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT
    gather = next(n for n in graph.node if n.op_type == "GatherBlockQuantized")
    producers = {out: n for n in graph.node for out in n.output}
    source = producers[cast.input[0]]
    assert source is gather or producers[source.input[0]] is gather


def test_the_option_is_a_boolean_and_hqq_keeps_its_dtype() -> None:
    assert plan_for({"precision": "int4", "half_scales": True}, 2).half_scales
    assert not plan_for({"precision": "int4"}, 2).half_scales
    with pytest.raises(PlanError, match="half_scales must be true or false"):
        plan_for({"precision": "int4", "half_scales": "yes"}, 2)
    weight = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="hqq"):
        quantize_matmul(weight, TensorQuant(algo="hqq"), scales_as=np.float16, threads=1)


def test_the_budget_prices_half_scales_and_its_recipes_ask_for_them() -> None:
    weight = np.random.default_rng(1).standard_normal((48, 576)).astype(np.float32)
    for fmt in CANDIDATES:
        quant = TensorQuant(fmt.bits, fmt.block, fmt.symmetric, fmt.algorithm)
        packed = quantize_matmul(weight, quant, scales_as=np.float16, threads=1)
        assert packed.scales.dtype == np.float16
        assert packed.nbytes == fmt.bytes_for(48, 576, half_scales=True), fmt.name
        assert fmt.bytes_for(48, 576) - packed.nbytes == packed.scales.nbytes  # float32: twice
    q8 = parse_format("q8-b32-sym-rtn")
    assert q8.bits_per_weight(half_scales=True) == pytest.approx(8.5)
    assert q8.bits_per_weight() == pytest.approx(9.0)
    plan = Plan(
        choices=(
            Choice("layers.0.o", CANDIDATES[0].name, 100, 0.05),
            Choice("embedding", EMBEDDING_CANDIDATES[0].name, 900, 0.05),
        ),
        predicted_kl=0.1,
        bytes=1000,
        target_kl=0.1,
        reachable=True,
    )
    config = plan_recipe(plan, name="budget-kl-0-1", summary="test")["passes"][0]["config"]
    assert config["half_scales"] is True
