"""The model builder (onnxruntime-genai 0.14.1, builders/base.py) taught to stream.

What the builder does today, and what changes while a :class:`StreamSession` is open:

- ``load_weights`` loads the whole model with ``from_pretrained``. Here: the model is made on the
  meta device from its config, and each unit the builder walks (the embedding, one decoder layer,
  the final norm, the lm_head) gets its parameters read from the safetensors files just before
  the builder reads it, and dropped again when the builder moves on.
- ``make_initializer`` keeps a (lazy) reference to every weight until ``save_model``. Here: the
  tensor is cast and written to the external data file at once; the graph keeps an
  ``ir.ExternalTensor`` pointing at it.
- ``make_matmul_int4`` writes a float MatMul that ``to_int4`` later quantizes over the whole graph
  (one protobuf of the whole model, the quantizer's copies, then ``ir.from_proto``). Here: the
  weight is quantized when the node is made (:mod:`curator.quant.kernels`, the recipe's
  :class:`~curator.quant.plan.QuantPlan`), written as the same MatMulNBits node, with the same
  names, that ``to_int4`` would have written.
- ``make_embedding`` (Olive's replacement) writes a float Gather that Olive's embedding RTN pass
  later loads the whole ONNX model again to quantize. Here: the same GatherBlockQuantized, made at
  once.
- ``save_model``: only the graph (a few MB) is serialised; the data file is already complete.
- A tied embedding with the plan's ``share_tied_embedding``: the table is quantized once, in the
  lm_head's format, when the embedding is made; the embedding's ``GatherBlockQuantized`` reads the
  lm_head ``MatMulNBits``' data (as it is, blocks along axis 2; 4-bit with zero points through a
  Reshape to ``[V, H * bits / 8]``), scales and zero points, and the lm_head node reuses them. The builder's own ``shared_embeddings`` does the same
  for a whole-graph ``to_int4`` (base.py ``make_embedding``); Olive's ModelBuilder pass replaces
  that make_embedding, so it never applied to a compile here.

What cannot stream is built the builder's own way (the log says which and why): GGUF and
pre-quantized inputs, adapters, builders with their own ``load_weights``, checkpoints that are not
safetensors, or parameters the checkpoint does not name.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.compile.stream import STREAMING_ARCHITECTURES
from curator.compile.stream.checkpoint import Checkpoint, CheckpointError
from curator.compile.stream.int8_matmul import make_matmul_int8
from curator.quant.importance import ImportanceTable, load_importance
from curator.quant.int8 import DynamicInt8
from curator.quant.kernels import PackedTensor, quantize_gather, quantize_matmul
from curator.quant.plan import (
    EMBEDDING_NODE,
    LM_HEAD_NODE,
    QuantPlan,
    TensorQuant,
    plan_for,
    share_blocker,
)

ALIGN = 4096  # tensors over ALIGN_OVER bytes start on a page boundary (mmap-friendly)
ALIGN_OVER = 1 << 20
CAST_CHUNK_ELEMENTS = 1 << 22  # a float weight is cast and written 4M values at a time
# A weight over SLICE_ELEMENTS is quantized that many weights (whole rows) at a time and each
# slice's packed data written at once: only the scales and zero points of the whole tensor are held
# (the 151,936 x 2,048 lm_head at 8 bits held 297 MiB of packed data besides its 593 MiB weight).
SLICE_ELEMENTS = 1 << 25
LOG_PREFIX = "curator-stream:"
TRACE_ENV = "CURATOR_STREAM_TRACE"  # "1": log the RSS at every unit (diagnosing memory)


def log(message: str) -> None:
    print(f"{LOG_PREFIX} {message}", flush=True)


class DataWriter:
    """The external data file, appended to tensor by tensor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("wb")
        self.offset = 0
        self.tensors = 0

    def append(self, array: np.ndarray[Any, Any]) -> tuple[int, int]:
        return self.append_pieces(int(np.asarray(array).nbytes), iter([array]))

    def append_pieces(self, length: int, pieces: Iterator[np.ndarray[Any, Any]]) -> tuple[int, int]:
        """One tensor of ``length`` bytes written piece by piece (row chunks, in order)."""
        if length > ALIGN_OVER and self.offset % ALIGN:
            pad = ALIGN - self.offset % ALIGN
            self.handle.write(b"\0" * pad)
            self.offset += pad
        start = self.offset
        written = 0
        for piece in pieces:
            data = np.ascontiguousarray(piece)
            if data.nbytes:
                self.handle.write(data.reshape(-1).view(np.uint8).data)
            written += int(data.nbytes)
        if written != length:
            raise RuntimeError(f"wrote {written} bytes of a {length}-byte tensor")
        self.offset += length
        self.tensors += 1
        return start, length

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()


@dataclass
class StreamSession:
    """One streaming build: where its data goes, how its weights are quantized."""

    out_dir: Path
    plan: QuantPlan | None = None  # None: made from plan_config once the layer count is known
    plan_config: dict[str, Any] = field(default_factory=dict)
    filename: str = "model.onnx"
    threads: int | None = None
    writer: DataWriter | None = None
    quantize_seconds: float = 0.0
    quantized: int = 0
    streamed: bool = False
    fallback_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def data_name(self) -> str:
        return self.filename + ".data"

    def quant_plan(self) -> QuantPlan:
        if self.plan is None:
            raise RuntimeError("the quantization plan is made when the weights are loaded")
        return self.plan

    def importance_for(self, node_name: str) -> np.ndarray[Any, Any] | None:
        """The plan's importance vector for ``node_name`` (read from its file once), or None."""
        path = self.quant_plan().importance
        if not path:
            return None
        table = self.stats.get("importance")
        if not isinstance(table, ImportanceTable):
            table = self.stats["importance"] = load_importance(Path(path))
        return table.for_node(node_name)

    def open_writer(self) -> DataWriter:
        if self.writer is None:
            self.writer = DataWriter(self.out_dir / self.data_name)
        return self.writer


