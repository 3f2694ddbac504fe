"""What the runtime's int8 inputs cost (issue 22): every MatMul at 8 bits, int8 or fp32 inputs.

``MatMulNBits`` at accuracy level 4, which every CPU recipe and budget plan compiles, turns each
input row into int8 with one symmetric scale per block of the weight's block size. At 8 bits that
error is most of the KL. This compiles the de-gridded SmolLM2 (perf.peers_model) with every MatMul,
and the tied table (stored once), at 8-bit symmetric RTN for each block and accuracy level. Each
build is measured with `curator fidelity` against the fp32 checkpoint, and for decode speed on one
thread (perf.quant.speed, all builds taking turns). Beside each row is what the sensitivity pass
predicts for the same plan, with and without the int8 inputs' error (curator.budget.sensitivity).
The embedding's own cost is left out of both sums.

    python -m perf.activations [--workdir DIR]     # the figures in recipes/README.md
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf._table import workdir_main

REPO = Path(__file__).resolve().parent.parent
WORKDIR = REPO / ".cache" / "bench-activations"
# (block, accuracy level): 4 is int8 inputs (what curator compiles), 1 is fp32 inputs
POINTS: tuple[tuple[int, int], ...] = ((64, 4), (32, 4), (16, 4), (64, 1), (32, 1))
BITS = 8


@dataclass(frozen=True)
class Row:
    block: int
    accuracy_level: int
    mib: float
    kl: float
    top1: float
    decode: float
    # the sensitivity pass's summed costs with the int8 inputs' error, and without it (what fp32
    # inputs should measure); None for a block the pass does not weigh (not a candidate)
    predicted: float | None
    predicted_weights: float | None


def uniform_recipe(block: int, accuracy_level: int) -> dict[str, Any]:
    """The int4-cpu recipe document with every MatMul at 8-bit symmetric RTN of ``block`` and
    ``accuracy_level``, the tied table stored once in the same format."""
    base = json.loads((REPO / "recipes" / "int4-cpu.json").read_text(encoding="utf-8"))
    fields = {"bits": BITS, "block_size": block, "symmetric": True}
    config = {
        **base["passes"][0]["config"],
        "int4_algo_config": "k_quant",
        "tensor_overrides": [
            {"match": "re:.*MatMul", **fields, "algo": "rtn", "accuracy_level": accuracy_level}
        ],
        "embedding_quant": fields,
        "share_tied_embedding": True,
    }
    name = f"all-q{BITS}-b{block}-level{accuracy_level}"
    return {
        **base,
        "name": name,
        "description": f"every MatMul {BITS}-bit block {block}, accuracy level {accuracy_level}",
        "passes": [{**base["passes"][0], "config": config}],
    }


def predicted_sums(sensitivity: Any, block: int) -> tuple[float | None, float | None]:
    """(with the int8 inputs' error, weights alone): the summed costs of every MatMul group at
    8-bit symmetric RTN of ``block`` (the embedding left out); Nones when that format is not one
    the pass weighs."""
    from curator.budget.sensitivity import build_costs

    fmt = f"q{BITS}-b{block}-sym-rtn"
    weights, _ = build_costs(sensitivity.groups, sensitivity.measured, sensitivity.proxy)
    matmuls = [g.name for g in sensitivity.groups if g.kind != "embedding"]
    if any(fmt not in sensitivity.cost.get(g, {}) for g in matmuls):
        return None, None
    return (
        sum(sensitivity.cost[g][fmt] for g in matmuls),
        sum(weights[g][fmt] for g in matmuls),
    )


def measure_rows(workdir: Path) -> list[Row]:
    from curator.budget.sensitivity import measure_sensitivity
    from curator.fidelity import load_text, measure_fidelity, reference_from_dir
    from perf.peers_model import degridded_smollm2
    from perf.quant import compile_document, model_bytes, speed

    source = degridded_smollm2()
    reference = reference_from_dir(source, label="de-gridded SmolLM2")
    text = load_text()
    sensitivity = measure_sensitivity(source, home=workdir / "home")
    models: list[Path] = []
    partial: list[Row] = []
    for block, level in POINTS:
        model = compile_document(source, uniform_recipe(block, level), workdir)
        got = measure_fidelity(model, reference, text, threads=2)
        with_inputs, weights = predicted_sums(sensitivity, block)
        models.append(model)
        partial.append(
            Row(block, level, model_bytes(model) / 2**20, got.kl_mean, got.top1_agreement, 0.0,
                with_inputs, weights)
        )  # fmt: skip
    decode = [d for d, _ in speed(models, rounds=3, threads=1)]
    return [dataclasses.replace(r, decode=d) for r, d in zip(partial, decode, strict=True)]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| every MatMul | inputs | file MiB | KL | top-1 | decode 1t tok/s | predicted (weights alone) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        inputs = "int8 (level 4)" if r.accuracy_level == 4 else f"fp32 (level {r.accuracy_level})"
        predicted = r.predicted if r.accuracy_level == 4 else r.predicted_weights
        shown = (
            "- (not a candidate)"
            if predicted is None or r.predicted_weights is None
            else f"{predicted:.4f} ({r.predicted_weights:.4f})"
        )
        lines.append(
            f"| {BITS}-bit block {r.block} | {inputs} | {r.mib:.1f} | {r.kl:.4f} | {r.top1:.1%} "
            f"| {r.decode:.1f} | {shown} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return workdir_main(
        "python -m perf.activations", __doc__, WORKDIR, lambda d: markdown(measure_rows(d)), argv
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
