"""The size ladder (issue 20): ``curator compile --recipe int4-cpu`` on checkpoints of real models'
shapes, against llama.cpp's convert + quantize on the same checkpoints, in one run.

Each rung is a Qwen2.5 shape (hidden size, layers, intermediate size, heads, vocabulary, tied or
untied embedding, as in the real config.json) with random weights, stored bf16 as Hub checkpoints
are (sharded at 4 GiB, with an index), and a byte-level BPE tokenizer trained offline
(curator.devmodels). Random weights cost the same to compile as real ones: only cost is measured.

Rungs (``--rungs``, comma-separated):

    0.4b   Qwen2.5-0.5B layers with a 32k vocabulary, untied (0.42B; the issue's first row)
    0.5b   Qwen2.5-0.5B, real 151,936 vocabulary, tied embedding (0.49B)
    1.5b   Qwen2.5-1.5B, real vocabulary, tied (1.54B)
    3b     Qwen2.5-3B, real vocabulary, tied (3.09B)
    7b     Qwen2.5-7B, 152,064 vocabulary, untied (7.62B): header-only (sparse, zeros on read)
           unless ``--dense-7b``; its compile is measured only with ``--compile-7b``

The checkpoints are written tensor by tensor (safetensors header, then raw data), never a model in
memory, and cached under ``.cache/ladder/``. For every rung:

- preflight: ``curator compile CKPT --recipe int4-cpu --dry-run --json`` (its predicted peak, or
  the refusal with the prediction it quotes);
- curator: ``curator compile CKPT --recipe int4-cpu``: wall time and peak RSS of the whole process
  tree (psutil, sampled every 0.1 s);
- the anchor: llama.cpp's ``convert_hf_to_gguf.py --outtype bf16`` then ``llama-quantize Q4_K_M``
  (built as ``make bench-peers`` builds it), each measured the same way; the anchor's peak is the
  larger of the two, its wall time the sum.

Targets: peak <= 1.0 byte/parameter + 1.5 GiB on every rung; the 3B shape compiles on this machine;
the 7B shape predicted under 12 GiB; preflight within +-15% of the measured peak. Every figure is
printed as a ratio against the anchor from the same run.

Heavy steps take the lock named by ``$CURATOR_HEAVY_LOCK`` (e.g. /tmp/curator-heavy.lock) when set,
one step at a time, so other heavy jobs on a shared machine interleave but never overlap.

    python -m perf ladder --rungs 0.4b,1.5b         # rows in make bench's table
    python -m perf.ladder --rungs 0.5b [--no-anchor] [--keep] [--cores 1,2]

``--cores 1,2`` compiles each rung again pinned to that many cores (``taskset``, Linux): the whole
compile, so the figure is what a 1-core and a 2-core machine would see (target: 2 cores >= 1.6x).
``--core-rounds N`` alternates the pinned compiles N times and compares the fastest of each count
(perf.peers's speeds are taken the same way): on a shared machine one compile's wall time moves by
several seconds with the load beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.portable import process_peak_rss_bytes
from perf._table import Ratio

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / ".cache" / "ladder"
GIB = 2**30
RECIPE = "int4-cpu"
ANCHOR_KIND = "Q4_K_M"
SHARD_BYTES = 4 * GIB  # Hub checkpoints are sharded at a few GB
TOKENIZER_VOCAB = 32768  # trained tokens; the config's vocabulary is padded above it, as Qwen's is
BOUND_PER_PARAM = 1.0  # bytes per parameter ...
BOUND_FIXED = 1.5 * GIB  # ... plus this, on every rung
PREDICT_7B_TARGET = 12 * GIB
PREFLIGHT_TOLERANCE = 0.15
SAMPLE_SECONDS = 0.1
GENERATOR_VERSION = 1  # bump when the checkpoint bytes change for the same shape
DEFAULT_RUNGS = ("0.5b", "1.5b", "3b", "7b")


@dataclass(frozen=True)
class Shape:
    """A Qwen2.5 model's shape, as its config.json gives it."""

    label: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    sparse: bool = False  # header-only: the data reads as zeros and takes no disk blocks

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every tensor, in the order Hugging Face writes them."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (self.vocab, h))]
        for i in range(self.layers):
            p = f"model.layers.{i}"
            out += [
                (f"{p}.input_layernorm.weight", (h,)),
                (f"{p}.self_attn.q_proj.weight", (h, h)),
                (f"{p}.self_attn.q_proj.bias", (h,)),
                (f"{p}.self_attn.k_proj.weight", (kv, h)),
                (f"{p}.self_attn.k_proj.bias", (kv,)),
                (f"{p}.self_attn.v_proj.weight", (kv, h)),
                (f"{p}.self_attn.v_proj.bias", (kv,)),
                (f"{p}.self_attn.o_proj.weight", (h, h)),
                (f"{p}.post_attention_layernorm.weight", (h,)),
                (f"{p}.mlp.gate_proj.weight", (self.intermediate, h)),
                (f"{p}.mlp.up_proj.weight", (self.intermediate, h)),
                (f"{p}.mlp.down_proj.weight", (h, self.intermediate)),
            ]
        out.append(("model.norm.weight", (h,)))
        if not self.tied:
            out.append(("lm_head.weight", (self.vocab, h)))
        return out

    @property
    def parameters(self) -> int:
        return sum(math.prod(s) for _, s in self.tensors())

    def config(self, ids: dict[str, int]) -> dict[str, Any]:
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "attention_dropout": 0.0,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": 32768,
            "max_window_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": self.tied,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": self.vocab,
            "bos_token_id": ids["bos"],
            "eos_token_id": ids["eos"],
            "pad_token_id": ids["pad"],
        }


