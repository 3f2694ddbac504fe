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
    monkeypatch.setattr(kernels, "TASK_ELEMENTS", 40 * 256)  # several tasks, on two workers
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
def test_gather_matches_olive(symmetric: bool, bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from olive.passes.onnx.rtn_quantization import OnnxBlockWiseRtnQuantization

    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 64)).astype(np.float32)
    table[7] = 0.0
    quant = TensorQuant(bits=bits, block_size=32, symmetric=symmetric, algo="rtn")
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", 20 * 64)  # 3 tasks, on two workers
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


def _rows_of(start: int, stop: int) -> tuple[int, int, int]:
    import os

    return start, stop, os.getpid()


def test_tasks_run_in_worker_processes_in_order_and_in_process_on_one_thread() -> None:
    import os

    tasks = [(i, i + 1) for i in range(12)]
    pooled = list(kernels._parallel(_rows_of, tasks, threads=2))
    assert [(a, b) for a, b, _ in pooled] == tasks  # in task order, whatever finished first
    assert os.getpid() not in {pid for _, _, pid in pooled}
    inline = list(kernels._parallel(_rows_of, tasks, threads=1))
    assert {pid for _, _, pid in inline} == {os.getpid()}
    assert kernels.workers_for(1) == 0 and kernels.workers_for(2) == 2
    assert kernels.workers_for(500) == kernels.MAX_WORKERS


def test_a_task_that_fails_in_a_worker_raises_in_the_caller() -> None:
    quant = TensorQuant(bits=4, block_size=32, symmetric=False, algo="k_quant")
    tasks = [(np.zeros((2, 32), np.float32), quant, np.dtype(np.float32), False, 64)] * 3
    tasks[1] = (np.zeros(64, np.float32), *tasks[1][1:])  # not 2-D: the worker's shape read fails
    with pytest.raises(IndexError):
        list(kernels._parallel(kernels._matmul_rows, tasks, threads=2))


@pytest.mark.parametrize("bits", [4, 8])
def test_worker_processes_give_the_same_bytes_as_one_thread(
    bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml_dtypes

    rng = np.random.default_rng(2)
    cols = 128
    weight = (rng.standard_normal((201, cols)) * 0.05).astype(ml_dtypes.bfloat16)  # as stored
    quant = TensorQuant(bits=bits, block_size=32, symmetric=False, algo="k_quant")
    one = kernels.quantize_matmul(weight, quant, threads=1)
    monkeypatch.setattr(kernels, "TASK_ELEMENTS", 33 * cols)  # 7 tasks of 2-3 chunks, odd rows
    monkeypatch.setattr(kernels, "MATMUL_CHUNK_ELEMENTS", 15 * cols)
    two = kernels.quantize_matmul(weight, quant, threads=2)
    expected = _ort_quantize(weight.astype(np.float32), quant)
    data_name, scales_name, zp_name = one.initializer_names("w.MatMul.weight")
    for packed in (one, two):
        np.testing.assert_array_equal(packed.data, expected[data_name])
        np.testing.assert_array_equal(packed.scales, expected[scales_name])
        np.testing.assert_array_equal(packed.zero_points, expected[zp_name])
