"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
