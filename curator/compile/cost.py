"""What a compile will cost: peak memory of the compile's process tree and wall time, before it runs.

A streamed build (recipes whose builder pass is ``CuratorModelBuilder``, on an architecture the
streaming builder covers) holds one unit at a time: the embedding, one decoder layer, or the
lm_head, in the checkpoint's stored dtype, plus the quantized copy of its largest tensor. Its peak
is a fixed base plus the largest unit::

    peak = BASE + max(embedding, layer, lm_head)
    embedding / lm_head = vocab x hidden x (stored bytes + packed bytes of its quantization)
    layer               = layer parameters x stored bytes + packed bytes of its largest tensor

so it grows with the vocabulary and the layer width, not with the depth. A pass after the builder
that loads the whole ONNX model (OnnxDynamicQuantization) costs per parameter, as does a build that
cannot stream (the builder's own path: ``ram_factor`` bytes per parameter of the recipe).

Constants were measured on this project's size ladder (perf/ladder.py; random weights in
Qwen2.5 shapes, bf16, 2 cores); README "Compile cost" has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from curator.portable import usable_cpu_count
from curator.recipes import Recipe, load_recipes

STREAMING_PASS = "CuratorModelBuilder"
# Olive, torch, transformers, onnxruntime and the builder imported, the graph, the quantizers'
# chunks in flight: fitted on the measured peaks (0.4B int4-cpu 566 MiB, 1.5B fp32-cpu 949 MiB,
# 3B int4-cpu-accurate 1,244 MiB, less their largest unit: 461-504 MiB).
BASE_BYTES = 490 * 2**20
LEGACY_OVERHEAD_BYTES = 800_000_000  # the builder's own path (curator.recipes' figure)
# Packed bytes per parameter of a quantized weight, block 32 (data + float32 scales + zero points).
PACKED = {4: 0.5 + 4 / 32 + 0.5 / 32, 8: 1.0 + 4 / 32 + 1 / 32}
PACKED_DATA = {PACKED[4]: 0.5, PACKED[8]: 1.0}  # of which the packed data
# A weight over SLICE_ELEMENTS is quantized in row slices, each slice's packed data written as it
# is made (curator.compile.stream.builder_patch.SLICE_ELEMENTS): its scales and zero points are
# held whole, its packed data one slice at a time.
SLICE_ELEMENTS = 1 << 25
# Passes after the builder that load the whole ONNX model: bytes per parameter. Olive's dynamic
# quantization (int8-cpu before it streamed, tests/data/recipes/int8-cpu-reference.json): 7.0 GiB
# peak on the 0.42B shape (16 bytes/parameter above the base); the embedding RTN pass (today's
# int4-cpu reference, not shipped) taken as half of that.
POST_PASS_BYTES_PER_PARAMETER = {
    "OnnxDynamicQuantization": 16.0,
    "OnnxBlockWiseRtnQuantization": 8.0,
}
# int8-cpu (``matmul_int8``): each MatMul weight cast and quantized chunk by chunk as it is
# made (curator.compile.stream.int8_matmul), written at once: no whole quantized copy is held,
# so its peak is fp32-cpu's plus the chunks in flight (float32 + int8, 4M elements, one per
# quantizer thread plus one, at most 8 threads). Its wall time on 2 cores, fitted on the ladder
# under the heavy lock (0.42B: 38.3 s, 622 MiB whole tree; 1.54B: 40.5 s, 47 s CPU, 1,004 MiB):
# start-up dominates, the weights cost a few seconds per billion.
INT8_CPU_SECONDS_PER_BILLION = 30.0
INT8_STARTUP_SECONDS = 30.0
INT8_SECONDS_PER_BILLION = 7.0
INT8_CHUNK_BYTES = (1 << 22) * 5
INT8_MAX_THREADS = 8
# The worker processes that quantize a streamed build's weights (curator.quant.kernels: spawned,
# one per usable core when there are 2 or more, at most KERNEL_MAX_WORKERS), each its own Python,
# numpy and onnxruntime's k-quant module: 113 MiB resident once it is imported (35 MiB of it
# shared libraries, which a tree's RSS counts once per process) plus a task's 13 MiB (measured
# at 42 MiB in all with numpy alone), and multiprocessing's resource tracker (12 MiB).
KERNEL_WORKER_BYTES = 126 * 2**20
KERNEL_POOL_BYTES = 12 * 2**20
KERNEL_MAX_WORKERS = 8  # curator.quant.kernels.MAX_WORKERS
KERNEL_TASK_ELEMENTS = 1 << 18  # curator.quant.kernels.TASK_ELEMENTS
# Wall time on an idle machine: Olive's start, reading/writing, and quantizing, per billion
# parameters on one core (measured CPU seconds), divided by the cores the quantizers use.
# k_quant: the 0.42B int4-cpu compile (perf.ladder --cores 1,2, heavy lock, load 1.2-2.2) took
# 86.2 s pinned to one core (83 s CPU), 10 s of it outside the builder pass (Olive's start, the
# genai config, placing the files): the pass, nearly all k-quant, is 180 s per billion in all.
# On 2 cores, quantizing in 2 worker processes: 64.4 s in all, the pass 1.47x faster (51.6 vs
# 75.6 s; the workers' CPU 10-20% above one core's for the same work); the 1.54B rung 166.9 s
# (296 s CPU, load 1.5-2.1). Both 2-core figures within 15% with the quantizing 1.7x faster (a
# bigger model is more quantizing and less start-up). A loaded machine stretches the wall time by
# the share of the cores it leaves.
STARTUP_SECONDS = 10.0
IO_SECONDS_PER_BILLION = 20.0
CPU_SECONDS_PER_BILLION = {
    "k_quant": 160.0,
    "rtn": 30.0,
    "rtn_inc": 60.0,
    "hqq": 200.0,
    # fp32-cpu: no quantizer, so one core whatever the machine has; writing 4 bytes per weight
    # and casting them (ladder: 0.42B 77 s, 1.54B 323 s; was predicted 21 s and 50 s).
    "float": 160.0,
    "int8": INT8_CPU_SECONDS_PER_BILLION,
}
PARALLEL_EFFICIENCY = 0.85  # 2 cores quantize 1.7x one core (fitted above)
LEGACY_SECONDS_PER_BILLION = 450.0  # the builder's own int4 path (issue 20: 641 s at 1.41B)
# A first pass in torch slower than the builder: Olive's Gptq (int4-gptq-cpu) on the 0.42B bf16
# ladder rung, 64 calibration texts: 859 s wall, 812 s CPU on one core (load average 3-5).
FIRST_PASS_SECONDS_PER_BILLION = {"Gptq": 2000.0}
# A first pass that quantizes the model in torch holds it in its stored dtype, so its
# ``ram_factor`` (measured on fp32 checkpoints) scales with the stored width: Olive's Rtn
# (int4-rtn-cpu) peaked at 1,748 MiB on the 0.42B bf16 ladder rung, 5.0 x 2/4 bytes per
# parameter + the overhead (1,764 MiB); Olive's Gptq (int4-gptq-cpu) at 2,405 MiB on the same
# rung, 8.3 x 2/4 + the overhead (2,412 MiB). The builder's own path casts to fp32 whatever is
# stored (issue 20: 1.41B 14.15 GiB from fp32, 13.8 GiB from bf16).
STORED_DTYPE_PASSES = frozenset({"Rtn", "Gptq"})


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only model that set a streamed compile's memory."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape | None:
        """From a config.json (its ``text_config`` for a multimodal wrapper); None if unreadable."""
        text = config.get("text_config")
        source = text if isinstance(text, Mapping) and "hidden_size" in text else config
        try:
            hidden = int(source["hidden_size"])
            heads = int(source["num_attention_heads"])
            shape = cls(
                vocab=int(source.get("vocab_size") or config["vocab_size"]),
                hidden=hidden,
                layers=int(source["num_hidden_layers"]),
                intermediate=int(source.get("intermediate_size") or 4 * hidden),
                heads=heads,
                kv_heads=int(source.get("num_key_value_heads") or heads),
                head_dim=int(source.get("head_dim") or hidden // heads),
                tied=bool(
                    config.get("tie_word_embeddings", source.get("tie_word_embeddings", False))
                ),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        return shape if min(shape.vocab, shape.hidden, shape.layers) > 0 else None

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden

    @property
    def qkv_parameters(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim * self.hidden

    @property
    def layer_parameters(self) -> int:
        attention = self.qkv_parameters + self.heads * self.head_dim * self.hidden
        return attention + 3 * self.hidden * self.intermediate

    @property
    def largest_layer_tensor(self) -> int:
        return max(self.qkv_parameters, self.hidden * self.intermediate)


@dataclass(frozen=True)
class CompileCost:
    peak_bytes: int
    seconds: float
    streamed: bool
    basis: str  # one line: what the figure is made of


def _builder_config(recipe: Recipe) -> tuple[str, dict[str, Any]] | None:
    for step in recipe.passes:
        if step.type in (STREAMING_PASS, "ModelBuilder"):
            return step.type, step.config
    return None


def streams(recipe: Recipe, architecture: str | None) -> bool:
    """Whether ``recipe`` compiles this architecture with the streaming builder."""
    from curator.compile.stream import STREAMING_ARCHITECTURES  # start-up: kept off --help

    builder = _builder_config(recipe)
    if builder is None or builder[0] != STREAMING_PASS or recipe.passes[0].type != STREAMING_PASS:
        return False
    return architecture is None or architecture in STREAMING_ARCHITECTURES


def _quant_bits(config: Mapping[str, Any]) -> tuple[float, float, float, str]:
    """(packed bytes/param of MatMul weights, of the lm_head, of the embedding, algorithm)."""
    embedding_cfg = config.get("embedding_quant")
    embedding = (
        PACKED[int(embedding_cfg.get("bits", 4))] if isinstance(embedding_cfg, Mapping) else 0.0
    )
    if config.get("matmul_int8"):
        return 0.0, 0.0, embedding, "int8"  # written chunk by chunk: nothing whole held
    if config.get("precision") != "int4":
        return 0.0, 0.0, embedding, "float"
    preset = str(config.get("int4_algo_config") or "default")
    algo = "rtn" if preset == "default" else ("rtn_inc" if preset.startswith("rtn") else "k_quant")
    lm_head = (
        PACKED[8]
        if preset in ("rtn_last", "k_quant", "k_quant_mixed", "k_quant_last")
        else PACKED[4]
    )
    return PACKED[4], lm_head, embedding, algo


def kernel_workers(cores: int) -> int:
    """The quantizer processes a streamed build starts on ``cores`` cores (none on one)."""
    return min(cores, KERNEL_MAX_WORKERS) if cores > 1 else 0


def held_packed(parameters: int, packed: float) -> float:
    """Bytes of a quantized weight of ``parameters`` values (``packed`` bytes each, 0: kept
    float) held at once while it is made: all of it, or, sliced, its scales and zero points and
    one slice's packed data."""
    if not packed or parameters <= SLICE_ELEMENTS:
        return parameters * packed
    data = PACKED_DATA.get(packed, packed)
    return parameters * (packed - data) + SLICE_ELEMENTS * data


