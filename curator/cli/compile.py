"""``curator compile SOURCE --recipe NAME``: Olive into the Foundry Local cache."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import click

from curator.cli._budget import AUTO, run_budget, wants_budget
from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output
from curator.compile import CompilePlan, CompileRequest, CompileResult, compile_model
from curator.errors import CompileError
from curator.recipes import DEFAULT_RECIPE


class CompileInterrupted(CompileError):
    """Ctrl-C or SIGTERM: Olive was stopped and its work directory removed."""

    exit_code = 130


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so the work directory and the Olive child are cleaned up."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def plan_json(plan: CompilePlan) -> dict[str, Any]:
    return {
        "model_id": plan.model_id,
        "publisher": plan.publisher,
        "target": str(plan.target),
        "recipe": plan.recipe,
        "recipe_sha256": plan.recipe_sha256,
        "source_repo": plan.source_repo,
        "source_revision": plan.source_revision,
        "source_dir": str(plan.source_dir) if plan.source_dir else None,
        "architecture": plan.architecture,
        "parameters": plan.parameters,
        "context_length": plan.context_length,
        "predicted_peak_bytes": plan.predicted_peak_bytes,
        "serving_context_length": plan.serving_context_length,
        "predicted_kv_bytes": plan.predicted_kv_bytes,
        "predicted_serving_bytes": plan.predicted_serving_bytes,
        "predicted_seconds": plan.predicted_seconds,
        "prediction_basis": plan.prediction_basis,
        "available_ram_bytes": plan.available_ram_bytes,
        "predicted_disk_bytes": plan.predicted_disk_bytes,
        "free_disk_bytes": plan.free_disk_bytes,
        "source_gguf": (
            plan.source_gguf.manifest_record()
            if plan.source_gguf
            else ({"file": plan.source_gguf_file} if plan.source_gguf_file else None)
        ),
        "notes": list(plan.notes),
        "chat_template": plan.chat_template.manifest_record() if plan.chat_template else None,
        "completion_only": plan.completion_only,
        "adapter": plan.source_adapter.manifest_record() if plan.source_adapter else None,
    }


def result_json(result: CompileResult) -> dict[str, Any]:
    data: dict[str, Any] = {"dry_run": result.dry_run, "plan": plan_json(result.plan)}
    if result.dry_run:
        data["olive_config"] = result.plan.olive_config
        return data
    data.update(
        {
            "model_id": result.model_id,
            "path": str(result.path),
            "manifest": str(result.manifest_path),
            "log": str(result.log_path),
            "wall_seconds": result.wall_seconds,
            "peak_rss_bytes": result.peak_rss_bytes,
            "total_bytes": result.total_bytes,
            "artifacts": [
                {"path": a.path, "sha256": a.sha256, "bytes": a.bytes} for a in result.artifacts
            ],
        }
    )
    return data


def _unknown(plan: CompilePlan, value: object, field: str, shown: str | None = None) -> str:
    """``shown`` (or the value), or ``- (why it is unknown)``: no bare "-" in a plan."""
    if value is not None and value != "":
        return shown if shown is not None else str(value)
    why = dict(plan.unknown_because).get(field)
    if why is None and plan.source_dir is None and plan.source_gguf_file is None:
        why = "read after the download"
    return f"- ({why})" if why else "-"


def _print_plan(out: Output, plan: CompilePlan) -> None:
    out.text(f"plan: {plan.source_repo} --recipe {plan.recipe} -> {plan.model_id}")
    if plan.source_dir:
        source = str(plan.source_dir)
    elif plan.source_gguf_file:
        source = f"{plan.source_repo} {plan.source_gguf_file} (GGUF: dequantized when compiling)"
    else:
        source = f"{plan.source_repo} (not downloaded)"
    out.text(f"  source:       {source}")
    parameters = f"{plan.parameters:,}" if plan.parameters else None
    out.text(
        f"  architecture: {_unknown(plan, plan.architecture, 'architecture')}, "
        f"parameters: {_unknown(plan, parameters, 'parameters')}"
    )
    out.text(f"  target:       {plan.target}")
    # RAM and disk are predicted from the parameter count: without it, say why once
    why = "" if plan.parameters else " (no parameter count)"
    out.text(
        f"  peak RAM:     {_mib(plan.predicted_peak_bytes)} predicted{why}, "
        f"{_mib(plan.available_ram_bytes)} available"
    )
    if plan.predicted_seconds is not None:
        out.text(
            f"  time:         {plan.predicted_seconds / 60:.1f} min predicted (idle machine); "
            f"peak: {plan.prediction_basis}"
        )
    if plan.predicted_serving_bytes is not None and plan.predicted_kv_bytes is not None:
        out.text(
            f"  serving:      {_mib(plan.predicted_serving_bytes)} predicted to run it, of which "
            f"KV cache {_mib(plan.predicted_kv_bytes)} (allocated per request for "
            f"{plan.serving_context_length:,} tokens; --context-length N changes it)"
        )
    out.text(
        f"  disk:         {_mib(plan.predicted_disk_bytes)} needed{why}, "
        f"{_mib(plan.free_disk_bytes)} free"
    )
    for note in plan.notes:
        out.text(f"  note:         {note}")
    out.text("olive config (olive run --config):")
    out.text(json.dumps(plan.olive_config, indent=2))


@click.command("compile")
@click.argument("source")
@click.option(
    "--recipe",
    "recipe",
    default=None,
    help="Recipe name (curator recipes list) or .json file; `auto`: the smallest model that meets "
    "the registry policy's fidelity limits [default: int4-cpu, as onboard; with --max-kl or "
    "--min-top1: auto].",
)
@click.option("--id", "model_id", default=None, help="Model id NAME-VARIANT:VERSION.")
@click.option("--revision", default=None, help="Hub branch, tag or commit (Hub sources only).")
@click.option(
    "--gguf-file",
    default=None,
    help="Compile this GGUF file of the Hub repo (or directory) SOURCE.",
)
@cache_dir_option
@click.option(
    "--max-kl",
    type=float,
    default=None,
    help="Fidelity budget: search per-tensor bits for the smallest model whose mean KL on "
    "`curator fidelity`'s text is at most this (nats).",
)
@click.option(
    "--min-top1", type=float, default=None, help="Fidelity budget: top-1 agreement at least this."
)
@registry_option
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='JSONL calibration text ({"text": ...} per line) for recipes that need it.',
)
@click.option(
    "--chat-template",
    metavar="NAME|FILE",
    help="Chat template for a model without one (or to replace its own): chatml, llama3, gemma, "
    "phi3, zephyr, mistral, or a .jinja file.",
)
@click.option(
    "--completion-only",
    is_flag=True,
    help="A base model: no chat template needed; the prompt goes to the model unchanged and it is "
    "registered for text-generation.",
)
@click.option(
    "--adapter",
    metavar="PATH|ORG/NAME",
    help="A PEFT LoRA adapter (folder or Hub repo) merged into SOURCE before the build.",
)
@click.option("--adapter-revision", default=None, help="Hub revision of --adapter.")
@click.option(
    "--context-length",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Run the model with an N-token context (at most its own): Foundry Local allocates each "
    "request's KV cache for the whole context, so a shorter one takes less memory to serve "
    "[default: the model's own].",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own Python code.")
@click.option("--force", is_flag=True, help="Replace an existing model directory.")
@click.option("--dry-run", is_flag=True, help="Check and print the plan and Olive config only.")
@json_option
def compile_command(
    source: str,
    recipe: str,
    model_id: str | None,
    revision: str | None,
    gguf_file: str | None,
    cache_dir: Path | None,
    calibration: Path | None,
    chat_template: str | None,
    completion_only: bool,
    adapter: str | None,
    adapter_revision: str | None,
    trust_remote_code: bool,
    force: bool,
    dry_run: bool,
    as_json: bool,
    max_kl: float | None = None,
    min_top1: float | None = None,
    registry: Path | None = None,
    context_length: int | None = None,
) -> None:
    """Compile SOURCE (a local Hugging Face model directory, a .gguf file or an org/name Hub repo)
    with a recipe (a name, or a recipe .json file) into the Foundry Local cache at
    <cache>/<publisher>/<id>, with a provenance manifest. A GGUF source is dequantized to fp32
    first: it was already quantized, and the compile cannot restore what that lost."""
    out = Output(as_json)
    if recipe is None and max_kl is None and min_top1 is None:
        recipe = DEFAULT_RECIPE  # as onboard (issue 25)
    request = CompileRequest(
        source=source,
        recipe=recipe or AUTO,
        model_id=model_id,
        revision=revision,
        cache_dir=cache_dir,
        calibration=calibration,
        trust_remote_code=trust_remote_code,
        force=force,
        dry_run=dry_run,
        gguf_file=gguf_file,
        chat_template=chat_template,
        completion_only=completion_only,
        adapter=adapter,
        adapter_revision=adapter_revision,
        context_length=context_length,
    )
    _interrupt_on_sigterm()
    try:
        if wants_budget(recipe, max_kl, min_top1):
            run_budget(out, request, recipe, max_kl, min_top1, registry, as_json)
            return
        result = compile_model(request, progress=out.progress)
    except KeyboardInterrupt:
        raise CompileInterrupted(
            "interrupted: Olive was stopped and nothing was written to the cache",
            hint="run the same curator compile again",
        ) from None
    if as_json:
        out.json(result_json(result))
        return
    if result.dry_run:
        _print_plan(out, result.plan)
        return
    out.text(
        f"compiled {result.model_id} -> {result.path}\n"
        f"  {len(result.artifacts)} files, {_mib(result.total_bytes)}, "
        f"{result.wall_seconds or 0:.1f} s, Olive peak RSS {_mib(result.peak_rss_bytes)}\n"
        f"  manifest: {result.manifest_path}"
    )
    for note in result.plan.notes:
        out.text(f"  note: {note}")
