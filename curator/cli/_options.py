"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

registry_option = click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Registry file [default: $CURATOR_REGISTRY or registry/models.json].",
)

cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Foundry Local model cache [default: $FOUNDRY_CACHE_DIR or ~/.foundry/cache/models].",
)


class ListGroup(click.Group):
    """A command group where ``ls`` and ``list`` name the same subcommand (``cache ls`` and
    ``cache list``, ``registry list`` and ``registry ls``), as ``hf``/``ollama`` users expect;
    the help lists the one name the group defines."""

    SYNONYMS: ClassVar[dict[str, str]] = {"ls": "list", "list": "ls"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.SYNONYMS:
            found = super().get_command(ctx, self.SYNONYMS[cmd_name])
        return found

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command is not None else name), command, rest


class PositiveNumber(click.FloatRange):
    """A finite number above 0 (click's FloatRange lets nan through)."""

    name = "positive number"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


seed_option = click.option(
    "--seed", type=int, default=None, help="Sampling seed (with --temperature > 0)."
)


def prompts_option(dest: str = "prompts", *, help: str) -> Callable[[F], F]:
    """``--prompts FILE``: a prompt set (schemas/prompts.schema.json); each command says what for."""
    return click.option(
        "--prompts", dest, type=click.Path(dir_okay=False, path_type=Path), help=help
    )
