"""The per-tensor quantization formats a budget can choose from, and what each costs on disk.

A format is what onnxruntime's ``MatMulNBits`` (and ``GatherBlockQuantized`` for the embedding)
can hold with the pinned runtime: 4 or 8 bits, a block size along the input dimension, a scale
per block (float16 for a budget's MatMuls and a tied table they share with the embedding gather,
``half_scales``; float32 for a gather's own table), and a zero point per block when asymmetric
(packed like the weights for RTN and k-quant, an fp32 value for HQQ). Pure Python: no numpy here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["k_quant", "wk_quant", "rtn", "hqq"]
ALGORITHMS: tuple[Algorithm, ...] = ("k_quant", "wk_quant", "rtn", "hqq")
SCALE_BYTES = 4  # a float32 model's scales
HALF_SCALE_BYTES = 2  # MatMulNBits' scales in a budget's compile (half_scales, curator.quant.plan)


@dataclass(frozen=True, order=True)
class Format:
    """How one tensor is stored: ``bits`` per weight, ``block`` weights per scale."""

    bits: int
    block: int
    symmetric: bool = False
    algorithm: Algorithm = "k_quant"

    @property
    def name(self) -> str:
        """``q4-b32-asym-k_quant``: stable, used as a key in caches and recipe files."""
        return f"q{self.bits}-b{self.block}-{'sym' if self.symmetric else 'asym'}-{self.algorithm}"

    def bytes_for(self, rows: int, cols: int, *, half_scales: bool = False) -> int:
        """Bytes on disk of a ``rows`` x ``cols`` weight blocked along ``cols`` (the input side),
        its scales float16 with ``half_scales`` (HQQ's stay float32, with its zero points)."""
        blocks = -(-cols // self.block)
        data = rows * blocks * self.block * self.bits // 8
        half = half_scales and self.algorithm != "hqq"
        scales = rows * blocks * (HALF_SCALE_BYTES if half else SCALE_BYTES)
        if self.symmetric:
            zeros = 0
        elif self.algorithm == "hqq":
            zeros = rows * blocks * SCALE_BYTES  # HQQ keeps float zero points
        else:
            zeros = rows * -(-blocks * self.bits // 8)  # packed like the weights, per row
        return data + scales + zeros

    def bits_per_weight(self, cols: int = 4096, *, half_scales: bool = False) -> float:
        return 8 * self.bytes_for(1, cols, half_scales=half_scales) / cols


def parse_format(name: str) -> Format:
    """The inverse of :attr:`Format.name`; ValueError when it is not one."""
    parts = name.split("-")
    if len(parts) != 4 or not parts[0].startswith("q") or not parts[1].startswith("b"):
        raise ValueError(f"not a format name: {name!r} (expected e.g. q4-b32-asym-k_quant)")
    bits, block = int(parts[0][1:]), int(parts[1][1:])
    if bits not in (4, 8):
        raise ValueError(f"{name!r}: bits must be 4 or 8")
    if block not in (16, 32, 64, 128, 256):
        raise ValueError(f"{name!r}: block must be 16, 32, 64, 128 or 256")
    if parts[2] not in ("sym", "asym"):
        raise ValueError(f"{name!r}: expected sym or asym")
    algorithm = parts[3]
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{name!r}: algorithm must be one of {', '.join(ALGORITHMS)}")
    fmt = Format(bits, block, parts[2] == "sym", algorithm)
    if fmt.algorithm == "hqq" and fmt.symmetric:
        raise ValueError(f"{name!r}: HQQ is asymmetric only")
    return fmt


# What the sensitivity pass weighs for every MatMul group, cheapest first: 4-bit weighted
# k-quant (wk_quant, each input weighted by its importance from the calibration pass:
# curator.quant.weighted) at blocks 64 (the anchor, measured on every group), 32 and 16, and
# 8-bit symmetric RTN at blocks 64 (about Q8_0's size), 32 and 16: ~4.4 to 9 bits per weight
# with float16 scales. HQQ is a format a recipe may name, but not a default candidate:
# onnxruntime's HQQ took 25 s for one 1536x576 tensor here (k-quant 2-5 s, RTN 0.1 s). Blocks
# that do not divide the input size are padded, which costs bytes (block 128 on SmolLM2's
# 576-wide layers), so 64 rather than 128.
#
# The block also sets how finely the node's INPUT is quantized: at accuracy level 4 MatMulNBits
# turns each activation row into int8 per block of the weight's block size. At 8 bits that error
# dominates (de-gridded SmolLM2, every MatMul 8-bit symmetric: KL 0.0097 at block 64, 0.0059 at
# block 32; with fp32 activations 0.0028 and 0.0020), so the sensitivity pass prices it per block
# (ACTIVATION_BITS) and q8-b32 earns its extra half bit; q8-b16 (every MatMul so: KL 0.0037 at
# 1.11x the file of block 32) is there for the few groups whose inputs cost the most, which is how
# a budget gets under Q8_0's KL as llama.cpp runs it (its inputs int8 too; recipes/README.md).
# fp32 activations (accuracy level 1) are not a candidate: the pinned runtime decodes 8-bit nodes
# that way at 3 tokens/s instead of 91.
CANDIDATES: tuple[Format, ...] = (
    Format(4, 64, False, "wk_quant"),
    Format(4, 32, False, "wk_quant"),
    Format(4, 16, False, "wk_quant"),
    Format(8, 64, True, "rtn"),
    Format(8, 32, True, "rtn"),
    Format(8, 16, True, "rtn"),
)
ACTIVATION_BITS = 8  # MatMulNBits at accuracy level 4: int8 inputs, a symmetric scale per block
# Block 16 decodes slower: one 576 x 1536 MatMulNBits at M=1 on one thread took 32.6 us against
# 25.3 at block 32 (4-bit) and 29.0 against 24.4 (8-bit); the de-gridded SmolLM2 budgeted at
# Q4_K_M's KL with 31 groups at 4-bit block 16 decoded at 0.86-0.87x Q4_K_M's speed, 1.8% smaller
# than the same budget without block 16 (1.01x and 0.96x). So the search turns to block 16 only
# for a target it cannot reach without it (curator.budget.search).
SLOW_BLOCK = 16


def decodes_slowly(name: str) -> bool:
    """Whether the format ``name`` is one the search keeps for targets nothing else reaches."""
    try:
        return parse_format(name).block <= SLOW_BLOCK
    except ValueError:
        return False


# The embedding's Gather is quantized with RTN only (GatherBlockQuantized, uint zero points).
EMBEDDING_CANDIDATES: tuple[Format, ...] = (
    Format(4, 64, False, "rtn"),
    Format(4, 32, False, "rtn"),
    Format(8, 64, False, "rtn"),
)


def tensor_quant(fmt: Format) -> dict[str, object]:
    """The ``tensor_overrides`` fields (curator.quant.plan) that give a node this format."""
    return {
        "bits": fmt.bits,
        "block_size": fmt.block,
        "symmetric": fmt.symmetric,
        "algo": fmt.algorithm,
    }
