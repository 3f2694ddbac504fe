"""`make bench-peers`: curator's size/quality curve against llama.cpp's on the same real weights.

Everything in one run, on the de-gridded SmolLM2-135M-Instruct (perf.peers_model), or with
``--model q4_1`` on the real Q4_1 GGUF's own dequantized weights (the GGUF as the reference):

1. llama.cpp's tools, built once from the pinned ``llama-cpp-python`` sdist (perf.peers_build);
2. the checkpoint converted to an f32 GGUF with llama.cpp's ``convert_hf_to_gguf.py``, then
   ``llama-quantize`` to Q4_0, Q4_K_M, Q5_K_M, Q6_K and Q8_0;
3. curator's fixed ``int4-cpu`` recipe, and curator's fidelity budgets (``curator compile
   --max-kl X`` for X in 0.4, 0.2, 0.1, 0.05, 0.02: sensitivity once, then a searched plan per
   budget, measured and adjusted by curator.budget);
4. fidelity by the same teacher-forced method, windows and tokens as ``curator fidelity``: each
   GGUF is dequantized back to fp32 (curator.formats.gguf) and scored as an fp32 model, the text cut by
   the compiled model's own tokenizer, against the checkpoint (a budget point's figures are the
   search's own final measurement, made the same way); and each GGUF as llama.cpp runs it:
   ``llama-perplexity --kl-divergence`` against llama.cpp's own run of the f32 GGUF (512-token
   chunks, the second half of each scored), which includes llama.cpp's int8 activations, as
   curator's figures include onnxruntime's (MatMulNBits at accuracy level 4): the targets are
   judged on both (weights alone, and as each runtime runs them);
5. speed at the same thread counts (1 and 2): ``llama-bench`` (256-token prompt, 64 decoded
   tokens) and the onnxruntime-genai loop of perf.quant with the same prompt and decode lengths,
   taking turns for several rounds, the best run of each kept (the machine is shared).

Prints the table (file size, KL, top-1, decode and prefill tok/s per point), writes the curve as a
PNG (file size against KL, log scale), and the issue's targets as verdicts: at every llama.cpp
point curator's curve reaches the same KL at no more than 1.1x the file; at the Q4_K_M point it
decodes at least 1.0x as fast at the same threads; a search takes less than 10x one compile.

    python -m perf.peers [--workdir DIR] [--model degridded|q4_1] [--budgets 0.1,0.02] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.budget.api import BudgetNotMet
from perf._table import Ratio

REPO = Path(__file__).resolve().parent.parent
WORKDIR = REPO / ".cache" / "bench-peers"
THREADS = 2  # fidelity workers
THREAD_COUNTS = (1, 2)  # speed is measured at each, llama.cpp and onnxruntime-genai alike
PEERS = ("Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
# a peer kind with this suffix is quantized with llama.cpp's importance matrix (`--peers
# Q4_K_M-imatrix`): calibrated on the same text as curator's sensitivity pass
IMATRIX_SUFFIX = "-imatrix"
IMATRIX_CONTEXT = 512
IMATRIX_CHUNKS = 16
BUDGETS = (0.4, 0.2, 0.1, 0.05, 0.02)  # the example budgets (`--budgets 0.4,0.2,...`)
ROUNDS = 3
KL_TARGET_PEER = "Q4_K_M"
SIZE_TARGET = 1.1
DECODE_TARGET = 1.0  # issue 22: at the Q4_K_M point, decode at least 1.0x Q4_K_M's
SEARCH_TARGET = 10.0  # a budget search takes less than 10x one compile
FIXED = "int4-cpu"


@dataclass(frozen=True)
class Row:
    """One model's figures: size on disk, fidelity vs the de-gridded fp32, speed."""

    name: str
    bytes: int
    kl_mean: float
    top1: float
    perplexity: float
    reference_perplexity: float
    decode_tps: dict[int, float]  # by thread count
    prefill_tps: dict[int, float]
    kind: str = "llama.cpp"  # or "curator" (a budget point) or "fixed" (int4-cpu)
    search_seconds: float = 0.0  # a budget point: the whole search, sensitivity included
    compiles: int = 0  # a budget point: compiles the search made
    sensitivity_seconds: float = 0.0  # a budget point: its sensitivity pass (or the cached one's)
    compile_seconds: float = 0.0  # a budget point: its compiles together (the rest is fidelity)
    load: str = ""  # a budget point: the load average when its search ended
    kl_as_run: float | None = None  # a llama.cpp point as llama.cpp runs it (llama-perplexity)
    top1_as_run: float | None = None
    fidelity_seconds: float = 0.0  # a budget point: its fidelity measurements together
    reference_seconds: float = 0.0  # of which the reference's one run (or the cached one's)


