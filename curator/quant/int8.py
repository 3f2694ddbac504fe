"""int8 dynamic quantization of MatMul weights, one tensor at a time.

What int8-cpu used to get from Olive's ``OnnxDynamicQuantization`` (``op_types_to_quantize:
["MatMul"]``), which calls onnxruntime's ``quantize_dynamic`` on the whole saved model. With the
recipe's options (onnxruntime 1.31, ``quantization/onnx_quantizer.py`` and ``operators/matmul.py``)
every MatMul whose B input is an initializer becomes, in onnxruntime's names::

    DynamicQuantizeLinear  X -> X_quantized (uint8), X_scale, X_zero_point   (one per input X)
    Mul                    X_scale * W_scale -> NAME_quant_scales_mul:0
    MatMulInteger          X_quantized, W_quantized, X_zero_point, W_zero_point -> Y_output_quantized
    Cast (to float)        -> Y_output_quantized_cast_output
    Mul                    -> Y (the MatMul's own output)

and its weight ``W`` (``[K, N]``) one per-tensor scale and zero point: ``weight_type`` QInt8 (the
default) is symmetric (range [-127, 127], zero point 0), QUInt8 asymmetric ([0, 255]);
``reduce_range`` is honoured by MatMulInteger (7-bit range). The range and the values come from
onnxruntime's own ``compute_data_quant_params`` and ``quantize_nparray`` (imported when used), so
the bytes are the same: the range is the tensor's min and max, found chunk by chunk, and the
quantization is elementwise (``quantize_nparray``'s float32 operations, in place), done chunk by
chunk (tests/test_stream_int8.py checks both against onnxruntime's ``quantize_data``). A weight never needs a whole float32 copy.

Per-channel quantization (``per_channel: true``) is not covered: :func:`DynamicInt8.from_json`
refuses it, so a recipe cannot silently get something else than it asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from curator.quant.plan import PlanError

WEIGHT_TYPES = ("QInt8", "QUInt8")
QUANTIZED_SUFFIX = "_quantized"  # onnxruntime's TENSOR_NAME_QUANT_SUFFIX


@dataclass(frozen=True)
class DynamicInt8:
    """The options of int8 dynamic quantization a recipe gives (Olive's names)."""

    weight_type: str = "QInt8"
    weight_symmetric: bool | None = None  # None: onnxruntime's rule (signed -> symmetric)
    reduce_range: bool = False
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.weight_type not in WEIGHT_TYPES:
            raise PlanError(
                f"int8 weight_type must be one of {', '.join(WEIGHT_TYPES)}, not "
                f"{self.weight_type!r}"
            )

    @property
    def signed(self) -> bool:
        return self.weight_type == "QInt8"

    @property
    def symmetric(self) -> bool:
        return self.signed if self.weight_symmetric is None else self.weight_symmetric

    @property
    def numpy_dtype(self) -> type[np.integer[Any]]:
        return np.int8 if self.signed else np.uint8

    def onnx_type(self) -> int:
        """onnx.TensorProto.INT8 / UINT8 (3 / 2)."""
        return 3 if self.signed else 2

    def quantizes(self, node_name: str) -> bool:
        return node_name not in self.nodes_to_exclude

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DynamicInt8:
        """From the ``matmul_int8`` option of a ``CuratorModelBuilder`` pass (see recipes/README.md):
        ``precision`` int8/uint8 (Olive's name) or ``weight_type``, ``weight_symmetric``,
        ``reduce_range``, ``nodes_to_exclude``; ``per_channel`` must be false."""
        known = {
            "precision",
            "weight_type",
            "weight_symmetric",
            "reduce_range",
            "per_channel",
            "nodes_to_exclude",
        }
        unknown = set(data) - known
        if unknown:
            raise PlanError(f"unknown matmul_int8 option(s): {', '.join(sorted(unknown))}")
        if data.get("per_channel"):
            raise PlanError("matmul_int8 per_channel is not supported by the streaming compile")
        weight_type = data.get("weight_type")
        precision = data.get("precision")
        if weight_type is None:
            names = {"int8": "QInt8", "uint8": "QUInt8", None: "QInt8"}
            if precision not in names:
                raise PlanError(f"matmul_int8 precision must be int8 or uint8, not {precision!r}")
            weight_type = names[precision]
        symmetric = data.get("weight_symmetric")
        if symmetric is not None and not isinstance(symmetric, bool):
            raise PlanError("matmul_int8 weight_symmetric must be true, false or absent")
        excluded = data.get("nodes_to_exclude") or []
        if not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded):
            raise PlanError("matmul_int8 nodes_to_exclude must be a list of node names")
        return cls(
            weight_type=str(weight_type),
            weight_symmetric=symmetric,
            reduce_range=bool(data.get("reduce_range", False)),
            nodes_to_exclude=tuple(excluded),
        )


