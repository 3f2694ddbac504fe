"""Tensor quantizers: one float weight in, the packed MatMulNBits / GatherBlockQuantized arrays out.

Each function takes ONE weight as numpy and returns a :class:`PackedTensor`, bit-identical to what
the whole-model pass it replaces writes for that tensor (checked in tests/test_quant_kernels.py):

========== ============================================= =======================================
algo       MatMul weight (``quantize_matmul``)           same as
========== ============================================= =======================================
rtn        onnxruntime C++ ``quantize_matmul_{4,8}bits``  MatMulNBitsQuantizer default config
rtn_inc    onnxruntime ``neural_compressor.quant_tensor`` builder ``int4_algo_config: rtn``
k_quant    ``quant_tensor_k_quant_cpu``                    builder ``k_quant*``
wk_quant   :mod:`curator.quant.weighted` (curator's own)   (a budget's recipes)
hqq        ``HQQWeightOnlyQuantizer.quantize_internal``    Olive ``OnnxHqqQuantization``
========== ============================================= =======================================

``quantize_gather`` is Olive's ``OnnxBlockWiseRtnQuantization`` for the embedding gather.

Layouts: a MatMul weight is given as torch's Linear layout ``[N, K]`` (out_features, in_features),
which is ``B.T`` of the ONNX MatMul ``X @ B``; blocks run along K. The work is split in row chunks
(rows are independent for every algorithm except HQQ, whose early stop looks at the whole tensor)
and run on ``threads`` worker PROCESSES (a spawned pool, kept for the process's life): threads do
not help, because k-quant's search is hundreds of small numpy operations per chunk, each holding
the GIL for most of its time (a 4864 x 896 bf16 weight, 4-bit k-quant, idle machine: 2.43 s on
one thread, 2.36 s and 3.37 s of CPU on two). One thread means no pool: the chunks run in this
process, with the same bytes. A caller's main module must be importable without side effects
(``if __name__ == "__main__":``): spawn imports it in each worker.
"""

from __future__ import annotations

import atexit
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt

from curator.portable import usable_cpu_count
from curator.quant.plan import TensorQuant
from curator.quant.weighted import weighted_k_quant

# Weights per row chunk. The compile's child runs with MALLOC_MMAP_THRESHOLD_=1 MiB
# (curator.compile.olive_run), so every temporary of 1 MiB or more is mapped and unmapped by the
# kernel, page faults included: k-quant's float32/float64 temporaries at 256k weights per chunk
# spent 2x its user time in the system (CPU 21.4 s vs 6.8 s at 32k, 16384x2048 4-bit, one
# thread). The MatMul kernels take 32k weights (temporaries of 128-256 KiB, reused from the
# heap); the gather's per-block column loop wants wide chunks (32k: 4x slower) and keeps 256k.
MATMUL_CHUNK_ELEMENTS = 1 << 15
CHUNK_ELEMENTS = 1 << 18
# Weights per task sent to a worker process (a MatMul task runs its 32k-weight chunks one after
# another there): a 4-bit k-quant task is about 50 ms of work against well under 1 ms to send
# the rows and return the packed result.
TASK_ELEMENTS = 1 << 18
IN_FLIGHT_PER_THREAD = 2  # tasks submitted ahead per worker (bounds the results not yet copied)
# Worker processes at most: each holds its own Python, numpy and, for k-quant, onnxruntime's
# quantizer module (about 115 MiB resident, counted by curator.compile.cost), and Windows'
# process pools take at most 61.
MAX_WORKERS = 8