def _log(message: str) -> None:
    print(f"bench peers: {message}", file=sys.stderr, flush=True)


SENTENCEPIECE_SHIM = '''"""Stand-in written by perf.peers: llama.cpp's converter imports sentencepiece before it
looks for a tokenizer.model file; this checkpoint has none (its tokenizer is tokenizer.json)."""


class SentencePieceProcessor:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ImportError("sentencepiece is not installed (only tokenizer.model files need it)")
'''


def _converter_env(out: Path) -> dict[str, str]:
    """The environment for convert_hf_to_gguf.py: sentencepiece is not a dependency of curator,
    and the converter imports it unconditionally, so a stand-in module is put on its path."""
    try:
        import sentencepiece  # noqa: F401

        return dict(os.environ)
    except ImportError:
        shim = out / "shims" / "sentencepiece"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "__init__.py").write_text(SENTENCEPIECE_SHIM, encoding="utf-8")
        path = os.pathsep.join(p for p in (str(shim.parent), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path}


def convert_to_gguf(
    tools: Any, checkpoint: Path, out: Path, stem: str = "smollm2-degridded"
) -> Path:
    """The checkpoint as an f32 GGUF, by llama.cpp's own converter (reused when present)."""
    target = out / f"{stem}-f32.gguf"
    if target.is_file():
        return target
    out.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    cmd = [
        sys.executable,
        str(tools.convert_script),
        str(checkpoint),
        "--outtype",
        "f32",
        "--outfile",
        str(partial),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_converter_env(out), check=False)
    if done.returncode != 0 or not partial.is_file():
        raise RuntimeError(f"convert_hf_to_gguf.py failed: {done.stderr[-2000:]}")
    os.replace(partial, target)
    return target


def importance_matrix(tools: Any, f32: Path) -> Path:
    """``llama-imatrix`` on the f32 GGUF over the text curator's sensitivity pass calibrates on
    (the Python language reference, curator.budget.sensitivity), ``IMATRIX_CHUNKS`` chunks of
    ``IMATRIX_CONTEXT`` tokens: more than the pass's 128 tokens (reused when present)."""
    from curator.budget.sensitivity import calibration_text

    target = f32.with_name(f32.name.replace("-f32.gguf", "-imatrix.gguf"))
    if target.is_file():
        return target
    text = f32.with_name("calibration.txt")
    text.write_text(calibration_text(), encoding="utf-8")
    partial = target.with_name("partial-" + target.name)  # llama-imatrix wants .gguf
    cmd = [str(tools.imatrix), "-m", str(f32), "-f", str(text), "-o", str(partial)]
    cmd += ["-c", str(IMATRIX_CONTEXT), "--chunks", str(IMATRIX_CHUNKS), "-t", str(THREADS)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not partial.is_file():
        raise RuntimeError(f"llama-imatrix failed: {done.stderr[-2000:]}")
    os.replace(partial, target)
    return target


def quantize(tools: Any, f32: Path, kind: str) -> Path:
    """``llama-quantize f32.gguf <kind>`` (reused when present); a kind ending in ``-imatrix``
    (``Q4_K_M-imatrix``) with llama.cpp's importance matrix (:func:`importance_matrix`)."""
    target = f32.with_name(f32.name.replace("-f32.gguf", f"-{kind}.gguf"))
    if target.is_file():
        return target
    partial = target.with_suffix(".partial")
    base = kind.removesuffix(IMATRIX_SUFFIX)
    weighted = ["--imatrix", str(importance_matrix(tools, f32))] if base != kind else []
    cmd = [str(tools.quantize), *weighted, str(f32), str(partial), base, str(THREADS)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not partial.is_file():
        raise RuntimeError(f"llama-quantize {kind} failed: {done.stderr[-2000:]}")
    os.replace(partial, target)
    return target


def compile_recipe(source: Path, recipe: str, out: Path) -> Path:
    """curator's recipe compiled from ``source`` with the same Olive runner as `curator compile`."""
    from curator.recipes import get_recipe
    from perf.quant import compile_recipe_object

    model, _ = compile_recipe_object(source, get_recipe(recipe), out / recipe)
    return model


def llama_bench(tools: Any, model: Path, threads: int) -> tuple[float, float]:
    """(decode tok/s, prefill tok/s) from one llama-bench run with ``threads`` threads."""
    from perf.quant import DECODE_TOKENS, PROMPT_TOKENS

    cmd = [
        str(tools.bench),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        str(PROMPT_TOKENS),
        "-n",
        str(DECODE_TOKENS),
        "-r",
        "2",
        "-o",
        "json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench failed (exit {done.returncode}): {done.stderr[-2000:]}")
    decode = prefill = 0.0
    for test in json.loads(done.stdout):
        if test.get("n_gen", 0) > 0:
            decode = float(test["avg_ts"])
        elif test.get("n_prompt", 0) > 0:
            prefill = float(test["avg_ts"])
    return decode, prefill


def speeds(
    tools: Any, ggufs: dict[str, Path], onnx: dict[str, Path], rounds: int
) -> dict[tuple[str, int], tuple[float, float]]:
    """Best (decode, prefill) of each model at each thread count over ``rounds`` rounds in which
    all take turns (a busy spell on the shared machine then hits every model alike)."""
    from perf.quant import speed

    best: dict[tuple[str, int], tuple[float, float]] = {}

    def keep(key: tuple[str, int], figures: tuple[float, float]) -> None:
        old = best.get(key, (0.0, 0.0))
        best[key] = (max(old[0], figures[0]), max(old[1], figures[1]))

    names = list(onnx)
    for round_ in range(rounds):
        for threads in THREAD_COUNTS:
            _log(
                f"speed round {round_ + 1}/{rounds}, {threads} thread(s) "
                f"(load {os.getloadavg()[0]:.1f})"
            )
            for name, path in ggufs.items():
                keep((name, threads), llama_bench(tools, path, threads))
            if names:
                figures = speed([onnx[n] for n in names], rounds=2, threads=threads)
                for name, pair in zip(names, figures, strict=True):
                    keep((name, threads), pair)
    return best


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: wall times depend on it)."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # not on every platform
        return "n/a"


def search_costs(rows: list[Row], one_compile: float) -> str:
    """Each budget point's search against one fresh compile of the fixed recipe, as a ratio, and
    where its time went (sensitivity, compiles, the rest: fidelity measurements)."""
    fixed = next((r for r in rows if r.kind == "fixed"), None)
    lines = [
        f"search cost: one fresh compile {one_compile:.0f} s"
        + (f" ({fixed.name}, load {fixed.load} when it ended)" if fixed else "")
        + f"; target: a search < {SEARCH_TARGET:g}x one compile"
    ]
    for r in (r for r in rows if r.kind == "curator"):
        rest = max(
            r.search_seconds - r.sensitivity_seconds - r.compile_seconds - r.fidelity_seconds, 0.0
        )
        lines.append(
            f"  {r.name}: {r.search_seconds:.0f} s = {r.search_seconds / max(one_compile, 1e-9):.1f}x "
            f"one compile (sensitivity {r.sensitivity_seconds:.0f} s, {r.compiles} compile(s) "
            f"{r.compile_seconds:.0f} s, {r.compiles} fidelity measurement(s) "
            f"{r.fidelity_seconds:.0f} s of which the reference's one run "
            f"{r.reference_seconds:.0f} s, the rest {rest:.0f} s; load {r.load})"
        )
    return "\n".join(lines)


def budget_label(max_kl: float) -> str:
    return f"curator KL<={max_kl:g}"


def budget_point(
    source: Path, max_kl: float, workdir: Path, stem: str
) -> tuple[Path, dict[str, Any]]:
    """``curator compile SOURCE --max-kl X`` into the run's own cache (reused when a model built
    for the same budget from the same source is there): (model dir, its manifest's budget)."""
    from curator.budget import check_budget, compile_to_budget
    from curator.cache.modeldir import read_manifest
    from curator.compile import CompileRequest

    slug = f"{max_kl:g}".replace(".", "p").replace("-", "m")
    model_id = f"{stem}-kl{slug}-generic-cpu:1"
    cache = workdir / "cache"
    for manifest_path in cache.glob(f"*/{model_id.replace(':', '-')}/curator-manifest.json"):
        manifest = read_manifest(manifest_path.parent) or {}
        record = manifest.get("budget")
        if (
            isinstance(record, dict)
            and record.get("maxKl") == max_kl
            and manifest.get("sourceDir") == str(source)
        ):
            return manifest_path.parent, record
    request = CompileRequest(
        source=str(source), recipe="auto", model_id=model_id, cache_dir=cache, force=True
    )
    result = compile_to_budget(
        request,
        check_budget(max_kl, None),
        progress=_log,
        threads=THREADS,
        home=workdir / "home",
        max_compiles=3,
    )
    assert result.compiled.path is not None
    return result.compiled.path, result.to_record()


def tokenizer_model(source: Path, workdir: Path) -> Path:
    """A compiled model of ``source`` whose tokenizer cuts the fidelity text (any recipe: the
    tokenizer is the checkpoint's): the fp32-cpu compile, built once."""
    return compile_recipe(source, "fp32-cpu", workdir / "tokenizer-model")


def gguf_fidelity(
    path: Path, reference: Any, text: Any, workdir: Path, tokens_from: Path
) -> dict[str, float]:
    """A GGUF's fidelity (dequantized, scored as fp32), kept in ``<gguf>.fidelity.json`` next to
    it (keyed by its size and the text's sha256: a re-quantized file is measured again)."""
    from curator.fidelity import measure_fidelity
    from curator.formats.gguf_checkpoint import dequantize_gguf

    cache = path.with_name(path.name + ".fidelity.json")
    key = {"bytes": path.stat().st_size, "text": text.sha256, "reference": str(reference.path)}
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            return dict(stored["figures"])
    _log(f"fidelity {path.name} (dequantized, scored as fp32) ...")
    ckpt = dequantize_gguf(path, home=workdir / "gguf-home")
    got = measure_fidelity(
        ckpt.checkpoint_dir,
        reference,
        text,
        threads=THREADS,
        model_kind="transformers",
        tokens_from=tokens_from,
    )
    figures = {
        "kl": got.kl_mean,
        "top1": got.top1_agreement,
        "ppl": got.perplexity,
        "ref_ppl": got.reference_perplexity,
    }
    cache.write_text(json.dumps({"key": key, "figures": figures}), encoding="utf-8")
    return figures


AS_RUN_CONTEXT = 512  # llama-perplexity's chunk, as curator.fidelity's window


def parse_kl_divergence(output: str) -> dict[str, float]:
    """(mean KL, top-1 agreement) from ``llama-perplexity --kl-divergence``'s summary lines
    ``Mean    KLD:   0.073519 ±   0.001698`` and ``Same top p: 83.193 ± 0.885 %``."""
    kl = re.search(r"^Mean\s+KLD:\s+([0-9.eE+-]+)", output, re.MULTILINE)
    top1 = re.search(r"^Same top p:\s+([0-9.]+)", output, re.MULTILINE)
    if kl is None or top1 is None:
        raise RuntimeError(f"llama-perplexity printed no KL summary: {output[-2000:]}")
    return {"kl": float(kl.group(1)), "top1": float(top1.group(1)) / 100}


def _perplexity(tools: Any, model: Path, text: Any, *extra: str) -> str:
    cmd = [str(tools.perplexity), "-m", str(model), "-f", str(text.path)]
    cmd += ["-c", str(AS_RUN_CONTEXT), "-t", str(THREADS), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"llama-perplexity failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    return done.stdout + done.stderr


def gguf_fidelity_as_run(tools: Any, f32: Path, path: Path, text: Any) -> dict[str, float]:
    """A GGUF as llama.cpp runs it (its int8 activations included): ``llama-perplexity
    --kl-divergence`` against llama.cpp's own run of ``f32``, kept in ``<gguf>.as-run.json``
    (keyed by both files' sizes and the text's sha256). The f32 run's log-probabilities are
    stored once per f32 file and text next to it (``<f32>.<size>.<sha>.kld``, about 170 MiB at
    SmolLM2's 49k vocabulary)."""
    cache = path.with_name(path.name + ".as-run.json")
    key = {
        "bytes": path.stat().st_size,
        "base": f32.stat().st_size,
        "text": text.sha256,
        "context": AS_RUN_CONTEXT,
    }
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            return dict(stored["figures"])
    base = f32.with_name(f"{f32.name}.{f32.stat().st_size}.{text.sha256[:12]}.kld")
    if not base.is_file():
        _log(f"llama.cpp's own run of {f32.name} (the as-run reference) ...")
        partial = base.with_suffix(".partial")
        _perplexity(tools, f32, text, "--kl-divergence-base", str(partial))
        os.replace(partial, base)
    _log(f"fidelity {path.name} as llama.cpp runs it ...")
    figures = parse_kl_divergence(
        _perplexity(tools, path, text, "--kl-divergence-base", str(base), "--kl-divergence")
    )
    cache.write_text(json.dumps({"key": key, "figures": figures}), encoding="utf-8")
    return figures


def _sources(model: str, workdir: Path) -> tuple[Path, str, str]:
    """(fp32 checkpoint, file stem, label) of ``--model``."""
    if model == "q4_1":
        from curator.formats.gguf_checkpoint import dequantize_gguf
        from perf.peers_model import MODELS_ROOT, smollm2_gguf

        ckpt = dequantize_gguf(smollm2_gguf(), home=MODELS_ROOT / "gguf-home")
        return ckpt.checkpoint_dir, "smollm2-q4-1", "smollm2-q4_1-dequantized"
    from perf.peers_model import degridded_smollm2

    return degridded_smollm2(), "smollm2-degridded", "smollm2-degridded"


def measure_rows(
    workdir: Path,
    recipe: str = FIXED,
    rounds: int = ROUNDS,
    *,
    model: str = "degridded",
    budgets: tuple[float, ...] | None = None,
    peers: tuple[str, ...] = PEERS,
) -> tuple[list[Row], float]:
    """Build, convert, quantize, compile, search, score and time everything: one Row per point,
    and the wall seconds of one fresh compile of ``recipe`` (the search-time yardstick)."""
    import shutil
    import time

    from curator.fidelity import load_text, measure_fidelity, reference_from_dir
    from perf.peers_build import ensure_llama_tools

    workdir = workdir / model
    tools = ensure_llama_tools()
    reference_dir, stem, label = _sources(model, workdir)
    reference = reference_from_dir(reference_dir, label=label)
    text = load_text()
    ggufs: dict[str, Path] = {}
    as_run: dict[str, dict[str, float]] = {}
    if peers:
        _log("convert and quantize with llama.cpp ...")
        f32 = convert_to_gguf(tools, reference_dir, workdir, stem)
        ggufs = {kind: quantize(tools, f32, kind) for kind in peers}
        as_run = {kind: gguf_fidelity_as_run(tools, f32, p, text) for kind, p in ggufs.items()}
    fidelity: dict[str, Any] = {}
    compiled: dict[str, Path] = {}
    one_compile = 0.0
    compile_load = ""
    reference_ppl = 0.0
    if recipe:
        _log(f"compile {recipe} (fresh, timed: the yardstick of the search time) ...")
        fresh = workdir / "fresh-compile"
        shutil.rmtree(fresh, ignore_errors=True)
        started = time.monotonic()
        onnx = compile_recipe(reference_dir, recipe, fresh)
        one_compile = time.monotonic() - started
        compile_load = _load()
        _log(f"fidelity {recipe} ...")
        fixed = measure_fidelity(onnx, reference, text, threads=THREADS)
        fidelity[recipe] = (fixed.kl_mean, fixed.top1_agreement, fixed.perplexity)
        reference_ppl = fixed.reference_perplexity
        compiled[recipe] = onnx
        _log(
            f"{recipe}: KL {fixed.kl_mean:.4f}, top-1 {fixed.top1_agreement:.1%}, "
            f"compile {one_compile:.0f} s"
        )
    tokens_from = compiled.get(recipe) or tokenizer_model(reference_dir, workdir)
    for kind, path in ggufs.items():
        got = gguf_fidelity(path, reference, text, workdir, tokens_from)
        fidelity[kind] = (got["kl"], got["top1"], got["ppl"])
        reference_ppl = reference_ppl or got["ref_ppl"]
        _log(
            f"{kind}: KL {got['kl']:.4f} (as run {as_run[kind]['kl']:.4f}), top-1 "
            f"{got['top1']:.1%}, {path.stat().st_size / 2**20:.1f} MiB"
        )
    searches: dict[str, tuple[float, int, float, float, str, float, float]] = {}
    compile_times: list[float] = []
    if budgets is None:  # one budget at each llama.cpp point's KL: the targets' own test
        budgets = peer_budgets({k: (fidelity[k][0], as_run[k]["kl"]) for k in ggufs})
    for max_kl in budgets:
        name = budget_label(max_kl)
        _log(f"{name}: search ...")
        try:
            model_dir, record = budget_point(reference_dir, max_kl, workdir, stem)
        except BudgetNotMet as missed:  # a point the formats cannot reach: judged, not fatal
            _log(f"{name}: not reached: {missed.message}")
            continue
        chosen = record["attempts"][record["chosen"]]
        fidelity[name] = (chosen["klMean"], chosen["top1Agreement"], chosen["perplexity"])
        compiled[name] = model_dir
        # a search from scratch: a cached sensitivity's (and fidelity reference's) own time is
        # added back
        reference_seconds = float(record.get("referenceSeconds", 0.0))
        seconds = (
            float(record["searchSeconds"])
            + (float(record["sensitivitySeconds"]) if record.get("sensitivityCached") else 0.0)
            + (reference_seconds if record.get("referenceCached") else 0.0)
        )
        searches[name] = (
            seconds,
            len(record["attempts"]),
            float(record["sensitivitySeconds"]),
            sum(float(a.get("compileSeconds", 0.0)) for a in record["attempts"]),
            _load(),
            sum(float(a.get("fidelitySeconds", 0.0)) for a in record["attempts"])
            + (reference_seconds if record.get("referenceCached") else 0.0),
            reference_seconds,
        )
        compile_times += [float(a.get("compileSeconds", 0.0)) for a in record["attempts"]]
        _log(
            f"{name}: KL {chosen['klMean']:.4f}, top-1 {chosen['top1Agreement']:.1%}, "
            f"{chosen['bytes'] / 2**20:.1f} MiB, formats {record['formats']}, search {seconds:.0f} s "
            f"({len(record['attempts'])} compile(s))"
        )
    timed = speeds(tools, ggufs, compiled, rounds)
    from perf.quant import model_bytes

    sizes = {n: model_bytes(p) for n, p in compiled.items()}
    sizes.update({k: p.stat().st_size for k, p in ggufs.items()})
    if not one_compile and compile_times:  # no fixed compile: a search's own compiles, median
        one_compile = sorted(compile_times)[len(compile_times) // 2]
    order = [*([recipe] if recipe else []), *ggufs, *(budget_label(b) for b in budgets)]
    rows = [
        Row(
            name=name,
            bytes=sizes[name],
            kl_mean=fidelity[name][0],
            top1=fidelity[name][1],
            perplexity=fidelity[name][2],
            reference_perplexity=reference_ppl,
            decode_tps={t: timed.get((name, t), (0.0, 0.0))[0] for t in THREAD_COUNTS},
            prefill_tps={t: timed.get((name, t), (0.0, 0.0))[1] for t in THREAD_COUNTS},
            kind="fixed" if name == recipe else ("llama.cpp" if name in ggufs else "curator"),
            search_seconds=searches[name][0] if name in searches else 0.0,
            compiles=searches[name][1] if name in searches else 0,
            sensitivity_seconds=searches[name][2] if name in searches else 0.0,
            compile_seconds=searches[name][3] if name in searches else 0.0,
            fidelity_seconds=searches[name][5] if name in searches else 0.0,
            reference_seconds=searches[name][6] if name in searches else 0.0,
            load=searches[name][4]
            if name in searches
            else (compile_load if name == recipe else ""),
            kl_as_run=as_run[name]["kl"] if name in as_run else None,
            top1_as_run=as_run[name]["top1"] if name in as_run else None,
        )
        for name in order
        if name in sizes  # a budget not reached has no model (logged above)
    ]
    return rows, one_compile


@dataclass(frozen=True)
class Verdict:
    """One of the issue's targets, the figures behind it and whether it holds."""

    name: str
    detail: str
    ok: bool | None  # None: cannot be judged (no curator point reaches the peer's KL)


def peer_budgets(kls: dict[str, tuple[float, float]]) -> tuple[float, ...]:
    """One ``--max-kl`` just under each llama.cpp point's KL on both bases (its weights
    dequantized, as llama.cpp runs it), largest first; budgets within 5% of each other are one,
    the smaller (its point answers both)."""
    wanted = sorted({float(f"{0.995 * kl:.3g}") for pair in kls.values() for kl in pair})
    kept: list[float] = []
    for kl in wanted:
        if not kept or kl > 1.05 * kept[-1]:
            kept.append(kl)
    return tuple(reversed(kept))


# The two bases a llama.cpp point's KL is taken on: its weights alone (the GGUF dequantized and
# scored as fp32, the same method as curator's fidelity), and as llama.cpp runs it (its int8
# activations included, llama-perplexity). curator's own figures are always as onnxruntime runs
# the model, int8 activations included.
BASES = (("weights", "its weights dequantized"), ("run", "as llama.cpp runs it"))


def peer_kl(peer: Row, basis: str) -> float | None:
    return peer.kl_mean if basis == "weights" else peer.kl_as_run


def matching_point(rows: list[Row], kl: float) -> Row | None:
    """curator's smallest measured budget point with KL no worse than ``kl`` (no
    interpolation between points: the figure a user would actually get)."""
    reaching = [r for r in rows if r.kind == "curator" and r.kl_mean <= kl]
    return min(reaching, key=lambda r: r.bytes) if reaching else None


def ratio_text(ratio: float, target: float) -> str:
    """``ratio`` with two decimals, or as many more as it takes for the figure shown to fall on
    the same side of ``target`` as the ratio itself (1.1004 against 1.1: ``1.1004``)."""
    for digits in range(2, 7):
        shown = f"{ratio:.{digits}f}"
        if (float(shown) > target) == (ratio > target):
            return shown
    return f"{ratio:.6f}"


def _size_verdict(rows: list[Row], peer: Row, kl: float, basis_label: str) -> Verdict:
    name = f"{peer.name}: same KL at <= {SIZE_TARGET}x the file ({basis_label}, KL {kl:.4f})"
    ours = matching_point(rows, kl)
    if ours is None:
        best = min((r for r in rows if r.kind == "curator"), key=lambda r: r.kl_mean, default=None)
        detail = f"no curator point reaches KL {kl:.4f}" + (
            f" (the best, {best.name}, measured {best.kl_mean:.4f} at {best.bytes / 2**20:.1f} MiB)"
            if best
            else ""
        )
        return Verdict(name, detail, False)
    ratio = ours.bytes / peer.bytes
    return Verdict(
        name,
        f"{ours.name} KL {ours.kl_mean:.4f} <= {kl:.4f} at "
        f"{ours.bytes / 2**20:.1f} MiB vs {peer.bytes / 2**20:.1f} MiB = "
        f"{ratio_text(ratio, SIZE_TARGET)}x",
        ratio <= SIZE_TARGET,
    )


def _decode_verdicts(ours: Row | None, peer: Row) -> list[Verdict]:
    out: list[Verdict] = []
    for t in THREAD_COUNTS:
        name = f"{peer.name}: decode at {t} thread(s) >= {DECODE_TARGET}x"
        if ours is None:
            out.append(Verdict(name, f"no curator point reaches {peer.name}'s KL", None))
        elif not (ours.decode_tps[t] and peer.decode_tps[t]):
            out.append(Verdict(name, "speed not measured in this run (--rounds 0)", None))
        else:
            speed_ratio = ours.decode_tps[t] / max(peer.decode_tps[t], 1e-9)
            out.append(
                Verdict(
                    name,
                    f"{ours.name} {ours.decode_tps[t]:.0f} vs {peer.decode_tps[t]:.0f} tok/s "
                    f"= {speed_ratio:.2f}x",
                    speed_ratio >= DECODE_TARGET,
                )
            )
    return out


def verdicts(rows: list[Row], one_compile: float) -> list[Verdict]:
    """The targets of issue 22 item 4, judged on this run's figures: the file size at every
    llama.cpp point on each basis it was measured on; decode at the Q4_K_M point (the curator
    point reaching it as llama.cpp runs it, when measured); the search's time."""
    out: list[Verdict] = []
    for peer in (r for r in rows if r.kind == "llama.cpp"):
        for basis, label in BASES:
            kl = peer_kl(peer, basis)
            if kl is not None:
                out.append(_size_verdict(rows, peer, kl, label))
        if peer.name == KL_TARGET_PEER:
            kl = peer.kl_as_run if peer.kl_as_run is not None else peer.kl_mean
            out += _decode_verdicts(matching_point(rows, kl), peer)
    for row in (r for r in rows if r.kind == "curator" and r.search_seconds > 0):
        ratio = row.search_seconds / max(one_compile, 1e-9)
        out.append(
            Verdict(
                f"{row.name}: search < {SEARCH_TARGET:g}x one compile",
                f"{row.search_seconds:.0f} s ({row.compiles} compile(s)) vs one compile "
                f"{one_compile:.0f} s = {ratio:.1f}x",
                ratio < SEARCH_TARGET,
            )
        )
    return out


def ratios(rows: list[Row]) -> list[Ratio]:
    """Every point against Q4_K_M (for `python -m perf peers`)."""
    peer = next((r for r in rows if r.name == KL_TARGET_PEER), None)
    if peer is None:
        return []
    out: list[Ratio] = []
    for row in (r for r in rows if r.name != KL_TARGET_PEER):
        vs = f"{row.name} vs {peer.name}"
        out += [
            Ratio(f"{vs}: KL mean (nats)", row.kl_mean, peer.kl_mean, "nats"),
            Ratio(f"{vs}: file size", row.bytes / 2**20, peer.bytes / 2**20, "MiB"),
        ]
        for t in THREAD_COUNTS:
            out.append(
                Ratio(f"{vs}: decode ({t}t)", row.decode_tps[t], peer.decode_tps[t], "tok/s")
            )
    return out


def markdown(rows: list[Row]) -> str:
    """The curve as a table for recipes/README.md, smallest file first."""
    speed_heads = "".join(f" decode {t}t | prefill {t}t |" for t in THREAD_COUNTS)
    lines = [
        f"| point | file MiB | KL mean | top-1 | KL as run | top-1 as run | ppl (fp32 ppl) |"
        f"{speed_heads} search |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (2 * len(THREAD_COUNTS)) + "---:|",
    ]
    for r in sorted(rows, key=lambda r: r.bytes):
        speed_cells = "".join(
            f" {r.decode_tps[t]:.0f} | {r.prefill_tps[t]:.0f} |" for t in THREAD_COUNTS
        )
        search = f"{r.search_seconds:.0f} s / {r.compiles}" if r.kind == "curator" else "-"
        name = f"**{r.name}**" if r.kind == "curator" else r.name
        if r.kind != "llama.cpp":  # curator's figures are measured as onnxruntime runs it
            as_run = f"{r.kl_mean:.4f} | {r.top1:.1%}"
        elif r.kl_as_run is not None and r.top1_as_run is not None:
            as_run = f"{r.kl_as_run:.4f} | {r.top1_as_run:.1%}"
        else:
            as_run = "- | -"
        lines.append(
            f"| {name} | {r.bytes / 2**20:.1f} | {r.kl_mean:.4f} | {r.top1:.1%} | {as_run} "
            f"| {r.perplexity:.1f} ({r.reference_perplexity:.1f}) |{speed_cells} {search} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path, title: str) -> Path:
    """File size (MiB) against mean KL (log scale): curator's budgets as a line, llama.cpp's
    types and the fixed int4-cpu as labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ours = sorted((r for r in rows if r.kind == "curator"), key=lambda r: r.bytes)
    if ours:
        ax.plot(
            [r.bytes / 2**20 for r in ours],
            [r.kl_mean for r in ours],
            "o-",
            color="tab:blue",
            label="curator --max-kl (budgets)",
        )
        for r in ours:
            ax.annotate(
                r.name.split("<=")[-1],
                (r.bytes / 2**20, r.kl_mean),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
                color="tab:blue",
            )
    peers = sorted((r for r in rows if r.kind == "llama.cpp"), key=lambda r: r.bytes)
    ax.plot(
        [r.bytes / 2**20 for r in peers],
        [r.kl_mean for r in peers],
        "s--",
        color="tab:orange",
        label="llama.cpp, weights dequantized",
    )
    run = [(r.bytes / 2**20, r.kl_as_run) for r in peers if r.kl_as_run is not None]
    if run:
        ax.plot(
            [size for size, _ in run],
            [kl for _, kl in run],
            "s:",
            color="tab:red",
            label="llama.cpp as it runs (int8 activations)",
        )
    for r in peers:
        ax.annotate(
            r.name,
            (r.bytes / 2**20, r.kl_mean),
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
            color="tab:orange",
        )
    for r in (r for r in rows if r.kind == "fixed"):
        ax.plot([r.bytes / 2**20], [r.kl_mean], "^", color="tab:green", label=r.name)
    ax.set_yscale("log")
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("mean KL vs fp32 (nats, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def measure(workdir: Path) -> list[Ratio]:
    """For `python -m perf peers`: the ratios, compiles and GGUFs cached under .cache/."""
    del workdir  # the conversions and compiles are worth keeping between runs
    rows, _ = measure_rows(WORKDIR)
    return ratios(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.peers", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="kept between runs")
    parser.add_argument(
        "--recipe", default=FIXED, help="the fixed curator recipe to compare ('' to leave it out)"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="speed rounds (best kept; 0: no speed figures)"
    )
    parser.add_argument("--model", choices=("degridded", "q4_1"), default="degridded")
    parser.add_argument(
        "--budgets",
        default=",".join(f"{b:g}" for b in BUDGETS),
        help="comma-separated --max-kl values (default: the issue's 0.4,0.2,0.1,0.05,0.02); "
        "`peers`: one budget at each llama.cpp point's KL, its weights' and as llama.cpp runs it",
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="llama-quantize types")
    args = parser.parse_args(argv)
    budgets = (
        None if args.budgets == "peers" else tuple(float(b) for b in args.budgets.split(",") if b)
    )
    peers = tuple(p for p in args.peers.split(",") if p)
    workdir = args.workdir.resolve()
    rows, one_compile = measure_rows(
        workdir, args.recipe, args.rounds, model=args.model, budgets=budgets, peers=peers
    )
    print(markdown(rows))
    print()
    png = plot(rows, workdir / args.model / "curve.png", f"SmolLM2-135M ({args.model}): size vs KL")
    print(f"curve: {png}")
    print(f"one compile ({args.recipe or 'median of the searches'}): {one_compile:.0f} s")
    print(search_costs(rows, one_compile))
    print()
    print(closing_note(verdicts(rows, one_compile)))
    return 0


def closing_note(found: list[Verdict]) -> str:
    """The issue's targets, one line each: met / NOT met and the figures."""
    lines = ["targets (issue 22 item 4):"]
    for v in found:
        mark = "not judged" if v.ok is None else ("met" if v.ok else "NOT met")
        lines.append(f"  {v.name}: {mark} ({v.detail})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
