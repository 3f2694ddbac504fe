"""``curator catalog list|show``: Foundry Local's public model catalog."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli._options import ListGroup, cache_dir_option, json_option
from curator.cli._output import Output
from curator.paths import foundry_cache_dir


@click.group(cls=ListGroup)
def catalog() -> None:
    """Foundry Local's public model catalog (what `foundry model list` shows)."""


@catalog.command("list")
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu", "npu"], case_sensitive=False),
    help="Only variants for this device.",
)
@click.option("--task", help="Only models for this task, e.g. chat-completion.")
@cache_dir_option
@json_option
def list_command(
    device: str | None, task: str | None, cache_dir: Path | None, as_json: bool
) -> None:
    """Every catalog model this machine can run: alias, id, device and execution provider, size,
    license, task, whether it is cached. Offline: one line says so, and the cached ones are listed."""
    from curator.foundry.browse import list_catalog  # start-up: kept off --help

    out = Output(as_json)
    listing = list_catalog(foundry_cache_dir(cache_dir), device=device, task=task)
    if as_json:
        out.json(listing)
        return
    if not listing.reachable:
        out.warn(f"catalog unreachable ({listing.problem}): listing cached models only")
    out.table(
        [
            (
                m.alias,
                m.id,
                m.version,
                m.device_type,
                m.execution_provider,
                m.file_size_mb,
                m.license,
                m.task,
                m.cached,
            )
            for m in listing.models
        ],
        ["alias", "id", "version", "device", "provider", "size-mb", "license", "task", "cached"],
    )


@catalog.command("show")
@click.argument("name")
@cache_dir_option
@json_option
def show(name: str, cache_dir: Path | None, as_json: bool) -> None:
    """One catalog model by ALIAS (resolved to this machine's variant) or ID, with its variants."""
    from curator.foundry.browse import look_up  # start-up: kept off --help

    out = Output(as_json)
    found = look_up(foundry_cache_dir(cache_dir), name)
    if as_json:
        out.json(found)
        return
    if not found.reachable:
        out.warn(f"catalog unreachable ({found.problem}): showing the cached copy")
    m = found.resolved
    out.text(f"{name} -> {m.id}" + ("" if name == m.id else " (this machine's variant)"))
    for label, value in (
        ("alias", m.alias),
        ("name", m.name),
        ("version", m.version),
        ("display name", m.display_name),
        ("device", m.device_type),
        ("provider", m.execution_provider),
        ("size MB", m.file_size_mb),
        ("license", m.license),
        ("publisher", m.publisher),
        ("task", m.task),
        ("context", m.context_length),
        ("cached", "yes" if m.cached else "no (curator pull " + name + ")"),
        ("path", m.path),
    ):
        out.text(f"  {label + ':':<14}{'-' if value is None else value}")
    if len(found.variants) > 1:
        out.text("variants:")
        for v in found.variants:
            marker = "*" if v.id == m.id else " "
            out.text(f"  {marker} {v.id}  {v.device_type or '-'}  {v.execution_provider or '-'}")
