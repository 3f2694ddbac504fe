"""The ``curator`` entry point: registers the command groups and maps errors to one-line messages."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from curator import __version__
from curator.cli._output import ErrorReport, report_error
from curator.errors import CuratorError, RegistryInvalid, first_line

JSON_OPTION = "--json"
_JSON_SEEN = "curator.json"  # ctx.meta key (meta is shared by every context of one invocation)


class CuratorGroup(click.Group):
    """The one place that turns a failure into ``error: …`` / ``hint: …`` (or, when the command was
    given ``--json``, one JSON object on stdout) and an exit code, for every command and subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        tokens = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except CuratorError as exc:
            if _debug():
                raise
            problems = exc.problems if isinstance(exc, RegistryInvalid) else ()
            report = ErrorReport(exc.message, exc.hint, exc.code, exc.exit_code, problems)
            report_error(report, _wants_json(ctx, tokens))
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            if not _wants_json(ctx, tokens):
                raise  # click prints its usage message
            path = (
                exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else "curator"
            )
            report = ErrorReport(exc.format_message(), f"{path} --help", "usage", exc.exit_code)
            report_error(report, as_json=True)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            # Click would print "Aborted!" and exit 1; an interrupt is 130 by convention.
            report_error(
                ErrorReport("interrupted", None, "interrupted", 130), _wants_json(ctx, tokens)
            )
            ctx.exit(130)
        except Exception as exc:
            if _debug():
                raise
            report = ErrorReport(
                f"internal error: {type(exc).__name__}: {first_line(exc, default='(no message)')}",
                "this is a bug in curator: run the command again with CURATOR_DEBUG=1 for the "
                "traceback and report it",
                "internal_error",
                1,
            )
            report_error(report, _wants_json(ctx, tokens))
            ctx.exit(1)


def _debug() -> bool:
    return os.environ.get("CURATOR_DEBUG") == "1"


def _wants_json(ctx: click.Context, tokens: list[str]) -> bool:
    """The command was given ``--json``: its parsed value if parsing got that far, else the word on
    the command line (before a ``--``)."""
    if ctx.meta.get(_JSON_SEEN):
        return True
    words = tokens[: tokens.index("--")] if "--" in tokens else tokens
    return JSON_OPTION in words


def _remember_json(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value:
        ctx.meta[_JSON_SEEN] = True
    return value


def _watch_json_options(command: click.Command) -> None:
    """Every ``--json`` option, in every command and subcommand, records that it was given."""
    for param in command.params:
        if JSON_OPTION in getattr(param, "opts", ()) and param.callback is None:
            param.callback = _remember_json
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _watch_json_options(sub)


# name -> (module, attribute) of every top-level command or group. A command's module is imported
# only when that command runs (or help lists it): `curator registry diff` loads no serving code.
COMMANDS: dict[str, tuple[str, str]] = {
    "paths": ("curator.cli.paths", "paths"),
    "registry": ("curator.cli.registry", "registry"),
    "select": ("curator.cli.registry", "select"),
    "bench": ("curator.cli.bench", "bench"),
    "onboard": ("curator.cli.onboard", "onboard"),
    "register": ("curator.cli.foundry", "register"),
    "chat": ("curator.cli.foundry", "chat"),
    "smoke": ("curator.cli.foundry", "smoke"),
    "serve": ("curator.cli.foundry", "serve"),
    "cache": ("curator.cli.cache", "cache"),
    "catalog": ("curator.cli.catalog", "catalog"),
    "recipes": ("curator.cli.recipes", "recipes"),
    "compile": ("curator.cli.compile", "compile_command"),
    "import": ("curator.cli.imports", "import_command"),
    "search": ("curator.cli.search", "search"),
    "info": ("curator.cli.search", "info"),
    "fidelity": ("curator.cli.fidelity", "fidelity"),
    "publish": ("curator.cli.share", "publish"),
    "pull": ("curator.cli.pull", "pull"),
}


class _LazyCommands(CuratorGroup):
    """The top-level group: commands are named in COMMANDS and imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module_name), attribute)
            _watch_json_options(command)
            from curator.cli.examples import add_examples  # start-up: not for --version

            add_examples(command, cmd_name)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curator")
def cli() -> None:
    """Take open models from Hugging Face to a benchmarked, reviewed Foundry Local registry entry."""


def load_all_commands() -> click.Group:
    """Import every command (for the generated reference and tests that walk the tree)."""
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cli.get_command(ctx, name)
    return cli


def main() -> None:
    cli(prog_name="curator")
