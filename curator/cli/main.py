"""The ``curator`` entry point: registers the command groups and maps errors to one-line messages."""

from __future__ import annotations

import importlib
import os
from typing import Any, NoReturn

import click

from curator import __version__
from curator.cli._output import ErrorReport, report_error
from curator.errors import CuratorError, RegistryInvalid, first_line, storage_error

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
            self._report(ctx, tokens, exc)
        except OSError as exc:  # a full or read-only disk is the machine's, not a bug
            mapped = storage_error(exc)
            if mapped is None or _debug():
                self._internal(ctx, tokens, exc)
            self._report(ctx, tokens, mapped)
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
            self._internal(ctx, tokens, exc)

    @staticmethod
    def _report(ctx: click.Context, tokens: list[str], exc: CuratorError) -> NoReturn:
        if _debug():
            raise exc
        problems = exc.problems if isinstance(exc, RegistryInvalid) else ()
        report = ErrorReport(exc.message, exc.hint, exc.code, exc.exit_code, problems)
        report_error(report, _wants_json(ctx, tokens))
        ctx.exit(exc.exit_code)

    @staticmethod
    def _internal(ctx: click.Context, tokens: list[str], exc: Exception) -> NoReturn:
        if _debug():
            raise exc
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


# name -> (module, attribute, summary) of every top-level command or group. A command's module is
# imported only when that command runs: `curator registry diff` loads no serving code, and
# `curator --help` lists the summaries (each command's first sentence, checked against the command
# itself by tests/test_cli_light.py) without importing any command module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "paths": (
        "curator.cli.paths",
        "paths",
        "Print the registry, Foundry cache and curator home this command line would use.",
    ),
    "registry": (
        "curator.cli.registry",
        "registry",
        "Validate, edit and review the team registry (registry/models.json).",
    ),
    "select": (
        "curator.cli.registry",
        "select",
        "Pick the best registry entry for this machine (exit 1 when none fits).",
    ),
    "bench": (
        "curator.cli.bench",
        "bench",
        "Benchmark models: `curator bench ID...` runs them, `curator bench compare` compares reports.",
    ),
    "onboard": (
        "curator.cli.onboard",
        "onboard",
        "Info, compile, register, smoke, bench and fidelity, then a pull-request-ready summary.",
    ),
    "register": (
        "curator.cli.foundry",
        "register",
        "Register a compiled model directory (or an id in the cache) with Foundry Local, load-test it, and add or update its registry entry.",
    ),
    "chat": (
        "curator.cli.foundry",
        "chat",
        "Chat with a registered model, streaming tokens as they come (like `foundry model run`).",
    ),
    "smoke": (
        "curator.cli.foundry",
        "smoke",
        "Load a registered model and run a fixed prompt set, printing each answer; exit 1 naming any prompt that errs, answers empty, lacks its expected words, answers degenerately (one phrase repeated over most of the answer, an echo of the prompt, another script than the prompt's), reports no usage or runs over its time limit.",
    ),
    "serve": (
        "curator.cli.foundry",
        "serve",
        "Serve the registered models over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions with and without streaming) until Ctrl-C (a clean stop, exit 0).",
    ),
    "cache": (
        "curator.cli.cache",
        "cache",
        "List, remove and verify compiled models in the Foundry Local cache.",
    ),
    "catalog": (
        "curator.cli.catalog",
        "catalog",
        "Foundry Local's public model catalog (what `foundry model list` shows).",
    ),
    "recipes": (
        "curator.cli.recipes",
        "recipes",
        "The compile recipes (recipes/*.json): what each runs and produces.",
    ),
    "compile": (
        "curator.cli.compile",
        "compile_command",
        "Compile SOURCE (a local Hugging Face model directory, a .gguf file or an org/name Hub repo) with a recipe (a name, or a recipe .json file) into the Foundry Local cache at <cache>/<publisher>/<id>, with a provenance manifest.",
    ),
    "import": (
        "curator.cli.imports",
        "import_command",
        'Import SOURCE, a model already in ONNX Runtime GenAI format (a local folder with genai_config.json, or a Hub repo such as microsoft/*-onnx with one subfolder per variant), into the Foundry Local cache at <cache>/<publisher>/<id>: every file genai_config.json names is checked, a Hub download against the Hub\'s sha256, then inference_model.json and a manifest (recipe "imported") are written and the folder is placed in one step.',
    ),
    "search": (
        "curator.cli.search",
        "search",
        "Search Hugging Face for models (or, with --local, the models already on this machine).",
    ),
    "info": (
        "curator.cli.search",
        "info",
        "Facts about one model before compiling it: parameters, size, architecture, license, chat template, which recipes can compile it here and the RAM they predict, and the command to use.",
    ),
    "fidelity": (
        "curator.cli.fidelity",
        "fidelity",
        "Teacher-forced KL divergence, top-1 agreement and perplexity of compiled model MODEL_ID (an id, an id without version or an alias in the Foundry cache, or a directory) against its fp32 reference.",
    ),
    "publish": (
        "curator.cli.share",
        "publish",
        "Upload a registered model's compiled files to REPO and record where they are.",
    ),
    "pull": (
        "curator.cli.pull",
        "pull",
        "Download a published registry model (ID), verify every sha256, register it with Foundry Local and load-test it; --all brings this machine up to the registry (exit 1 if one fails).",
    ),
}


class _LazyCommands(CuratorGroup):
    """The top-level group: commands are named in COMMANDS and imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's listing, from COMMANDS' summaries for commands not imported yet."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click.Group computes it
        listed = {
            name: self.commands.get(name) or click.Command(name, help=COMMANDS[name][2])
            for name in names
        }
        rows = [(name, command.get_short_help_str(limit)) for name, command in listed.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, attribute, _ = COMMANDS[cmd_name]
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
