"""Model names as Foundry Local takes them: an id (``name-variant:version``), an id without its
version (the newest), or an alias (``qwen2.5-0.5b``: the newest version of a model with that
alias, preferring CPU variants on this CPU-only server)."""

from __future__ import annotations

from collections.abc import Iterable

from curator.foundry import RegisteredModel
from curator.names import resolve as resolve_name


def resolve(name: str, registered: Iterable[RegisteredModel]) -> RegisteredModel | None:
    """The registered model ``name`` stands for, or None (curator.names.resolve: the one
    resolver every command uses)."""
    return resolve_name(name, registered)


def aliases(registered: Iterable[RegisteredModel]) -> dict[str, RegisteredModel]:
    """Each alias that is not also an id, with the model it resolves to (sorted by alias)."""
    models = list(registered)
    ids = {m.id for m in models}
    names = sorted({m.alias for m in models if m.alias and m.alias not in ids})
    resolved = {name: resolve(name, models) for name in names}
    return {name: model for name, model in resolved.items() if model is not None}
