"""int8-cpu's MatMuls, quantized as the streaming builder makes them (:mod:`curator.quant.int8`).

The builder's fp32 ``make_matmul_float`` writes a float MatMul; int8-cpu then ran onnxruntime's
``quantize_dynamic`` over the whole saved model. Here each weight is quantized when its node is
made, streamed into the data file chunk by chunk (two passes over the source tensor: its range,
then its values), and the node written as onnxruntime writes it, with onnxruntime's names.
:func:`quantize_saved_model` is today's whole-model path, for builds that cannot stream.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from curator.portable import usable_cpu_count
from curator.quant.int8 import QUANTIZED_SUFFIX, DynamicInt8, int8_params, quantize_chunk
from curator.quant.int8 import weight_range as tensor_range

# Elements per chunk a weight is cast and quantized in (default: the streaming builder's cast
# chunk, 4M): tests set it small so that a tiny model's weights span several chunks.
CHUNK_ENV = "CURATOR_INT8_CHUNK_ELEMENTS"
# Threads quantizing one weight's chunks; threads + 1 chunks are in flight (float32 + int8, 20 MiB
# each at 4M elements): capped so that a many-core machine does not hold a hundred of them.
MAX_THREADS = 8


def _register(builder: Any, external: Any) -> None:
    value = builder.make_value(external.name, external.dtype, external.shape)
    value.const_value = external
    builder.model.graph.register_initializer(value)


def _in_order(
    pool: ThreadPoolExecutor,
    work: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]],
    pieces: Iterator[np.ndarray[Any, Any]],
    ahead: int,
) -> Iterator[np.ndarray[Any, Any]]:
    """``work`` on each piece on the pool, results in order, at most ``ahead`` pieces in flight
    (``pool.map`` would read every piece first: the whole float32 tensor)."""
    pending: deque[Future[np.ndarray[Any, Any]]] = deque()
    for piece in pieces:
        pending.append(pool.submit(work, piece))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def make_matmul_int8(
    builder: Any,
    session: Any,
    config: DynamicInt8,
    matmul: Any,
    name: str,
    root_input: str,
    *,
    cast_chunk: int,
    **kwargs: Any,
) -> str:
    """``make_matmul_float``'s node and weight, int8 as ``quantize_dynamic`` makes them; the float
    weight cast ``cast_chunk`` values at a time (builder_patch's chunk, unless CHUNK_ENV sets one)."""
    import onnx_ir as ir
    import torch

    if builder.io_dtype != ir.DataType.FLOAT:
        raise ValueError("matmul_int8 needs float32 inputs and outputs (precision fp32 on CPU)")
    weight = name[1:].replace("/", ".") + ".weight"
    source = matmul.weight  # [N, K]; the ONNX MatMul's B is its transpose, [K, N]
    b = source.T
    rows, cols = int(b.shape[0]), int(b.shape[1])
    chunk = int(os.environ.get(CHUNK_ENV) or cast_chunk)

    def float32_rows(tensor: Any, own: bool) -> Iterator[np.ndarray[Any, Any]]:
        """Row chunks as float32 (``own``: always a copy, never a view of the parameter)."""
        step = max(1, chunk // max(int(tensor.shape[1]), 1))
        for start in range(0, int(tensor.shape[0]), step):
            piece = tensor[start : start + step].detach()
            cast = piece.to(torch.float32)
            if own and cast.data_ptr() == piece.data_ptr():
                cast = cast.clone()
            yield cast.contiguous().numpy()

    # the range does not depend on the order: read the stored layout (contiguous, fast)
    params = int8_params(tensor_range(float32_rows(source, own=False)), np.float32, config)

    def quantize(piece: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return quantize_chunk(piece, params, config, scratch=True)

    threads = min(MAX_THREADS, max(1, session.threads or usable_cpu_count()))
    writer = session.open_writer()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        offset, length = writer.append_pieces(
            rows * cols, _in_order(pool, quantize, float32_rows(b, own=True), threads + 1)
        )
    q_weight = weight + QUANTIZED_SUFFIX
    q_type = ir.DataType.INT8 if config.signed else ir.DataType.UINT8
    external = ir.ExternalTensor(
        session.data_name,
        offset,
        length,
        q_type,
        shape=ir.Shape([rows, cols]),
        name=q_weight,
        base_dir=str(session.out_dir),
    )
    _register(builder, external)
    w_scale, w_zero = weight + "_scale", weight + "_zero_point"
    builder.make_initializer(np.asarray(params.scale, dtype=np.float32).reshape(()), w_scale)
    builder.make_initializer(params.zero_point.reshape(()), w_zero)
    session.quantized += 1

    seq_dim = kwargs.get("seq_dim", "sequence_length")
    output = "logits" if kwargs.get("logits", False) else f"{name}/output_0"
    x_q, x_scale, x_zero = (root_input + s for s in ("_quantized", "_scale", "_zero_point"))
    builder.make_node(  # one per input: the builder skips a node name it has made already
        "DynamicQuantizeLinear",
        inputs=[root_input],
        outputs=[x_q, x_scale, x_zero],
        name=root_input + "_QuantizeLinear",
    )
    builder.make_value(x_q, ir.DataType.UINT8, shape=["batch_size", seq_dim, rows])
    builder.make_value(x_scale, ir.DataType.FLOAT, shape=[])
    builder.make_value(x_zero, ir.DataType.UINT8, shape=[])
    integer_name = f"{name}_quant"
    integer_out = f"{output}_output_quantized"
    builder.make_node(
        "MatMulInteger", inputs=[x_q, q_weight, x_zero, w_zero], outputs=[integer_out],
        name=integer_name,
    )  # fmt: skip
    builder.make_value(integer_out, ir.DataType.INT32, shape=["batch_size", seq_dim, cols])
    cast_out = f"{integer_out}_cast_output"
    builder.make_node(
        "Cast", inputs=[integer_out], outputs=[cast_out], name=f"{integer_out}_cast",
        to=int(ir.DataType.FLOAT),
    )  # fmt: skip
    builder.make_value(cast_out, ir.DataType.FLOAT, shape=["batch_size", seq_dim, cols])
    scales_mul = f"{integer_name}_scales_mul"
    builder.make_node(
        "Mul", inputs=[x_scale, w_scale], outputs=[scales_mul + ":0"], name=scales_mul
    )
    builder.make_value(scales_mul + ":0", ir.DataType.FLOAT, shape=[])
    builder.make_node(
        "Mul", inputs=[cast_out, scales_mul + ":0"], outputs=[output],
        name=f"{integer_name}_output_scale_mul",
    )  # fmt: skip
    builder.make_value(output, builder.io_dtype, shape=["batch_size", seq_dim, cols])
    return name


def float_matmuls_with_constant_weight(graph: Any) -> list[str]:
    """Float MatMul nodes whose B is an initializer (what ``quantize_dynamic`` would quantize)."""
    out = []
    for node in graph:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        b = node.inputs[1]
        if b is not None and b.const_value is not None:
            out.append(str(node.name))
    return out


def quantize_saved_model(
    model_dir: Path, config: DynamicInt8, filename: str = "model.onnx"
) -> None:
    """Today's path, for builds that could not stream: Olive's OnnxDynamicQuantization as int8-cpu
    ran it (onnxruntime's pre-processing, then ``quantize_dynamic`` on the whole model, in memory)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.preprocess import quant_pre_process

    source = model_dir / filename
    with tempfile.TemporaryDirectory(prefix="curator-int8-") as tmp:
        work = Path(tmp)
        pre = work / "preprocessed.onnx"
        try:
            quant_pre_process(
                input_model_path=str(source),
                output_model_path=str(pre),
                auto_merge=True,
                save_as_external_data=True,
            )
        except Exception:  # Olive falls back to the model as it is, so do we
            pre = source
        extra: dict[str, Any] = {}
        if config.weight_symmetric is not None:
            extra["WeightSymmetric"] = config.weight_symmetric
        out = work / "quantized.onnx"
        quantize_dynamic(
            model_input=str(pre),
            model_output=str(out),
            op_types_to_quantize=["MatMul"],
            per_channel=False,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8 if config.signed else QuantType.QUInt8,
            nodes_to_exclude=list(config.nodes_to_exclude),
            use_external_data_format=True,
            extra_options=extra,
        )
        model = onnx.load(str(out))
        staged = work / "staged"
        staged.mkdir()
        onnx.save_model(
            model,
            str(staged / filename),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=filename + ".data",
        )
        del model
        for name in (filename, filename + ".data"):
            shutil.move(str(staged / name), str(model_dir / name))
