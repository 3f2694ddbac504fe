"""Foundry Local's registrations in memory, for the in-process tests mutation testing runs.

mutmut runs each mutant in a process forked from one that has run the tests once; Foundry Local's
SDK manager, once initialised there, hangs in the forked child (its native threads do not survive
the fork: ``foundry.runtime`` of another cache waits forever). So the tests that mutmut selects run
each case twice: against the real runtime (skipped under mutmut, ``MUTANT_UNDER_TEST`` set) and
against this one, which keeps the same contract: registration needs only genai_config.json, a
registered directory that is gone is reported with no path, finished catalog downloads in the cache
are listed as catalog models (read from disk as the real runtime does), and a model loads when its
genai_config.json names a decoder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import curator.foundry
from curator.errors import FoundryError
from curator.foundry import ChatResult, ModelMetadata, RegisteredModel, Usage
from curator.foundry.catalog import cached_registrations
from curator.paths import foundry_cache_dir

UNDER_MUTMUT = "MUTANT_UNDER_TEST" in os.environ
FORKED = "Foundry Local's SDK manager hangs in a process forked after it started (mutmut forks)"


class MemoryLoaded:
    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> ChatResult:
        return ChatResult("hi" * self.tokens, Usage(5, self.tokens), "stop")

    def unload(self) -> None:
        pass


class MemoryRuntime:
    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.registered: dict[str, tuple[Path, ModelMetadata]] = {}

    def loaded_ids(self) -> list[str]:
        return []

    def _describe(self, model_id: str) -> RegisteredModel:
        path, metadata = self.registered[model_id]
        return RegisteredModel(
            id=model_id,
            alias=model_id.split(":", 1)[0],
            display_name=metadata.display_name,
            path=path if path.is_dir() else None,
            task=metadata.task,
            publisher=metadata.publisher,
            license=metadata.license,
            file_size_mb=metadata.file_size_mb,
            context_length=metadata.context_length,
            device_type=metadata.device_type,
            execution_provider=metadata.execution_provider,
            loaded=False,
        )

    def list_registered(self) -> list[RegisteredModel]:
        local = [self._describe(m) for m in sorted(self.registered)]
        extra = [m for m in cached_registrations(self) if m.id not in self.registered]  # type: ignore[arg-type]
        return sorted(local + extra, key=lambda m: m.id)

    def get(self, model_id: str) -> RegisteredModel | None:
        if model_id in self.registered:
            return self._describe(model_id)
        return next((m for m in cached_registrations(self) if m.id == model_id), None)  # type: ignore[arg-type]

    def register_model_dir(
        self, path: Path, model_id: str, metadata: ModelMetadata
    ) -> RegisteredModel:
        if not (path / "genai_config.json").is_file():
            raise FoundryError(f"Foundry Local refused to register {path}", hint="no genai_config")
        self.registered[model_id] = (path.absolute(), metadata)
        return self._describe(model_id)

    def unregister(self, model_id: str) -> bool:
        return self.registered.pop(model_id, None) is not None

    def load(self, model_id: str) -> MemoryLoaded:
        found = self.get(model_id)
        try:
            config: Any = json.loads((found.path / "genai_config.json").read_text())  # type: ignore[union-attr]
            config["model"]["decoder"]["filename"]
        except (AttributeError, OSError, ValueError, KeyError, TypeError):
            raise FoundryError(f"{model_id} failed to load", hint=None) from None
        return MemoryLoaded(4)


Runtime = Callable[..., Any]


@pytest.fixture(params=["foundry", "memory"])
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """``runtime(cache_dir)``: the real Foundry Local runtime, or the one in memory (patched in
    as ``curator.foundry.runtime``, which the code under test looks up when it runs)."""
    if request.param == "foundry":
        if UNDER_MUTMUT:
            pytest.skip(FORKED)
        yield curator.foundry.runtime
        return
    made: dict[Path, MemoryRuntime] = {}

    def memory(cache_dir: Path | str | None = None, **_: Any) -> MemoryRuntime:
        key = foundry_cache_dir(cache_dir).absolute()
        return made.setdefault(key, MemoryRuntime(key))

    monkeypatch.setattr(curator.foundry, "runtime", memory)
    yield memory
