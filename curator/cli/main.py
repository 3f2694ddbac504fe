"""The ``curator`` entry point: registers the command groups and maps errors to one-line messages."""

from __future__ import annotations

import os
from typing import Any

import click

from curator import __version__
from curator.errors import CuratorError, RegistryInvalid


class CuratorGroup(click.Group):
    """The one place that turns a CuratorError into ``error: …`` / ``hint: …`` and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as exc:
            if os.environ.get("CURATOR_DEBUG") == "1":
                raise
            report_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Click would print "Aborted!" and exit 1; an interrupt is 130 by convention.
            click.echo("interrupted", err=True)
            ctx.exit(130)


def report_error(exc: CuratorError) -> None:
    click.secho(f"error: {exc.message}", err=True, fg="red")
    if isinstance(exc, RegistryInvalid):
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


@click.group(cls=CuratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curator")
def cli() -> None:
    """Take open models from Hugging Face to a benchmarked, reviewed Foundry Local registry entry."""


# (module, attribute) of every top-level command or group; each module is light to import.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("curator.cli.paths", "paths"),
    ("curator.cli.registry", "registry"),
    ("curator.cli.registry", "select"),
    ("curator.cli.bench", "bench"),
    ("curator.cli.onboard", "onboard"),
    ("curator.cli.foundry", "register"),
    ("curator.cli.foundry", "chat"),
    ("curator.cli.foundry", "smoke"),
    ("curator.cli.foundry", "serve"),
    ("curator.cli.cache", "cache"),
    ("curator.cli.recipes", "recipes"),
    ("curator.cli.compile", "compile_command"),
    ("curator.cli.search", "search"),
    ("curator.cli.search", "info"),
    ("curator.cli.fidelity", "fidelity"),
    ("curator.cli.share", "publish"),
    ("curator.cli.pull", "pull"),
)


def _register_commands() -> None:
    import importlib

    for module_name, attribute in COMMANDS:
        cli.add_command(getattr(importlib.import_module(module_name), attribute))


_register_commands()


def main() -> None:
    cli(prog_name="curator")