RUNGS: dict[str, Shape] = {
    "0.4b": Shape(
        "Qwen2.5-0.5B layers, 32k vocabulary, untied", 896, 4864, 24, 14, 2, 32768, False
    ),
    "0.5b": Shape("Qwen2.5-0.5B shape", 896, 4864, 24, 14, 2, 151936, True),
    "1.5b": Shape("Qwen2.5-1.5B shape", 1536, 8960, 28, 12, 2, 151936, True),
    "3b": Shape("Qwen2.5-3B shape", 2048, 11008, 36, 16, 2, 151936, True),
    "7b": Shape("Qwen2.5-7B shape", 3584, 18944, 28, 28, 4, 152064, False, sparse=True),
}


def _log(message: str) -> None:
    print(f"ladder: {message}", file=sys.stderr, flush=True)


# --- checkpoints, written tensor by tensor -------------------------------------------------------


def _random_bf16(rng: Any, count: int) -> Any:
    """``count`` bf16 bit patterns: random sign and mantissa, magnitude in [2**-7, 2**-5) (the
    scale of an initialised weight), made from random bits without any float arithmetic."""
    import numpy as np

    bits = rng.integers(0, 1 << 16, size=count, dtype=np.uint16)
    bits &= np.uint16(0x80FF)  # sign, the exponent's lowest bit, the 7 mantissa bits
    bits |= np.uint16(0x3C00)  # exponent 120 or 121
    return bits


def _write_tensor(handle: Any, name: str, shape: tuple[int, ...], rng: Any) -> None:
    import numpy as np

    count = math.prod(shape)
    if name.endswith("norm.weight"):
        handle.write(np.full(count, 0x3F80, dtype=np.uint16).tobytes())  # 1.0
        return
    chunk = 1 << 24
    for start in range(0, count, chunk):
        handle.write(_random_bf16(rng, min(chunk, count - start)).tobytes())


def _shards(shape: Shape) -> list[list[tuple[str, tuple[int, ...]]]]:
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, dims in shape.tensors():
        nbytes = 2 * math.prod(dims)
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((name, dims))
        size += nbytes
    return shards


