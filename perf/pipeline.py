"""The rest of the pipeline at scale (issue 20, item 5): ``curator register`` (with its load test),
``curator smoke``, a short ``curator bench run`` and ``curator fidelity`` on one compiled model, one
at a time, each step's wall time and peak RSS of its whole process tree (psutil, perf.ladder's
sampler) printed against its bound:

- register, smoke, bench: the compiled model's size (model.onnx + its external data) plus the KV
  cache the runtime allocates. Foundry Local sizes a request's KV buffer for the model's whole
  ``context_length`` (genai_config.json) whatever the prompt and ``max_tokens``
  (``past_present_share_buffer``), so that is the KV figure of the bound; the KV of the context the
  step really uses (its longest prompt plus answer cap) is printed beside it.
- fidelity: the compiled model plus the KV of one window, plus the reference's weights as the
  worker holds them (a bf16 checkpoint stays bf16; see curator.fidelity.worker.hold_dtype) and
  its largest matrix widened to fp32 while it runs.

A step passes when its peak is within the bound plus RUNTIME_ALLOWANCE. What the runtime holds
beyond the files and the cache (measured on the 3B shape, /proc/self/smaps of a process that loaded
it through Foundry Local): onnxruntime's MatMulNBits packs each int4/int8 weight at load into its
own layout (the data, a copy of the scales and per-block sums for the int8-compute kernels:
2.5 GiB anonymous for 1.8 GiB of quantized data and 0.36 GiB of scales), while the scales and zero
points (0.42 GiB) stay memory-mapped from model.onnx.data and resident (file-backed pages the
kernel could reclaim); the quantized embedding is read in place (only the rows used are
resident); the interpreter, the SDK and the libraries take under 0.1 GiB. No session option
removes the difference: see README "What a compile costs per billion parameters".

    python -m perf.pipeline --rung 3b        # the ladder's 3B rung, compiled with --keep
    python -m perf.pipeline --rung 3b --steps register,smoke,bench --context-length 4096
    python -m perf.pipeline --rung 3b --steps register,bench --session-option enable_mem_pattern=false
    python -m perf.pipeline MODEL_DIR --reference CHECKPOINT [--steps smoke,bench] [--json F]

``--context-length N`` measures the model as ``curator compile --context-length N`` leaves it: a
copy under the workdir whose files are links to the compiled ones and whose genai_config.json (and
manifest) say N, written by the compile's own ``set_context_length``. ``--session-option
KEY=VALUE`` (repeatable) measures such a copy with that onnxruntime session option in its
genai_config.json (a key onnxruntime-genai does not name itself goes to onnxruntime as a config
entry, e.g. ``session.disable_prepacking=1``).

``--rung R`` takes the model perf.ladder compiled (``python -m perf.ladder --rungs R --keep
--workdir .cache/ladder/runs-R``) and its checkpoint. Random weights answer nonsense: smoke exits 1,
which does not change what it costs. Each step takes the lock named by ``$CURATOR_HEAVY_LOCK``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf._table import Ratio, render
from perf.ladder import GIB, REPO, ROOT, Measured, heavy_lock, run_measured

STEPS = ("register", "smoke", "bench", "fidelity")
# exit codes that still measure the step: smoke and fidelity exit 1 on a verdict about the answers
# (a random-weight rung answers nonsense), having run the model all the same; register and bench
# exit 1 when the model did not load or run, which measures nothing
MEASURED_EXITS = {"register": (0,), "smoke": (0, 1), "bench": (0,), "fidelity": (0, 1)}
RUNTIME_ALLOWANCE = 0.5 * GIB
BENCH_MAX_TOKENS = 32
FIDELITY_TOKENS = 512
# bytes per element of the ONNX tensor types a KV cache uses (TensorProto: FLOAT, FLOAT16, BFLOAT16)
_ONNX_BYTES = {1: 4, 10: 2, 16: 2}
_HOLD_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _log(message: str) -> None:
    print(f"pipeline: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ModelFacts:
    """What the bound is computed from: the compiled files and the KV cache's shape."""

    path: Path
    model_id: str
    onnx_bytes: int  # model.onnx + external data: what the runtime loads
    layers: int
    kv_heads: int
    head_size: int
    kv_dtype_bytes: int
    context_length: int

    def kv_bytes(self, tokens: int) -> int:
        """The KV cache for ``tokens`` positions: keys and values, every layer."""
        return 2 * self.layers * self.kv_heads * self.head_size * self.kv_dtype_bytes * tokens


