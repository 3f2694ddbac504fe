"""int4-cpu evidence: block size x embedding quantization, speed, size and fidelity vs fp32.

Two fixtures, both built offline and cached under <repo>/.cache/bench-models:
- speed and size: a random-init Qwen2 of ~200M parameters (hidden 1024, 12 layers, 16 heads / 4 KV
  heads, MLP 2816, vocabulary 32,000: the embedding is ~30% of the weights, as in small real models);
- fidelity: a Qwen2 (hidden 256, 2 layers, vocabulary 2048) trained a few minutes on the Python
  documentation (curator.devmodels.trained): random weights give flat distributions where KL and
  top-1 agreement say nothing.
Each variant is the int4-cpu recipe with its ModelBuilder settings changed, compiled with the same
Olive runner as `curator compile`. Decode and prefill tok/s come from an onnxruntime-genai loop in
one subprocess with 2 intra-op threads that loads every variant and lets them take turns: a
256-token prompt, then 64 decoded tokens, 8 rounds, best run of each kept (the machine is shared:
the best run is the least disturbed one, and a busy spell hits every variant alike).

Then the real model's rows (issue 11): the shipped int4-cpu against the fp32-cpu compile of the
de-gridded SmolLM2-135M-Instruct (perf.peers_model), with fidelity against its fp32 checkpoint;
compiles cached under .cache/bench-quant-real. The int4-cpu choice itself is made against
llama.cpp on those weights: `make bench-peers` (perf.peers).

    python -m perf quant                      # part of `make bench`
    python -m perf.quant --workdir DIR --markdown   # the table in recipes/README.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf._table import Ratio
from perf.bandwidth import copy_bandwidth, weight_bytes_per_token

REPO = Path(__file__).resolve().parent.parent
MODELS_ROOT = REPO / ".cache" / "bench-models"
THREADS = 2
PROMPT_TOKENS = 256
DECODE_TOKENS = 64
ROUNDS = 8

SPEED_MODEL: dict[str, Any] = {
    "architecture": "qwen2",
    "hidden_size": 1024,
    "num_layers": 12,
    "num_heads": 16,
    "num_kv_heads": 4,
    "intermediate_size": 2816,
    "vocab_size": 32000,
}
FIDELITY_MODEL: dict[str, Any] = {
    "hidden_size": 256,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "vocab_size": 2048,
    "steps": 250,
    "seq_len": 64,
}


@dataclass(frozen=True)
class Variant:
    """One point of the sweep: plain ModelBuilder int4 settings (block size, embedding quantized
    or not), or a shipped recipe by name (``recipe``); neither: the fp32-cpu recipe."""

    name: str
    block_size: int | None = None
    gather: bool = False
    recipe: str | None = None

    @property
    def is_fp32(self) -> bool:
        return self.block_size is None and self.recipe is None


FP32 = Variant("fp32")
VARIANTS: tuple[Variant, ...] = tuple(
    Variant(f"int4 b{block}{' +emb' if gather else ''}", block, gather)
    for block in (32, 128, 256)
    for gather in (False, True)
)
# The toy sweep's choice before real weights were measured (block 128, embedding quantized): the
# int4-cpu of 22 Nov 2026. On SmolLM2 it garbles answers (recipes/README.md), so the shipped
# int4-cpu is now chosen by perf.peers on real weights.
CHOSEN = Variant("int4 b128 +emb", 128, True)
SHIPPED = Variant("int4-cpu (shipped)", recipe="int4-cpu")


def shipped_default() -> Variant:
    """The recipe recipes/int4-cpu.json ships now, compiled as it is."""
    return SHIPPED


@dataclass(frozen=True)
class Measured:
    variant: Variant
    bytes: int
    decode_tps: float
    prefill_tps: float
    kl_mean: float
    kl_p99: float
    top1: float
    perplexity: float
    reference_perplexity: float
    compile_seconds: float
    weight_bytes_per_token: int


def _recipe(variant: Variant) -> Any:
    from curator.recipes import RecipePass, get_recipe

    if variant.recipe:
        return get_recipe(variant.recipe)
    if variant.is_fp32:
        return get_recipe("fp32-cpu")
    base = get_recipe("int4-cpu-accurate")  # the plain model builder int4 pass
    passes = []
    for p in base.passes:
        config = dict(p.config)
        if p.type == "ModelBuilder":
            config["int4_block_size"] = variant.block_size
            config["int4_op_types_to_quantize"] = (
                ["MatMul", "Gather"] if variant.gather else ["MatMul"]
            )
        passes.append(RecipePass(p.name, p.type, config))
    return dataclasses.replace(base, passes=tuple(passes))


def compile_variant(source: Path, variant: Variant, out: Path) -> tuple[Path, float]:
    """Olive output directory for ``variant`` of ``source`` (reused when already there)."""
    return compile_recipe_object(source, _recipe(variant), out)


def compile_recipe_object(source: Path, recipe: Any, out: Path) -> tuple[Path, float]:
    """Olive output directory for ``recipe`` applied to ``source`` (reused when already there),
    and the compile's wall seconds (0 when reused)."""
    from curator.compile.check import check_output
    from curator.compile.olive_run import run_olive
    from curator.recipes import render_olive_config

    model = out / "olive-output"
    if not check_output(model):
        return model, 0.0
    out.mkdir(parents=True, exist_ok=True)
    config = render_olive_config(
        recipe, model_path=source, output_dir=model, cache_dir=out / "olive-cache"
    )
    config_path = out / "olive.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    run = run_olive(config_path, out / "compile.log", offline=True)
    problems = check_output(model)
    if problems:
        raise RuntimeError(f"{recipe.name}: {'; '.join(problems)} (see {out / 'compile.log'})")
    return model, run.wall_seconds


