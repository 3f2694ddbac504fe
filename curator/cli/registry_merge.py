"""``curator registry matrix``, ``fragment`` and ``merge``: compiling many models on CI runners
(.github/workflows/compile-matrix.yml renders its jobs, cuts each job's fragment and merges them).
Registered in the ``registry`` group by curator/cli/registry.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curator.cli._options import json_option, registry_option
from curator.cli._output import Output
from curator.paths import registry_path


@click.command("merge")
@click.argument(
    "fragments", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@registry_option
@json_option
def merge(fragments: tuple[Path, ...], registry: Path | None, as_json: bool) -> None:
    """Merge registry FRAGMENTS that parallel compile jobs wrote into the registry.

    Deterministic (the order of FRAGMENTS does not matter); two fragments that edit the same id
    differently are refused and nothing is written; the registry's policy is kept.
    """
    from curator.registry.merge import merge_fragments  # start-up: kept off --help

    result = merge_fragments(registry_path(registry), fragments)
    out = Output(as_json)
    if as_json:
        out.json(result)
        return
    for path in result.policy_ignored:
        out.warn(f"{path}: its policy differs from the registry's; the registry's is kept")
    out.text(
        f"merged {len(fragments)} fragment(s) into {result.registry}: "
        f"{len(result.added)} added, {len(result.updated)} updated, {result.unchanged} unchanged"
    )
    for model_id in result.added:
        out.text(f"  added   {model_id}")
    for model_id in result.updated:
        out.text(f"  updated {model_id}")


@click.command("matrix")
@click.argument("candidates", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One line of JSON: the job matrix.")
def matrix(candidates: Path, as_json: bool) -> None:
    """Render the compile-matrix jobs of a candidates file (registry/candidates.json).

    With --json: ``{"include": [...]}`` on one line, for GitHub Actions' fromJSON.
    """
    from curator.registry.candidates import load_matrix  # start-up: kept off --help

    rendered = load_matrix(candidates)
    out = Output(as_json)
    if as_json:
        click.echo(json.dumps(rendered.document(), separators=(",", ":"), sort_keys=True))
        return
    out.table(
        [
            (j.key, j.source, j.revision, " ".join(j.runs_on), f"{j.repo}@{j.branch}")
            for j in rendered.jobs
        ],
        ["job", "source", "revision", "runs on", "publishes to"],
    )


@click.command("fragment")
@click.argument("model_ids", nargs=-1, required=True)
@registry_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The fragment file to write.",
)
@json_option
def fragment(
    model_ids: tuple[str, ...], registry: Path | None, output: Path, as_json: bool
) -> None:
    """Write a registry fragment holding only MODEL_IDS (what one compile job produced)."""
    from curator.registry.merge import cut_fragment  # start-up: kept off --help

    cut_fragment(registry_path(registry), model_ids, output)
    if as_json:
        Output(True).json({"output": output, "models": list(model_ids)})
        return
    click.echo(f"wrote {output}: {', '.join(model_ids)}")
