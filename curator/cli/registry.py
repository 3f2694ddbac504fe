"""``curator registry ...`` and ``curator select`` (being written)."""

from __future__ import annotations

import click


@click.group()
def registry() -> None:
    """Validate, edit and review the team registry."""


@click.command()
def select() -> None:
    """Pick the best registry entry for this machine."""
