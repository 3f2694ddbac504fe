"""What weighted k-quant buys (issue 22): one plan, three 4-bit quantizers, on real weights.

The de-gridded SmolLM2 (perf.peers_model) compiled with every decoder MatMul at 4 bits block 32
(float16 scales) and the tied table stored once at 8-bit symmetric RTN block 64, as a budget's
plan near llama.cpp's Q4_K_M has it; only the 4-bit quantizer changes between the builds:
onnxruntime's ``k_quant``, curator's ``wk_quant`` without an importance file, and ``wk_quant``
with the sensitivity pass's importance (curator.budget.sensitivity: mean squared activations over
its calibration text, not the fidelity text that judges). Each build is measured with `curator
fidelity` against the fp32 checkpoint and for decode speed on one thread (perf.quant.speed, the
builds taking turns).

    python -m perf.weighted [--workdir DIR]     # the figures in recipes/README.md
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
WORKDIR = REPO / ".cache" / "bench-weighted"
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("k_quant", "k_quant", False),
    ("wk_quant", "wk_quant", False),
    ("wk_quant-importance", "wk_quant", True),
)
TABLE = {"bits": 8, "block_size": 64, "symmetric": True, "algo": "rtn"}


@dataclass(frozen=True)
class Row:
    label: str
    mib: float
    kl: float
    top1: float
    decode: float = 0.0


def variant_recipe(label: str, algo: str, importance: str | None) -> dict[str, Any]:
    """The int4-cpu recipe document with every decoder MatMul 4-bit block 32 by ``algo``, the tied
    table at 8-bit RTN stored once, float16 scales, ``importance`` named when given."""
    base = json.loads((REPO / "recipes" / "int4-cpu.json").read_text(encoding="utf-8"))
    config = {
        **base["passes"][0]["config"],
        "int4_algo_config": "k_quant",
        "int4_block_size": 32,
        "tensor_overrides": [
            {"match": "re:/model/layers.*MatMul", "bits": 4, "block_size": 32, "algo": algo},
            {"match": "/lm_head/MatMul", **TABLE},
        ],
        "embedding_quant": {k: v for k, v in TABLE.items() if k != "algo"},
        "share_tied_embedding": True,
        "half_scales": True,
    }
    if importance:
        config["importance"] = importance
    return {
        **base,
        "name": f"all-q4-b32-{label.replace('_', '')}",
        "description": f"every decoder MatMul 4-bit block 32 by {label}; tied table 8-bit",
        "passes": [{**base["passes"][0], "config": config}],
    }


def measure_rows(workdir: Path) -> list[Row]:
    from curator.budget.recipe import share_tied_table, write_plan_importance
    from curator.budget.sensitivity import measure_sensitivity
    from curator.fidelity import load_text, measure_fidelity, reference_from_dir
    from perf.peers_model import degridded_smollm2
    from perf.quant import compile_document, model_bytes, speed

    source = degridded_smollm2()
    reference = reference_from_dir(source, label="de-gridded SmolLM2")
    text = load_text()
    workdir.mkdir(parents=True, exist_ok=True)
    sensitivity = share_tied_table(measure_sensitivity(source, home=workdir / "home"), source)
    importance = write_plan_importance(sensitivity, workdir, "weighted")
    if importance is None:
        raise SystemExit("the sensitivity pass wrote no importance vectors")
    models: list[Path] = []
    rows: list[Row] = []
    for label, algo, weighted in VARIANTS:
        document = variant_recipe(label, algo, importance if weighted else None)
        model = compile_document(source, document, workdir)
        got = measure_fidelity(model, reference, text, threads=2)
        models.append(model)
        rows.append(Row(label, model_bytes(model) / 2**20, got.kl_mean, got.top1_agreement))
        print(f"perf.weighted: {label}: KL {got.kl_mean:.4f}", file=sys.stderr, flush=True)
    decode = [d for d, _ in speed(models, rounds=3, threads=1)]
    return [dataclasses.replace(r, decode=d) for r, d in zip(rows, decode, strict=True)]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| decoder MatMuls 4-bit block 32 by | file MiB | KL | top-1 | decode 1t tok/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.label} | {r.mib:.1f} | {r.kl:.4f} | {r.top1:.1%} | {r.decode:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return workdir_main(
        "python -m perf.weighted", __doc__, WORKDIR, lambda d: markdown(measure_rows(d)), argv
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