_SESSION: StreamSession | None = None
_ORIGINAL: dict[str, Any] = {}


def open_session(session: StreamSession) -> None:
    global _SESSION
    _SESSION = session


def close_session() -> StreamSession | None:
    global _SESSION
    session, _SESSION = _SESSION, None
    if session is not None and session.writer is not None:
        session.writer.close()
    return session


def _stream(model: Any) -> StreamSession | None:
    session = getattr(model, "_curator_stream", None)
    return session if isinstance(session, StreamSession) else None


def builder_module() -> Any:
    """``onnxruntime_genai.models.builder`` (it imports ``builders.base`` under that name)."""
    return importlib.import_module("onnxruntime_genai.models.builder")


def install() -> None:
    """Patch the builder's base Model class (in this process); idempotent. Call after Olive's
    own patches (ModelBuilder.maybe_patch_quant), whose make_embedding this wraps."""
    model_class = builder_module().Model
    current = model_class.make_embedding
    if getattr(current, "_curator_stream", False):
        return
    for name in (
        "load_weights",
        "make_initializer",
        "make_matmul_int4",
        "make_matmul_float",
        "save_model",
    ):
        if name not in _ORIGINAL:
            _ORIGINAL[name] = getattr(model_class, name)
    _ORIGINAL["make_embedding"] = current
    patches = {
        "load_weights": _load_weights,
        "make_initializer": _make_initializer,
        "make_matmul_int4": _make_matmul_int4,
        "make_matmul_float": _make_matmul_float,
        "make_embedding": _make_embedding,
        "save_model": _save_model,
    }
    for name, function in patches.items():
        function._curator_stream = True  # type: ignore[attr-defined]
        setattr(model_class, name, function)


# --- weights ---------------------------------------------------------------------------------


def config_architecture(model_dir: Path) -> str | None:
    """``architectures[0]`` of the checkpoint's config.json."""
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        return str(config["architectures"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def cannot_stream(builder: Any, input_path: str, checkpoint_dir: Path) -> str | None:
    """Why this build cannot stream (None: it can)."""
    base_load = _ORIGINAL["load_weights"]
    architecture = config_architecture(checkpoint_dir) or str(getattr(builder, "model_type", ""))
    if architecture not in STREAMING_ARCHITECTURES:
        return f"architecture {architecture} is not one the streaming builder covers yet"
    if (
        type(builder).load_weights is not _load_weights
        and type(builder).load_weights is not base_load
    ):
        return f"{type(builder).__name__} loads its weights its own way"
    if str(input_path).endswith(".gguf"):
        return "a GGUF input"
    if getattr(builder, "quant_type", None) is not None:
        return "a pre-quantized input"
    if "adapter_path" in getattr(builder, "extra_options", {}):
        return "an adapter"
    if not checkpoint_dir.is_dir():
        return f"{checkpoint_dir} is not a local directory"
    return None


def _target_dtype(config: Any, checkpoint: Checkpoint) -> Any:
    """The dtype ``from_pretrained(dtype="auto")`` gives the parameters."""
    import torch

    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    configured = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(configured, torch.dtype):
        return configured
    if isinstance(configured, str) and configured in names:
        return names[configured]
    stored = checkpoint.float_dtype()
    return {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}.get(
        stored or "F32", torch.float32
    )


class _Units:
    """Reads each unit's parameters when the builder reaches it, drops them when it moves on."""

    def __init__(self, builder: Any, model: Any, checkpoint: Checkpoint, dtype: Any) -> None:
        self.builder = builder
        self.model = model
        self.checkpoint = checkpoint
        self.dtype = dtype
        self.keys: dict[int, str] = {}
        keep_fp32 = list(getattr(model, "_keep_in_fp32_modules", None) or [])
        keep_fp32 += list(getattr(model, "_keep_in_fp32_modules_strict", None) or [])
        self.keep_fp32 = keep_fp32
        missing = []
        names: dict[int, list[str]] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), []).append(name)
        for pid, aliases in names.items():
            found = next((a for a in aliases if a in checkpoint), None)
            if found is None:
                missing.append(aliases[0])
            else:
                self.keys[pid] = found
        self.missing = missing
        self.restore: list[tuple[Any, str, Any]] = []
        self.bytes_read = 0
        self.tracer: _Tracer | None = None

    def is_unit(self, module: Any) -> bool:
        import torch

        builder = self.builder
        if isinstance(module, torch.nn.Embedding) and module.weight.shape[0] == builder.vocab_size:
            return True
        if builder.is_layer(module):
            return True
        if builder.has_final_norm(module, self.model):
            return True
        return bool(builder.has_lm_head(module))

    def materialize(self, unit: Any) -> None:
        import torch

        for prefix, sub in unit.named_modules():
            for pname, param in list(sub._parameters.items()):
                if param is None or param.device.type != "meta":
                    continue
                key = self.keys[id(param)]
                tensor = self.checkpoint.read_torch(key)
                self.bytes_read += int(tensor.numel() * tensor.element_size())
                wanted = self.dtype
                if tensor.is_floating_point():
                    full = f"{prefix}.{pname}" if prefix else pname
                    if any(part in key.split(".") or part in full for part in self.keep_fp32):
                        wanted = torch.float32
                    if tensor.dtype != wanted:
                        tensor = tensor.to(wanted)
                sub._parameters[pname] = torch.nn.Parameter(tensor, requires_grad=False)
                self.restore.append((sub, pname, param))

    def release(self) -> None:
        for sub, pname, meta in self.restore:
            sub._parameters[pname] = meta
        self.restore.clear()

    def walk(self, modules: Iterator[Any]) -> Iterator[Any]:
        if self.tracer is None and os.environ.get(TRACE_ENV) == "1":
            self.tracer = _Tracer.start()  # stopped when the model is saved
        tracer = self.tracer
        try:
            for module in modules:
                if self.is_unit(module):
                    if tracer is not None:
                        tracer.mark(f"before {type(module).__name__}")
                    self.release()
                    self.materialize(module)
                yield module
        finally:
            self.release()
            if tracer is not None:
                tracer.mark("after the last unit")