def compile_document(source: Path, document: dict[str, Any], workdir: Path) -> Path:
    """A recipe document written as ``workdir/<name>.json`` (beside any file it names) and
    compiled into ``workdir/<name>``: the model directory (reused when already there)."""
    from curator.recipes import load_recipe_file

    path = workdir / f"{document['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    model, _ = compile_recipe_object(source, load_recipe_file(path), workdir / document["name"])
    return model


def model_bytes(model: Path) -> int:
    return sum(p.stat().st_size for p in model.iterdir() if p.suffix in (".onnx", ".data"))


def speed(
    models: list[Path], rounds: int = ROUNDS, threads: int = THREADS
) -> list[tuple[float, float]]:
    """(decode tok/s, prefill tok/s) per model, from one fresh process that loads them all and
    alternates between them run by run (onnxruntime-genai never loads in this process)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perf.quant",
            "--rounds",
            str(rounds),
            "--threads",
            str(threads),
            "--speed",
            *map(str, models),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"speed run failed: {proc.stderr[-2000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    return [(float(f["decode"]), float(f["prefill"])) for f in figures]


def _load(og: Any, model_dir: Path, threads: int = THREADS) -> Any:
    config = og.Config(str(model_dir))
    options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    return og.Model(config)


def _one_run(og: Any, model: Any, prompt: Any) -> tuple[float, float]:
    total = PROMPT_TOKENS + DECODE_TOKENS
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=total, min_length=total, do_sample=False)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(prompt)
    mid = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        generator.generate_next_token()
    end = time.perf_counter()
    return DECODE_TOKENS / (end - mid), PROMPT_TOKENS / (mid - start)


def _speed_worker(
    model_dirs: list[Path], rounds: int = ROUNDS, threads: int = THREADS
) -> list[dict[str, float]]:
    """Runs in the subprocess: best prefill and decode throughput of each model over ROUNDS
    rounds, the models taking turns so that a busy spell on the machine hits all of them."""
    import numpy as np
    import onnxruntime_genai as og

    models = [_load(og, d, threads) for d in model_dirs]
    vocab = min(
        json.loads((d / "genai_config.json").read_text())["model"]["vocab_size"] for d in model_dirs
    )
    prompt = np.random.default_rng(0).integers(16, vocab, PROMPT_TOKENS).astype(np.int32)
    best = [(0.0, 0.0) for _ in models]
    for round_ in range(rounds + 1):  # round 0 warms up
        for i, model in enumerate(models):
            decode, prefill = _one_run(og, model, prompt)
            if round_:
                best[i] = (max(best[i][0], decode), max(best[i][1], prefill))
    return [{"decode": d, "prefill": p} for d, p in best]


def fixtures() -> tuple[Path, Path]:
    """(speed fixture, fidelity fixture), built once and cached."""
    from curator.devmodels.cache import cached_tiny_model
    from curator.devmodels.trained import cached_trained_model

    return (
        cached_tiny_model(MODELS_ROOT, **SPEED_MODEL),
        cached_trained_model(MODELS_ROOT, **FIDELITY_MODEL),
    )


def sweep(workdir: Path, variants: tuple[Variant, ...] = (FP32, *VARIANTS)) -> list[Measured]:
    """Compile every variant of both fixtures, measure fidelity, then speed in interleaved rounds
    (best of all runs: on a shared machine the best run is the one least disturbed)."""
    from curator.fidelity import load_text, measure_fidelity, reference_from_dir

    speed_source, fidelity_source = fixtures()
    text = load_text()
    reference = reference_from_dir(fidelity_source)
    compiled: dict[Variant, tuple[Path, float]] = {}
    fidelity: dict[Variant, Any] = {}
    for variant in variants:
        slug = variant.name.replace(" ", "-").replace("+", "")
        print(f"bench quant: compile {variant.name} ...", file=sys.stderr, flush=True)
        compiled[variant] = compile_variant(speed_source, variant, workdir / "speed" / slug)
        fid_model, _ = compile_variant(fidelity_source, variant, workdir / "fidelity" / slug)
        fidelity[variant] = measure_fidelity(fid_model, reference, text, threads=THREADS)
    print(f"bench quant: speed ({ROUNDS} rounds) ...", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    best = dict(zip(variants, speed([compiled[v][0] for v in variants]), strict=True))
    print(
        f"bench quant: load average {load:.1f} -> {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        file=sys.stderr,
        flush=True,
    )
    return [
        Measured(
            variant=v,
            bytes=model_bytes(compiled[v][0]),
            decode_tps=best[v][0],
            prefill_tps=best[v][1],
            kl_mean=fidelity[v].kl_mean,
            kl_p99=fidelity[v].kl_p99,
            top1=fidelity[v].top1_agreement,
            perplexity=fidelity[v].perplexity,
            reference_perplexity=fidelity[v].reference_perplexity,
            compile_seconds=compiled[v][1],
            weight_bytes_per_token=weight_bytes_per_token(compiled[v][0]),
        )
        for v in variants
    ]


def bandwidth_ratios(measured: list[Measured], default: Variant, bandwidth: float) -> list[Ratio]:
    """Decode tok/s of fp32 and of the default against bandwidth / weight bytes read per token."""
    rows = []
    for m in measured:
        if m.variant.is_fp32 or m.variant == default:
            ceiling = bandwidth / m.weight_bytes_per_token
            rows.append(
                Ratio(
                    f"{m.variant.name}: decode vs memory-bandwidth limit "
                    f"({m.weight_bytes_per_token / 2**20:.0f} MiB/token, "
                    f"copy {bandwidth / 1e9:.1f} GB/s)",
                    m.decode_tps,
                    ceiling,
                    "tok/s",
                )
            )
    return rows


def ratios(measured: list[Measured], default: Variant) -> list[Ratio]:
    base = next(m for m in measured if m.variant.is_fp32)
    rows: list[Ratio] = []
    for m in measured:
        if m.variant.is_fp32:
            continue
        # The toy targets (decode >= 4.5x fp32, file <= 0.17x) are reported, no longer checked:
        # int4-cpu is now chosen on real weights against llama.cpp (perf.peers, issue 11).
        mark = " (int4-cpu)" if m.variant == default else ""
        rows += [
            Ratio(f"{m.variant.name}{mark}: decode", m.decode_tps, base.decode_tps, "tok/s"),
            Ratio(f"{m.variant.name}{mark}: prefill", m.prefill_tps, base.prefill_tps, "tok/s"),
            Ratio(f"{m.variant.name}{mark}: file size", m.bytes / 2**20, base.bytes / 2**20, "MiB"),
            Ratio(f"{m.variant.name}{mark}: KL mean vs fp32 (nats)", m.kl_mean, 1.0, "nats"),
            Ratio(f"{m.variant.name}{mark}: top-1 agreement", m.top1, base.top1, ""),
        ]
    return rows


def markdown(measured: list[Measured], default: Variant = CHOSEN) -> str:
    """The evidence table for recipes/README.md."""
    base = next(m for m in measured if m.variant.is_fp32)
    lines = [
        "| variant | decode tok/s | x fp32 | prefill tok/s | x fp32 | size MiB | x fp32 "
        "| KL mean | KL p99 | top-1 | ppl (fp32 ppl) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        name = f"**{m.variant.name}**" if m.variant == default else m.variant.name
        lines.append(
            f"| {name} | {m.decode_tps:.1f} | {m.decode_tps / base.decode_tps:.2f} "
            f"| {m.prefill_tps:.0f} | {m.prefill_tps / base.prefill_tps:.2f} "
            f"| {m.bytes / 2**20:.0f} | {m.bytes / base.bytes:.3f} "
            f"| {m.kl_mean:.4f} | {m.kl_p99:.3f} | {m.top1:.1%} "
            f"| {m.perplexity:.1f} ({m.reference_perplexity:.1f}) |"
        )
    return "\n".join(lines)


def _variants(default: Variant) -> tuple[Variant, ...]:
    return (FP32, *VARIANTS) if default in VARIANTS else (FP32, *VARIANTS, default)


REAL_WORKDIR = REPO / ".cache" / "bench-quant-real"


def real_model_rows(workdir: Path = REAL_WORKDIR) -> list[Ratio]:
    """The real model (de-gridded SmolLM2-135M-Instruct, perf.peers_model): the shipped int4-cpu
    against the fp32-cpu compile of the same weights, fidelity against the fp32 checkpoint."""
    from curator.fidelity import load_text, measure_fidelity, reference_from_dir
    from curator.recipes import get_recipe
    from perf.peers_model import degridded_smollm2

    source = degridded_smollm2()
    fp32, _ = compile_recipe_object(source, get_recipe("fp32-cpu"), workdir / "fp32-cpu")
    int4, _ = compile_recipe_object(source, get_recipe("int4-cpu"), workdir / "int4-cpu")
    print("bench quant: fidelity of int4-cpu on SmolLM2 ...", file=sys.stderr, flush=True)
    reference = reference_from_dir(source, label="smollm2-degridded")
    fid = measure_fidelity(int4, reference, load_text(), threads=THREADS)
    (int4_speed, fp32_speed) = speed([int4, fp32])
    name = "SmolLM2-135M (real, de-gridded) int4-cpu"
    return [
        Ratio(f"{name}: decode vs fp32", int4_speed[0], fp32_speed[0], "tok/s"),
        Ratio(f"{name}: prefill vs fp32", int4_speed[1], fp32_speed[1], "tok/s"),
        Ratio(
            f"{name}: file size vs fp32",
            model_bytes(int4) / 2**20,
            model_bytes(fp32) / 2**20,
            "MiB",
        ),
        Ratio(f"{name}: KL mean vs fp32 (nats)", fid.kl_mean, 1.0, "nats"),
        Ratio(f"{name}: top-1 agreement", fid.top1_agreement, 1.0, ""),
        Ratio(f"{name}: perplexity vs fp32", fid.perplexity, fid.reference_perplexity, ""),
    ]


def measure(workdir: Path) -> list[Ratio]:
    """The toy sweep as ratios to fp32, then the real model's rows."""
    default = shipped_default()
    measured = sweep(workdir, _variants(default))
    bandwidth = copy_bandwidth(THREADS)
    toy = ratios(measured, default) + bandwidth_ratios(measured, default, bandwidth)
    return toy + real_model_rows()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.quant", description=__doc__)
    parser.add_argument("--speed", type=Path, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help="keep compiles here (reused)")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    if args.speed:
        print(json.dumps(_speed_worker(args.speed, args.rounds, args.threads)))
        return 0
    from perf._table import render

    workdir = args.workdir or Path(".cache") / "bench-quant"
    default = shipped_default()
    measured = sweep(workdir.resolve(), _variants(default))
    print(render(ratios(measured, default)))
    if args.markdown:
        print()
        print(markdown(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