def predict(
    recipe: Recipe,
    parameters: int,
    *,
    shape: ModelShape | None = None,
    stored_bytes: float = 2.0,
    architecture: str | None = None,
    cores: int | None = None,
) -> CompileCost:
    """The predicted peak RSS of the compile's process tree and its wall time on an idle machine
    with ``cores`` cores (default: those this process may use, which the compile inherits)."""
    cores = usable_cpu_count() if cores is None else cores
    billions = parameters / 1e9
    if not streams(recipe, architecture):
        factor = recipe.ram_factor
        if recipe.passes and recipe.passes[0].type in STORED_DTYPE_PASSES:
            factor *= stored_bytes / 4.0
        peak = int(LEGACY_OVERHEAD_BYTES + factor * parameters)
        first = recipe.passes[0].type if recipe.passes else ""
        per_billion = FIRST_PASS_SECONDS_PER_BILLION.get(first, LEGACY_SECONDS_PER_BILLION)
        seconds = STARTUP_SECONDS + per_billion * billions
        why = f"the model builder's own path: {factor:g} bytes per parameter"
        return CompileCost(peak, seconds, False, why)
    builder = _builder_config(recipe)
    assert builder is not None
    matmul, lm_head, embedding, algo = _quant_bits(builder[1])
    if shape is not None:
        emb = shape.embedding_parameters
        units = {
            "embedding": emb * stored_bytes + held_packed(emb, embedding),
            "lm_head": emb * stored_bytes + held_packed(emb, lm_head),
            "a layer": shape.layer_parameters * stored_bytes
            + held_packed(shape.largest_layer_tensor, matmul)
            + stored_bytes * shape.qkv_parameters,  # q, k and v concatenated
        }
    else:  # no config: the embedding taken as 30% of the parameters (0.5B-1.5B models: 15-28%)
        table = int(0.3 * parameters)
        units = {
            "the largest unit (estimated)": table * stored_bytes + held_packed(table, PACKED[8])
        }
    unit, unit_bytes = max(units.items(), key=lambda item: item[1])
    peak = BASE_BYTES + int(unit_bytes)
    basis = f"streamed: {BASE_BYTES >> 20} MiB + {unit} ({int(unit_bytes) >> 20} MiB)"
    if algo == "int8":
        in_flight = (min(max(cores, 1), INT8_MAX_THREADS) + 1) * INT8_CHUNK_BYTES
        peak += in_flight
        basis += f" + int8 chunks in flight ({in_flight >> 20} MiB)"
    quantizes = algo not in ("float", "int8") or embedding
    biggest = max(shape.embedding_parameters, shape.largest_layer_tensor) if shape else parameters
    # a weight of one task or less is quantized in the build's own process (a tiny model: none)
    workers = kernel_workers(cores) if quantizes and biggest > KERNEL_TASK_ELEMENTS else 0
    if workers:
        pool = KERNEL_POOL_BYTES + workers * KERNEL_WORKER_BYTES
        peak += pool
        basis += f" + {workers} quantizer processes ({pool >> 20} MiB)"
    for step in recipe.passes[1:]:
        whole = POST_PASS_BYTES_PER_PARAMETER.get(step.type)
        if whole is not None and BASE_BYTES + whole * parameters > peak:
            peak = int(BASE_BYTES + whole * parameters)
            basis = f"{step.type} loads the whole model: {whole:g} bytes per parameter"
    on_workers = cores > 1 and algo != "float"
    parallel = max(1.0, min(cores, 2) * PARALLEL_EFFICIENCY) if on_workers else 1.0
    cpu = CPU_SECONDS_PER_BILLION[algo] * billions
    seconds = STARTUP_SECONDS + IO_SECONDS_PER_BILLION * billions + cpu / parallel
    if algo == "int8":
        seconds = INT8_STARTUP_SECONDS + INT8_SECONDS_PER_BILLION * billions
    return CompileCost(peak, seconds, True, basis)


