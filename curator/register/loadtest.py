"""The load test both flows share: register with Foundry Local (replacing an earlier registration),
load, generate a few tokens, measure the process's peak memory; on failure put back what was there.

The load test's peak becomes the entry's ``minRamGb`` (with headroom), raised to cover the entry's
latest benchmark (the registry rule min-ram-covers-benchmark) and the model's serving floor: its
ONNX files plus the KV cache the runtime allocates for the whole context (Foundry Local 2.2.1 does
so on every request; a runtime that allocated lazily would pass the 8-token load test with less)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator import foundry
from curator.errors import FoundryError
from curator.foundry import FoundryRuntime, ModelMetadata, RegisteredModel
from curator.portable import peak_rss_bytes
from curator.registry.rules import ram_floor_gb

HEADROOM_FACTOR = 1.5
HEADROOM_GB = 0.25
# The interpreter and the runtime's libraries on top of weights and KV cache: measured 0.46 GiB of
# file-backed pages and about 0.2 GiB of other heap on the 3B shape (perf.pipeline)
RUNTIME_ALLOWANCE_BYTES = 2**29
LOAD_TEST_MESSAGES = [{"role": "user", "content": "Hello! Who are you?"}]
LOAD_TEST_TOKENS = 8


@dataclass(frozen=True)
class LoadTest:
    """The load test's figures: load time, the short answer's usage, the process's peak RSS."""

    load_ms: float
    generate_ms: float
    prompt_tokens: int
    completion_tokens: int
    peak_rss_mb: float


def min_ram_from_peak(peak_rss_mb: float) -> float:
    """GiB to ask for: the measured peak with headroom, rounded up to 0.1."""
    needed = peak_rss_mb / 1024 * HEADROOM_FACTOR + HEADROOM_GB
    return math.ceil(needed * 10) / 10


def serving_floor_gb(files_bytes: int, kv_bytes: int) -> float:
    """GiB a model needs to answer at its full context: the ONNX files, the KV cache for the
    whole context and RUNTIME_ALLOWANCE_BYTES, rounded up to 0.1."""
    needed = (files_bytes + kv_bytes + RUNTIME_ALLOWANCE_BYTES) / 2**30
    return math.ceil(round(needed * 10, 6)) / 10


def min_ram_for(
    given: float | None,
    test: LoadTest,
    existing: dict[str, Any] | None,
    serving_floor: float = 0.0,
) -> float:
    """The entry's minRamGb: ``given`` (--min-ram-gb), else the load test's peak with headroom,
    raised to cover the entry's latest benchmark and ``serving_floor`` (:func:`serving_floor_gb`)."""
    if given is not None:
        return given
    return max(min_ram_from_peak(test.peak_rss_mb), _benchmark_floor(existing), serving_floor)


def _benchmark_floor(existing: dict[str, Any] | None) -> float:
    """minRamGb must cover the latest benchmark's peak memory (a registry rule)."""
    benchmarks = (existing or {}).get("benchmarks") or []
    if not benchmarks:
        return 0.0
    latest = max(benchmarks, key=lambda b: str(b.get("date", "")))
    return ram_floor_gb(float(latest.get("peakMemoryMb", 0)))


def load_test(
    rt: FoundryRuntime,
    model_id: str,
    clock: Callable[[], float] = time.perf_counter,
    peak_bytes: Callable[[], int] = peak_rss_bytes,
) -> LoadTest:
    """Load ``model_id``, generate LOAD_TEST_TOKENS, unload; FoundryError if nothing came out.
    ``clock`` (seconds) times the load and the answer; ``peak_bytes`` is the process's peak RSS."""
    start = clock()
    loaded = rt.load(model_id)
    loaded_at = clock()
    try:
        result = loaded.chat(LOAD_TEST_MESSAGES, max_tokens=LOAD_TEST_TOKENS)
    finally:
        done_at = clock()
        peak = peak_bytes() / 2**20
        loaded.unload()
    if result.usage.completion_tokens < 1:
        raise FoundryError(f"{model_id} generated no tokens", hint="curator smoke")
    return LoadTest(
        load_ms=round((loaded_at - start) * 1000, 1),
        generate_ms=round((done_at - loaded_at) * 1000, 1),
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        peak_rss_mb=round(peak, 1),
    )


@dataclass(frozen=True)
class FoundryRegistration:
    """A load-tested registration, and what it replaced (``undo`` puts that back)."""

    runtime: FoundryRuntime
    id: str
    path: Path
    previous: RegisteredModel | None
    load_test: LoadTest

    @property
    def action(self) -> str:
        return "re-registered" if self.previous is not None else "registered"

    def undo(self) -> None:
        self.runtime.unregister(self.id)
        _restore(self.runtime, self.previous, self.path)


def register_load_tested(
    cache_dir: Path, path: Path, model_id: str, metadata: ModelMetadata
) -> FoundryRegistration:
    """Register ``path`` as ``model_id`` with Foundry Local (replacing an earlier registration)
    and load-test it; on failure unregister, put back the previous registration, raise."""
    rt = foundry.runtime(cache_dir)
    previous = rt.get(model_id)
    if previous is not None and previous.catalog:
        previous = None  # a downloaded catalog model: nothing registered to put back
    rt.register_model_dir(path, model_id, metadata)
    try:
        test = load_test(rt, model_id)
    except FoundryError as exc:
        rt.unregister(model_id)
        kept = _restore(rt, previous, path)
        state = (
            f"the previous registration ({previous.path}) kept"
            if kept and previous is not None
            else "left unregistered"
        )
        raise FoundryError(
            f"load test failed, {model_id} {state}: {exc.message}",
            hint=f"curator cache verify {model_id}; recompile with --force",
        ) from None
    except BaseException:  # Ctrl-C or another failure mid-test: leave what was there before
        rt.unregister(model_id)
        _restore(rt, previous, path)
        raise
    return FoundryRegistration(rt, model_id, path, previous, test)


def _restore(rt: FoundryRuntime, previous: RegisteredModel | None, new_path: Path) -> bool:
    """Put back a registration that a failed re-register replaced, unless it pointed at the same
    directory (that directory just failed, and no registration may point at a broken one)."""
    if previous is None or previous.path is None or previous.path == new_path:
        return False
    if not previous.path.is_dir():
        return False
    rt.register_model_dir(previous.path, previous.id, previous.metadata())
    return True
