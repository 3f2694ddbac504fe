"""``curator search QUERY`` and ``curator info ORG/NAME``: the Hub before anything is downloaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from curator.cli._options import cache_dir_option, json_option
from curator.cli._output import Output
from curator.errors import UsageProblem
from curator.hub import model_facts, search_local
from curator.hub.search import search_hub
from curator.hub.units import human_bytes, human_count, parse_param_count

if TYPE_CHECKING:
    from curator.compile.source import SourceKind
    from curator.hub.models import FactGap, ModelFacts, ModelSummary, RecipeFit
    from curator.hub.search import SearchOutcome

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
@click.option(
    "--local",
    is_flag=True,
    help="Search the local HF cache and the Foundry cache (--cache-dir) instead: ids, parameters, "
    "sizes.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="List the models --compilable / --max-params left out, each with its reason "
    "(with --json: an object with models, scanned and left_out).",
)
@cache_dir_option
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
    explain: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Search Hugging Face for models (or, with --local, the models already on this machine).

    When filters leave models out, a footer on stderr counts them per reason (--explain lists
    each one)."""
    out = Output(as_json)
    if local:
        _search_local(
            out, query, task, author, filters, gated, max_params, compilable or explain, cache_dir
        )
        return

    outcome = search_hub(
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
    results = outcome.models
    if as_json:
        out.json(outcome if explain else results)
        return
    if not results:
        out.text("no models found")
    else:
        _results_table(out, results)
    _left_out_footer(out, outcome, explain)


def _left_out_footer(out: Output, outcome: SearchOutcome, explain: bool) -> None:
    """Why listing entries were left out: counts per reason on stderr, each entry with --explain."""
    if not outcome.left_out:
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in outcome.left_out_counts().items())
    more = "" if explain else " (--explain lists them)"
    out.progress(
        f"left out {len(outcome.left_out)} of {outcome.scanned} models looked at: {counts}{more}"
    )
    if explain:
        for entry in outcome.left_out:
            out.progress(f"  {entry.repo_id}: {entry.reason}")


def _results_table(out: Output, results: Sequence[ModelSummary]) -> None:
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
    cache_dir: Path | None = None,
) -> None:
    ignored = [
        name
        for name, value in (
            ("--task", task),
            ("--author", author),
            ("--filter", filters),
            ("--gated/--no-gated", gated is not None),
            ("--max-params", max_params),
            ("--compilable/--explain", compilable),
        )
        if value
    ]
    if ignored:
        out.warn(f"--local matches names only; ignoring {', '.join(ignored)}")
    found = search_local(query or None, foundry_cache=cache_dir)
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
@click.argument("source", metavar="SOURCE")
@click.option("--revision", default=None, help="Branch, tag or commit [default: main].")
@click.option(
    "--gguf-file", default=None, help="One GGUF file of the directory SOURCE (as compile takes)."
)
@json_option
def info(source: str, revision: str | None, gguf_file: str | None, as_json: bool) -> None:
    """Facts about one model before compiling it: parameters, size, architecture, license, chat
    template, which recipes can compile it here and the RAM they predict, and the command to use.

    SOURCE is anything compile, import or --adapter take: an org/name Hub repo (nothing is
    downloaded), a local Hugging Face model directory (relative or absolute), a .gguf file, an ONNX
    Runtime GenAI folder, or a LoRA adapter folder."""
    from curator.compile.source import classify_source  # start-up: loads curator.compile

    local_dir = Path(source).expanduser().is_dir()
    kind = classify_source(str(Path(source) / gguf_file) if gguf_file and local_dir else source)
    if gguf_file and not kind.is_local:
        Output(as_json).warn(
            f"--gguf-file names a file of a local directory; the facts of the Hub repo {source} "
            "follow (its GGUF files are listed in its notes)"
        )
    if kind.is_local:
        if revision:
            raise UsageProblem(
                "--revision applies only to a Hub repo id, not to a local path",
                hint="drop --revision",
            )
        _local_info(kind, as_json)
        return

    facts = model_facts(source, revision)
    out = Output(as_json)
    if facts.renamed_from:
        out.warn(f"{facts.renamed_from} was renamed to {facts.repo_id}; using the new id")
    if as_json:
        out.json(facts)
        return
    rows = _fact_rows(facts)
    out.table(rows, ["fact", "value"])
    failed = [gap for gap in facts.gaps if gap.state == "failed"]
    if failed:
        out.warn(
            f"{len(failed)} request(s) failed; the facts they were for are marked failed above"
        )
    out.text()
    _recipes_table(out, facts.recipes)
    for note in facts.notes:
        out.text(f"note: {note}")


