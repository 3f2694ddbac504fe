"""Checks that fail in seconds, before Olive starts: each a PreflightError with a hint."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MODEL_ID_RE
from curator.errors import PreflightError, UsageProblem
from curator.portable import LONG_PATHS_HINT, MODEL_DIR_RESERVE, long_path_problem
from curator.recipes import BUILT_WRONG, SUPPORTED_ARCHITECTURES, Recipe

ID_PATTERN = MODEL_ID_RE  # one pattern for the id form (curator.cache.modeldir)
DISK_MARGIN_BYTES = 200_000_000


def gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def check_model_id(model_id: str, recipe: Recipe) -> None:
    if not ID_PATTERN.match(model_id):
        raise UsageProblem(
            f"model id {model_id!r} is not NAME-VARIANT:VERSION in lower case",
            hint=f"e.g. --id mymodel-{recipe.variant}:1",
        )
    if not model_id.split(":", 1)[0].endswith(f"-{recipe.variant}"):
        raise UsageProblem(
            f"model id {model_id!r} does not end with recipe {recipe.name}'s variant "
            f"-{recipe.variant}",
            hint=f"use --id NAME-{recipe.variant}:VERSION",
        )


def check_calibration(recipe: Recipe, calibration: Path | None) -> None:
    if not recipe.needs_calibration:
        if calibration is not None:
            raise UsageProblem(
                f"recipe {recipe.name} takes no calibration data", hint="drop --calibration"
            )
        return
    if calibration is None:
        raise UsageProblem(
            f"recipe {recipe.name} needs calibration data",
            hint=f"curator compile SOURCE --recipe {recipe.name} --calibration FILE.jsonl",
        )
    if not calibration.is_file():
        raise PreflightError(
            f"calibration file not found: {calibration}",
            hint='give a JSONL file with one {"text": ...} object per line',
        )
    if importlib.util.find_spec("datasets") is None:
        raise PreflightError(
            f"recipe {recipe.name} needs the 'datasets' package, which is not installed",
            hint="pip install datasets (or use --recipe int4-rtn-cpu, which needs no data)",
        )


def _version(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_toolchain() -> None:
    """Olive and the model builder it drives, in versions that work together (field notes)."""
    olive = _version("olive-ai")
    genai = _version("onnxruntime-genai")
    if olive is None or genai is None:
        missing = " and ".join(
            n for n, v in (("olive-ai", olive), ("onnxruntime-genai", genai)) if v is None
        )
        raise PreflightError(
            f"{missing} not installed: compiling needs the compile extras",
            hint="pip install 'curator[compile]'",
        )
    if not genai.startswith("0.14."):
        raise PreflightError(
            f"onnxruntime-genai {genai} is installed; Olive {olive}'s ModelBuilder needs 0.14.x "
            "(0.15-0.18 fail)",
            hint="pip install onnxruntime-genai==0.14.1",
        )


def has_cuda_gpu() -> bool:
    """An NVIDIA GPU the driver sees."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def check_device(recipe: Recipe) -> None:
    if recipe.needs_gpu and not has_cuda_gpu():
        raise PreflightError(
            f"recipe {recipe.name} targets {recipe.execution_provider} but this machine has no "
            "NVIDIA GPU",
            hint=f"use a CPU recipe (curator recipes list), or --dry-run to see the {recipe.name} "
            "plan",
        )


def check_architecture(config: dict[str, Any], model_dir: Path) -> str:
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        model_type = config.get("model_type", "unknown")
        raise PreflightError(
            f"config.json in {model_dir} names no architectures (model_type {model_type})",
            hint="only causal language models the ONNX Runtime GenAI builder knows can compile",
        )
    arch = str(architectures[0])
    if arch in BUILT_WRONG:
        raise PreflightError(
            f"architecture {arch} is refused: {BUILT_WRONG[arch]}",
            hint="curator search finds models of a supported architecture",
        )
    if arch not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise PreflightError(
            f"architecture {arch} is not supported by the model builder; supported: {supported}",
            hint="curator search finds models of a supported architecture",
        )
    return arch


def check_custom_code(reasons: list[str], trust_remote_code: bool) -> None:
    if reasons and not trust_remote_code:
        raise PreflightError(
            f"the model ships its own code ({', '.join(reasons)}); it would run during the compile",
            hint="read that code, then add --trust-remote-code",
        )


def check_target(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise PreflightError(
            f"{target} already exists", hint="add --force to replace it, or choose another --id"
        )
    if too_long := long_path_problem(target, reserve=MODEL_DIR_RESERVE):
        raise PreflightError(too_long.message(), hint=LONG_PATHS_HINT)


def predicted_disk_bytes(recipe: Recipe, parameters: int) -> int:
    """Final output plus a full-precision intermediate for every pass before the last."""
    intermediates = 4 * parameters * (len(recipe.passes) - 1)
    return int(recipe.run_bytes_per_parameter * parameters) + intermediates + DISK_MARGIN_BYTES


def free_disk_bytes(cache_root: Path) -> int:
    probe = cache_root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(needed: int, free: int, cache_root: Path) -> None:
    if needed > free:
        raise PreflightError(
            f"not enough disk under {cache_root}: the compile needs about {gib(needed)}, "
            f"{gib(free)} is free",
            hint="free some space or pass --cache-dir on a larger disk",
        )


def available_ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def check_ram(predicted: int, available: int, recipe: Recipe, fits: tuple[str, ...] = ()) -> None:
    """``fits``: the recipes (same device) predicted to fit in ``available``, named in the hint."""
    if predicted > available:
        hint = "close other programs, use a smaller model, or try another recipe "
        hint += "(curator recipes list)"
        if fits:
            hint = f"predicted to fit: {', '.join(fits)} (--recipe NAME); or close other programs"
        raise PreflightError(
            f"recipe {recipe.name} is predicted to need {gib(predicted)} of RAM at peak; "
            f"{gib(available)} is available",
            hint=hint,
        )


def check_chat_template(has_template: bool | None, source: str) -> None:
    """A chat model needs a chat template; found missing in seconds, not after the build (issue 21).

    ``None`` (not known yet, e.g. a Hub source before its download) passes."""
    if has_template is False:
        raise PreflightError(
            f"{source} has no chat template, and a chat model registered without one cannot answer",
            hint=f"give one: curator compile {source} --chat-template chatml (or llama3, gemma, "
            "phi3, zephyr, mistral, or a .jinja file), or build a base model with --completion-only",
        )
