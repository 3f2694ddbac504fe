"""Per recipe: can it compile this model here, and how much memory it predicts (curator.recipes)."""

from __future__ import annotations

from curator.hub.models import RecipeFit


def machine_ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def recipe_fits(
    architecture: str | None,
    parameters: int | None,
    weight_format: str | None,
    *,
    ram_bytes: int | None = None,
) -> tuple[RecipeFit, ...]:
    """One RecipeFit per recipe in recipes/, in recipe-name order."""
    from curator.recipes import (
        SUPPORTED_ARCHITECTURES,
        load_recipes,
        predict_compile_peak_bytes,
        predict_run_bytes,
    )

    ram = machine_ram_bytes() if ram_bytes is None else ram_bytes
    fits = []
    for recipe in load_recipes():
        peak = predict_compile_peak_bytes(recipe, parameters) if parameters else None
        run = predict_run_bytes(recipe, parameters) if parameters else None
        reason: str | None = None
        if architecture is None:
            reason = "no architecture in config.json"
        elif architecture not in SUPPORTED_ARCHITECTURES:
            reason = f"architecture {architecture} is not supported by the model builder"
        elif weight_format is None:
            reason = "no safetensors or pytorch weights"
        elif peak is not None and peak > ram:
            reason = f"predicted compile peak {peak / 1e9:.1f} GB exceeds this machine's RAM"
        fits.append(
            RecipeFit(
                recipe=recipe.name,
                device=recipe.device,
                precision=recipe.precision,
                can_compile=reason is None,
                reason=reason,
                compile_peak_bytes=peak,
                run_bytes=run,
            )
        )
    return tuple(fits)


def int4_run_bytes(parameters: int | None) -> int | None:
    """Predicted run memory with the int4 CPU recipe (None without a parameter count)."""
    if not parameters:
        return None
    from curator.recipes import load_recipes, predict_run_bytes

    for recipe in load_recipes():
        if recipe.name == "int4-cpu":
            return predict_run_bytes(recipe, parameters)
    for recipe in load_recipes():
        if recipe.precision == "int4":
            return predict_run_bytes(recipe, parameters)
    return None
