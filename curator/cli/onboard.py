"""``curator onboard SOURCE``: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output
from curator.paths import registry_path


@click.command()
@click.argument("source")
@click.option(
    "--recipe",
    default="int4-cpu",
    show_default=True,
    help="Recipe (curator recipes list) or a recipe .json file; `auto`: the smallest model that "
    "meets the registry policy's fidelity limits.",
)
@click.option("--max-kl", type=float, help="Fidelity budget: the smallest plan with this KL.")
@click.option("--min-top1", type=float, help="Fidelity budget: top-1 agreement at least this.")
@click.option("--id", "model_id", help="Model id NAME-VARIANT:VERSION [default: from the source].")
@click.option("--revision", help="Hub revision (branch, tag or commit).")
@click.option("--gguf-file", help="Onboard this GGUF file of the Hub repo (or directory) SOURCE.")
@click.option("--alias", help="Foundry alias [default: from the id].")
@click.option("--license", "license_", help="License id [default: from the model card].")
@click.option(
    "--capability", "capabilities", multiple=True, help="Capability tag (repeat) [default: chat]."
)
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--chat-template",
    metavar="NAME|FILE",
    help="Chat template for a model without one: chatml, llama3, gemma, phi3, zephyr, mistral, "
    "or a .jinja file.",
)
@click.option(
    "--completion-only",
    is_flag=True,
    help="A base model: no chat template, registered for text-generation, smoke-tested with "
    "continuations.",
)
@click.option(
    "--adapter",
    metavar="PATH|ORG/NAME",
    help="A PEFT LoRA adapter (folder or Hub repo) merged into SOURCE before the build.",
)
@click.option("--adapter-revision", help="Hub revision of --adapter.")
@click.option(
    "--subfolder",
    metavar="PATH",
    help="SOURCE already in ONNX Runtime GenAI format: the variant to import (as curator import).",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow the repository's own code to run.")
@click.option(
    "--context-length",
    type=click.IntRange(min=1),
    metavar="N",
    help="Compile the model to run with an N-token context (as curator compile --context-length): "
    "less memory to serve it [default: the model's own].",
)
@click.option(
    "--prompts",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Prompt set for smoke and bench [default: the shipped smoke set].",
)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-fidelity", is_flag=True, help="Skip the fidelity step.")
@click.option("--force", is_flag=True, help="Redo every step, even those already done.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("onboard-out"),
    show_default=True,
    help="Where the summary and the bench report go.",
)
@registry_option
@cache_dir_option
@json_option
def onboard(
    source: str,
    recipe: str,
    model_id: str | None,
    revision: str | None,
    gguf_file: str | None,
    alias: str | None,
    license_: str | None,
    capabilities: tuple[str, ...],
    calibration: Path | None,
    chat_template: str | None,
    completion_only: bool,
    adapter: str | None,
    adapter_revision: str | None,
    subfolder: str | None,
    trust_remote_code: bool,
    prompts: Path | None,
    rounds: int,
    max_tokens: int,
    no_fidelity: bool,
    force: bool,
    out_dir: Path,
    registry: Path | None,
    cache_dir: Path | None,
    as_json: bool,
    max_kl: float | None = None,
    min_top1: float | None = None,
    context_length: int | None = None,
) -> None:
    """Info, compile, register, smoke, bench and fidelity, then a pull-request-ready summary.

    SOURCE is a Hugging Face model directory, a .gguf file or an org/name Hub repo. A rerun skips
    the steps already done; a failing step (a smoke answer without its expected words, fidelity
    outside the registry's policy) stops with its cause and leaves the registry as it was.
    """
    from curator.onboard.pipeline import OnboardRequest  # start-up: kept off --help
    from curator.onboard.pipeline import onboard as run_onboard  # start-up: kept off --help

    out = Output(as_json)
    result = run_onboard(
        OnboardRequest(
            source=source,
            recipe=recipe,
            registry=registry_path(registry),
            cache_dir=cache_dir,
            out_dir=out_dir,
            model_id=model_id,
            revision=revision,
            alias=alias,
            license=license_,
            capabilities=capabilities or (() if completion_only else ("chat",)),
            trust_remote_code=trust_remote_code,
            calibration=calibration,
            prompts=prompts,
            rounds=rounds,
            max_tokens=max_tokens,
            fidelity=not no_fidelity,
            force=force,
            gguf_file=gguf_file,
            chat_template=chat_template,
            completion_only=completion_only,
            adapter=adapter,
            adapter_revision=adapter_revision,
            subfolder=subfolder,
            max_kl=max_kl,
            min_top1=min_top1,
            context_length=context_length,
        ),
        progress=out.progress,
    )
    if as_json:
        out.json(result)
        return
    out.table(
        [(s.name, s.status, s.seconds, s.detail) for s in result.steps],
        ["step", "status", "seconds", "detail"],
    )
    out.text(f"registry: {result.registry} ({result.registry_action} {result.model_id})")
    out.text(f"summary: {result.summary_path}")