FloatArray = npt.NDArray[np.floating[Any]]
ByteArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class PackedTensor:
    """One quantized weight, as the ONNX initializers hold it.

    MatMul (``kind == "matmul"``): ``data`` uint8 ``[N, k_blocks, block_size * bits // 8]``;
    ``scales`` ``[N, k_blocks]`` (flat ``[N * k_blocks]`` for hqq); ``zero_points`` uint8
    ``[N, ceil(k_blocks * bits / 8)]`` (hqq: float, flat), or None when symmetric.
    Gather (``kind == "gather"``): ``data`` uint8 ``[V, H * bits // 8]``, ``scales``
    ``[V, k_blocks]``, ``zero_points`` uint8 ``[V, ceil(k_blocks * bits / 8)]`` or None.
    ``shape`` is the float weight's ``(N, K)`` / ``(V, H)``.
    """

    kind: str
    quant: TensorQuant
    shape: tuple[int, int]
    data: ByteArray
    scales: FloatArray
    zero_points: npt.NDArray[Any] | None

    @property
    def k_blocks(self) -> int:
        return -(-self.shape[1] // self.quant.block_size)

    @property
    def nbytes(self) -> int:
        zp = 0 if self.zero_points is None else int(self.zero_points.nbytes)
        return int(self.data.nbytes) + int(self.scales.nbytes) + zp

    def initializer_names(self, weight_name: str) -> tuple[str, str, str]:
        """(data, scales, zero points) initializer names the replaced pass gives a weight called
        ``weight_name`` (e.g. ``model.layers.0.mlp.down_proj.MatMul.weight``)."""
        bits, block = self.quant.bits, self.quant.block_size
        if self.kind == "gather":
            return (f"{weight_name}_Q{bits}", f"{weight_name}_scales", f"{weight_name}_zero_point")
        if self.quant.algo in ("k_quant", "wk_quant", "rtn_inc"):
            return (f"{weight_name}_Q{bits}G{block}", f"{weight_name}_scale", f"{weight_name}_zp")
        return (f"{weight_name}_Q{bits}", f"{weight_name}_scales", f"{weight_name}_zero_points")

    def dequantize(self) -> npt.NDArray[np.float32]:
        """The float weight this stands for, ``shape`` (``[N, K]`` / ``[V, H]``), float32."""
        rows, cols = self.shape
        bits, block, kb = self.quant.bits, self.quant.block_size, self.k_blocks
        q = _unpack(self.data.reshape(rows, -1), bits)[:, : kb * block].reshape(rows, kb, block)
        scales = np.asarray(self.scales, dtype=np.float32).reshape(rows, kb, 1)
        if self.zero_points is None:
            zero = np.float32(1 << (bits - 1))
            out = (q.astype(np.float32) - zero) * scales
        elif self.quant.algo == "hqq":
            zp = np.asarray(self.zero_points, dtype=np.float32).reshape(rows, kb, 1)
            out = (q.astype(np.float32) - zp) * scales
        else:
            zpq = _unpack(self.zero_points.reshape(rows, -1), bits)[:, :kb].reshape(rows, kb, 1)
            out = (q.astype(np.float32) - zpq.astype(np.float32)) * scales
        return np.ascontiguousarray(out.reshape(rows, kb * block)[:, :cols])


def _unpack(packed: npt.NDArray[Any], bits: int) -> npt.NDArray[np.uint8]:
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 8:
        return packed
    out = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = packed & 0x0F
    out[:, 1::2] = packed >> 4
    return out


def default_threads() -> int:
    """All the cores this process may use."""
    return usable_cpu_count()  # curator.portable: CPU affinity exists on Linux only


def _row_chunks(
    rows: int, cols: int, even: bool, elements: int | None = None
) -> list[tuple[int, int]]:
    step = max(1, (CHUNK_ELEMENTS if elements is None else elements) // max(cols, 1))
    if even and step % 2:
        step += 1
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def workers_for(threads: int) -> int:
    """The worker processes a quantizer asked for ``threads`` uses (0: none, run in-process)."""
    return min(threads, MAX_WORKERS) if threads > 1 else 0


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process-wide pool of ``workers`` spawned processes (spawn: the same on Windows, macOS
    and Linux, and no fork of a process holding torch's threads), started on first use."""
    global _POOL, _POOL_WORKERS
    if _POOL is None or workers != _POOL_WORKERS:
        shutdown_workers()
        _POOL = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )
        _POOL_WORKERS = workers
    return _POOL


@atexit.register
def shutdown_workers() -> None:
    """Stop the worker processes, if any (at exit, or when a pool of another size is wanted)."""
    global _POOL, _POOL_WORKERS
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
    _POOL, _POOL_WORKERS = None, 0


def _parallel(
    work: Callable[..., tuple[Any, ...]], tasks: list[tuple[Any, ...]], threads: int
) -> Iterator[tuple[Any, ...]]:
    """``work(*task)`` for each task, in task order, on ``threads`` worker processes (in this
    process when ``threads`` is 1 or there is one task). ``work`` must be a module-level function
    and its arguments picklable; it sees this module's constants as imported, not as patched.

    At most ``IN_FLIGHT_PER_THREAD`` tasks per worker are submitted ahead of the one consumed:
    submitting every task at once would send every row of the tensor at once, and when the
    consumer (which copies each result into the whole-tensor arrays) falls behind, as it does on a
    loaded machine, finished results would pile up, up to a second copy of the quantized tensor
    (the 151,936 x 2,048 lm_head: 360 MB)."""
    workers = workers_for(threads)
    if not workers or len(tasks) <= 1:
        for task in tasks:
            yield work(*task)
        return
    pool = _pool(workers)
    todo = iter(tasks)
    pending: deque[Future[tuple[Any, ...]]] = deque(
        pool.submit(work, *task) for task in islice(todo, IN_FLIGHT_PER_THREAD * workers)
    )
    try:
        while pending:
            result = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(work, *following))
            yield result
    finally:
        for future in pending:  # an error or an abandoned generator: drop what is queued
            future.cancel()


def _assemble(
    parts: Iterator[tuple[Any, ...]], chunks: list[tuple[int, int]], rows: int, flat_total: int
) -> list[Any]:
    """The chunks' arrays copied into whole-tensor arrays as they arrive (no second copy of the
    quantized tensor). A 1-D part (flat-packed zero points) fills ``flat_total`` bytes in order."""
    out: list[Any] = []
    flat_pos = 0
    for (start, stop), part in zip(chunks, parts, strict=True):
        if not out:
            for array in part:
                if array is None:
                    out.append(None)
                elif array.ndim == 1:
                    out.append(np.empty(flat_total, dtype=array.dtype))
                else:
                    out.append(np.empty((rows, *array.shape[1:]), dtype=array.dtype))
        for target, array in zip(out, part, strict=True):
            if array is None:
                continue
            if array.ndim == 1:
                target[flat_pos : flat_pos + array.size] = array
            else:
                target[start:stop] = array
        flat_pos += next((a.size for a in part if a is not None and a.ndim == 1), 0)
    return out


def _pad_k(weight: FloatArray, block: int) -> FloatArray:
    k = weight.shape[1]
    pad = (-k) % block
    return np.pad(weight, ((0, 0), (0, pad))) if pad else weight


def quantize_matmul(
    weight: FloatArray,
    quant: TensorQuant,
    *,
    scale_dtype: npt.DTypeLike = np.float32,
    scales_as: npt.DTypeLike | None = None,
    threads: int | None = None,
    importance: npt.NDArray[np.float32] | None = None,
) -> PackedTensor:
    """Quantize one MatMul weight given as ``[N, K]`` (torch Linear layout: out, in).

    ``weight`` may be float32, float16 or (ml_dtypes) bfloat16; the algorithms compute as the
    replaced pass does (float32 for rtn/k_quant/rtn_inc, torch float32 for hqq) and the scales are
    written as ``scale_dtype`` (the model's io dtype: float32 on CPU, float16 on CUDA), or as
    ``scales_as`` when given: the weight quantized in the io dtype, its scales then stored
    narrower (float16 scales in a float32 model, :data:`curator.quant.plan.QuantPlan.half_scales`).
    Not for hqq, whose float zero points follow the scales' type. ``importance`` (``[K]``, the
    mean squared activation of each input) weighs the error ``wk_quant`` minimises; the other
    algorithms do not read it.
    """
    if scales_as is not None and quant.algo == "hqq":
        raise ValueError("hqq's scales and float zero points keep the io dtype")
    if weight.ndim != 2:
        raise ValueError(f"a MatMul weight is 2-D, not {weight.shape}")
    threads = default_threads() if threads is None else threads
    rows, cols = (int(weight.shape[0]), int(weight.shape[1]))
    io_dtype = np.dtype(scale_dtype)  # the replaced pass sees the weight cast to the io dtype
    if quant.algo == "hqq":
        return _hqq(weight.astype(io_dtype, copy=False), quant, (rows, cols))
    kb = -(-cols // quant.block_size)
    odd_zp = quant.bits == 4 and kb % 2 == 1
    # Tasks and their chunks hold an even number of rows when a row has an odd number of 4-bit
    # zero points: those are packed flat, two per byte, so each chunk must start on a byte.
    tasks = _row_chunks(rows, cols, even=odd_zp, elements=TASK_ELEMENTS)
    stored = np.dtype(scale_dtype if scales_as is None else scales_as)
    if importance is not None:
        importance = np.asarray(importance, dtype=np.float32).reshape(-1)
        if importance.size != cols:
            raise ValueError(f"importance has {importance.size} values for {cols} inputs")
        importance = np.pad(importance, (0, kb * quant.block_size - cols))
    extra = (importance, stored) if quant.algo == "wk_quant" else ()
    work = [
        (weight[start:stop], quant, io_dtype, odd_zp, MATMUL_CHUNK_ELEMENTS, *extra)
        for start, stop in tasks
    ]
    flat_total = (rows * kb + 1) // 2  # 4-bit zero points packed flat (rtn_inc, k_quant...)
    data, scales, zero_points = _assemble(
        _parallel(_matmul_rows, work, threads), tasks, rows, flat_total
    )
    scales = scales.astype(scale_dtype if scales_as is None else scales_as, copy=False)
    if zero_points is not None and zero_points.ndim == 1:
        # onnxruntime packs the 4-bit zero points of the whole tensor flat, then reshapes [N, -1]
        if zero_points.size % rows:
            raise ValueError(
                f"{quant.algo} cannot lay out the zero points of a {rows}x{cols} weight with "
                f"block {quant.block_size} (an odd number of blocks per row)"
            )
        zero_points = zero_points.reshape(rows, -1)
    return PackedTensor("matmul", quant, (rows, cols), data, scales, zero_points)


def _matmul_rows(
    weight: FloatArray,
    quant: TensorQuant,
    io_dtype: np.dtype[Any],
    even: bool,
    chunk: int,
    *extra: Any,
) -> tuple[Any, ...]:
    """One task: rows of a MatMul weight quantized ``chunk`` weights at a time, in this process
    (a worker's, or the caller's), joined into the rows' (data, scales, zero points). ``extra``:
    wk_quant's importance and stored scale type."""
    kernels: dict[str, Callable[..., tuple[Any, ...]]] = {
        "rtn": _rtn_cpp,
        "k_quant": _k_quant,
        "rtn_inc": _rtn_inc,
        "wk_quant": _wk_quant,
    }
    kernel = kernels[quant.algo]
    rows, cols = (int(weight.shape[0]), int(weight.shape[1]))
    kb = -(-cols // quant.block_size)
    chunks = _row_chunks(rows, cols, even=even, elements=chunk)
    # cast chunk by chunk: a bf16 weight never exists whole in float32
    parts = (kernel(weight[a:b].astype(io_dtype, copy=False), quant, *extra) for a, b in chunks)
    return tuple(_assemble(parts, chunks, rows, (rows * kb + 1) // 2))


def _rtn_cpp(chunk: FloatArray, quant: TensorQuant) -> tuple[Any, ...]:
    """onnxruntime's DefaultWeightOnlyQuantizer.qbits_block_quant on B = chunk.T."""
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    b = np.ascontiguousarray(chunk.T)
    bits, block = quant.bits, quant.block_size
    kpack = 8 // bits
    k, n = b.shape
    kb = -(-k // block)
    if kb * block != k:
        b = np.pad(b, ((0, kb * block - k), (0, 0)))
    blob = (block + kpack - 1) // kpack
    packed = np.zeros((n, kb, blob), dtype=np.uint8)
    zero_point = np.zeros((n, (kb + kpack - 1) // kpack), dtype=np.uint8)
    scales = np.zeros((n, kb), dtype=b.dtype)
    fn = quantize_matmul_8bits if bits == 8 else quantize_matmul_4bits
    fn(packed, b, scales, zero_point, block, n, k, quant.symmetric)
    return packed, scales, (None if quant.symmetric else zero_point)


def _pack_nc(q_weight: npt.NDArray[Any], rows: int, kb: int, bits: int, block: int) -> ByteArray:
    """make_matmul_weight_only_node's packing of a [rows * kb, block] uint8 array."""
    q = q_weight.astype(np.uint8)
    if bits == 4:
        q = (q[:, ::2] | q[:, 1::2] << 4).astype(np.uint8)
    return np.ascontiguousarray(q.reshape(rows, kb, block * bits // 8))


def _pack_zp_nc(zero_point: npt.NDArray[Any], rows: int, bits: int) -> ByteArray:
    """make_matmul_weight_only_node's zero points: 8 bits one per byte ``[rows, kb]``; 4 bits
    packed flat over the chunk, low nibble first, an odd last one paired with 8 (``[n // 2]``)."""
    zp = zero_point.astype(np.uint8).ravel()
    if bits == 8:
        return zp.reshape(rows, -1)
    packed = np.full((zp.size + 1) // 2, 136, dtype=np.uint8)
    even, odd = zp[0::2], zp[1::2]
    packed[: even.size] = (packed[: even.size] & 0xF0) | even
    packed[: odd.size] = (packed[: odd.size] & 0x0F) | (odd << 4)
    return packed


def _k_quant(chunk: FloatArray, quant: TensorQuant) -> tuple[Any, ...]:
    rows = chunk.shape[0]
    padded = _pad_k(chunk, quant.block_size)
    kb = padded.shape[1] // quant.block_size
    from onnxruntime.quantization.neural_compressor.weight_only import quant_tensor_k_quant_cpu

    q_weight, scale, zp = quant_tensor_k_quant_cpu(padded, quant.bits, quant.block_size)
    data = _pack_nc(q_weight, rows, kb, quant.bits, quant.block_size)
    scales = scale.astype(chunk.dtype).reshape(rows, kb)
    return data, scales, _pack_zp_nc(zp, rows, quant.bits)


def _wk_quant(
    chunk: FloatArray,
    quant: TensorQuant,
    importance: npt.NDArray[np.float32] | None,
    stored: np.dtype[Any],
) -> tuple[Any, ...]:
    """curator.quant.weighted on each block; the zero points packed per row, as MatMulNBits
    reads them (k_quant's flat packing cannot hold an odd number of blocks per row)."""
    rows = chunk.shape[0]
    padded = _pad_k(chunk, quant.block_size)
    kb = padded.shape[1] // quant.block_size
    blocks = padded.reshape(-1, quant.block_size)
    weights = None
    if importance is not None:
        weights = np.broadcast_to(
            importance.reshape(1, kb, quant.block_size), (rows, kb, quant.block_size)
        )
        weights = weights.reshape(-1, quant.block_size)
    levels, scale, zero = weighted_k_quant(blocks, weights, quant.bits, stored)
    data = _pack_nc(levels, rows, kb, quant.bits, quant.block_size)
    scales = scale.astype(chunk.dtype).reshape(rows, kb)
    return data, scales, _pack_zp_rows(zero.reshape(rows, kb), quant.bits)


def _pack_zp_rows(zero_point: npt.NDArray[Any], bits: int) -> ByteArray:
    """Zero points ``[rows, kb]`` as ``[rows, ceil(kb * bits / 8)]``: 4 bits two per byte, low
    nibble first, a row's odd last one paired with 8 (the kernels' own padding value)."""
    zp = zero_point.astype(np.uint8)
    if bits == 8:
        return np.ascontiguousarray(zp)
    if zp.shape[1] % 2:
        zp = np.pad(zp, ((0, 0), (0, 1)), constant_values=8)
    return np.ascontiguousarray(zp[:, 0::2] | (zp[:, 1::2] << 4))


def _rtn_inc(chunk: FloatArray, quant: TensorQuant) -> tuple[Any, ...]:
    from onnxruntime.quantization.neural_compressor.weight_only import quant_tensor

    rows = chunk.shape[0]
    padded = _pad_k(chunk, quant.block_size)
    kb = padded.shape[1] // quant.block_size
    scheme = "sym" if quant.symmetric else "asym"
    q_weight, scale, zp = quant_tensor(padded, quant.bits, quant.block_size, scheme, "uint", 1)
    data = _pack_nc(q_weight, rows, kb, quant.bits, quant.block_size)
    scales = scale.astype(chunk.dtype).reshape(rows, kb)
    zero_points = None if quant.symmetric else _pack_zp_nc(zp, rows, quant.bits)
    return data, scales, zero_points


def _hqq(weight: FloatArray, quant: TensorQuant, shape: tuple[int, int]) -> PackedTensor:
    """HQQWeightOnlyQuantizer on the whole tensor (its early stop reads the whole tensor)."""
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        HQQWeightOnlyQuantizer,
    )

    quantizer = HQQWeightOnlyQuantizer(
        HQQWeightOnlyQuantConfig(block_size=quant.block_size, bits=quant.bits)
    )
    w = torch.from_numpy(np.ascontiguousarray(weight))
    q, scales, zeros = quantizer.quantize_internal(w, bits=quant.bits, group_size=quant.block_size)
    q = q.contiguous()
    per_byte = 8 // quant.bits
    packed = torch.zeros((q.shape[0], q.shape[1] // per_byte), dtype=torch.uint8)
    quantizer.pack_on_row_fast_248bit(packed, q, quant.bits)
    rows, cols = shape
    kb = -(-cols // quant.block_size)
    data = packed.numpy().reshape(rows, kb, quant.block_size // per_byte)
    return PackedTensor(
        "matmul",
        quant,
        shape,
        data,
        scales.contiguous().numpy().reshape(-1),
        zeros.contiguous().numpy().reshape(-1),
    )


def quantize_gather(
    weight: FloatArray,
    quant: TensorQuant,
    *,
    dtype: npt.DTypeLike = np.float32,
    threads: int | None = None,
) -> PackedTensor:
    """Quantize an embedding table ``[V, H]`` along H: Olive's OnnxBlockWiseRtnQuantization
    (numpy RTN; ``algo`` must be ``rtn``), computed in ``dtype`` (the table's dtype in the float
    model: the io dtype), cast chunk by chunk."""
    if quant.algo != "rtn":
        raise ValueError(f"the embedding gather is quantized with rtn, not {quant.algo}")
    if weight.ndim != 2:
        raise ValueError(f"an embedding table is 2-D, not {weight.shape}")
    threads = default_threads() if threads is None else threads
    rows, cols = (int(weight.shape[0]), int(weight.shape[1]))

    chunks = _row_chunks(rows, cols, even=False)
    work = [(weight[start:stop], quant, np.dtype(dtype)) for start, stop in chunks]
    data, scales, zero_points = _assemble(_parallel(_gather_block, work, threads), chunks, rows, 0)
    return PackedTensor("gather", quant, (rows, cols), data, scales, zero_points)


def _pack_along_columns(data: npt.NDArray[Any]) -> ByteArray:
    if data.shape[1] % 2:
        data = np.pad(data, ((0, 0), (0, 1)))
    return ((data[:, 0::2] & 0xF) | ((data[:, 1::2] & 0xF) << 4)).astype(np.uint8)


def _gather_block(weight: FloatArray, quant: TensorQuant, dtype: np.dtype[Any]) -> tuple[Any, ...]:
    """One task: rows of an embedding table, cast to ``dtype`` and quantized."""
    return _gather_rows(weight.astype(dtype, copy=False), quant)


def _gather_rows(data: FloatArray, quant: TensorQuant) -> tuple[Any, ...]:
    """Olive 0.13 rtn_quantization._quantize_ndarray with quantize_axis 1, on rows of a table."""
    bits, block = quant.bits, quant.block_size
    rows, k = data.shape
    kb = -(-k // block)
    scales = np.zeros((rows, kb), dtype=data.dtype)
    if quant.symmetric:
        q = np.zeros((rows, k), dtype=np.int8)
        zero_point = None
    else:
        q = np.zeros((rows, k), dtype=np.uint8)
        zero_point = np.zeros((rows, kb), dtype=np.uint8)
    qmax_sym, qmin_sym = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    qmax, mid = (1 << bits) - 1, 1 << (bits - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, i in enumerate(range(0, k, block)):
            part = data[:, i : i + block]
            if quant.symmetric:
                max_val = np.max(part, axis=1, keepdims=True)
                min_val = np.min(part, axis=1, keepdims=True)
                abs_max = np.where(np.abs(max_val) > np.abs(min_val), max_val, min_val)
                scale = abs_max / float(qmin_sym)
                qs = np.where(scale == 0, 0, part / scale).round().clip(qmin_sym, qmax_sym)
                q[:, i : i + block] = qs.astype(np.int8)
            else:
                min_val = np.minimum(part.min(axis=1, keepdims=True), 0)
                max_val = np.maximum(part.max(axis=1, keepdims=True), 0)
                scale = (max_val - min_val) / float(qmax)
                zp = np.where(scale == 0, mid, -min_val / scale).round().clip(0, qmax)
                zp = zp.astype(np.uint8)
                qs = np.where(scale == 0, mid, part / scale + zp).round().clip(0, qmax)
                q[:, i : i + block] = qs.astype(np.uint8)
                assert zero_point is not None
                zero_point[:, j : j + 1] = zp
            scales[:, j : j + 1] = scale
    if bits <= 4:
        if quant.symmetric:
            q = (q.astype(np.int16) + 8).astype(np.uint8)
        packed = _pack_along_columns(q)
        zp_out = None if zero_point is None else _pack_along_columns(zero_point)
        return packed, scales, zp_out
    if quant.symmetric:
        q = (q.astype(np.int16) + 128).astype(np.uint8)
    return q.astype(np.uint8), scales, zero_point