def _kv_dtype_bytes(onnx_path: Path) -> int:
    """Bytes per element of the model's ``past_key_values`` inputs (4 when not found)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for value in graph.input:
        if value.name.startswith("past_key_values"):
            return _ONNX_BYTES.get(value.type.tensor_type.elem_type, 4)
    return 4


def model_facts(model_dir: Path) -> ModelFacts:
    config = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
    model = config["model"]
    decoder = model["decoder"]
    onnx_path = model_dir / decoder.get("filename", "model.onnx")
    onnx_bytes = sum(
        p.stat().st_size for p in model_dir.iterdir() if p.name.startswith(onnx_path.name)
    )
    manifest = model_dir / "curator-manifest.json"
    model_id = model_dir.name
    if manifest.is_file():
        model_id = str(json.loads(manifest.read_text(encoding="utf-8")).get("id") or model_id)
    context = model.get("context_length") or config.get("search", {}).get("max_length")
    return ModelFacts(
        path=model_dir,
        model_id=model_id,
        onnx_bytes=onnx_bytes,
        layers=int(decoder["num_hidden_layers"]),
        kv_heads=int(decoder["num_key_value_heads"]),
        head_size=int(decoder["head_size"]),
        kv_dtype_bytes=_kv_dtype_bytes(onnx_path),
        context_length=int(context),
    )


def reference_facts(checkpoint: Path) -> tuple[str, int, int]:
    """(dtype the fidelity worker holds the reference in, its weights' bytes held so, the
    largest 2-D matrix's bytes in fp32), from the safetensors headers alone."""
    from curator.fidelity.worker import hold_dtype
    from curator.formats.safetensors import read_safetensors_header

    held = hold_dtype(checkpoint, "auto")
    elements = largest = 0
    for file in sorted(checkpoint.glob("*.safetensors")):
        for entry in read_safetensors_header(file).tensors:
            count = 1
            for dim in entry.shape:
                count *= dim
            elements += count
            if len(entry.shape) == 2:
                largest = max(largest, count)
    return held, elements * _HOLD_BYTES[held], largest * 4


def _longest_prompt_tokens(max_tokens_cap: int | None) -> int:
    """An upper bound on one request's context in the shipped prompt set: its longest prompt in
    UTF-8 bytes (byte-level BPE never makes more tokens than bytes) plus its largest answer cap,
    plus 64 for the chat template."""
    from curator.prompts import default_prompt_set_path, load_prompt_set

    prompts = load_prompt_set(default_prompt_set_path()).prompts
    longest = max(sum(len(m["content"].encode()) for m in p.chat_messages()) + 64 for p in prompts)
    caps = [p.max_tokens for p in prompts]
    cap = max(min(c, max_tokens_cap) if max_tokens_cap else c for c in caps)
    return longest + cap


@dataclass(frozen=True)
class Step:
    name: str
    measured: Measured
    bound_bytes: int
    bound_text: str
    used_kv_bytes: int

    @property
    def ok(self) -> bool:
        return self.measured.returncode in MEASURED_EXITS[self.name] and (
            self.measured.peak_bytes <= self.bound_bytes + RUNTIME_ALLOWANCE
        )


def _curator(*args: str) -> list[str]:
    return [sys.executable, "-m", "curator", *args]


def _env(cache: Path, workdir: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "FOUNDRY_CACHE_DIR": str(cache),
        "CURATOR_HOME": str(workdir / "home"),
        "HF_HUB_OFFLINE": "1",
    }


# session_options keys onnxruntime-genai reads itself, with their JSON types (its config.cpp);
# any other key is an onnxruntime config entry, whose value must be a string
_GENAI_BOOL_OPTIONS = ("enable_cpu_mem_arena", "enable_mem_pattern")
_GENAI_INT_OPTIONS = (
    "intra_op_num_threads",
    "inter_op_num_threads",
    "log_severity_level",
    "log_verbosity_level",
)


def session_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as genai_config.json's session_options hold it: a boolean or an integer for
    the keys onnxruntime-genai reads as such, a string for every other key (a config entry)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if key in _GENAI_BOOL_OPTIONS:
        if value not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"{key} takes true or false, not {value!r}")
        return key, value == "true"
    if key in _GENAI_INT_OPTIONS:
        try:
            return key, int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} takes an integer, not {value!r}") from None
    return key, value


