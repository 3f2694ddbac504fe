"""Model names as Foundry Local takes them: an id (``name-variant:version``), an id without its
version (the newest), or an alias (``qwen2.5-0.5b``: the newest version of a model with that
alias, preferring CPU variants on this CPU-only server)."""

from __future__ import annotations

from collections.abc import Iterable

from curator.foundry import RegisteredModel


def _version(model: RegisteredModel) -> int:
    _, _, version = model.id.rpartition(":")
    return int(version) if version.isdigit() else 0


def _preference(model: RegisteredModel) -> tuple[int, int, str]:
    cpu = 1 if (model.device_type or "CPU").upper() == "CPU" else 0
    return (cpu, _version(model), model.id)


def resolve(name: str, registered: Iterable[RegisteredModel]) -> RegisteredModel | None:
    """The registered model ``name`` stands for, or None."""
    models = list(registered)
    for model in models:
        if model.id == name:
            return model
    candidates = [m for m in models if m.id.rpartition(":")[0] == name] or [
        m for m in models if m.alias == name
    ]
    return max(candidates, key=_preference) if candidates else None


def aliases(registered: Iterable[RegisteredModel]) -> dict[str, RegisteredModel]:
    """Each alias that is not also an id, with the model it resolves to (sorted by alias)."""
    models = list(registered)
    ids = {m.id for m in models}
    names = sorted({m.alias for m in models if m.alias and m.alias not in ids})
    resolved = {name: resolve(name, models) for name in names}
    return {name: model for name, model in resolved.items() if model is not None}
