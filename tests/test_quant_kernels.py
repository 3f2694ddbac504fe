"""Guards: curator.quant.kernels, curator.quant.plan

The one-tensor quantizers give, bit for bit, what onnxruntime's and Olive's whole-model passes
write for the same weight."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from curator.quant import kernels
from curator.quant.plan import TensorQuant


def _ort_quantize(weight_nk: np.ndarray, quant: TensorQuant) -> dict[str, np.ndarray]:
    """Run onnxruntime's MatMulNBitsQuantizer on a one-MatMul model; its initializers by name."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        KQuantWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
        RTNWeightOnlyQuantConfig,
    )

    n, k = weight_nk.shape
    b = numpy_helper.from_array(np.ascontiguousarray(weight_nk.T), "w.MatMul.weight")
    node = helper.make_node("MatMul", ["x", "w.MatMul.weight"], ["y"], name="/w/MatMul")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    algo: Any = None
    custom = {"/w/MatMul": {"bits": quant.bits}} if quant.bits == 8 else None
    if quant.algo == "k_quant":
        algo = KQuantWeightOnlyQuantConfig(customized_weight_config=custom)
    elif quant.algo == "hqq":
        algo = HQQWeightOnlyQuantConfig(block_size=quant.block_size, bits=quant.bits)
    elif quant.algo == "rtn_inc":
        algo = RTNWeightOnlyQuantConfig(customized_weight_config=custom)
    q = MatMulNBitsQuantizer(
        model,
        bits=quant.bits,
        block_size=quant.block_size,
        is_symmetric=quant.symmetric,
        accuracy_level=quant.accuracy_level,
        algo_config=algo,
    )
    q.process()
    out: onnx.ModelProto = q.model.model
    return {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}


CASES = [
    TensorQuant(bits=4, block_size=32, symmetric=False, algo="k_quant"),
    TensorQuant(bits=8, block_size=32, symmetric=False, algo="k_quant"),
    TensorQuant(bits=4, block_size=32, symmetric=True, algo="rtn"),
    TensorQuant(bits=4, block_size=128, symmetric=False, algo="rtn"),
    TensorQuant(bits=8, block_size=32, symmetric=True, algo="rtn"),
    TensorQuant(bits=4, block_size=32, symmetric=False, algo="rtn_inc"),
    TensorQuant(bits=4, block_size=32, symmetric=True, algo="rtn_inc"),
    TensorQuant(bits=4, block_size=64, symmetric=False, algo="hqq"),
]


@pytest.mark.parametrize(
    "quant", CASES, ids=lambda q: f"{q.algo}-{q.bits}-{q.block_size}-{q.symmetric}"
)
def test_matmul_matches_onnxruntime(quant: TensorQuant, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((96, 256)).astype(np.float32) * 0.05
    weight[3, :32] = 0.0  # a constant block
    monkeypatch.setattr(kernels, "MATMUL_CHUNK_ELEMENTS", 40 * 256)  # several chunks and threads
    packed = kernels.quantize_matmul(weight, quant, threads=2)
    expected = _ort_quantize(weight, quant)
    data_name, scales_name, zp_name = packed.initializer_names("w.MatMul.weight")
    assert set(expected) == {data_name, scales_name} | (
        {zp_name} if packed.zero_points is not None else set()
    )
    np.testing.assert_array_equal(packed.data, expected[data_name])
    np.testing.assert_array_equal(packed.scales, expected[scales_name])
    if packed.zero_points is not None:
        np.testing.assert_array_equal(packed.zero_points, expected[zp_name])
    error = np.abs(packed.dequantize() - weight).max()
    step = (weight.max() - weight.min()) / (2**quant.bits - 1)
    assert error <= step  # the dequantized weight is the weight, to a quantization step


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [4, 8])
def test_gather_matches_olive(symmetric: bool, bits: int) -> None:
    from olive.passes.onnx.rtn_quantization import OnnxBlockWiseRtnQuantization

    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 64)).astype(np.float32)
    table[7] = 0.0
    quant = TensorQuant(bits=bits, block_size=32, symmetric=symmetric, algo="rtn")
    packed = kernels.quantize_gather(table, quant, threads=2)
    data, scales, zp = OnnxBlockWiseRtnQuantization._quantize_ndarray(
        OnnxBlockWiseRtnQuantization,  # type: ignore[arg-type]
        table,
        1,
        32,
        symmetric,
        bits,
    )
    np.testing.assert_array_equal(packed.data, data)
    np.testing.assert_array_equal(packed.scales, scales)
    if symmetric:
        assert packed.zero_points is None
    else:
        np.testing.assert_array_equal(packed.zero_points, zp)
    assert np.abs(packed.dequantize() - table).max() <= np.abs(table).max() / (2 ** (bits - 1))


def test_two_threads_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((200, 128)).astype(np.float32)
    quant = TensorQuant(bits=4, block_size=32, symmetric=False, algo="k_quant")
    one = kernels.quantize_matmul(weight, quant, threads=1)
    monkeypatch.setattr(kernels, "MATMUL_CHUNK_ELEMENTS", 30 * 128)
    two = kernels.quantize_matmul(weight, quant, threads=2)
    for a, b in (
        (one.data, two.data),
        (one.scales, two.scales),
        (one.zero_points, two.zero_points),
    ):
        np.testing.assert_array_equal(a, b)