def context_copy(
    model_dir: Path,
    root: Path,
    tokens: int | None,
    session_options: Sequence[tuple[str, Any]] = (),
) -> Path:
    """``model_dir`` as ``curator compile --context-length tokens`` writes it (``tokens`` None:
    its own context), with ``session_options`` added to genai_config.json's decoder, under
    ``root/foundry-cache/<publisher>/<name>``: every file a link to the compiled one but
    genai_config.json (set_context_length) and the manifest (contextLength, modelContextLength,
    kvCacheBytes), which are copies."""
    import shutil

    from curator.compile.runtime_options import set_context_length
    from curator.foundry.sizing import compiled_kv_shape, kv_cache_bytes

    copy = root / "foundry-cache" / model_dir.parent.name / model_dir.name
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    copied = ("genai_config.json", "curator-manifest.json")
    for path in sorted(model_dir.iterdir()):
        if path.name in copied:
            shutil.copyfile(path, copy / path.name)
        else:
            (copy / path.name).symlink_to(path.resolve())
    if session_options:
        config_path = copy / "genai_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["model"]["decoder"].setdefault("session_options", {}).update(dict(session_options))
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if tokens is None:
        return copy
    own = set_context_length(copy, tokens)
    manifest_path = copy / "curator-manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["contextLength"] = tokens
        if own is not None and own != tokens:
            manifest.setdefault("modelContextLength", own)
        kv = kv_cache_bytes(compiled_kv_shape(copy), tokens)
        if kv:
            manifest["kvCacheBytes"] = kv
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return copy


def step_commands(
    facts: ModelFacts, reference: Path | None, workdir: Path, license_id: str | None
) -> dict[str, list[str]]:
    registry = workdir / "registry.json"
    register = ["register", str(facts.path), "--registry", str(registry)]
    if license_id:
        register += ["--license", license_id]
    commands = {
        "register": register,
        "smoke": ["smoke", facts.model_id],
        "bench": [
            "bench",
            "run",
            facts.model_id,
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--max-tokens",
            str(BENCH_MAX_TOKENS),
            "--in-process",
            "--out",
            str(workdir / "bench-out"),
        ],
        "fidelity": ["fidelity", facts.model_id, "--max-tokens", str(FIDELITY_TOKENS)],
    }
    commands["fidelity"] += ["--registry", str(registry), "--window", str(FIDELITY_TOKENS)]
    if reference is not None:
        commands["fidelity"] += ["--reference", str(reference)]
    return commands


def bounds(facts: ModelFacts, reference: Path | None) -> dict[str, tuple[int, str, int]]:
    """Per step: (bound in bytes, how it is made up, the KV of the context the step uses)."""
    runtime_kv = facts.kv_bytes(facts.context_length)
    size = f"compiled {facts.onnx_bytes / GIB:.2f} GiB"
    kv_text = f"KV {runtime_kv / GIB:.2f} GiB at context {facts.context_length}"
    out: dict[str, tuple[int, str, int]] = {}
    for step, cap in (("register", 64), ("smoke", None), ("bench", BENCH_MAX_TOKENS)):
        used = facts.kv_bytes(_longest_prompt_tokens(cap))
        out[step] = (facts.onnx_bytes + runtime_kv, f"{size} + {kv_text}", used)
    window_kv = facts.kv_bytes(FIDELITY_TOKENS + 1)
    fidelity = facts.onnx_bytes + window_kv
    text = f"{size} + KV {window_kv / GIB:.3f} GiB ({FIDELITY_TOKENS} tokens)"
    if reference is not None:
        held, held_bytes, largest = reference_facts(reference)
        fidelity += held_bytes + largest
        text += f" + reference {held_bytes / GIB:.2f} GiB ({held}) + {largest / GIB:.2f} GiB fp32"
    out["fidelity"] = (fidelity, text, window_kv)
    return out


def run_pipeline(
    model_dir: Path,
    workdir: Path,
    *,
    reference: Path | None = None,
    steps: Sequence[str] = STEPS,
    license_id: str | None = None,
) -> list[Step]:
    """Each step in turn (under the heavy lock), measured against its bound."""
    facts = model_facts(model_dir)
    cache = model_dir.parent.parent  # <cache>/<publisher>/<model dir>
    commands = step_commands(facts, reference, workdir, license_id)
    limits = bounds(facts, reference)
    out: list[Step] = []
    for step in steps:
        args = commands[step]
        with heavy_lock():
            _log(f"curator {' '.join(args[:2])} ...")
            measured = run_measured(
                _curator(*args), workdir / f"{step}.log", env=_env(cache, workdir), cwd=REPO
            )
        bound, text, used = limits[step]
        _log(
            f"{step}: exit {measured.returncode}, {measured.seconds:.1f} s, peak "
            f"{measured.peak_bytes / GIB:.2f} GiB ({measured.peak_anon_bytes / GIB:.2f} GiB less "
            f"file-backed pages); bound {bound / GIB:.2f} GiB ({text})"
        )
        out.append(Step(step, measured, bound, text, used))
    return out