def _header(tensors: list[tuple[str, tuple[int, ...]]]) -> tuple[bytes, int]:
    """The safetensors header (8-byte length, JSON padded to 8 bytes) and the data's size."""
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dims in tensors:
        end = offset + 2 * math.prod(dims)
        entries[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


def write_checkpoint(shape: Shape, out: Path, tokenizer_dir: Path, seed: int = 0) -> None:
    """A Hugging Face checkpoint of ``shape`` in ``out``: config, tokenizer, bf16 safetensors shards
    and their index, written tensor by tensor (or header-only when ``shape.sparse``)."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    for item in tokenizer_dir.iterdir():
        shutil.copy2(item, out / item.name)
    special = json.loads((tokenizer_dir / "ids.json").read_text(encoding="utf-8"))
    (out / "ids.json").unlink()
    (out / "config.json").write_text(json.dumps(shape.config(special), indent=2) + "\n")
    generation = {"bos_token_id": special["bos"], "eos_token_id": special["eos"]}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    rng = np.random.default_rng(seed)
    shards = _shards(shape)
    weight_map: dict[str, str] = {}
    total = 0
    for index, tensors in enumerate(shards, start=1):
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        header, data_bytes = _header(tensors)
        with (out / name).open("wb") as handle:
            handle.write(header)
            if shape.sparse:
                handle.truncate(len(header) + data_bytes)
            else:
                for tensor, dims in tensors:
                    _write_tensor(handle, tensor, dims, rng)
        weight_map.update({tensor: name for tensor, _ in tensors})
        total += data_bytes
        _log(f"  wrote {name} ({data_bytes / GIB:.2f} GiB{', sparse' if shape.sparse else ''})")
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2) + "\n")


def _tokenizer(root: Path) -> Path:
    """A byte-level BPE tokenizer trained once on local text (curator.devmodels), cached."""
    from curator.devmodels import save_tokenizer
    from curator.devmodels.cache import cached_build

    def build(out: Path) -> None:
        tokenizer = save_tokenizer(out, vocab_size=TOKENIZER_VOCAB)
        ids = {
            "bos": tokenizer.convert_tokens_to_ids("<|im_start|>"),
            "eos": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        }
        (out / "ids.json").write_text(json.dumps(ids) + "\n")

    key = {"kind": "ladder-tokenizer", "vocab": TOKENIZER_VOCAB, "python": sys.version.split()[0]}
    return cached_build(root, "tokenizer", key, build)


def checkpoint(rung: str, root: Path = ROOT, *, dense: bool = False) -> Path:
    """The rung's checkpoint under ``root``, written once (a few seconds per GB) and cached."""
    from curator.devmodels.cache import cached_build

    shape = RUNGS[rung]
    if dense:
        shape = Shape(**{**shape.__dict__, "sparse": False})
    tokenizer = _tokenizer(root)
    key = {"kind": "ladder", "version": GENERATOR_VERSION, "shape": shape.__dict__}
    label = f"qwen2.5-{rung}-bf16{'-header' if shape.sparse else ''}"
    _log(f"checkpoint {label} ({shape.parameters / 1e9:.2f}B parameters) ...")
    return cached_build(root, label, key, lambda out: write_checkpoint(shape, out, tokenizer))


# --- measuring a process tree --------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Wall time and peak resident memory of one command's process tree (``peak_bytes``: RSS,
    which counts the pages of memory-mapped files too; ``peak_anon_bytes``: RSS less file-backed
    and shared pages, the part the kernel cannot drop and re-read)."""

    seconds: float
    peak_bytes: int
    returncode: int
    log: Path
    peak_anon_bytes: int = 0
    cpu_seconds: float = 0.0  # user + system of the tree (each process as last sampled)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end


def run_measured(
    command: Sequence[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``command`` (output to ``log``), sampling the summed RSS of it and all its
    descendants every SAMPLE_SECONDS, and each one's own high-water mark where the kernel keeps
    it; the peak over the run."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    peak = peak_anon = 0
    cpu: dict[int, float] = {}  # pid -> user + system seconds, as last sampled
    load_start = psutil.getloadavg()[0]
    with log.open("wb") as handle:
        start = time.perf_counter()
        proc = psutil.Popen(
            list(command), stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        while True:
            total = anon = 0
            try:
                members = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                members = []
            high_water = 0
            for member in members:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    info = member.memory_info()
                    total += info.rss
                    anon += info.rss - getattr(info, "shared", 0)
                    high_water += (
                        process_peak_rss_bytes(member.pid) or info.rss
                    )  # summed: an upper bound
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
            peak = max(peak, total, high_water)
            peak_anon = max(peak_anon, anon)
            try:
                code = proc.wait(timeout=SAMPLE_SECONDS)
                break
            except psutil.TimeoutExpired:
                continue
        seconds = time.perf_counter() - start
    load = (load_start, psutil.getloadavg()[0])
    return Measured(seconds, peak, int(code), log, peak_anon, sum(cpu.values()), load)


@contextlib.contextmanager
def heavy_lock() -> Iterator[None]:
    """The machine's heavy-job lock named by $CURATOR_HEAVY_LOCK, if any."""
    path = os.environ.get("CURATOR_HEAVY_LOCK")
    if not path:
        yield
        return
    from filelock import FileLock

    _log(f"waiting for {path} ...")
    with FileLock(path):
        yield


# --- the three measurements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    predicted_bytes: int | None
    refused: str | None  # the refusal message, if preflight refused the compile


def _curator(*args: str) -> list[str]:
    return [sys.executable, "-m", "curator", *args]


def _env(workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FOUNDRY_CACHE_DIR": str(workdir / "foundry-cache"),
        "CURATOR_HOME": str(workdir / "home"),
        "HF_HUB_OFFLINE": "1",
    }


def _model_id(rung: str) -> str:
    from curator.recipes import get_recipe

    return f"ladder-{rung.replace('.', 'p')}-{get_recipe(RECIPE).variant}:1"