def estimate(
    recipe: Recipe,
    parameters: int,
    config: Mapping[str, Any] | None = None,
    stored_bytes: float = 2.0,
    cores: int | None = None,
) -> CompileCost:
    """:func:`predict` from a config.json (its shape and architecture) when there is one, for the
    cores this process may use (the compile's child inherits them)."""
    shape = ModelShape.from_config(config) if config else None
    architectures = (config or {}).get("architectures")
    architecture = (
        str(architectures[0]) if isinstance(architectures, list) and architectures else None
    )
    return predict(
        recipe,
        parameters,
        shape=shape,
        stored_bytes=stored_bytes,
        architecture=architecture,
        cores=cores,
    )


# Real models' shapes and parameter counts, for what a recipe costs before a source is chosen
# (``curator recipes show``): a 1.5B and a 7B, the sizes teams register (issue 20).
REFERENCE_MODELS: dict[str, tuple[ModelShape, int]] = {
    "Qwen2.5-1.5B": (ModelShape(151936, 1536, 28, 8960, 12, 2, 128, True), 1_543_714_304),
    "Qwen2.5-7B": (ModelShape(152064, 3584, 28, 18944, 28, 4, 128, False), 7_615_616_512),
}


def reference_costs(recipe: Recipe) -> dict[str, CompileCost]:
    """What ``recipe`` is predicted to cost on each of :data:`REFERENCE_MODELS` (bf16 on disk)."""
    return {
        name: predict(recipe, parameters, shape=shape, architecture="Qwen2ForCausalLM")
        for name, (shape, parameters) in REFERENCE_MODELS.items()
    }


def predict_compile_peak_bytes(
    recipe: Recipe,
    parameter_count: int,
    *,
    config: Mapping[str, Any] | None = None,
    stored_bytes: float = 2.0,
) -> int:
    """Predicted peak RSS of the Olive subprocess tree compiling a model of this size; with the
    model's config.json, from its shape (a streamed build holds one unit)."""
    return estimate(recipe, parameter_count, config, stored_bytes).peak_bytes


def fitting_recipes(
    recipe: Recipe,
    parameters: int,
    available: int,
    config: Mapping[str, Any] | None = None,
    stored_bytes: float = 2.0,
) -> tuple[str, ...]:
    """The other recipes for the same device, needing no calibration data, predicted to fit."""
    return tuple(
        other.name
        for other in load_recipes()
        if other.name != recipe.name
        and other.device == recipe.device
        and not other.needs_calibration
        and estimate(other, parameters, config, stored_bytes).peak_bytes <= available
    )
