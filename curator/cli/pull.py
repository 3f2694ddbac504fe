"""``curator pull``: bring a model onto this machine.

- ``curator pull ID`` where ID names a registry entry with a ``distribution`` (``curator publish``):
  its files at the published commit, sha256-verified, placed in the Foundry cache, registered and
  load-tested (curator/share/pull.py).
- ``curator pull --all [--capability ...] [--fit]``: every published entry that matches.
- Any other ALIAS|ID: a Foundry catalog model, downloaded into the cache and load-tested
  (:func:`curator.register.pull_catalog_model`).
"""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output
from curator.errors import UsageProblem
from curator.paths import foundry_cache_dir, registry_path
from curator.registry import load_registry


@click.command()
@click.argument("target", required=False)
@click.option("--all", "everything", is_flag=True, help="Every published registry entry.")
@click.option(
    "--capability", "capabilities", multiple=True, help="With --all: only entries with it (repeat)."
)
@click.option("--fit", is_flag=True, help="With --all: only entries whose minRamGb fits this RAM.")
@click.option("--force", is_flag=True, help="Replace a different directory already in the cache.")
@registry_option
@cache_dir_option
@json_option
def pull(
    target: str | None,
    everything: bool,
    capabilities: tuple[str, ...],
    fit: bool,
    force: bool,
    registry: Path | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Download a published registry model (ID), verify every sha256, register it with Foundry
    Local and load-test it; --all brings this machine up to the registry (exit 1 if one fails)."""
    out = Output(as_json)
    registry_file = registry_path(registry)
    cache = foundry_cache_dir(cache_dir)
    if everything:
        if target is not None:
            raise UsageProblem("give an ID or --all, not both", hint="curator pull --all")
        _pull_everything(out, registry_file, cache, capabilities, fit, force)
        return
    if target is None:
        raise UsageProblem("nothing to pull", hint="curator pull ID, or curator pull --all")
    if capabilities or fit:
        raise UsageProblem("--capability and --fit go with --all", hint="curator pull --all --fit")
    from curator.share.pull import is_published, pull_model  # start-up: kept off --help

    if not is_published(load_registry(registry_file), target):
        _pull_catalog_model(out, target, registry_file, cache)
        return
    result = pull_model(
        target, registry=registry_file, cache_dir=cache, force=force, progress=out.progress
    )
    if as_json:
        out.json(result)
        return
    out.text(
        f"{result.id}: {result.action} from {result.repo}@{result.commit[:12]} into {result.path}, "
        f"{result.foundry_action} with Foundry Local (loaded in {result.load_ms:.0f} ms)"
    )


def _pull_everything(
    out: Output,
    registry: Path,
    cache: Path,
    capabilities: tuple[str, ...],
    fit: bool,
    force: bool,
) -> None:
    from curator.share.pull import pull_all  # start-up: kept off --help

    ram_gb = None
    if fit:
        import psutil

        ram_gb = psutil.virtual_memory().total / 2**30
    result = pull_all(
        registry=registry,
        cache_dir=cache,
        capabilities=capabilities,
        ram_gb=ram_gb,
        force=force,
        progress=out.progress,
    )
    if out.as_json:
        out.json(result)
    else:
        for done in result.pulled:
            out.text(f"pulled  {done.id} ({done.action})")
        for model_id, reason in result.skipped:
            out.text(f"skipped {model_id}: {reason}")
        for failure in result.failed:
            out.text(f"FAILED  {failure.id}: {failure.error}")
        out.text(
            f"{len(result.pulled)} pulled, {len(result.skipped)} skipped, "
            f"{len(result.failed)} failed"
        )
    if result.failed:
        raise SystemExit(1)


def _pull_catalog_model(out: Output, target: str, registry: Path, cache: Path) -> None:
    """An ALIAS|ID that is not a published registry entry: a Foundry catalog model, downloaded
    into the cache with progress on stderr, then load-tested (curator/register/catalog.py)."""
    from curator.register import pull_catalog_model  # start-up: kept off --help

    shown = [-100.0]

    def progress(percent: float) -> None:
        if percent >= 100 or percent - shown[0] >= 5:
            shown[0] = percent
            out.progress(f"download {target}: {percent:.0f}%")

    result = pull_catalog_model(target, cache_dir=cache, progress=progress)
    if out.as_json:
        out.json(result)
        return
    test = result.load_test
    out.text(
        f"{result.id}: {result.action} into {result.path}; load test: loaded in "
        f"{test.load_ms:.0f} ms, {test.completion_tokens} tokens, peak RSS "
        f"{test.peak_rss_mb:.0f} MiB (curator register {result.id} adds it to {registry})"
    )