def preflight(ckpt: Path, rung: str, workdir: Path) -> Preflight:
    """``curator compile --dry-run --json``: the predicted peak, or the refusal quoting it."""
    done = subprocess.run(
        [
            *_curator("compile", str(ckpt), "--recipe", RECIPE, "--id", _model_id(rung)),
            "--dry-run",
            "--json",
            "--force",
        ],
        env=_env(workdir),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr[-1500:]
        raise RuntimeError(f"curator compile --dry-run printed no JSON: {tail}") from None
    plan = doc.get("plan") if isinstance(doc, dict) else None
    if isinstance(plan, dict) and plan.get("predicted_peak_bytes"):
        return Preflight(int(plan["predicted_peak_bytes"]), None)
    message = json.dumps(doc)
    found = re.search(r"predicted to need ([0-9.]+) GiB", message)
    predicted = int(float(found.group(1)) * GIB) if found else None
    error = doc.get("error") if isinstance(doc, dict) else None
    text = error.get("message") if isinstance(error, dict) else error
    return Preflight(predicted, str(text or message)[:300])


def bypass_recipe(workdir: Path) -> Path:
    """A copy of the recipe whose RAM prediction never refuses (ram_factor 0.1), to measure what
    preflight refuses: the refusal itself is still reported as the rung's verdict."""
    from curator.recipes import get_recipe

    data = json.loads(get_recipe(RECIPE).path.read_text(encoding="utf-8"))
    data["ram_factor"] = 0.1
    out = workdir / "recipes" / f"{RECIPE}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out


def compile_measured(
    ckpt: Path, rung: str, workdir: Path, cores: int | None = None, recipe: str | None = None
) -> Measured:
    """``curator compile CKPT --recipe int4-cpu`` with its process tree's peak (on the first
    ``cores`` cores only, when given; ``recipe``: a recipe file instead)."""
    tag = f"{cores}-cores" if cores else "all-cores"
    recipe = recipe or RECIPE
    pin = ["taskset", "-c", f"0-{cores - 1}"] if cores else []
    with heavy_lock():
        _log(f"{rung}: curator compile --recipe {recipe} ({tag}) ...")
        return run_measured(
            [
                *pin,
                *_curator("compile", str(ckpt), "--recipe", recipe, "--id", _model_id(rung)),
                "--force",
            ],
            workdir / f"compile-{rung}-{tag}.log",
            env=_env(workdir),
        )


def compiled_dir(rung: str, workdir: Path) -> Path:
    from curator.compile.placement import target_dir

    return target_dir(workdir / "foundry-cache", "local", _model_id(rung))


CONVERT_WRAPPER = """import runpy, sys
source = sys.argv[1]
sys.path[0:0] = [source, source + "/gguf-py"]
from conversion.base import TextModel
# The tokenizer is trained here, so llama.cpp's pre-tokenizer table does not know its hash.
TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
sys.argv = [source + "/convert_hf_to_gguf.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass(frozen=True)
class Anchor:
    convert: Measured
    quantize: Measured
    gguf_bytes: int

    @property
    def seconds(self) -> float:
        return self.convert.seconds + self.quantize.seconds

    @property
    def peak_bytes(self) -> int:
        return max(self.convert.peak_bytes, self.quantize.peak_bytes)


def anchor(ckpt: Path, rung: str, workdir: Path, threads: int) -> Anchor:
    """llama.cpp's convert (bf16 GGUF) then ``llama-quantize Q4_K_M`` with ``threads`` threads."""
    from perf.peers import _converter_env
    from perf.peers_build import ensure_llama_tools

    with heavy_lock():
        tools = ensure_llama_tools()
    out = workdir / f"anchor-{rung}"
    out.mkdir(parents=True, exist_ok=True)
    wrapper = out / "convert.py"
    wrapper.write_text(CONVERT_WRAPPER, encoding="utf-8")
    bf16, q4 = out / "model-bf16.gguf", out / f"model-{ANCHOR_KIND}.gguf"
    try:
        with heavy_lock():
            _log(f"{rung}: llama.cpp convert_hf_to_gguf.py --outtype bf16 ...")
            convert = run_measured(
                [
                    sys.executable,
                    str(wrapper),
                    str(tools.source),
                    str(ckpt),
                    "--outtype",
                    "bf16",
                    "--outfile",
                    str(bf16),
                ],
                out / "convert.log",
                env=_converter_env(out),
            )
            if convert.returncode != 0 or not bf16.is_file():
                raise RuntimeError(f"convert_hf_to_gguf.py failed; see {convert.log}")
            _log(f"{rung}: llama-quantize {ANCHOR_KIND} ({threads} thread(s)) ...")
            quantize = run_measured(
                [str(tools.quantize), str(bf16), str(q4), ANCHOR_KIND, str(threads)],
                out / "quantize.log",
            )
            if quantize.returncode != 0 or not q4.is_file():
                raise RuntimeError(f"llama-quantize failed; see {quantize.log}")
        return Anchor(convert, quantize, q4.stat().st_size)
    finally:
        bf16.unlink(missing_ok=True)
        q4.unlink(missing_ok=True)


# --- one rung, and the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class RungResult:
    rung: str
    shape: Shape
    parameters: int
    preflight: Preflight
    compiled: Measured | None = None
    output_bytes: int | None = None
    anchor: Anchor | None = None
    extra: dict[str, Measured] = field(default_factory=dict)  # e.g. compiles pinned to fewer cores
    note: str = ""
    pipeline: dict[str, Measured] = field(default_factory=dict)  # register, smoke, bench, fidelity

    @property
    def bound_bytes(self) -> float:
        return BOUND_PER_PARAM * self.parameters + BOUND_FIXED

    @property
    def ok(self) -> bool:
        return self.compiled is not None and self.compiled.returncode == 0


def _faster(run: Measured, best: Measured) -> bool:
    """``run`` is kept over ``best`` as a pinned compile's figure: it succeeded and took less wall
    time (or ``best`` failed). The fastest of alternating rounds is the least disturbed one."""
    if run.returncode != 0:
        return False
    return best.returncode != 0 or run.seconds < best.seconds


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_rung(
    rung: str,
    workdir: Path,
    *,
    with_anchor: bool = True,
    anchor_threads: int = 2,
    keep: bool = False,
    dense_7b: bool = False,
    compile_7b: bool = False,
    with_pipeline: bool = False,
    bypass_refusal: bool = False,
    cores: Sequence[int] = (),
    core_rounds: int = 1,
) -> RungResult:
    ckpt = checkpoint(rung, dense=dense_7b and rung == "7b")
    shape = RUNGS[rung]
    params = shape.parameters
    plan = preflight(ckpt, rung, workdir)
    predicted = "-" if plan.predicted_bytes is None else f"{plan.predicted_bytes / GIB:.2f} GiB"
    _log(f"{rung}: preflight predicts {predicted}{' (refused)' if plan.refused else ''}")
    sparse = shape.sparse and not dense_7b
    if rung == "7b" and not compile_7b:
        return RungResult(rung, shape, params, plan, note="preflight only (header-only checkpoint)")
    recipe = RECIPE
    if plan.refused and not (bypass_refusal and "of RAM at peak" in plan.refused):
        return RungResult(rung, shape, params, plan, note=f"refused: {plan.refused}")
    if plan.refused:
        _log(f"{rung}: preflight refused ({plan.refused}); compiling anyway to measure it")
        recipe = str(bypass_recipe(workdir))
    compiled = compile_measured(ckpt, rung, workdir, recipe=recipe)
    output = compiled_dir(rung, workdir)
    out_bytes = _dir_bytes(output) if output.is_dir() else None
    peak = compiled.peak_bytes / GIB
    _log(
        f"{rung}: curator exit {compiled.returncode}, {compiled.seconds:.1f} s "
        f"({compiled.cpu_seconds:.0f} s CPU, load average {compiled.load[0]:.1f}-"
        f"{compiled.load[1]:.1f}), peak {peak:.2f} GiB"
        f" ({compiled.peak_anon_bytes / GIB:.2f} GiB less file-backed pages)"
    )
    anchored = anchor(ckpt, rung, workdir, anchor_threads) if with_anchor else None
    if anchored:
        _log(
            f"{rung}: anchor convert {anchored.convert.seconds:.1f} s "
            f"{anchored.convert.peak_bytes / GIB:.2f} GiB, quantize {anchored.quantize.seconds:.1f}"
            f" s {anchored.quantize.peak_bytes / GIB:.2f} GiB"
        )
    steps = (
        pipeline(ckpt, rung, workdir)
        if with_pipeline and compiled.returncode == 0 and output.is_dir()
        else {}
    )
    extra: dict[str, Measured] = {}
    for round_index in range(core_rounds if cores else 0):
        for count in cores:  # alternating, so a burst of load elsewhere hits both counts alike
            run = compile_measured(ckpt, rung, workdir, count, recipe=recipe)
            _log(
                f"{rung}: {count} core(s), round {round_index + 1}: exit {run.returncode}, "
                f"{run.seconds:.1f} s ({run.cpu_seconds:.0f} s CPU, load average "
                f"{run.load[0]:.1f}-{run.load[1]:.1f}), peak {run.peak_bytes / GIB:.2f} GiB"
            )
            extra[f"{count} core(s), round {round_index + 1}"] = run
            key = f"{count} core(s)"
            if key not in extra or _faster(run, extra[key]):
                extra[key] = run
    if not keep:
        shutil.rmtree(output, ignore_errors=True)
    note = "sparse checkpoint (zeros)" if sparse else ""
    return RungResult(rung, shape, params, plan, compiled, out_bytes, anchored, extra, note, steps)


REFERENCE_PROBE = """import sys
import numpy as np
from pathlib import Path
from curator.fidelity.worker import _TransformersRunner
runner = _TransformersRunner(Path(sys.argv[1]), 2, sys.argv[2])
ids = np.random.default_rng(0).integers(0, 15000, size=int(sys.argv[3]))
logits = runner.logits(ids)
print(runner.dtype, logits.shape, float(logits.std()))
"""


def reference_peak(ckpt: Path, rung: str, workdir: Path, dtype: str, tokens: int = 512) -> Measured:
    """Peak of fidelity's transformers reference alone (load, one window of ``tokens``), its
    weights held as ``dtype`` ("auto": bf16 for these checkpoints; "float32": the old way)."""
    with heavy_lock():
        _log(f"{rung}: fidelity reference held {dtype}, one {tokens}-token window ...")
        measured = run_measured(
            [sys.executable, "-c", REFERENCE_PROBE, str(ckpt), dtype, str(tokens)],
            workdir / f"reference-{rung}-{dtype}.log",
            env=_env(workdir),
        )
    _log(
        f"{rung}: reference {dtype}: exit {measured.returncode}, {measured.seconds:.1f} s, "
        f"peak {measured.peak_bytes / GIB:.2f} GiB"
    )
    return measured


def pipeline(ckpt: Path, rung: str, workdir: Path) -> dict[str, Measured]:
    """The rest of the pipeline on the compiled rung, each step's process-tree peak: register
    (with its load test), smoke, one bench round, fidelity on the first 1024 tokens against the
    bf16 checkpoint. Random weights: smoke's expected words are not found (exit 1), which does not
    change what it costs."""
    model_id = _model_id(rung)
    registry = workdir / "registry.json"
    steps = {
        "register": ["register", model_id, "--registry", str(registry), "--license", "apache-2.0"],
        "smoke": ["smoke", model_id],
        "bench": [
            "bench",
            "run",
            model_id,
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--out",
            str(workdir / "bench-out"),
        ],
        "fidelity": [
            "fidelity",
            model_id,
            "--reference",
            str(ckpt),
            "--max-tokens",
            "1024",
            "--registry",
            str(registry),
        ],
    }
    out: dict[str, Measured] = {}
    for step, args in steps.items():
        with heavy_lock():
            _log(f"{rung}: curator {' '.join(args[:2])} ...")
            out[step] = run_measured(
                _curator(*args), workdir / f"{step}-{rung}.log", env=_env(workdir)
            )
        _log(
            f"{rung}: {step} exit {out[step].returncode}, {out[step].seconds:.1f} s, "
            f"peak {out[step].peak_bytes / GIB:.2f} GiB"
        )
    return out


def _rows(r: RungResult) -> list[Ratio]:
    """One rung's figures as make bench rows, each against the anchor from the same run."""
    name = f"ladder {r.rung} ({r.parameters / 1e9:.2f}B)"
    rows: list[Ratio] = []
    if r.preflight.predicted_bytes is not None and r.rung == "7b":
        rows.append(
            Ratio(
                f"{name}: preflight predicted peak vs 12 GiB",
                r.preflight.predicted_bytes / GIB,
                PREDICT_7B_TARGET / GIB,
                "GiB",
                "<= 1.00",
                r.preflight.predicted_bytes <= PREDICT_7B_TARGET,
            )
        )
    if not r.ok or r.compiled is None:
        if r.compiled is not None:
            rows.append(Ratio(f"{name}: compile FAILED (exit {r.compiled.returncode})", 0, 1, ""))
        elif r.preflight.refused:
            rows.append(Ratio(f"{name}: compile refused by preflight", 0, 1, "", "compiles", False))
        return rows
    c, a = r.compiled, r.anchor
    base_peak = a.peak_bytes / GIB if a else float("nan")
    base_s = a.seconds if a else float("nan")
    rows += [
        Ratio(
            f"{name}: compile peak RSS vs llama.cpp convert+quantize "
            f"(bound {r.bound_bytes / GIB:.2f} GiB)",
            c.peak_bytes / GIB,
            base_peak,
            "GiB",
            f"<= {r.bound_bytes / GIB:.2f} GiB",
            c.peak_bytes <= r.bound_bytes,
        ),
        Ratio(
            f"{name}: compile bytes per parameter",
            c.peak_bytes / r.parameters,
            (a.peak_bytes / r.parameters) if a else float("nan"),
            "B/param",
        ),
        Ratio(f"{name}: compile wall time", c.seconds, base_s, "s"),
        Ratio(
            f"{name}: compile seconds per billion parameters",
            c.seconds / (r.parameters / 1e9),
            base_s / (r.parameters / 1e9),
            "s/B",
        ),
    ]
    if r.preflight.predicted_bytes is not None:
        ratio = r.preflight.predicted_bytes / c.peak_bytes
        rows.append(
            Ratio(
                f"{name}: preflight predicted vs measured peak",
                r.preflight.predicted_bytes / GIB,
                c.peak_bytes / GIB,
                "GiB",
                f"{1 - PREFLIGHT_TOLERANCE:.2f}-{1 + PREFLIGHT_TOLERANCE:.2f}",
                abs(ratio - 1) <= PREFLIGHT_TOLERANCE,
            )
        )
    for step, run in r.pipeline.items():
        rows.append(
            Ratio(
                f"{name}: {step} peak RSS vs the compiled model's size (exit {run.returncode})",
                run.peak_bytes / GIB,
                (r.output_bytes or 0) / GIB,
                "GiB",
            )
        )
    if r.output_bytes and a:
        rows.append(
            Ratio(
                f"{name}: output size vs {ANCHOR_KIND}",
                r.output_bytes / GIB,
                a.gguf_bytes / GIB,
                "GiB",
            )
        )
    one = r.extra.get("1 core(s)")
    two = r.extra.get("2 core(s)")
    if one and two and one.returncode == 0 and two.returncode == 0:
        rows.append(
            Ratio(
                f"{name}: compile wall, 1 core vs 2 cores (speed-up; load average "
                f"{one.load[0]:.1f}-{one.load[1]:.1f} and {two.load[0]:.1f}-{two.load[1]:.1f})",
                one.seconds,
                two.seconds,
                "s",
                ">= 1.60",
                one.seconds >= 1.6 * two.seconds,
            )
        )
        rows.append(
            Ratio(
                f"{name}: compile CPU seconds, 2 cores vs 1 core (the parallel work's overhead)",
                two.cpu_seconds,
                one.cpu_seconds,
                "s",
            )
        )
    return rows


def markdown(results: Sequence[RungResult]) -> str:
    """The ladder as a README table (one row per rung; the anchor's figures in parentheses)."""
    lines = [
        "| shape | parameters | peak RSS (llama.cpp) | bytes/param | wall (llama.cpp) | s per B params "
        "| preflight predicted | bound 1 B/param + 1.5 GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        pred = (
            f"{r.preflight.predicted_bytes / GIB:.2f} GiB"
            if r.preflight.predicted_bytes is not None
            else "-"
        )
        if r.ok and r.compiled:
            c, a = r.compiled, r.anchor
            anchor_peak = f" ({a.peak_bytes / GIB:.2f})" if a else ""
            anchor_s = f" ({a.seconds:.0f} s)" if a else ""
            err = (
                r.preflight.predicted_bytes / c.peak_bytes - 1
                if r.preflight.predicted_bytes
                else None
            )
            pred += f" ({err:+.0%})" if err is not None else ""
            met = "met" if c.peak_bytes <= r.bound_bytes else "NOT met"
            lines.append(
                f"| {r.shape.label} | {r.parameters / 1e9:.2f}B | {c.peak_bytes / GIB:.2f} GiB"
                f"{anchor_peak} | {c.peak_bytes / r.parameters:.2f} | {c.seconds:.0f} s{anchor_s} "
                f"| {c.seconds / (r.parameters / 1e9):.0f} | {pred} | {met} |"
            )
        else:
            lines.append(
                f"| {r.shape.label} | {r.parameters / 1e9:.2f}B | - | - | - | - | {pred} | "
                f"{r.note or 'compile failed'} |"
            )
    return "\n".join(lines)


def verdicts(results: Sequence[RungResult]) -> list[str]:
    out: list[str] = []
    compiled = [r for r in results if r.ok and r.compiled]
    if compiled:
        under = all(r.compiled.peak_bytes <= r.bound_bytes for r in compiled if r.compiled)
        out.append(
            "peak <= 1.0 byte/param + 1.5 GiB on every compiled rung: "
            + ("met" if under else "NOT met")
            + f" ({', '.join(r.rung for r in compiled)})"
        )
    three = next((r for r in results if r.rung == "3b"), None)
    if three is not None:
        if three.preflight.refused:
            measured = (
                f"; compiled anyway: peak {three.compiled.peak_bytes / GIB:.2f} GiB"
                if three.ok and three.compiled
                else ""
            )
            out.append(f"3B shape compiles on this machine: NOT met (preflight refuses{measured})")
        else:
            out.append(f"3B shape compiles on this machine: {'met' if three.ok else 'NOT met'}")
    seven = next((r for r in results if r.rung == "7b"), None)
    if seven is not None and seven.preflight.predicted_bytes is not None:
        p = seven.preflight.predicted_bytes
        out.append(
            f"7B predicted under 12 GiB: {'met' if p <= PREDICT_7B_TARGET else 'NOT met'} ({p / GIB:.2f} GiB)"
        )
    checked = [r for r in compiled if r.preflight.predicted_bytes and r.compiled]
    if checked:
        errors = [
            r.preflight.predicted_bytes / r.compiled.peak_bytes - 1
            for r in checked
            if r.preflight.predicted_bytes and r.compiled
        ]
        ok = all(abs(e) <= PREFLIGHT_TOLERANCE for e in errors)
        out.append(
            f"preflight within +-15% of measured: {'met' if ok else 'NOT met'} "
            f"({', '.join(f'{e:+.0%}' for e in errors)})"
        )
    return out


def run_ladder(rungs: Sequence[str], workdir: Path, **options: Any) -> list[RungResult]:
    unknown = [r for r in rungs if r not in RUNGS]
    if unknown:
        raise ValueError(f"unknown rung(s) {', '.join(unknown)}; known: {', '.join(RUNGS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    return [measure_rung(r, workdir, **options) for r in rungs]


def parse_rungs(text: str | None) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()] if text else list(DEFAULT_RUNGS)


def measure(workdir: Path, rungs: str | None = None) -> list[Ratio]:
    """For ``python -m perf [ladder] [--rungs ...]``: every rung's rows."""
    results = run_ladder(parse_rungs(rungs), workdir)
    for line in verdicts(results):
        _log(line)
    return [row for r in results for row in _rows(r)]


def main(argv: list[str]) -> int:
    global RECIPE
    from perf._table import render

    parser = argparse.ArgumentParser(
        prog="python -m perf.ladder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rungs", default=",".join(DEFAULT_RUNGS), help="comma-separated rungs")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs")
    parser.add_argument("--recipe", default=RECIPE, help="the curator recipe (a CPU one)")
    parser.add_argument("--no-anchor", action="store_true", help="skip llama.cpp's row")
    parser.add_argument("--anchor-threads", type=int, default=2, help="llama-quantize threads")
    parser.add_argument("--keep", action="store_true", help="keep the compiled models")
    parser.add_argument("--dense-7b", action="store_true", help="write the 7B's data (15 GB)")
    parser.add_argument("--compile-7b", action="store_true", help="compile the 7B rung too")
    parser.add_argument(
        "--measure-refused",
        action="store_true",
        help="compile a rung preflight refuses for RAM anyway (a recipe copy that does not "
        "refuse), to measure its real peak; the refusal stays the rung's verdict",
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="also register, smoke, bench and fidelity each compiled rung (peak of each)",
    )
    parser.add_argument(
        "--cores", default="", help="also compile pinned to this many cores (e.g. 1,2; taskset)"
    )
    parser.add_argument(
        "--core-rounds",
        type=int,
        default=1,
        help="pinned compiles per core count, alternating; the fastest of each is compared",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--reference-peak",
        default="",
        help="only measure fidelity's reference on these rungs' checkpoints, held bf16 and fp32",
    )
    args = parser.parse_args(argv)
    RECIPE = args.recipe
    if args.reference_peak:
        for rung in parse_rungs(args.reference_peak):
            held = {
                d: reference_peak(checkpoint(rung), rung, args.workdir, d)
                for d in ("auto", "float32")
            }
            for d, m in held.items():
                print(
                    f"{rung} reference held {d}: peak RSS {m.peak_bytes / GIB:.2f} GiB "
                    f"(less file-backed pages {m.peak_anon_bytes / GIB:.2f} GiB), "
                    f"{m.seconds:.0f} s (exit {m.returncode})"
                )
        return 0
    results = run_ladder(
        parse_rungs(args.rungs),
        args.workdir.resolve(),
        with_anchor=not args.no_anchor,
        anchor_threads=args.anchor_threads,
        keep=args.keep,
        dense_7b=args.dense_7b,
        compile_7b=args.compile_7b,
        with_pipeline=args.pipeline,
        bypass_refusal=args.measure_refused,
        cores=[int(t) for t in args.cores.split(",") if t.strip()],
        core_rounds=max(1, args.core_rounds),
    )
    print(f"recipe {RECIPE}; anchor llama.cpp convert (bf16) + llama-quantize {ANCHOR_KIND}")
    print(render([row for r in results for row in _rows(r)]))
    print()
    print(markdown(results))
    print()
    for line in verdicts(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([_as_json(r) for r in results], indent=2) + "\n")
    return 0 if all(r.ok or r.note for r in results) else 1


def _as_json(r: RungResult) -> dict[str, Any]:
    def m(x: Measured | None) -> dict[str, Any] | None:
        if x is None:
            return None
        return {
            "seconds": x.seconds,
            "peak_bytes": x.peak_bytes,
            "peak_anon_bytes": x.peak_anon_bytes,
            "cpu_seconds": x.cpu_seconds,
            "load_average": list(x.load),
            "exit": x.returncode,
        }

    return {
        "rung": r.rung,
        "shape": r.shape.label,
        "parameters": r.parameters,
        "predicted_peak_bytes": r.preflight.predicted_bytes,
        "refused": r.preflight.refused,
        "compile": m(r.compiled),
        "output_bytes": r.output_bytes,
        "anchor": None
        if r.anchor is None
        else {
            "convert": m(r.anchor.convert),
            "quantize": m(r.anchor.quantize),
            "gguf_bytes": r.anchor.gguf_bytes,
        },
        "extra": {k: m(v) for k, v in r.extra.items()},
        "pipeline": {k: m(v) for k, v in r.pipeline.items()},
        "note": r.note,
    }


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