def _recipes_table(out: Output, recipes: Sequence[RecipeFit]) -> None:
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
            for fit in recipes
        ],
        ["recipe", "device", "can compile", "compile peak", "run ram", "needs", "why not"],
    )


def _local_info(kind: SourceKind, as_json: bool) -> None:
    """``curator info PATH``: a local source's facts from its small files and headers."""
    from curator.compile.describe import describe_local  # start-up: kept off --help

    facts = describe_local(kind)
    out = Output(as_json)
    if as_json:
        out.json(facts)
        return
    parameters = (
        f"{facts.parameters:,} ({human_count(facts.parameters)})" if facts.parameters else None
    )
    rows: list[tuple[str, object]] = [
        ("source", f"{facts.path} ({_KIND_WORDS[facts.kind]})"),
        ("name", facts.name),
        ("parameters", parameters),
        ("size", f"{facts.size_bytes:,} bytes ({human_bytes(facts.size_bytes)}) in {facts.files} files"),
        ("architecture", facts.architecture),
        ("model type", facts.model_type),
        ("quantization", facts.quantization),
        ("context length", facts.context_length),
        ("license", facts.license),
        ("chat template", facts.chat_template),
    ]  # fmt: skip
    if facts.base_model is not None or facts.kind == "adapter":
        rows.append(("base model", facts.base_model))
    if facts.variants:
        rows.append(("variants", ", ".join(facts.variants)))
    rows.append(("run ram", human_bytes(facts.run_bytes)))
    out.table(rows, ["fact", "value"])
    out.text()
    _recipes_table(out, facts.recipes)
    out.text()
    for note in facts.notes:
        out.text(f"note: {note}")
    out.text(f"next: {facts.next_command}")


_KIND_WORDS = {
    "checkpoint": "Hugging Face model directory",
    "gguf": "GGUF file",
    "genai": "ONNX Runtime GenAI model",
    "adapter": "LoRA adapter",
}


def _fact_rows(facts: ModelFacts) -> list[tuple[str, object]]:
    """One row per fact; a fact not known says so, with its reason (never a 0 or a blank)."""
    gaps: dict[str, FactGap] = {}
    for gap in facts.gaps:
        gaps.setdefault(gap.fact, gap)

    def value(fact: str, known: object) -> object:
        if known is not None:
            return known
        gap = gaps.get(fact)
        return f"{gap.state}: {gap.reason}" if gap else None

    by_dtype = ", ".join(f"{n:,} {dtype}" for dtype, n in sorted(facts.parameters_by_dtype.items()))
    sizes = None
    if facts.download_bytes is not None:
        sizes = (
            f"{facts.download_bytes:,} bytes ({human_bytes(facts.download_bytes)}) in "
            f"{len(facts.download_files)} files"
        )
    elif gaps.get("download size") is None:
        sizes = f"size unknown, {len(facts.download_files)} files"
    gated = "no"
    if facts.gated:
        gated = f"yes ({facts.gate}); request access at {facts.url} before compiling"
    rows: list[tuple[str, object]] = [("repository", facts.url)]
    if facts.renamed_from:
        rows.append(("renamed from", facts.renamed_from))
    rows += [
        ("commit", facts.sha),
        ("parameters", value("parameters", f"{facts.parameters:,} ({by_dtype})" if facts.parameters else None)),
        ("architecture", value("architecture", facts.architecture)),
        ("model type", facts.model_type),
        ("weights", facts.weight_format),
        ("compile downloads", value("download size", sizes)),
        ("license", value("license", facts.license)),
        ("license link", facts.license_link),
        ("gated", gated),
        ("chat template", value("chat template", facts.chat_template)),
        ("repository code", "yes (auto_map)" if facts.auto_map else "no"),
        ("holds", _KIND_WORDS.get(facts.kind, facts.kind)),
        ("task", facts.pipeline_tag),
        ("downloads", facts.downloads),
        ("likes", facts.likes),
        ("updated", facts.last_modified),
    ]  # fmt: skip
    if facts.variants:
        rows.append(("variants", ", ".join(facts.variants)))
    if facts.kind == "adapter":
        rows.append(("base model", facts.base_model))
    return rows
