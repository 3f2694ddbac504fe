"""``curator publish``: a registry entry's compiled model to a Hugging Face model repository."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output
from curator.paths import foundry_cache_dir, registry_path


@click.command()
@click.argument("model_id")
@click.option("--to", "repo", required=True, help="Hugging Face model repository ORG/NAME.")
@click.option("--revision", help="Branch to commit to (created from main) [default: main].")
@click.option("--private", is_flag=True, help="Create the repository private (if it is new).")
@registry_option
@cache_dir_option
@json_option
def publish(
    model_id: str,
    repo: str,
    revision: str | None,
    private: bool,
    registry: Path | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Upload a registered model's compiled files to REPO and record where they are.

    The entry's distribution (repo, commit, files with sha256) lets teammates `curator pull ID`.
    Needs a token with write access (`hf auth login` or HF_TOKEN); a re-run resumes.
    """
    from curator.share.publish import publish as run_publish  # start-up: kept off --help

    out = Output(as_json)
    result = run_publish(
        model_id,
        repo=repo,
        cache_dir=foundry_cache_dir(cache_dir),
        registry=registry_path(registry),
        revision=revision,
        private=private,
        progress=out.progress,
    )
    if as_json:
        out.json(
            {
                "id": result.id,
                "repo": result.repo,
                "branch": result.branch,
                "commit": result.commit,
                "url": result.url,
                "registry": result.registry,
                "distribution": result.distribution,
            }
        )
        return
    out.text(
        f"published {result.id}: {len(result.files) + 1} files "
        f"({result.total_bytes / 2**20:.1f} MiB) to {result.repo}@{result.branch}, "
        f"commit {result.commit}"
    )
    out.text(f"recorded distribution in {result.registry}; teammates run: curator pull {result.id}")
