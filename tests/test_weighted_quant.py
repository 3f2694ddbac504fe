"""Guards: curator.quant.weighted, curator.quant.importance, curator.quant.kernels,
  curator.compile.stream.builder_patch, curator.recipes, curator.budget.recipe

Weighted k-quant (``wk_quant``): each block's scale and integer zero point searched in the form
the file stores them, each input weighted by its importance. Checked: the scales are exactly what
float16 holds, the levels and zero points in range, a dead or all-zero block stays finite;
onnxruntime's MatMulNBits computes ``X @ dequantize().T`` with this layout (zero points per row,
an odd number of blocks included); with a skewed importance the weighted error is well under
onnxruntime's k-quant's, and without one the plain error is no worse; the worker processes give
the same bytes; an importance file is read as untrusted input; a recipe names it relative to
itself; the streamed build reads it for the nodes it names and for no others; and the budget
writes the sensitivity pass's vectors under the recipe's node patterns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curator.quant.importance import ImportanceTable, load_importance, write_importance
from curator.quant.kernels import quantize_matmul
from curator.quant.plan import PlanError, TensorQuant, plan_for
from curator.quant.weighted import weighted_k_quant
from tests.one_node import run_one_node

WK4 = TensorQuant(bits=4, block_size=32, symmetric=False, algo="wk_quant")


def _weight(rows: int, cols: int, seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return (rng.standard_t(4, size=(rows, cols)) * 0.05).astype(np.float32)


def _skewed(cols: int, seed: int = 1) -> np.ndarray[Any, Any]:
    """A few inputs that matter a lot, as real activations have (a heavy-tailed spread)."""
    return (np.random.default_rng(seed).exponential(size=cols) ** 3).astype(np.float32)


def test_scales_are_what_float16_holds_and_levels_stay_in_range() -> None:
    blocks = _weight(200, 32)
    for bits in (4, 8):
        levels, scales, zeros = weighted_k_quant(blocks, None, bits, np.float16)
        assert levels.dtype == np.uint8 and levels.shape == blocks.shape
        assert int(levels.max()) <= (1 << bits) - 1 and int(zeros.max()) <= (1 << bits) - 1
        np.testing.assert_array_equal(scales, scales.astype(np.float16).astype(np.float32))
        assert bool(np.all(scales > 0))
        rebuilt = scales[:, None] * (levels.astype(np.float32) - zeros[:, None])
        # the error of a uniform grid of this block's range, or better
        span = blocks.max(1) - blocks.min(1)
        assert float(np.abs(rebuilt - blocks).max(1).max()) <= float(span.max()) / (1 << bits)


def test_a_zero_block_and_inputs_never_active_stay_finite() -> None:
    blocks = _weight(4, 32)
    blocks[1] = 0.0
    importance = np.ones_like(blocks)
    importance[2] = 0.0  # every input of this block was silent in the calibration text
    levels, scales, zeros = weighted_k_quant(blocks, importance, 4, np.float16)
    rebuilt = scales[:, None] * (levels.astype(np.float32) - zeros[:, None])
    assert bool(np.all(np.isfinite(rebuilt)))
    np.testing.assert_array_equal(rebuilt[1], np.zeros(32, dtype=np.float32))
    # the silent block is quantized as without importance, not left to chance
    alone = weighted_k_quant(blocks[2:3], None, 4, np.float16)
    np.testing.assert_array_equal(levels[2], alone[0][0])


def _ort_matmul(packed: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = packed.shape
    inits = [
        numpy_helper.from_array(packed.data, "w"),
        numpy_helper.from_array(np.asarray(packed.scales, dtype=np.float32).reshape(-1), "s"),
        numpy_helper.from_array(packed.zero_points, "z"),
    ]
    node = helper.make_node(
        "MatMulNBits",
        ["x", "w", "s", "z"],
        ["y"],
        domain="com.microsoft",
        K=cols,
        N=rows,
        bits=packed.quant.bits,
        block_size=packed.quant.block_size,
    )
    return run_one_node(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, cols])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, rows]),
        inits,
        {"x": x},
    )


@pytest.mark.parametrize(("bits", "block", "cols"), [(4, 64, 576), (4, 32, 96), (8, 32, 100)])
def test_onnxruntime_reads_the_layout(bits: int, block: int, cols: int) -> None:
    """Zero points per row (576 / 64 = 9 blocks: an odd count, which k_quant's flat packing
    cannot hold), a padded last block (100 / 32)."""
    weight = _weight(48, cols, seed=bits + cols)
    quant = TensorQuant(bits=bits, block_size=block, symmetric=False, algo="wk_quant")
    packed = quantize_matmul(weight, quant, importance=_skewed(cols), threads=1)
    assert packed.zero_points is not None
    assert packed.zero_points.shape == (48, -(-packed.k_blocks * bits // 8))
    x = np.random.default_rng(3).standard_normal((5, cols)).astype(np.float32)
    expected = x @ packed.dequantize().T
    np.testing.assert_allclose(_ort_matmul(packed, x), expected, rtol=1e-4, atol=1e-4)


def _weighted_error(packed: Any, weight: Any, importance: Any) -> float:
    return float((((packed.dequantize() - weight) ** 2) * importance).sum())


def test_importance_lowers_the_error_where_it_matters() -> None:
    weight, importance = _weight(256, 512), _skewed(512)
    ort_k = TensorQuant(bits=4, block_size=32, symmetric=False, algo="k_quant")
    k_quant = quantize_matmul(weight, ort_k, scales_as=np.float16, threads=1)
    weighted = quantize_matmul(weight, WK4, scales_as=np.float16, importance=importance, threads=1)
    plain = quantize_matmul(weight, WK4, scales_as=np.float16, threads=1)
    # weighted by the inputs' importance: well under onnxruntime's k-quant
    assert _weighted_error(weighted, weight, importance) < 0.8 * _weighted_error(
        k_quant, weight, importance
    )
    # no importance: the plain error no worse than onnxruntime's (searched as stored)
    ones = np.ones(512, dtype=np.float32)
    assert _weighted_error(plain, weight, ones) <= _weighted_error(k_quant, weight, ones)
    assert _weighted_error(weighted, weight, importance) < _weighted_error(
        plain, weight, importance
    )


def test_worker_processes_give_the_same_bytes() -> None:
    weight, importance = _weight(700, 576, seed=5), _skewed(576)
    one = quantize_matmul(weight, WK4, importance=importance, threads=1)
    two = quantize_matmul(weight, WK4, importance=importance, threads=2)
    for a, b in zip(
        (one.data, one.scales, one.zero_points),
        (two.data, two.scales, two.zero_points),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="importance has 575 values for 576 inputs"):
        quantize_matmul(weight, WK4, importance=importance[:-1], threads=1)


def test_importance_files_are_untrusted_input(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "x.importance.safetensors"
    vector = _skewed(64)
    write_importance(path, {"/lm_head/MatMul": vector, r"re:/model/layers\.0/.*": vector * 2})
    table = load_importance(path)
    np.testing.assert_array_equal(table.for_node("/lm_head/MatMul"), vector)
    np.testing.assert_array_equal(table.for_node("/model/layers.0/mlp/up_proj/MatMul"), vector * 2)
    assert table.for_node("/model/layers.1/mlp/up_proj/MatMul") is None
    bad = {
        "wide": {"/a": np.ones(4, dtype=np.float64)},
        "flat": {"/a": np.ones((2, 2), dtype=np.float32)},
        "negative": {"/a": -np.ones(4, dtype=np.float32)},
        "nan": {"/a": np.full(4, np.nan, dtype=np.float32)},
    }
    for label, vectors in bad.items():
        save_file(vectors, str(tmp_path / f"{label}.safetensors"))
        with pytest.raises(PlanError, match="importance '/a'"):
            load_importance(tmp_path / f"{label}.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(PlanError, match="cannot read the importance file"):
        load_importance(tmp_path / "junk.safetensors")
    with pytest.raises(PlanError, match="importance must be the name of a file"):
        plan_for({"precision": "int4", "importance": 3}, 2)
    assert isinstance(ImportanceTable.from_vectors({}), ImportanceTable)


def _recipe(directory: Path, importance: Any) -> Path:
    """A budget's recipe document (no groups: the base format alone) naming ``importance``."""
    from curator.budget.recipe import plan_recipe
    from curator.budget.search import Plan

    plan = Plan(choices=(), predicted_kl=0.0, bytes=0, target_kl=1.0, reachable=True)
    document = plan_recipe(plan, name="budget-x", summary="test")
    document["passes"][0]["config"]["importance"] = importance
    path = directory / "budget-x.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_recipe_names_its_importance_file_beside_it(tmp_path: Path) -> None:
    from curator.recipes import RecipeError, load_recipe_file

    write_importance(tmp_path / "budget-x.importance.safetensors", {"/lm_head/MatMul": _skewed(8)})
    recipe = load_recipe_file(_recipe(tmp_path, "budget-x.importance.safetensors"))
    resolved = Path(recipe.passes[0].config["importance"])
    assert resolved.is_absolute() and resolved == (tmp_path / "budget-x.importance.safetensors")
    with pytest.raises(RecipeError, match=r"names the importance file gone\.safetensors") as info:
        load_recipe_file(_recipe(tmp_path, "gone.safetensors"))
    assert "\n" not in str(info.value) and info.value.hint
    with pytest.raises(RecipeError, match="importance must be the name of a file"):
        load_recipe_file(_recipe(tmp_path, ["a"]))
    # a file that is there but not an importance file is refused before any compile starts
    (tmp_path / "junk.importance.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(RecipeError, match="cannot read the importance file") as junk:
        load_recipe_file(_recipe(tmp_path, "junk.importance.safetensors"))
    assert junk.value.message.startswith("recipe budget-x.json: ") and junk.value.hint
    assert "\n" not in junk.value.message


def test_the_streamed_build_weighs_the_nodes_the_file_names(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Two builds, every MatMul wk_quant: one with an importance file naming one node. That node's
    packed weight is quantize_matmul's with the file's vector, bit for bit, and not the plain
    build's; every other node is the same bytes in both."""
    from safetensors.numpy import load_file

    from tests.test_tied_sharing import _build, _initializers

    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    down = weights[name].astype(np.float32)
    vector = _skewed(down.shape[1])
    node = "/model/layers.1/mlp/down_proj/MatMul"
    importance = tmp_path / "plan.importance.safetensors"
    write_importance(importance, {node: vector})
    base = {"int4_algo_config": "k_quant", "half_scales": True}
    overrides = [{"match": "*MatMul", "algo": "wk_quant"}]
    configs = {
        "plain": {**base, "tensor_overrides": overrides},
        "weighted": {**base, "tensor_overrides": overrides, "importance": str(importance)},
    }
    specs = [
        {"model": str(tiny_model_dir), "out": str(tmp_path / k), "config": c}
        for k, c in configs.items()
    ]
    result = _build(specs, tmp_path)
    assert all(result[str(tmp_path / k)]["streamed"] for k in configs)
    plain, weighted = _initializers(tmp_path / "plain"), _initializers(tmp_path / "weighted")
    assert plain.keys() == weighted.keys()
    expected = quantize_matmul(down, WK4, scales_as=np.float16, importance=vector, threads=1)
    prefix = "model.layers.1.mlp.down_proj.MatMul.weight"
    data = next(k for k in weighted if k.startswith(prefix + "_Q4"))
    np.testing.assert_array_equal(weighted[data], expected.data)
    np.testing.assert_array_equal(weighted[prefix + "_scale"], expected.scales)
    np.testing.assert_array_equal(weighted[prefix + "_zp"], expected.zero_points)
    assert not np.array_equal(plain[data], weighted[data])
    for key in plain:
        if not key.startswith(prefix):
            np.testing.assert_array_equal(plain[key], weighted[key], err_msg=key)
