"""``curator cache ls|rm|verify``: the Foundry Local model cache."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import ListGroup, cache_dir_option, json_option, registry_option
from curator.cli._output import Output, to_jsonable
from curator.paths import foundry_cache_dir, registry_path


@click.group(cls=ListGroup)
def cache() -> None:
    """List, remove and verify compiled models in the Foundry Local cache."""


@cache.command("ls")
@registry_option
@cache_dir_option
@json_option
def ls(registry: Path | None, cache_dir: Path | None, as_json: bool) -> None:
    """Each model directory with its size, Foundry registration and registry state."""
    from curator.cache.inventory import list_cache  # start-up: kept off --help

    rows = list_cache(foundry_cache_dir(cache_dir), registry_path(registry))
    out = Output(as_json)
    if as_json:
        out.json(rows)
        return
    out.table(
        [
            (r.id, r.size_mb, r.foundry_registered, r.in_registry, r.has_manifest, r.path)
            for r in rows
        ],
        ["id", "size MiB", "registered", "in-registry", "manifest", "path"],
    )
    for row in rows:
        if row.unfinished_download:
            out.warn(
                f"{row.path} is an unfinished download, not a usable model "
                f"(curator pull {row.id} resumes it; curator cache rm {row.id} removes it)"
            )
    shared = {r.id: [row.path for row in rows if row.id == r.id] for r in rows if r.shares_id_with}
    for model_id, paths in shared.items():
        out.warn(
            f"id {model_id} is held by {len(paths)} directories: "
            + ", ".join(str(p) for p in paths)
            + " (one id, one directory: remove the copy with rm -r, or recompile it under its own id)"
        )


@cache.command("rm")
@click.argument("model_id")
@click.option(
    "--registry",
    "registry",
    is_flag=False,
    flag_value="",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also remove the registry entry; alone it means $CURATOR_REGISTRY or "
    "registry/models.json, or give a file (put it after ID).",
)
@cache_dir_option
@json_option
def rm(model_id: str, registry: str | None, cache_dir: Path | None, as_json: bool) -> None:
    """Unregister a model from Foundry Local and delete its directory from the cache."""
    from curator.cache.inventory import remove_model  # start-up: kept off --help
    from curator.cli.foundry import suggesting  # start-up: kept off curator cache ls
    from curator.names import resolve_in_cache  # start-up: kept off --help

    chosen = None if registry is None else registry_path(registry or None)
    cache = foundry_cache_dir(cache_dir)
    model_id = resolve_in_cache(cache, model_id)  # an id, id without version or alias
    with suggesting(cache, model_id):
        result = remove_model(model_id, cache, chosen)
    out = Output(as_json)
    if as_json:
        out.json(result)
        return
    if result.catalog_download:
        out.text(f"{model_id}: a Foundry catalog download (curator pull {model_id} brings it back)")
    else:
        out.text(
            f"{model_id}: " + ("unregistered" if result.unregistered else "was not registered")
        )
    if result.removed_dir:
        out.text(f"removed {result.removed_dir}")
    if result.kept_dir:
        out.text(f"kept {result.kept_dir} (outside the cache)")
    if result.registry_entry_removed:
        out.text(f"removed the entry from {chosen}")


@cache.command("verify")
@click.argument("model_id", required=False)
@cache_dir_option
@json_option
def verify(model_id: str | None, cache_dir: Path | None, as_json: bool) -> None:
    """Check every artifact's sha256 against the compile manifest (exit 1 naming missing or
    changed files)."""
    from curator.cache.inventory import verify_cache  # start-up: kept off --help
    from curator.cli.foundry import suggesting  # start-up: kept off curator cache ls
    from curator.names import resolve_in_cache  # start-up: kept off --help

    cache = foundry_cache_dir(cache_dir)
    if model_id is not None:
        model_id = resolve_in_cache(cache, model_id)  # an id, id without version or alias
    out = Output(as_json)
    with suggesting(cache, model_id or ""), out.step(f"hashing the artifacts in {cache}"):
        results = verify_cache(cache, model_id)
    if as_json:
        out.json([{**_plain(r), "ok": r.ok} for r in results])
    else:
        for r in results:
            if r.ok:
                done = f"not checked ({r.note})" if r.note else f"ok ({r.checked} artifacts)"
                out.text(f"{r.id}: {done}")
                continue
            out.text(f"{r.id}: FAILED ({r.path})")
            if r.problem:
                out.text(f"  {r.problem}")
            for rel in r.missing:
                out.text(f"  missing: {rel}")
            for rel in r.changed:
                out.text(f"  changed: {rel}")
        if not results:
            out.text("no model directories in the cache")
    if any(not r.ok for r in results):
        raise SystemExit(1)


def _plain(result: object) -> dict[str, object]:
    value = to_jsonable(result)
    return value if isinstance(value, dict) else {}
