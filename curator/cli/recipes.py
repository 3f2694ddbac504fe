"""``curator recipes list|show NAME``."""

from __future__ import annotations

import json
from typing import Any

import click

from curator.cli._options import ListGroup, json_option
from curator.cli._output import Output
from curator.recipes import Recipe, get_recipe, load_recipes


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
    out.text(f"  RAM:        {recipe.ram_factor:g} bytes per parameter at peak compile")
    out.text(f"  sha256:     {recipe.sha256}")
    out.text(f"  file:       {recipe.path}")
    out.text("  passes:")
    for step in recipe.passes:
        out.text(f"    {step.name}: {step.type} {json.dumps(step.config, sort_keys=True)}")