def _rss_mib() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss) >> 20


class _Tracer:
    """CURATOR_STREAM_TRACE=1: this process's RSS sampled every 20 ms on a thread, so that each
    trace line gives the peak reached since the previous one (inside the unit just built)."""

    def __init__(self) -> None:
        import threading

        self.started = time.perf_counter()
        self.peak = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._sample, name="curator-trace", daemon=True)

    @classmethod
    def start(cls) -> _Tracer:
        tracer = cls()
        tracer.thread.start()
        return tracer

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            rss = _rss_mib()
            with self.lock:
                self.peak = max(self.peak, rss)

    def mark(self, what: str) -> None:
        rss = _rss_mib()
        with self.lock:
            peak, self.peak = max(self.peak, rss), rss
        seconds = time.perf_counter() - self.started
        log(f"trace: {seconds:7.1f} s {what}: rss {rss} MiB (peak since last line {peak} MiB)")

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _load_weights(self: Any, input_path: str) -> Any:
    session = _SESSION
    if session is None:
        return _ORIGINAL["load_weights"](self, input_path)
    checkpoint_dir = Path(str(self.model_name_or_path))
    reason = cannot_stream(self, input_path, checkpoint_dir)
    checkpoint = None
    if reason is None:
        try:
            checkpoint = Checkpoint(checkpoint_dir)
        except (CheckpointError, OSError, ValueError) as exc:
            reason = f"checkpoint not readable tensor by tensor ({exc})"
    if reason is not None or checkpoint is None:
        session.fallback_reason = reason
        log(f"building the model builder's own way: {reason}")
        return _ORIGINAL["load_weights"](self, input_path)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(checkpoint_dir), trust_remote_code=self.hf_remote)
    if "num_hidden_layers" in self.extra_options:
        config.num_hidden_layers = self.num_layers
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, trust_remote_code=self.hf_remote
        )
    model.eval()
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    session.stats["tied"] = head is not None and head.weight is embed.weight
    units = _Units(self, model, checkpoint, _target_dtype(config, checkpoint))
    if units.missing:
        reason = f"the checkpoint has no tensor for {', '.join(units.missing[:3])}"
        session.fallback_reason = reason
        log(f"building the model builder's own way: {reason}")
        return _ORIGINAL["load_weights"](self, input_path)
    walk = units.walk
    original_modules = model.modules

    def modules() -> Iterator[Any]:
        return walk(original_modules())

    model.modules = modules
    if session.plan is None:
        session.plan = plan_for(session.plan_config, int(self.num_layers))
    session.open_writer()
    session.streamed = True
    session.stats["units"] = units
    self._curator_stream = session
    log(
        f"streaming {checkpoint.parameters / 1e9:.2f}B parameters from {checkpoint_dir.name} "
        f"(dtype {units.dtype}) into {session.data_name}"
    )
    return model


# --- initializers ----------------------------------------------------------------------------


def _ir_tensor(tensor: Any, name: str, to: Any) -> Any:
    """The tensor the builder's make_initializer would make (cast as it would)."""
    import onnx_ir as ir
    import torch
    from onnx_ir.tensor_adapters import TorchTensor, to_torch_dtype

    if to is not None:
        if isinstance(tensor, torch.Tensor):
            return TorchTensor(tensor.to(to_torch_dtype(to)), name=name)
        if isinstance(tensor, np.ndarray):
            return TorchTensor(torch.from_numpy(tensor).to(to_torch_dtype(to)), name=name)
        return ir.tensor(tensor.numpy(), name=name)
    if isinstance(tensor, torch.Tensor):
        return TorchTensor(tensor.detach(), name=name)
    return ir.tensor(tensor, name=name)


def _write_tensor(session: StreamSession, ir_tensor: Any, name: str) -> Any:
    import onnx_ir as ir

    array = ir_tensor.numpy()
    writer = session.open_writer()
    offset, length = writer.append(array)
    return ir.ExternalTensor(
        session.data_name,
        offset,
        length,
        ir_tensor.dtype,
        shape=ir.Shape(list(ir_tensor.shape)),
        name=name,
        base_dir=str(session.out_dir),
    )


