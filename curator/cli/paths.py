"""``curator paths``."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output
from curator.paths import resolve_paths


@click.command()
@registry_option
@cache_dir_option
@json_option
def paths(registry: Path | None, cache_dir: Path | None, as_json: bool) -> None:
    """Print the registry, Foundry cache and curator home this command line would use."""
    resolved = resolve_paths(registry, cache_dir)
    out = Output(as_json)
    if as_json:
        out.json(resolved)
        return
    out.table(
        [
            ("registry", resolved.registry),
            ("foundry-cache", resolved.foundry_cache),
            ("home", resolved.home),
        ],
        ["what", "path"],
    )
    for warning in resolved.warnings:
        out.warn(warning)
