"""One name for a model everywhere (issue 25): the resolver every command that takes a model uses.

A model is named by its id (``smollm2-135m-instruct-generic-cpu:2``), its id without the version
(the newest version), or its alias (``smollm2-135m-instruct``: the newest version of a model with
that alias, a CPU variant first). A name that matches nothing gets the closest known name as a
"did you mean" hint. The same rules serve Foundry registrations (smoke, chat, bench, serve), the
compiled directories of the Foundry cache (fidelity, register, cache rm/verify) and the registry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from curator.cache.modeldir import dir_model_id, model_dirs
from curator.errors import NotFound


class Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def alias(self) -> str | None: ...


@dataclass(frozen=True)
class Name:
    """A plain named model (a compiled directory, a registry entry)."""

    id: str
    alias: str | None = None
    device_type: str | None = None


M = TypeVar("M", bound=Named)


def version(model_id: str) -> int:
    """The id's ``:N`` version as a number (0 without one)."""
    _, _, tail = model_id.rpartition(":")
    return int(tail) if tail.isdigit() else 0


def _preference(model: Named) -> tuple[int, int, str]:
    device = getattr(model, "device_type", None)
    cpu = 1 if (device or "CPU").upper() == "CPU" else 0
    return (cpu, version(model.id), model.id)


def resolve(name: str, models: Iterable[M]) -> M | None:
    """The model ``name`` stands for: the exact id, else the newest version of the id without
    version, else the newest model with that alias (CPU variants first); None when none."""
    listed = list(models)
    for model in listed:
        if model.id == name:
            return model
    candidates = [m for m in listed if m.id.rpartition(":")[0] == name] or [
        m for m in listed if m.alias == name
    ]
    return max(candidates, key=_preference) if candidates else None


def known_names(models: Iterable[Named]) -> list[str]:
    """Every id, id without version and alias, without repeats (in order)."""
    names: list[str] = []
    for model in models:
        names += [model.id, model.id.rpartition(":")[0]]
        if model.alias:
            names.append(model.alias)
    return list(dict.fromkeys(n for n in names if n))


def closest(name: str, names: Sequence[str]) -> str | None:
    """The known name most like ``name``: by difflib's ratio against the whole name or its start
    (a typo in a prefix, ``smolm2`` for ``smollm2-135m-...``), at least 0.75; else the shortest
    name that contains it; None when nothing is close."""
    wanted = name.lower()
    if not names or not wanted:
        return None

    def score(candidate: str) -> float:
        lowered = candidate.lower()
        whole = difflib.SequenceMatcher(None, wanted, lowered).ratio()
        start = difflib.SequenceMatcher(None, wanted, lowered[: len(wanted) + 1]).ratio()
        return max(whole, start)

    best = max(names, key=lambda n: (score(n), -len(n)))
    if score(best) >= 0.75:
        return best
    containing = [n for n in names if wanted in n.lower()]
    return min(containing, key=len) if containing else None


def did_you_mean(name: str, models: Iterable[Named]) -> str | None:
    """``did you mean X?`` naming the closest id (or alias) to ``name``, or None."""
    listed = list(models)
    match = closest(name, known_names(listed))
    if match is None:
        return None
    target = resolve(match, listed)
    shown = target.id if target is not None else match
    if shown.lower() == name.lower():
        return None  # never "did you mean" the very name that missed
    return f"did you mean {shown}?"


def with_suggestion(hint: str | None, suggestion: str | None) -> str | None:
    """``suggestion`` in front of ``hint``."""
    if suggestion is None:
        return hint
    return f"{suggestion} {hint}" if hint else suggestion


# --- Where the names come from -------------------------------------------------------------------


def cache_models(cache_dir: Path) -> list[Name]:
    """The compiled directories of a Foundry cache as names: id and the default alias (the id's
    name without its variant, as ``curator register`` gives it)."""
    found: list[Name] = []
    for path in model_dirs(cache_dir):
        model_id = dir_model_id(path)
        if model_id:
            found.append(Name(model_id, _default_alias(model_id)))
    return found


def _default_alias(model_id: str) -> str | None:
    from curator.register.entry import variant_of  # start-up: loads curator.register

    match = variant_of(model_id)
    return model_id.rpartition(":")[0][: match.start()] if match else None


def resolve_in_cache(cache_dir: Path, name: str) -> str:
    """The id of the compiled directory ``name`` stands for (``name`` itself when none does: the
    caller's own not-found error then names it)."""
    found = resolve(name, cache_models(cache_dir))
    return found.id if found is not None else name


def cache_suggestion(cache_dir: Path, name: str) -> str | None:
    return did_you_mean(name, cache_models(cache_dir))


def resolve_registered(runtime: Any, name: str) -> str:
    """The id of the Foundry registration (or downloaded catalog model) ``name`` stands for;
    ``name`` itself when none does (catalog aliases then resolve through the catalog)."""
    found = resolve(name, runtime.list_registered())
    return str(found.id) if found is not None else name


def load_registered(runtime: Any, name: str) -> Any:
    """``runtime.load`` of the model ``name`` stands for; a miss is NotFound with a "did you
    mean" for the closest registered or cached name."""
    registered = list(runtime.list_registered())
    found = resolve(name, registered)
    try:
        return runtime.load(found.id if found is not None else name)
    except NotFound as exc:
        cached = cache_models(runtime.cache_dir)
        compiled = resolve(name, cached) if found is None else None
        if compiled is not None:  # compiled into the cache, never registered
            raise NotFound(
                exc.message,
                hint=f"{compiled.id} is compiled in the cache but not registered: "
                f"curator register {compiled.id}",
            ) from None
        suggestion = did_you_mean(name, [*registered, *cached])
        if suggestion is None:
            raise
        raise NotFound(exc.message, hint=with_suggestion(exc.hint, suggestion)) from None