@dataclass(frozen=True)
class Int8Params:
    """One weight's scale (0-d, the weight's float dtype) and zero point (0-d int8/uint8)."""

    scale: npt.NDArray[np.floating[Any]]
    zero_point: npt.NDArray[np.integer[Any]]


def weight_range(
    chunks: Iterable[npt.NDArray[np.floating[Any]]],
) -> tuple[np.floating[Any], np.floating[Any]] | None:
    """The min and max of a tensor given chunk by chunk (None: no element). Exact: the min of the
    chunks' minima is the tensor's minimum (and a NaN anywhere gives NaN, as numpy's min does)."""
    lows: list[Any] = []
    highs: list[Any] = []
    for chunk in chunks:
        if chunk.size:
            lows.append(chunk.min())
            highs.append(chunk.max())
    if not lows:
        return None
    return np.min(np.array(lows)), np.max(np.array(highs))


def int8_params(
    value_range: tuple[np.floating[Any], np.floating[Any]] | None,
    dtype: npt.DTypeLike,
    config: DynamicInt8,
    reduce_range: bool = True,
) -> Int8Params:
    """onnxruntime's per-tensor scale and zero point for a weight of float ``dtype`` whose min and
    max are ``value_range`` (``quantize_initializer_impl``: ``reduce_range`` is the operator's
    request, True for MatMulInteger, and applies only when the config asks for it too)."""
    from onnxruntime.quantization.quant_utils import compute_data_quant_params

    float_dtype = np.dtype(dtype)
    if value_range is None:
        data = np.zeros((0,), dtype=float_dtype)
        low = high = None
    else:
        data = np.zeros((1,), dtype=float_dtype)
        low, high = value_range
    zero_point, scale = compute_data_quant_params(
        data,
        config.onnx_type(),
        config.symmetric,
        reduce_range=config.reduce_range and reduce_range,
        min_real_range=None,
        rmin_override=low,
        rmax_override=high,
    )
    return Int8Params(scale=np.asarray(scale), zero_point=np.asarray(zero_point))


def quantize_chunk(
    chunk: npt.NDArray[np.floating[Any]],
    params: Int8Params,
    config: DynamicInt8,
    scratch: bool = False,
) -> npt.NDArray[np.integer[Any]]:
    """One chunk of a weight quantized (elementwise: chunks give the whole tensor's bytes).

    onnxruntime's ``quantize_nparray``, ``((x.astype(float32) / scale).round() + zero_point)``
    clipped to the type's full range then cast, with the same float32 operations in the same
    order, done in place (``scratch``: ``chunk`` is a float32 copy this call may overwrite)."""
    info = np.iinfo(config.numpy_dtype)
    work = chunk if scratch and chunk.dtype == np.float32 else chunk.astype(np.float32)
    np.divide(work, params.scale, out=work)
    np.round(work, out=work)
    np.add(work, params.zero_point, out=work)
    np.clip(work, info.min, info.max, out=work)
    return work.astype(config.numpy_dtype)


def quantize_tensor(
    weight: npt.NDArray[np.floating[Any]], config: DynamicInt8, rows_per_chunk: int = 4096
) -> tuple[npt.NDArray[np.integer[Any]], Int8Params]:
    """A whole weight (any layout) quantized row chunk by row chunk: the reference the streaming
    builder's chunked path is checked against, and a convenience for small tensors."""
    rows = weight.shape[0] if weight.ndim else 1
    view = weight.reshape(rows, -1) if weight.ndim else weight.reshape(1, 1)
    chunks = [view[i : i + rows_per_chunk] for i in range(0, rows, rows_per_chunk)]
    params = int8_params(weight_range(chunks), weight.dtype, config)
    if not chunks:
        return np.zeros(weight.shape, dtype=config.numpy_dtype), params
    quantized = np.concatenate([quantize_chunk(c, params, config) for c in chunks])
    return quantized.reshape(weight.shape), params
