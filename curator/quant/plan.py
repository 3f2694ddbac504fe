"""A per-tensor quantization plan: which weight gets which bits, block size, symmetry and algorithm.

A compile's weights are named by the ONNX node the model builder (onnxruntime-genai 0.14.1) makes
for them, e.g. ``/model/layers.3/attn/qkv_proj/MatMul``, ``/model/layers.3/mlp/down_proj/MatMul``,
``/lm_head/MatMul`` and ``/model/embed_tokens/Gather``. A plan gives every MatMul weight its
:class:`TensorQuant` (or keeps it float), and the embedding gather its own.

A recipe carries a plan in the ``CuratorModelBuilder`` pass config (see recipes/README.md)::

    "int4_block_size": 32, "int4_is_symmetric": false, "int4_accuracy_level": 4,
    "int4_algo_config": "k_quant_mixed",            # the builder's presets, expanded by plan_for()
    "embedding_quant": {"bits": 4, "block_size": 32, "symmetric": false, "algo": "rtn"},
    "tensor_overrides": [                            # applied in order; the last match wins
        {"match": "/model/layers.*/mlp/down_proj/MatMul", "bits": 8},
        {"match": "/lm_head/MatMul", "keep_float": true}
    ],
    "share_tied_embedding": true,                    # a tied table written once (below)
    "half_scales": true,                             # float16 MatMulNBits scales (below)
    "importance": "budget-kl-0-1.importance.safetensors"  # wk_quant's input weights (below)

``share_tied_embedding``: when the model ties its embedding to its lm_head, the embedding gather
reads the lm_head MatMul's quantized data, scales and zero points (``GatherBlockQuantized`` takes
``MatMulNBits``' layout, the data reshaped to ``[V, H * bits / 8]``), so the table is stored once,
in the lm_head's format. :func:`share_blocker` says when a format cannot be shared; the embedding
then gets its own format (``embedding_quant``) as without the option.

``half_scales``: in a float32 model, every MatMulNBits' scales are stored as float16 and the node
reads them through a Cast to float32 that onnxruntime folds when it loads the model
(onnxruntime refuses float16 scales beside float32 inputs): a scale costs 16 bits on disk instead
of 32, 0.5 bit per weight at block 32, and the node runs in float32 as without the option
(recipes/README.md measures fidelity and speed). A
table shared with the embedding gather is float16 too (the gather's output, whose type follows the
scales, is cast back); HQQ nodes (float zero points that follow the scales' type) keep float32.

``importance``: a file of per-input importance vectors for ``wk_quant`` nodes
(:mod:`curator.quant.importance`), relative to the recipe file; a ``wk_quant`` node the file has
no vector for weighs its inputs alike.

``match`` is a shell-style pattern (:func:`fnmatch.fnmatchcase`) on the node name, or a regular
expression when it starts with ``re:``. Fields an override leaves out keep the value it overrides.

Algorithms (``algo``), each bit-identical to the whole-model pass it replaces
(:mod:`curator.quant.kernels`):

- ``rtn``: block round-to-nearest. MatMul: onnxruntime's C++ kernel (``quantize_matmul_4bits`` /
  ``_8bits``), what ``MatMulNBitsQuantizer``'s default config and the builder's
  ``int4_algo_config: default`` use. Gather: Olive's ``OnnxBlockWiseRtnQuantization`` numpy code.
- ``rtn_inc``: the Intel Neural Compressor RTN in onnxruntime (builder ``int4_algo_config: rtn``).
- ``k_quant``: llama.cpp's k-quant search for scale and minimum (builder ``k_quant*``); always
  asymmetric (it writes zero points whatever ``symmetric`` says, as onnxruntime does).
- ``wk_quant``: curator's weighted k-quant (:mod:`curator.quant.weighted`): the scale and integer
  zero point searched as stored, each input weighted by its importance (the plan's
  ``importance`` file, below); always asymmetric. No whole-model pass to be identical to.
- ``hqq``: half-quadratic quantization (onnxruntime's ``HQQWeightOnlyQuantizer``); asymmetric.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Algo = Literal["rtn", "rtn_inc", "k_quant", "wk_quant", "hqq"]
ALGOS: tuple[str, ...] = ("rtn", "rtn_inc", "k_quant", "wk_quant", "hqq")
BITS: tuple[int, ...] = (4, 8)
EMBEDDING_NODE = "/model/embed_tokens/Gather"
LM_HEAD_NODE = "/lm_head/MatMul"

# The builder's int4_algo_config presets (onnxruntime_genai 0.14.1 base.py make_int4_algo_config).
BUILDER_PRESETS: tuple[str, ...] = (
    "default",
    "rtn",
    "rtn_last",
    "k_quant",
    "k_quant_mixed",
    "k_quant_last",
)


class PlanError(ValueError):
    """A plan or override that cannot be applied (unknown algorithm, bits, bad pattern)."""


@dataclass(frozen=True)
class TensorQuant:
    """How one weight is quantized."""

    bits: int = 4
    block_size: int = 32
    symmetric: bool = False
    algo: str = "rtn"
    accuracy_level: int = 4  # MatMulNBits attribute: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise PlanError(f"bits must be one of {BITS}, not {self.bits}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise PlanError(f"block_size must be a power of two >= 16, not {self.block_size}")
        if self.algo not in ALGOS:
            raise PlanError(f"algo must be one of {', '.join(ALGOS)}, not {self.algo!r}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise PlanError(f"accuracy_level must be 0-4, not {self.accuracy_level}")

    @property
    def writes_zero_points(self) -> bool:
        """k-quant and HQQ always write zero points (onnxruntime's behaviour)."""
        return not self.symmetric or self.algo in ("k_quant", "wk_quant", "hqq")


@dataclass(frozen=True)
class TensorOverride:
    """One ``tensor_overrides`` entry: the fields it sets on every node its pattern matches."""

    match: str
    bits: int | None = None
    block_size: int | None = None
    symmetric: bool | None = None
    algo: str | None = None
    accuracy_level: int | None = None
    keep_float: bool = False

    def matches(self, node_name: str) -> bool:
        if self.match.startswith("re:"):
            return re.fullmatch(self.match[3:], node_name) is not None
        return fnmatch.fnmatchcase(node_name, self.match)

    def apply(self, base: TensorQuant) -> TensorQuant:
        return TensorQuant(
            bits=base.bits if self.bits is None else self.bits,
            block_size=base.block_size if self.block_size is None else self.block_size,
            symmetric=base.symmetric if self.symmetric is None else self.symmetric,
            algo=base.algo if self.algo is None else self.algo,
            accuracy_level=(
                base.accuracy_level if self.accuracy_level is None else self.accuracy_level
            ),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorOverride:
        known = {"match", "bits", "block_size", "symmetric", "algo", "accuracy_level", "keep_float"}
        unknown = set(data) - known
        if unknown:
            raise PlanError(f"unknown tensor_overrides field(s): {', '.join(sorted(unknown))}")
        match = data.get("match")
        if not isinstance(match, str) or not match:
            raise PlanError("every tensor_overrides entry needs a 'match' pattern")
        if match.startswith("re:"):
            try:
                re.compile(match[3:])
            except re.error as exc:
                raise PlanError(f"tensor_overrides pattern {match!r}: {exc}") from None
        override = cls(
            match=match,
            bits=_opt_int(data, "bits"),
            block_size=_opt_int(data, "block_size"),
            symmetric=_opt_bool(data, "symmetric"),
            algo=data.get("algo"),
            accuracy_level=_opt_int(data, "accuracy_level"),
            keep_float=bool(data.get("keep_float", False)),
        )
        override.apply(TensorQuant())  # validates the values
        return override

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"match": self.match}
        for key in ("bits", "block_size", "symmetric", "algo", "accuracy_level"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.keep_float:
            out["keep_float"] = True
        return out


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"tensor_overrides {key} must be an integer, not {value!r}")
    return value


def _opt_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise PlanError(f"tensor_overrides {key} must be true or false, not {value!r}")
    return value


@dataclass(frozen=True)
class QuantPlan:
    """The quantization of every weight of a compile.

    ``matmul`` is the default for MatMul weights (None: the compile keeps them float, e.g.
    fp32-cpu); ``embedding`` the embedding gather's (None: float); ``overrides`` refine per node,
    in order, the last match winning (also on the embedding's node name);
    ``share_tied_embedding``: a tied embedding gather reads the lm_head's quantized table;
    ``half_scales``: float16 MatMulNBits scales in a float32 model; ``importance``: the path of
    wk_quant's importance file.
    """

    matmul: TensorQuant | None
    embedding: TensorQuant | None = None
    overrides: tuple[TensorOverride, ...] = ()
    share_tied_embedding: bool = False
    half_scales: bool = False
    importance: str | None = None

    def for_node(self, node_name: str) -> TensorQuant | None:
        """The quantization of the weight of ``node_name`` (None: kept float)."""
        base = self.embedding if node_name == EMBEDDING_NODE else self.matmul
        result = base
        for override in self.overrides:
            if override.matches(node_name):
                if override.keep_float:
                    result = None
                else:
                    result = override.apply(result or base or TensorQuant())
        return result

    def with_overrides(self, extra: Iterable[TensorOverride]) -> QuantPlan:
        return replace(self, overrides=(*self.overrides, *extra))

    def describe(self, node_names: Sequence[str]) -> dict[str, TensorQuant | None]:
        """Every node's quantization (for a report, or for BUDGET to diff two plans)."""
        return {name: self.for_node(name) for name in node_names}


def config_problem(config: Mapping[str, Any]) -> str | None:
    """What is wrong with a ``CuratorModelBuilder`` pass config's plan options (None: nothing),
    checked where the recipe is read rather than in the compile's child process."""
    try:
        plan_for(config, 0)
    except PlanError as exc:
        return str(exc)
    if config.get("stream") is False:
        for key in ("half_scales", "importance"):
            if config.get(key):
                return f"{key} needs the streaming build: leave stream on"
    return None


def share_blocker(quant: TensorQuant | None, cols: int) -> str | None:
    """Why a tied table quantized for the lm_head MatMul as ``quant`` (``cols`` = hidden size)
    cannot also be the embedding's ``GatherBlockQuantized`` table (None: it can).

    The pinned onnxruntime's GatherBlockQuantized reads uint8 data of 4 or 8 bits, blocks along
    the hidden axis, scales ``[V, k_blocks]`` and uint8 zero points ``[V, ceil(k_blocks * bits /
    8)]`` (default 8 / 128 when absent, MatMulNBits' own convention): MatMulNBits' layout whenever
    the blocks divide the row (no padding) and the zero points are uint8 (not HQQ's floats)."""
    if quant is None:
        return "the lm_head is kept float"
    if quant.algo == "hqq":
        return "HQQ keeps float zero points, which GatherBlockQuantized does not read"
    if cols % quant.block_size:
        return (
            f"block {quant.block_size} does not divide the hidden size {cols} (the MatMul's "
            "padded rows are not the gather's layout)"
        )
    return None


def k_quant_mixed_layers(num_layers: int) -> list[int]:
    """The layers whose qkv/v and down projections k_quant_mixed keeps at 8 bits (llama.cpp's
    Q4_K_M rule as the builder copies it: the first and last eighth, and every third in between)."""
    return [
        i
        for i in range(num_layers)
        if i < num_layers / 8 or i >= 7 * num_layers / 8 or (i - round(num_layers / 8)) % 3 == 2
    ]


def builder_preset_overrides(preset: str, num_layers: int) -> list[TensorOverride]:
    """The per-node 8-bit overrides of the builder's ``int4_algo_config`` presets."""
    out: list[TensorOverride] = []
    if preset == "k_quant_mixed":
        for i in k_quant_mixed_layers(num_layers):
            for proj in ("attn/qkv_proj", "attn/v_proj", "mlp/down_proj"):
                out.append(TensorOverride(match=f"/model/layers.{i}/{proj}/MatMul", bits=8))
    if preset in ("rtn_last", "k_quant", "k_quant_mixed", "k_quant_last"):
        out.append(TensorOverride(match=LM_HEAD_NODE, bits=8))
    return out


def preset_algo(preset: str) -> str:
    if preset not in BUILDER_PRESETS:
        raise PlanError(
            f"int4_algo_config {preset!r} is not one the streaming compile knows "
            f"({', '.join(BUILDER_PRESETS)})"
        )
    if preset == "default":
        return "rtn"
    if preset.startswith("rtn"):
        return "rtn_inc"
    return "k_quant"


def plan_for(config: Mapping[str, Any], num_layers: int) -> QuantPlan:
    """The plan a ``CuratorModelBuilder`` pass config asks for.

    ``precision`` fp32/fp16/bf16: MatMul weights stay float (the embedding may still be
    quantized through ``embedding_quant``). ``int4``: the builder's ``int4_*`` options, its
    ``int4_algo_config`` preset expanded into overrides, then ``int4_nodes_to_exclude`` (kept
    float), then the recipe's own ``tensor_overrides``.
    """
    precision = str(config.get("precision", "fp32"))
    matmul: TensorQuant | None = None
    overrides: list[TensorOverride] = []
    if precision == "int4":
        preset = str(config.get("int4_algo_config") or "default")
        matmul = TensorQuant(
            bits=4,
            block_size=int(config.get("int4_block_size", 32)),
            symmetric=bool(config.get("int4_is_symmetric", True)),
            algo=preset_algo(preset),
            accuracy_level=int(config.get("int4_accuracy_level", 4)),
        )
        overrides += builder_preset_overrides(preset, num_layers)
        excluded = config.get("int4_nodes_to_exclude") or []
        overrides += [TensorOverride(match=str(name), keep_float=True) for name in excluded]
    elif precision not in ("fp32", "fp16", "bf16"):
        raise PlanError(f"precision {precision!r} cannot be compiled by the streaming builder")
    embedding_raw = config.get("embedding_quant")
    embedding = None
    if embedding_raw:
        if not isinstance(embedding_raw, Mapping):
            raise PlanError("embedding_quant must be an object")
        override = TensorOverride.from_json({"match": EMBEDDING_NODE, **embedding_raw})
        embedding = override.apply(TensorQuant(algo="rtn", symmetric=False))
    for raw in config.get("tensor_overrides") or []:
        if not isinstance(raw, Mapping):
            raise PlanError("every tensor_overrides entry must be an object")
        overrides.append(TensorOverride.from_json(raw))
    flags = {key: config.get(key) for key in ("share_tied_embedding", "half_scales")}
    for key, value in flags.items():
        if value is not None and not isinstance(value, bool):
            raise PlanError(f"{key} must be true or false, not {value!r}")
    importance = config.get("importance")
    if importance is not None and (not isinstance(importance, str) or not importance):
        raise PlanError(f"importance must be the name of a file, not {importance!r}")
    return QuantPlan(
        matmul=matmul,
        embedding=embedding,
        overrides=tuple(overrides),
        share_tied_embedding=bool(flags["share_tied_embedding"]),
        half_scales=bool(flags["half_scales"]),
        importance=importance,
    )
