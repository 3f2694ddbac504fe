"""Pre-quantized checkpoints (AWQ, GPTQ): ``quantization_config`` in config.json.

The publisher's calibrated 4-bit weights are packed 8 to an int32 (``qweight``), with ``qzeros``,
``scales`` and ``g_idx`` beside them. The model builder's quantized path (``QuantModel``, used by
Olive's ModelBuilder pass when config.json has ``quantization_config``) unpacks them and repacks
them for ``MatMulNBits`` as they are: nothing is quantized a second time. Curator's streaming
builder and the quantizing passes (Rtn, Gptq, OnnxBlockWise...) would read the packed integers as
weights, so such a checkpoint compiles only with a recipe whose one pass is the builder at int4
(``int4-prequantized-cpu``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from curator.errors import PreflightError

BUILDER_METHODS = ("gptq", "awq")  # what the pinned builder's QuantModel reads (as 4-bit)
PREQUANTIZED_RECIPE = "int4-prequantized-cpu"
QUANT_METADATA_SUFFIXES = (".qzeros", ".scales", ".g_idx")


@dataclass(frozen=True)
class Prequantized:
    method: str
    bits: int
    group_size: int | None

    def describe(self) -> str:
        group = f", group {self.group_size}" if self.group_size else ""
        return f"{self.method} {self.bits}-bit{group}"

    def note(self) -> str:
        return (
            f"pre-quantized {self.describe()} checkpoint: the model builder's quantized path "
            "(QuantModel) repacks the publisher's int4 weights for MatMulNBits as they are; "
            "nothing is quantized a second time (tensors the checkpoint left unquantized, such as "
            "lm_head, are quantized once by the builder)"
        )


def prequantized(config: Mapping[str, Any]) -> Prequantized | None:
    """The checkpoint's quantization (None for a plain one); bits 4 when the config omits them."""
    quant = config.get("quantization_config")
    if not isinstance(quant, Mapping):
        return None
    method = str(quant.get("quant_method") or "unknown").lower()
    bits = quant.get("bits", quant.get("w_bit", 4))
    group = quant.get("group_size", quant.get("q_group_size"))
    return Prequantized(
        method,
        int(bits) if isinstance(bits, int) else 4,
        int(group) if isinstance(group, int) and group > 0 else None,
    )


def packed_elements(name: str, elements: int, dtype: str, bits: int) -> int:
    """Parameters one tensor holds: ``qweight`` packs 32/bits values per int32; the quantization
    metadata (qzeros, scales, g_idx) holds none; any other tensor its elements."""
    if name.endswith(".qweight") and dtype.upper() in ("I32", "INT32"):
        return elements * (32 // bits)
    if name.endswith(QUANT_METADATA_SUFFIXES):
        return 0
    return elements


def builder_reads(recipe: Any) -> bool:
    """A recipe whose only pass is Olive's ModelBuilder at int4: the builder's quantized path."""
    passes = list(recipe.passes)
    return (
        len(passes) == 1
        and passes[0].type == "ModelBuilder"
        and str((passes[0].config or {}).get("precision")) == "int4"
    )


def check_recipe(quant: Prequantized, recipe: Any, source: str) -> None:
    """PreflightError unless the builder can read this checkpoint with this recipe."""
    if quant.method not in BUILDER_METHODS or quant.bits != 4:
        raise PreflightError(
            f"{source} is quantized with {quant.describe()}; the model builder reads only 4-bit "
            f"{' and '.join(m.upper() for m in BUILDER_METHODS)} checkpoints",
            hint="use the publisher's unquantized checkpoint, or its GPTQ/AWQ 4-bit release",
        )
    if not builder_reads(recipe):
        raise PreflightError(
            f"{source} is a pre-quantized {quant.describe()} checkpoint; recipe {recipe.name} "
            "would quantize its packed integers again",
            hint=f"curator compile {source} --recipe {PREQUANTIZED_RECIPE}",
        )