def rows(steps: Sequence[Step], label: str) -> list[Ratio]:
    allowance = RUNTIME_ALLOWANCE / GIB
    out: list[Ratio] = []
    for s in steps:
        out.append(
            Ratio(
                f"{label}: {s.name} peak RSS vs {s.bound_text} (exit {s.measured.returncode})",
                s.measured.peak_bytes / GIB,
                s.bound_bytes / GIB,
                "GiB",
                f"<= bound + {allowance:.1f} GiB",
                s.ok,
            )
        )
    for s in steps:
        out.append(
            Ratio(
                f"{label}: {s.name} peak RSS less file-backed pages (libraries, mapped files) "
                "vs the same bound",
                s.measured.peak_anon_bytes / GIB,
                s.bound_bytes / GIB,
                "GiB",
            )
        )
    for s in steps:
        out.append(Ratio(f"{label}: {s.name} wall time", s.measured.seconds, 1.0, "s"))
    return out


def _resolve(args: argparse.Namespace) -> tuple[Path, Path, Path | None, str | None]:
    """(compiled model dir, workdir, reference checkpoint, license) from the arguments."""
    if args.rung:
        from perf import ladder

        ladder_dir = (args.ladder_workdir or ROOT / f"runs-{args.rung}").resolve()
        model_dir = ladder.compiled_dir(args.rung, ladder_dir)
        workdir = (args.workdir or ladder_dir / "pipeline").resolve()
        reference = args.reference or ladder.checkpoint(args.rung)
        return model_dir, workdir, reference, args.license or "apache-2.0"
    if args.model_dir is None:
        raise SystemExit("pass MODEL_DIR or --rung R")
    model_dir = args.model_dir.resolve()
    workdir = (args.workdir or model_dir.parent.parent.parent / "pipeline").resolve()
    return model_dir, workdir, args.reference, args.license


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", type=Path, nargs="?", help="a compiled model directory")
    parser.add_argument("--rung", help="perf.ladder's compiled rung instead (e.g. 3b)")
    parser.add_argument("--workdir", type=Path, help="logs, registry, CURATOR_HOME")
    parser.add_argument(
        "--ladder-workdir",
        type=Path,
        help="perf.ladder's --workdir holding the compiled rung [default: .cache/ladder/runs-R]",
    )
    parser.add_argument("--reference", type=Path, help="fidelity's reference checkpoint")
    parser.add_argument("--license", help="register's --license (the rungs: apache-2.0)")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--context-length",
        type=int,
        help="measure a copy whose genai_config says this context (as compile --context-length)",
    )
    parser.add_argument(
        "--session-option",
        type=session_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="measure a copy with this genai_config session option (repeat), e.g. "
        "enable_cpu_mem_arena=false or session.disable_prepacking=1",
    )
    args = parser.parse_args(argv)
    model_dir, workdir, reference, license_id = _resolve(args)
    if not (model_dir / "genai_config.json").is_file():
        raise SystemExit(f"no compiled model in {model_dir}")
    if args.context_length or args.session_option:
        label = f"context-{args.context_length or 'own'}"
        label += "".join(f"-{key}={value}" for key, value in args.session_option)
        workdir = workdir / label.replace("/", "_")
        model_dir = context_copy(model_dir, workdir, args.context_length, args.session_option)
    chosen = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    steps = run_pipeline(
        model_dir, workdir, reference=reference, steps=chosen, license_id=license_id
    )
    facts = model_facts(model_dir)
    print(
        f"{facts.model_id}: compiled {facts.onnx_bytes / GIB:.2f} GiB; KV cache "
        f"{facts.kv_bytes(1) / 1024:.0f} KiB per token, {facts.kv_bytes(facts.context_length) / GIB:.2f}"
        f" GiB at its context of {facts.context_length}"
    )
    print(render(rows(steps, facts.model_id)))
    for s in steps:
        print(
            f"{s.name}: KV of the context it uses {s.used_kv_bytes / 2**20:.0f} MiB; "
            f"the runtime allocates {facts.kv_bytes(facts.context_length) / GIB:.2f} GiB"
            if s.name != "fidelity"
            else f"{s.name}: bound {s.bound_text}"
        )
    if args.json:
        args.json.write_text(json.dumps([_as_json(s) for s in steps], indent=2) + "\n")
    return 0 if all(s.ok for s in steps) else 1


def _as_json(s: Step) -> dict[str, Any]:
    return {
        "step": s.name,
        "seconds": s.measured.seconds,
        "peak_bytes": s.measured.peak_bytes,
        "peak_anon_bytes": s.measured.peak_anon_bytes,
        "exit": s.measured.returncode,
        "bound_bytes": s.bound_bytes,
        "bound": s.bound_text,
        "used_kv_bytes": s.used_kv_bytes,
        "ok": s.ok,
    }


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
