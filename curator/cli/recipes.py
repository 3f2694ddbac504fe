"""``curator recipes list|show NAME``."""

from __future__ import annotations

import json
from typing import Any

import click

from curator.cli._options import ListGroup, json_option
from curator.cli._output import Output
from curator.compile.cost import reference_costs
from curator.recipes import Recipe, get_recipe, load_recipes

GIB = 2**30


def recipe_json(recipe: Recipe) -> dict[str, Any]:
    return {
        "name": recipe.name,
        "description": recipe.description,
        "device": recipe.device,
        "execution_provider": recipe.execution_provider,
        "precision": recipe.precision,
        "variant": recipe.variant,
        "passes": [{"name": p.name, "type": p.type, "config": p.config} for p in recipe.passes],
        "needs": list(recipe.needs),
        "ram_factor": recipe.ram_factor,
        "predicted_compile": {
            model: {
                "peak_bytes": cost.peak_bytes,
                "seconds": round(cost.seconds),
                "streamed": cost.streamed,
            }
            for model, cost in reference_costs(recipe).items()
        },
        "run_bytes_per_parameter": recipe.run_bytes_per_parameter,
        "sha256": recipe.sha256,
        "path": str(recipe.path),
    }


@click.group(cls=ListGroup)
def recipes() -> None:
    """The compile recipes (recipes/*.json): what each runs and produces."""


@recipes.command("list")
@json_option
def list_recipes(as_json: bool) -> None:
    """List the recipes."""
    out = Output(as_json)
    found = load_recipes()
    if as_json:
        out.json([recipe_json(r) for r in found])
        return
    out.table(
        [
            (
                r.name,
                r.device,
                r.precision,
                r.variant,
                " -> ".join(p.type for p in r.passes),
                list(r.needs),
                r.description,
            )
            for r in found
        ],
        headers=("name", "device", "precision", "variant", "passes", "needs", "description"),
    )


@recipes.command("show")
@click.argument("name")
@json_option
def show_recipe(name: str, as_json: bool) -> None:
    """Show one recipe in full."""
    out = Output(as_json)
    recipe = get_recipe(name)
    if as_json:
        out.json(recipe_json(recipe))
        return
    out.text(f"{recipe.name}: {recipe.description}")
    out.text(f"  device:     {recipe.device} ({recipe.execution_provider})")
    out.text(f"  precision:  {recipe.precision}")
    out.text(f"  variant:    {recipe.variant} (ids end in -{recipe.variant}:VERSION)")
    out.text(f"  needs:      {', '.join(recipe.needs) or '-'}")
    costs = reference_costs(recipe)
    streamed = all(cost.streamed for cost in costs.values())
    how = (
        "streamed, one layer or table at a time"
        if streamed
        else f"{recipe.ram_factor:g} bytes per fp32 parameter"
    )
    out.text(f"  compile:    {how}; predicted peak and time on an idle machine:")
    for model, cost in costs.items():
        out.text(
            f"              {model}: {cost.peak_bytes / GIB:.1f} GiB, {cost.seconds / 60:.0f} min"
        )
    out.text("              (curator compile SOURCE --recipe NAME --dry-run: for your model)")
    out.text(f"  sha256:     {recipe.sha256}")
    out.text(f"  file:       {recipe.path}")
    out.text("  passes:")
    for step in recipe.passes:
        out.text(f"    {step.name}: {step.type} {json.dumps(step.config, sort_keys=True)}")
