"""``curator import SOURCE``: a model already in ONNX Runtime GenAI format into the Foundry cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curator.cli._options import cache_dir_option, json_option
from curator.cli._output import Output

if TYPE_CHECKING:
    from curator.compile.imported import ImportResult


def result_json(result: ImportResult) -> dict[str, Any]:
    plan = result.plan
    data: dict[str, Any] = {
        "dry_run": result.dry_run,
        "model_id": plan.model_id,
        "publisher": plan.publisher,
        "target": str(plan.target),
        "source_repo": plan.source_repo,
        "source_revision": plan.source_revision,
        "subfolder": plan.subfolder,
        "variants": list(plan.variants),
        "device": plan.device,
        "files": [
            {"path": f.path, "sha256": f.sha256, "bytes": f.bytes, "git_sha1": f.git_sha1}
            for f in plan.files
        ],
        "notes": list(plan.notes),
    }
    if not result.dry_run:
        data.update(
            {
                "path": str(result.path),
                "manifest": str(result.manifest_path),
                "wall_seconds": result.wall_seconds,
                "artifacts": [
                    {"path": a.path, "sha256": a.sha256, "bytes": a.bytes} for a in result.artifacts
                ],
            }
        )
    return data


@click.command("import")
@click.argument("source")
@click.option(
    "--subfolder",
    default=None,
    metavar="PATH",
    help="The variant to import (e.g. cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4) "
    "[default: the only one, else the first for this machine's device].",
)
@click.option("--id", "model_id", default=None, help="Model id NAME-VARIANT:VERSION.")
@click.option("--revision", default=None, help="Hub branch, tag or commit (Hub sources only).")
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu", "npu"]),
    default=None,
    help="Choose a variant for this device [default: gpu with an NVIDIA GPU, else cpu].",
)
@click.option(
    "--chat-template",
    metavar="NAME|FILE",
    help="Chat template for a model without one: chatml, llama3, gemma, phi3, zephyr, mistral, "
    "or a .jinja file.",
)
@click.option(
    "--completion-only", is_flag=True, help="A base model: registered for text-generation."
)
@cache_dir_option
@click.option("--force", is_flag=True, help="Replace an existing model directory.")
@click.option("--dry-run", is_flag=True, help="List the variant and its files only.")
@json_option
def import_command(
    source: str,
    subfolder: str | None,
    model_id: str | None,
    revision: str | None,
    device: str | None,
    chat_template: str | None,
    completion_only: bool,
    cache_dir: Path | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import SOURCE, a model already in ONNX Runtime GenAI format (a local folder with
    genai_config.json, or a Hub repo such as microsoft/*-onnx with one subfolder per variant),
    into the Foundry Local cache at <cache>/<publisher>/<id>: every file genai_config.json names
    is checked, a Hub download against the Hub's sha256, then inference_model.json and a manifest
    (recipe "imported") are written and the folder is placed in one step. Then register, smoke,
    bench and fidelity work as for a compiled model."""
    from curator.compile.imported import ImportRequest, import_model  # start-up: kept off --help

    out = Output(as_json)
    result = import_model(
        ImportRequest(
            source=source,
            subfolder=subfolder,
            model_id=model_id,
            revision=revision,
            cache_dir=cache_dir,
            device=device,
            chat_template=chat_template,
            completion_only=completion_only,
            force=force,
            dry_run=dry_run,
        ),
        progress=out.progress,
    )
    if as_json:
        out.json(result_json(result))
        return
    plan = result.plan
    where = f"{plan.source_repo}" + (f" {plan.subfolder}" if plan.subfolder else "")
    if result.dry_run:
        out.text(f"plan: import {where} -> {plan.model_id} at {plan.target}")
        if plan.variants:
            out.text(f"  variants: {', '.join(plan.variants)}")
        out.table([(f.path, f.bytes, f.sha256 or f.git_sha1) for f in plan.files],
                  ["file", "bytes", "hash"])  # fmt: skip
        return
    total = sum(a.bytes for a in result.artifacts)
    out.text(
        f"imported {where} -> {result.path}\n"
        f"  {len(result.artifacts)} files, {total / 2**20:,.0f} MiB, {result.wall_seconds:.1f} s\n"
        f"  manifest: {result.manifest_path}\n"
        f"  next: curator register {result.path} --license SPDX-ID"
    )
    for note in plan.notes:
        out.text(f"  note: {note}")
