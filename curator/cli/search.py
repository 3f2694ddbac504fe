"""``curator search QUERY`` and ``curator info ORG/NAME``: the Hub before anything is downloaded."""

from __future__ import annotations

from collections.abc import Sequence

import click

from curator.cli._options import json_option
from curator.cli._output import Output
from curator.hub.units import human_bytes, human_count, parse_param_count

SORT_CHOICES = ("downloads", "likes", "trending", "updated")


@click.command()
@click.argument("query", required=False, default="")
@click.option("--task", default=None, help="Pipeline tag, e.g. text-generation.")
@click.option("--author", default=None, help="Only this user or organisation.")
@click.option(
    "--filter", "filters", multiple=True, metavar="TAG", help="Hub tag to require (repeatable)."
)
@click.option(
    "--sort",
    type=click.Choice(SORT_CHOICES),
    default="downloads",
    show_default=True,
    help="Order, highest first.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--gated/--no-gated", default=None, help="Only gated / only ungated models.")
@click.option(
    "--max-params",
    default=None,
    metavar="N",
    help="At most N parameters: 8B, 500M (models without a count are left out).",
)
@click.option("--compilable", is_flag=True, help="Only models a recipe can compile here.")
@click.option("--local", is_flag=True, help="Search the local HF cache and Foundry cache instead.")
@json_option
def search(
    query: str,
    task: str | None,
    author: str | None,
    filters: tuple[str, ...],
    sort: str,
    limit: int,
    gated: bool | None,
    max_params: str | None,
    compilable: bool,
    local: bool,
    as_json: bool,
) -> None:
    """Search Hugging Face for models (or, with --local, the models already on this machine)."""
    out = Output(as_json)
    if local:
        _search_local(out, query, task, author, filters, gated, max_params, compilable)
        return
    from curator.hub import search_models

    results = search_models(
        query or None,
        task=task,
        author=author,
        filters=filters,
        sort=sort,
        limit=limit,
        gated=gated,
        max_params=parse_param_count(max_params) if max_params else None,
        compilable=compilable,
    )
    if as_json:
        out.json(results)
        return
    if not results:
        out.text("no models found")
        return
    out.table(
        [
            (
                r.repo_id,
                human_count(r.parameters),
                human_bytes(r.download_bytes),
                r.license,
                r.gated,
                r.downloads,
                r.likes,
                (r.last_modified or "")[:10],
                r.architecture,
                r.compilable_recipes,
                human_bytes(r.int4_run_bytes),
            )
            for r in results
        ],
        [
            "repo", "params", "download", "license", "gated", "downloads", "likes", "updated",
            "architecture", "recipes", "int4 ram",
        ],
    )  # fmt: skip


def _search_local(
    out: Output,
    query: str,
    task: str | None,
    author: str | None,
    filters: Sequence[str],
    gated: bool | None,
    max_params: str | None,
    compilable: bool,
) -> None:
    from curator.hub import search_local

    ignored = [
        name
        for name, value in (
            ("--task", task),
            ("--author", author),
            ("--filter", filters),
            ("--gated/--no-gated", gated is not None),
            ("--max-params", max_params),
            ("--compilable", compilable),
        )
        if value
    ]
    if ignored:
        out.warn(f"--local matches names only; ignoring {', '.join(ignored)}")
    found = search_local(query or None)
    if out.as_json:
        out.json(found)
        return
    if not found:
        out.text("no local models found")
        return
    out.table(
        [
            (
                m.source,
                m.name,
                human_count(m.parameters),
                human_bytes(m.size_bytes),
                m.architecture,
                [sha[:10] for sha in m.revisions],
                (m.last_modified or "")[:10],
                m.path,
            )
            for m in found
        ],
        ["source", "name", "params", "size", "architecture", "revisions", "updated", "path"],
    )


@click.command()
@click.argument("repo_id", metavar="ORG/NAME")
@click.option("--revision", default=None, help="Branch, tag or commit [default: main].")
@json_option
def info(repo_id: str, revision: str | None, as_json: bool) -> None:
    """Facts about one model before downloading it: size, license, gate, architecture, recipes."""
    from curator.hub import model_facts

    facts = model_facts(repo_id, revision)
    out = Output(as_json)
    if as_json:
        out.json(facts)
        return
    by_dtype = ", ".join(f"{n:,} {dtype}" for dtype, n in sorted(facts.parameters_by_dtype.items()))
    rows = [
        ("repository", facts.url),
        ("commit", facts.sha),
        ("parameters", f"{facts.parameters:,} ({by_dtype})" if facts.parameters else None),
        ("architecture", facts.architecture),
        ("model type", facts.model_type),
        ("weights", facts.weight_format),
        (
            "compile downloads",
            f"{facts.download_bytes:,} bytes ({human_bytes(facts.download_bytes)}) in "
            f"{len(facts.download_files)} files",
        ),
        ("license", facts.license),
        ("license link", facts.license_link),
        ("gated", f"yes ({facts.gate})" if facts.gated else "no"),
        ("chat template", facts.chat_template),
        ("repository code", "yes (auto_map)" if facts.auto_map else "no"),
        ("task", facts.pipeline_tag),
        ("downloads", facts.downloads),
        ("likes", facts.likes),
        ("updated", facts.last_modified),
    ]
    out.table(rows, ["fact", "value"])
    out.text()
    out.table(
        [
            (
                fit.recipe,
                fit.device,
                fit.can_compile,
                human_bytes(fit.compile_peak_bytes),
                human_bytes(fit.run_bytes),
                fit.needs,
                fit.reason,
            )
            for fit in facts.recipes
        ],
        ["recipe", "device", "can compile", "compile peak", "run ram", "needs", "why not"],
    )
