"""``curator compile SOURCE --max-kl X`` / ``--min-top1 Y`` / ``--recipe auto``: the budget path of
the compile command (curator.budget does the work; this renders it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.cli._output import Output
from curator.compile.types import CompileRequest
from curator.errors import UsageProblem
from curator.paths import registry_path

AUTO = "auto"


def wants_budget(recipe: str | None, max_kl: float | None, min_top1: float | None) -> bool:
    """True when the compile is to search a plan rather than apply a fixed recipe."""
    if recipe is None and max_kl is None and min_top1 is None:
        raise UsageProblem(
            "compile needs a recipe or a fidelity budget",
            hint="pass `--recipe int4-cpu`, `--max-kl 0.1`, or `--recipe auto` (registry policy)",
        )
    if recipe not in (None, AUTO) and (max_kl is not None or min_top1 is not None):
        raise UsageProblem(
            f"--recipe {recipe} is a fixed recipe; --max-kl/--min-top1 choose one themselves",
            hint="drop --recipe, or use `--recipe auto` with the limits as options",
        )
    return recipe == AUTO or recipe is None


def run_budget(
    out: Output,
    request: CompileRequest,
    recipe: str | None,
    max_kl: float | None,
    min_top1: float | None,
    registry: Path | None,
    as_json: bool,
) -> None:
    from curator.budget import (  # start-up: kept off --help
        check_budget,
        compile_to_budget,
        policy_budget,
    )

    if recipe == AUTO and max_kl is None and min_top1 is None:
        budget = policy_budget(registry_path(registry))
    else:
        budget = check_budget(max_kl, min_top1)
    if request.dry_run:
        raise UsageProblem(
            "--dry-run cannot show a budget's plan before its sensitivity is measured",
            hint="run without --dry-run; the chosen recipe file lands in the model directory",
        )
    result = compile_to_budget(request, budget, progress=out.progress)
    compiled = result.compiled
    if as_json:
        data: dict[str, Any] = {
            "model_id": compiled.model_id,
            "path": str(compiled.path),
            "manifest": str(compiled.manifest_path),
            "recipe_file": str(result.recipe),
            "total_bytes": compiled.total_bytes,
            "budget": result.to_record(),
        }
        out.json(data)
        return
    out.text(
        f"compiled {compiled.model_id} -> {compiled.path}\n"
        f"  budget {budget.describe()} ({budget.origin}): KL {result.kl:.4f}, top-1 "
        f"{result.top1:.1%}, {compiled.total_bytes / 2**20:,.1f} MiB\n"
        f"  formats: {', '.join(f'{n} x{c}' for n, c in result.counts.items())}\n"
        f"  search: {len(result.attempts)} compile(s), {result.seconds:.0f} s (sensitivity "
        + ("cached" if result.sensitivity_cached else f"{result.sensitivity_seconds:.0f} s")
        + ")\n"
        f"  recipe: {result.recipe} (rerun: curator compile SOURCE --recipe {result.recipe})\n"
        f"  manifest: {compiled.manifest_path}"
    )
