"""``--record``: append each successful model's summary to its registry entry's ``benchmarks``.

The summary has exactly the shape of ``$defs/benchmark`` in schemas/models.schema.json, so
``curator registry diff`` can compare it in review and ``curator select`` can rank by it. The edit
goes through the registry core (file lock, validation, atomic write); an entry the registry does
not have, or an edit the registry refuses, is reported per model and does not stop the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.bench.stats import Stat
from curator.bench.types import BenchRun, ModelResult
from curator.errors import CuratorError, RegistryInvalid
from curator.names import Name, resolve
from curator.registry import load_registry, update_model
from curator.registry.document import models_of


@dataclass(frozen=True)
class RecordOutcome:
    model_id: str
    outcome: str  # "recorded", "skipped" (model failed or unmeasured), "refused"
    detail: str


def _stat(stat: Stat | None) -> dict[str, float] | None:
    if stat is None:
        return None
    return {"mean": round(stat.mean, 3), "p50": round(stat.p50, 3), "p95": round(stat.p95, 3)}


def benchmark_summary(run: BenchRun, model: ModelResult) -> dict[str, Any] | None:
    """The registry's benchmark record of ``model`` (None when it lacks the required figures)."""
    figures = model.figures
    if model.status != "ok" or figures is None or not model.peak_memory_mb:
        return None
    decode, ttft, latency = (
        _stat(figures.decode_tokens_per_sec),
        _stat(figures.ttft_ms),
        _stat(figures.latency_ms),
    )
    if decode is None or ttft is None or latency is None:
        return None
    machine = run.machine
    summary: dict[str, Any] = {
        "date": run.finished_at,
        "machine": machine.registry_record(),
        "promptSetSha256": run.prompt_set.sha256,
        "rounds": run.settings.rounds,
        "maxTokens": run.settings.max_tokens,
        "decodeTokensPerSec": decode,
        "ttftMs": ttft,
        "latencyMs": latency,
        "peakMemoryMb": round(model.peak_memory_mb, 1),
    }
    if model.load_ms is not None:
        summary["loadTimeMs"] = round(model.load_ms, 1)
    if model.quality is not None and model.quality.score is not None:
        summary["qualityScore"] = round(model.quality.score, 4)
    return summary


def _skip_reason(model: ModelResult) -> str:
    if model.status != "ok":
        return f"the benchmark failed: {model.error}"
    if not model.peak_memory_mb:
        return "peak memory unknown (endpoint mode: pass --server-pid PID of the server)"
    return "no decode speed measured (answers shorter than two tokens)"


def record_run(run: BenchRun, registry: Path) -> tuple[RecordOutcome, ...]:
    """Append the summary of every successful model to its entry in ``registry``."""
    entries = _registry_names(registry)
    outcomes = []
    for model in run.models:
        summary = benchmark_summary(run, model)
        if summary is None:
            outcomes.append(RecordOutcome(model.model_id, "skipped", _skip_reason(model)))
            continue

        def append(entry: dict[str, Any], record: dict[str, Any] = summary) -> None:
            entry.setdefault("benchmarks", []).append(record)

        try:  # a model benched by alias or id without version records into its entry
            update_model(registry, _entry_id(model.model_id, entries), append)
        except RegistryInvalid as exc:
            detail = "; ".join(exc.problems) or exc.message
            outcomes.append(RecordOutcome(model.model_id, "refused", detail))
        except CuratorError as exc:
            outcomes.append(RecordOutcome(model.model_id, "refused", exc.message))
        else:
            outcomes.append(RecordOutcome(model.model_id, "recorded", str(registry)))
    return tuple(outcomes)


def _registry_names(registry: Path) -> list[Any]:
    try:
        models = models_of(load_registry(registry))
    except CuratorError:  # the edit itself reports what is wrong with the file
        return []
    return [
        Name(str(m["id"]), m.get("alias") if isinstance(m.get("alias"), str) else None)
        for m in models
        if isinstance(m.get("id"), str)
    ]


def _entry_id(name: str, entries: list[Any]) -> str:
    """The registry id ``name`` stands for (an id, an id without version, an alias), else itself."""
    found = resolve(name, entries)
    return str(found.id) if found is not None else name