def _write_cast_in_chunks(session: StreamSession, tensor: Any, name: str, to: Any) -> Any:
    """A big torch tensor cast to ``to`` and written row chunk by row chunk (the same bytes as a
    whole-tensor cast: the cast is elementwise), so no whole cast copy exists."""
    import onnx_ir as ir
    from onnx_ir.tensor_adapters import TorchTensor, to_torch_dtype

    dtype = to_torch_dtype(to)
    rows = int(tensor.shape[0])
    per_row = max(1, tensor.numel() // max(rows, 1))
    step = max(1, CAST_CHUNK_ELEMENTS // per_row)
    length = int(tensor.numel()) * int(to.itemsize)

    def pieces() -> Iterator[np.ndarray[Any, Any]]:
        for start in range(0, rows, step):
            chunk = tensor[start : start + step].detach().to(dtype).contiguous()
            yield TorchTensor(chunk).numpy()

    offset, written = session.open_writer().append_pieces(length, pieces())
    return ir.ExternalTensor(
        session.data_name,
        offset,
        written,
        to,
        shape=ir.Shape(list(tensor.shape)),
        name=name,
        base_dir=str(session.out_dir),
    )


def _make_initializer(self: Any, tensor: Any, /, name: str, to: Any = None) -> None:
    session = _stream(self)
    if session is None:
        _ORIGINAL["make_initializer"](self, tensor, name=name, to=to)
        return
    import torch

    big = (
        isinstance(tensor, torch.Tensor)
        and tensor.dim() >= 1
        and tensor.numel() > CAST_CHUNK_ELEMENTS
    )
    if to is not None and big:
        external = _write_cast_in_chunks(session, tensor, name, to)
    else:
        external = _write_tensor(session, _ir_tensor(tensor, name, to), name)
    value = self.make_value(name, external.dtype, external.shape)
    value.const_value = external
    self.model.graph.register_initializer(value)


def _numpy_io(tensor: Any, io_dtype: Any) -> np.ndarray[Any, Any]:
    """A torch weight as numpy for the quantizers, which cast it to the io dtype chunk by chunk.

    With a float32 io dtype the stored tensor is passed as it is (bf16 as ml_dtypes.bfloat16,
    whose cast to float32 is exact, as torch's is): no whole-tensor float32 copy. Otherwise it is
    cast here by torch, as the builder would."""
    import onnx_ir as ir
    import torch
    from onnx_ir.tensor_adapters import to_torch_dtype

    if io_dtype == ir.DataType.FLOAT and tensor.dtype in (
        torch.bfloat16,
        torch.float16,
        torch.float32,
    ):
        stored = tensor.detach().contiguous()
        if stored.dtype == torch.bfloat16:
            import ml_dtypes

            raw: np.ndarray[Any, Any] = stored.view(torch.int16).numpy()
            return raw.view(ml_dtypes.bfloat16)
        view: np.ndarray[Any, Any] = stored.numpy()
        return view
    cast = tensor.detach().to(to_torch_dtype(io_dtype))
    if cast.dtype == torch.bfloat16:
        import ml_dtypes

        out: np.ndarray[Any, Any] = cast.contiguous().view(torch.int16).numpy()
        return out.view(ml_dtypes.bfloat16)
    result: np.ndarray[Any, Any] = cast.contiguous().numpy()
    return result


def _io_numpy_dtype(io_dtype: Any) -> Any:
    return io_dtype.numpy()


def _row_slices(rows: int, cols: int) -> list[tuple[int, int]]:
    """Whole rows, SLICE_ELEMENTS at most, an even number per slice (4-bit zero points are packed
    two per byte over the flattened tensor: an even slice starts on a byte)."""
    step = max(2, SLICE_ELEMENTS // max(cols, 1))
    step -= step % 2
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def _quantize_written(
    self: Any,
    session: StreamSession,
    weight: np.ndarray[Any, Any],
    quantize: Callable[[np.ndarray[Any, Any]], PackedTensor],
    weight_name: str,
    *,
    sliced: bool,
) -> list[str]:
    """``weight`` quantized and its initializers made (data, scales, zero points if any): their
    names.

    Sliced (row slices, each quantized as the whole tensor would quantize those rows: every
    algorithm but hqq works row by row): each slice's packed data is written to the data file as
    it is made, in order, as one tensor; the scales and zero points are joined at the end."""
    rows, cols = int(weight.shape[0]), int(weight.shape[1])
    slices = _row_slices(rows, cols) if sliced else [(0, rows)]
    first = quantize(weight[slices[0][0] : slices[0][1]])
    data_name, scales_name, zp_name = first.initializer_names(weight_name)
    if len(slices) == 1:
        self.make_initializer(first.data, data_name)
        self.make_initializer(first.scales, scales_name)
        names = [data_name, scales_name]
        if first.zero_points is not None:
            self.make_initializer(first.zero_points, zp_name)
            names.append(zp_name)
        return names
    import onnx_ir as ir

    scales: list[np.ndarray[Any, Any]] = []
    zero_points: list[np.ndarray[Any, Any]] = []

    def pieces() -> Iterator[np.ndarray[Any, Any]]:
        for index, (start, stop) in enumerate(slices):
            part = first if index == 0 else quantize(weight[start:stop])
            scales.append(part.scales)
            if part.zero_points is not None:
                zero_points.append(part.zero_points)
            yield part.data

    row_bytes = int(first.data.nbytes) // (slices[0][1] - slices[0][0])
    data_shape = [rows, *first.data.shape[1:]]
    offset, length = session.open_writer().append_pieces(rows * row_bytes, pieces())
    external = ir.ExternalTensor(
        session.data_name,
        offset,
        length,
        ir.DataType.UINT8,
        shape=ir.Shape(data_shape),
        name=data_name,
        base_dir=str(session.out_dir),
    )
    value = self.make_value(data_name, external.dtype, external.shape)
    value.const_value = external
    self.model.graph.register_initializer(value)
    self.make_initializer(np.concatenate(scales), scales_name)
    names = [data_name, scales_name]
    if zero_points:
        self.make_initializer(np.concatenate(zero_points), zp_name)
        names.append(zp_name)
    return names


def _make_matmul_int4(self: Any, matmul: Any, basename: str, root_input: str, **kwargs: Any) -> Any:
    session = _stream(self)
    if session is None or hasattr(matmul, "qweight") or self.quant_attrs.get("use_qdq"):
        return _ORIGINAL["make_matmul_int4"](self, matmul, basename, root_input, **kwargs)
    quant = session.quant_plan().for_node(basename)
    if quant is None:
        return self.make_matmul_float(matmul, basename, root_input, **kwargs)
    shared = session.stats.get("shared_table")
    if basename == LM_HEAD_NODE and isinstance(shared, SharedTable):
        if shared.quant != quant or shared.shape != tuple(matmul.weight.shape):
            raise RuntimeError(
                f"the shared table was written as {shared.quant} {shared.shape}, but the lm_head "
                f"is {quant} {tuple(matmul.weight.shape)}"
            )
        names = list(shared.names)  # written with the embedding: the table is stored once
        half = shared.half
    else:
        weight = _numpy_io(matmul.weight, self.io_dtype)  # [N, K]
        started = time.perf_counter()
        io = _io_numpy_dtype(self.io_dtype)
        weight_name = basename[1:].replace("/", ".") + ".weight"
        half = _half_scales(session, quant, io)
        # hqq's early stop reads the whole tensor: never sliced
        names = _quantize_written(
            self,
            session,
            weight,
            _matmul_quantizer(session, quant, io, half, basename),
            weight_name,
            sliced=quant.algo != "hqq",
        )
        session.quantize_seconds += time.perf_counter() - started
        session.quantized += 1
        del weight
    n, k = int(matmul.weight.shape[0]), int(matmul.weight.shape[1])
    output = "logits" if kwargs.get("logits", False) else f"{basename}/output_0"
    seq_dim = kwargs.get("seq_dim", "sequence_length")
    if half:  # the node reads its float16 scales widened by a Cast onnxruntime folds at load
        names[1] = _widened_scales(self, basename, names[1])
    inputs = [root_input, *names]
    attributes: dict[str, Any] = {
        "K": k,
        "N": n,
        "bits": quant.bits,
        "block_size": quant.block_size,
    }
    if quant.accuracy_level:
        attributes["accuracy_level"] = quant.accuracy_level
    self.make_node(
        "MatMulNBits",
        inputs=inputs,
        outputs=[output],
        name=f"{basename}_Q{quant.bits}",
        domain="com.microsoft",
        **attributes,
    )
    self.make_value(output, self.io_dtype, shape=["batch_size", seq_dim, n])
    return basename


def _widened_scales(self: Any, basename: str, scales: str) -> str:
    """A Cast of a MatMulNBits' float16 scales initializer to the io dtype: its output.

    onnxruntime refuses float16 scales beside float32 inputs. A Cast of a constant is folded when
    the session loads (constant folding, on at every optimization level above none), so the node
    runs in float32 on folded scales and no Cast runs per token; casting the activations instead
    cost two Casts per MatMul per token (decode 6-9% slower at two threads on SmolLM2)."""
    cast = f"{basename}/ScalesToFloat"
    self.make_cast(cast, scales, self.io_dtype, self.model.graph.initializers[scales].shape)
    return f"{cast}/output_0"


def _matmul_quantizer(
    session: StreamSession, quant: TensorQuant, io: np.dtype[Any], half: bool, node: str
) -> Callable[[np.ndarray[Any, Any]], PackedTensor]:
    """Rows of a MatMul weight (``[N, K]``) to their packed form, scales in ``io`` or float16,
    weighted by the plan's importance for ``node`` (wk_quant)."""
    importance = session.importance_for(node) if quant.algo == "wk_quant" else None

    def quantize(rows: np.ndarray[Any, Any]) -> PackedTensor:
        return quantize_matmul(
            rows,
            quant,
            scale_dtype=io,
            scales_as=np.float16 if half else None,
            threads=session.threads,
            importance=importance,
        )

    return quantize


def _half_scales(session: StreamSession, quant: TensorQuant, io: np.dtype[Any]) -> bool:
    """Whether this MatMulNBits stores float16 scales (the plan's ``half_scales``): only in a
    float32 model, and not for HQQ, whose float zero points follow the scales' type."""
    return session.quant_plan().half_scales and io == np.float32 and quant.algo != "hqq"


def _make_matmul_float(self: Any, matmul: Any, name: str, root_input: str, **kwargs: Any) -> Any:
    """int8-cpu (``matmul_int8`` in the pass config): the weight quantized as the node is made
    (:mod:`.int8_matmul`); otherwise the builder's float MatMul."""
    session = _stream(self)
    config = None if session is None else session.plan_config.get("matmul_int8")
    if session is None or not config or hasattr(matmul, "base_layer"):
        return _ORIGINAL["make_matmul_float"](self, matmul, name, root_input, **kwargs)

    int8 = session.stats.get("int8")
    if not isinstance(int8, DynamicInt8):
        int8 = session.stats["int8"] = DynamicInt8.from_json(config)
    if not int8.quantizes(name):
        return _ORIGINAL["make_matmul_float"](self, matmul, name, root_input, **kwargs)
    started = time.perf_counter()
    result = make_matmul_int8(
        self, session, int8, matmul, name, root_input, cast_chunk=CAST_CHUNK_ELEMENTS, **kwargs
    )
    session.quantize_seconds += time.perf_counter() - started
    return result


@dataclass(frozen=True)
class SharedTable:
    """A tied table written once, in the lm_head's format, when the embedding was made."""

    quant: TensorQuant
    shape: tuple[int, int]
    names: tuple[str, ...]  # the lm_head MatMulNBits' data, scales (and zero points)
    half: bool = False  # float16 scales (half_scales): the gather's output and the lm_head's
    # scales are cast to the io dtype


def _share_blocker(self: Any, session: StreamSession, embedding: Any) -> str | None:
    """Why this build does not share its embedding table with the lm_head (None: it does)."""
    if not session.stats.get("tied"):
        return "the model does not tie its embedding to its lm_head"
    if getattr(self, "exclude_embeds", False) or getattr(self, "exclude_lm_head", False):
        return "the build leaves out the embedding or the lm_head"
    if self.quant_attrs.get("use_qdq"):
        return "a QDQ build"
    if self.onnx_dtype not in _int_dtypes():
        return "the MatMuls are not quantized"
    return share_blocker(session.quant_plan().for_node(LM_HEAD_NODE), int(embedding.shape[1]))


def _int_dtypes() -> set[Any]:
    import onnx_ir as ir

    return {ir.DataType.INT4, ir.DataType.UINT4}


def _shared_embedding(self: Any, session: StreamSession, embedding: Any) -> str:
    """The tied table quantized as the lm_head (written under the lm_head's initializer names)
    and the GatherBlockQuantized that reads it: the gather's output."""
    import onnx_ir as ir

    quant = session.quant_plan().for_node(LM_HEAD_NODE)
    assert quant is not None
    table = _numpy_io(embedding, self.io_dtype)  # [V, H]: the lm_head's [N, K]
    started = time.perf_counter()
    io = _io_numpy_dtype(self.io_dtype)
    half = _half_scales(session, quant, io)
    # the gather's output takes the scales' type: float16 scales give a float16 embedding,
    # cast back to the io dtype below
    table_dtype = ir.DataType.FLOAT16 if half else self.io_dtype
    names = _quantize_written(
        self,
        session,
        table,
        _matmul_quantizer(session, quant, io, half, LM_HEAD_NODE),
        "lm_head.MatMul.weight",
        sliced=quant.algo != "hqq",
    )
    session.quantize_seconds += time.perf_counter() - started
    session.quantized += 1
    vocab, hidden = int(table.shape[0]), int(table.shape[1])
    del table
    session.stats["shared_table"] = SharedTable(quant, (vocab, hidden), tuple(names), half)
    basename = "/model/embed_tokens"
    gather_name = f"{basename}/GatherBlockQuantized"
    kb = hidden // quant.block_size
    if quant.bits == 8 or len(names) == 2:
        # the data read as MatMulNBits holds it, [V, k_blocks, block * bits / 8], blocks along
        # axis 2: only the scales (and 8-bit zero points: one per block) are reshaped to
        # [V, k_blocks, 1], and the gathered [B, S, k_blocks, block] to [B, S, H]. A Reshape of
        # the data would be folded by onnxruntime into an anonymous copy of the whole table
        # (measured on SmolLM2: +27 MB resident); read in place, it stays the data file's pages
        per_block = []
        for index, name in enumerate(names[1:]):
            reshaped = f"{basename}/Reshape_{'scales' if index == 0 else 'zero_points'}"
            self.make_reshape(
                reshaped,
                [name, f"/model/constants/INT64/[{vocab}, {kb}, 1]"],
                dtype=table_dtype if index == 0 else ir.DataType.UINT8,
                shape=[vocab, kb, 1],
            )
            per_block.append(f"{reshaped}/output_0")
        gathered = f"{gather_name}/output_0"
        self.make_node(
            "GatherBlockQuantized",
            inputs=[names[0], "input_ids", *per_block],
            outputs=[gathered],
            name=gather_name,
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=2,
            block_size=quant.block_size,
            bits=quant.bits,
        )
        self.make_value(
            gathered,
            table_dtype,
            shape=["batch_size", "sequence_length", kb, quant.block_size],
        )
        reshape_name = f"{basename}/Reshape"
        self.make_reshape(
            reshape_name,
            [gathered, f"/model/constants/INT64/[0, 0, {hidden}]"],
            dtype=table_dtype,
            shape=["batch_size", "sequence_length", hidden],
        )
        gather_output = f"{reshape_name}/output_0"
    else:
        # 4-bit zero points are packed two blocks per byte along a row: the gather reads them
        # as [V, ceil(k_blocks / 2)], with the data reshaped to [V, H * bits / 8]
        flat = hidden * quant.bits // 8
        reshape_name = f"{basename}/Reshape"
        self.make_reshape(
            reshape_name,
            [names[0], f"/model/constants/INT64/[{vocab}, {flat}]"],
            dtype=ir.DataType.UINT8,
            shape=[vocab, flat],
        )
        gather_output = f"{gather_name}/output_0"
        self.make_node(
            "GatherBlockQuantized",
            inputs=[f"{reshape_name}/output_0", "input_ids", *names[1:]],
            outputs=[gather_output],
            name=gather_name,
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=1,
            block_size=quant.block_size,
            bits=quant.bits,
        )
    log(
        f"tied embedding shares the lm_head's table ({quant.bits}-bit, block "
        f"{quant.block_size}, {quant.algo}): stored once"
    )
    if half:
        shape = ["batch_size", "sequence_length", hidden]
        self.make_value(gather_output, ir.DataType.FLOAT16, shape=shape)
        cast = f"{basename}/CastFromFloat16"
        self.make_cast(cast, gather_output, self.io_dtype, shape)
        gather_output = f"{cast}/output_0"
    return gather_output


def _quantized_gather(self: Any, session: StreamSession, embedding: Any, quant: TensorQuant) -> str:
    """The embedding table quantized on its own (GatherBlockQuantized, as Olive's
    OnnxBlockWiseRtnQuantization would write it): the gather's output."""
    table = _numpy_io(embedding, self.io_dtype)
    started = time.perf_counter()
    io = _io_numpy_dtype(self.io_dtype)

    def quantize(rows: np.ndarray[Any, Any]) -> PackedTensor:
        return quantize_gather(rows, quant, dtype=io, threads=session.threads)

    names = _quantize_written(
        self, session, table, quantize, "model.embed_tokens.weight", sliced=True
    )
    session.quantize_seconds += time.perf_counter() - started
    del table
    gather_name = "/model/embed_tokens/Gather"
    # Olive's OnnxBlockWiseRtnQuantization renames the node and its output this way
    gather_output = f"{gather_name}/output_0_Q{quant.bits}"
    self.make_node(
        "GatherBlockQuantized",
        inputs=[names[0], "input_ids", *names[1:]],
        outputs=[gather_output],
        name=f"{gather_name}_Q{quant.bits}",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=quant.block_size,
        bits=quant.bits,
    )
    return gather_output


def _make_embedding(self: Any, embedding: Any) -> None:
    session = _stream(self)
    if session is None or hasattr(embedding, "qweight"):
        _ORIGINAL["make_embedding"](self, embedding)
        return
    plan = session.quant_plan()
    quant = plan.for_node(EMBEDDING_NODE)
    blocker = _share_blocker(self, session, embedding) if plan.share_tied_embedding else "-"
    if plan.share_tied_embedding and blocker is not None:
        log(f"the embedding keeps its own table ({blocker})")
    if blocker is not None and quant is None:
        _ORIGINAL["make_embedding"](self, embedding)
        return
    import onnx_ir as ir

    basename = "/model/embed_tokens"
    if blocker is None:
        gather_output = _shared_embedding(self, session, embedding)
    else:
        assert quant is not None
        gather_output = _quantized_gather(self, session, embedding, quant)
    self.make_value(
        gather_output, self.io_dtype, shape=["batch_size", "sequence_length", self.hidden_size]
    )
    root = gather_output
    if self.embed_attrs["scale"] != 1:
        mul_name = f"{basename}/Mul"
        mul_inputs = [
            gather_output,
            f"/model/constants/{self.to_str_dtype(self.io_dtype)}/{self.embed_attrs['scale']}",
        ]
        root = f"{mul_name}/output_0"
        self.make_node("Mul", inputs=mul_inputs, outputs=[root], name=mul_name)
        self.make_value(
            root, self.io_dtype, shape=["batch_size", "sequence_length", self.hidden_size]
        )
    if self.layernorm_attrs["cast"]["use_fp32"] and self.io_dtype != ir.DataType.FLOAT:
        cast_name = f"{basename}/Cast"
        self.make_cast(
            cast_name,
            root,
            ir.DataType.FLOAT,
            shape=["batch_size", "sequence_length", self.hidden_size],
        )
        root = f"{cast_name}/output_0"
    self.layernorm_attrs["root_input"] = root
    self.layernorm_attrs["skip_input"] = root


# --- save ------------------------------------------------------------------------------------


def _leftover_matmuls(self: Any, session: StreamSession) -> int:
    """Float MatMuls with a constant weight that to_int4 would have quantized but the builder made
    outside make_matmul: quantized here, one at a time, from the data file."""
    import onnx_ir as ir

    if (
        self.onnx_dtype not in {ir.DataType.INT4, ir.DataType.UINT4}
        or session.quant_plan().matmul is None
    ):
        return 0
    count = 0
    for node in list(self.model.graph):
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        b = node.inputs[1]
        if b is None or b.const_value is None or len(b.const_value.shape) != 2:
            continue
        quant = session.quant_plan().for_node(node.name)
        if quant is None:
            continue
        weight = np.ascontiguousarray(b.const_value.numpy().T)
        packed = quantize_matmul(weight, quant, scale_dtype=weight.dtype, threads=session.threads)
        names = packed.initializer_names(b.name or "")
        inputs = [node.inputs[0]]
        for array, name in zip(
            (packed.data, packed.scales, packed.zero_points), names, strict=True
        ):
            if array is None:
                continue
            external = _write_tensor(session, ir.tensor(array, name=name), name)
            value = ir.Value(name=name, shape=external.shape, type=ir.TensorType(external.dtype))
            value.const_value = external
            self.model.graph.register_initializer(value)
            inputs.append(value)
        attributes: dict[str, Any] = {
            "K": packed.shape[1],
            "N": packed.shape[0],
            "bits": quant.bits,
            "block_size": quant.block_size,
        }
        if quant.accuracy_level:
            attributes["accuracy_level"] = quant.accuracy_level
        old_output = node.outputs[0]
        output_name = old_output.name
        old_output.name = f"{output_name}/float"
        new_output = ir.Value(name=output_name, shape=old_output.shape, type=old_output.type)
        new = ir.node(
            "MatMulNBits",
            inputs=inputs,
            attributes=attributes,
            domain="com.microsoft",
            name=f"{node.name}_Q{quant.bits}",
            outputs=[new_output],
        )
        self.model.graph.insert_after(node, new)
        old_output.replace_all_uses_with(new_output, replace_graph_outputs=True)
        self.model.graph.remove(node, safe=True)
        if b.name and not b.uses():
            self.model.graph.initializers.pop(b.name, None)
        count += 1
    return count


def _save_model(self: Any, out_dir: str) -> None:
    session = _stream(self)
    if session is None:
        _ORIGINAL["save_model"](self, out_dir)
        return
    import onnx_ir as ir

    tracer = getattr(session.stats.get("units"), "tracer", None)
    leftovers = _leftover_matmuls(self, session)
    if leftovers:
        log(f"quantized {leftovers} MatMul(s) made outside make_matmul")
    model = self.model
    model.graph.sort()
    for value in model.graph.initializers.values():  # any tensor made before streaming began
        tensor = value.const_value
        if tensor is not None and not isinstance(tensor, ir.ExternalTensor):
            value.const_value = _write_tensor(session, tensor, value.name or "")
    if session.writer is not None:
        session.writer.close()
    target = Path(out_dir) / self.filename
    data = Path(out_dir) / (self.filename + ".data")
    if target.parent.resolve() != session.out_dir.resolve() or self.filename != session.filename:
        raise RuntimeError(
            f"the streaming build wrote {session.out_dir / session.data_name}, but the builder "
            f"saves {target}"
        )
    if target.exists():
        target.unlink()
    if tracer is not None:
        tracer.mark("before saving the graph")
    ir.save(model, str(target))
    if tracer is not None:
        tracer.mark("after saving the graph")
        tracer.stop()
    units = session.stats.get("units")
    read = getattr(units, "bytes_read", 0)
    log(
        f"saved {target.name} and {data.name} ({data.stat().st_size / 2**20:.0f} MiB, "
        f"{session.writer.tensors if session.writer else 0} tensors); read {read / 2**20:.0f} MiB; "
        f"{session.quantized} MatMul weights quantized in {session.quantize_seconds:.1f} s"
    )
    if os.path.isdir(self.cache_dir) and not os.listdir(self.cache_dir):
        os.rmdir(self.cache_dir)
    sys.stdout.flush()


def quantize_saved_embedding(
    model_dir: Path, quant: TensorQuant, filename: str = "model.onnx"
) -> bool:
    """Quantize the embedding gather of a saved model (the whole model loaded: today's cost, for
    builds that could not stream). False when the model has no float embedding gather."""
    import onnx_ir as ir

    path = model_dir / filename
    model = ir.load(str(path))
    node = next(
        (n for n in model.graph if n.name == EMBEDDING_NODE and n.op_type == "Gather"), None
    )
    if node is None or node.inputs[0] is None or node.inputs[0].const_value is None:
        return False
    weight = node.inputs[0]
    table = weight.const_value
    assert table is not None
    packed = quantize_gather(table.numpy(), quant)
    names = packed.initializer_names(weight.name or "model.embed_tokens.weight")
    inputs: list[Any] = []
    for array, name in zip((packed.data, packed.scales, packed.zero_points), names, strict=True):
        if array is None:
            continue
        value = ir.Value(name=name, const_value=ir.tensor(array, name=name))
        model.graph.register_initializer(value)
        inputs.append(value)
    inputs.insert(1, node.inputs[1])
    old_output = node.outputs[0]
    new_output = ir.Value(
        name=f"{old_output.name}_Q{quant.bits}", shape=old_output.shape, type=old_output.type
    )
    new = ir.node(
        "GatherBlockQuantized",
        inputs=inputs,
        attributes={
            "gather_axis": 0,
            "quantize_axis": 1,
            "block_size": quant.block_size,
            "bits": quant.bits,
        },
        domain="com.microsoft",
        name=f"{node.name}_Q{quant.bits}",
        outputs=[new_output],
    )
    model.graph.insert_after(node, new)
    old_output.replace_all_uses_with(new_output, replace_graph_outputs=True)
    model.graph.remove(node, safe=True)
    if weight.name and not weight.uses():
        model.graph.initializers.pop(weight.name, None)
    ir.save(model, str(path), external_data=filename + ".data", size_threshold_bytes=0)
    return True
