"""Per recipe: can it compile this model on this machine, and the memory it predicts.

The checks mirror the compile's preflight (curator.compile.preflight): a supported architecture,
weights to read, a GPU for GPU recipes, the packages calibration needs, and the predicted peak
within the RAM available now. Predictions come from curator.recipes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from curator.hub.models import RecipeFit

# Why a recipe cannot compile a model, in words short enough to count by.
NO_ARCHITECTURE = "no architecture"
UNSUPPORTED_ARCHITECTURE = "unsupported architecture"
NO_WEIGHTS = "no weights"
NEEDS_GPU = "needs a GPU"
NEEDS_CALIBRATION = "needs calibration packages"
NOT_ENOUGH_RAM = "not enough RAM"


@dataclass(frozen=True)
class Machine:
    """What this machine offers a compile."""

    ram_available_bytes: int
    cuda_gpu: bool
    calibration_packages: bool


def this_machine() -> Machine:
    import psutil

    from curator.compile.preflight import has_cuda_gpu  # cycle: curator.compile imports hub

    return Machine(
        ram_available_bytes=int(psutil.virtual_memory().available),
        cuda_gpu=has_cuda_gpu(),
        calibration_packages=importlib.util.find_spec("datasets") is not None,
    )


def recipe_fits(
    architecture: str | None,
    parameters: int | None,
    weight_format: str | None,
    *,
    auto_map: bool = False,
    machine: Machine | None = None,
) -> tuple[RecipeFit, ...]:
    """One RecipeFit per recipe in recipes/, in recipe-name order."""
    from curator.compile.cost import predict_compile_peak_bytes  # cycle: compile imports hub
    from curator.recipes import (  # start-up: kept off curator search
        BUILT_WRONG,
        SUPPORTED_ARCHITECTURES,
        load_recipes,
        predict_run_bytes,
    )

    here = machine or this_machine()
    fits = []
    # the architecture decides whether a recipe's build streams (curator.compile.cost)
    known = {"architectures": [architecture]} if architecture else None
    for recipe in load_recipes():
        peak = predict_compile_peak_bytes(recipe, parameters, config=known) if parameters else None
        run = predict_run_bytes(recipe, parameters) if parameters else None
        reason: str | None = None
        kind: str | None = None
        if architecture is None:
            kind, reason = NO_ARCHITECTURE, "no architecture in config.json"
        elif architecture not in SUPPORTED_ARCHITECTURES:
            kind = UNSUPPORTED_ARCHITECTURE
            reason = (
                f"architecture {architecture}: {BUILT_WRONG[architecture]}"
                if architecture in BUILT_WRONG
                else f"architecture {architecture} is not supported by the model builder"
            )
        elif weight_format is None:
            kind, reason = NO_WEIGHTS, "no safetensors or pytorch weights"
        elif recipe.needs_gpu and not here.cuda_gpu:
            kind, reason = NEEDS_GPU, "needs an NVIDIA GPU; this machine has none"
        elif recipe.needs_calibration and not here.calibration_packages:
            kind = NEEDS_CALIBRATION
            reason = "needs the 'datasets' package for calibration, which is not installed"
        elif peak is not None and peak > here.ram_available_bytes:
            kind = NOT_ENOUGH_RAM
            reason = (
                f"predicted compile peak {peak / 2**30:.1f} GiB exceeds the "
                f"{here.ram_available_bytes / 2**30:.1f} GiB of RAM available"
            )
        needs: list[str] = []
        if recipe.needs_calibration:
            needs.append("--calibration FILE")
        if auto_map:
            needs.append("--trust-remote-code")
        fits.append(
            RecipeFit(
                recipe=recipe.name,
                device=recipe.device,
                precision=recipe.precision,
                can_compile=reason is None,
                reason=reason,
                reason_kind=kind,
                needs=tuple(needs),
                compile_peak_bytes=peak,
                run_bytes=run,
            )
        )
    return tuple(fits)


def int4_run_bytes(parameters: int | None) -> int | None:
    """Predicted run memory with the int4 CPU recipe (None without a parameter count)."""
    from curator.recipes import load_recipes, predict_run_bytes  # start-up: kept off curator search

    if not parameters:
        return None

    recipes = load_recipes()
    chosen = next((r for r in recipes if r.name == "int4-cpu"), None) or next(
        (r for r in recipes if r.precision == "int4" and not r.needs_gpu), None
    )
    return predict_run_bytes(chosen, parameters) if chosen else None


def why_not(fits: tuple[RecipeFit, ...]) -> RecipeFit | None:
    """The refusal that says most about a model no recipe compiles: a CPU recipe's (a GPU or a
    calibration package is the machine's lack, not the model's), else the first; None if one fits."""
    if any(f.can_compile for f in fits) or not fits:
        return None
    model_level = [f for f in fits if f.reason_kind not in (NEEDS_GPU, NEEDS_CALIBRATION)]
    return (model_level or list(fits))[0]
