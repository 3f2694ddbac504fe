"""Choose the best registry entry for a machine: task, capabilities and RAM, ranked by measured speed."""

from __future__ import annotations

from dataclasses import dataclass

from curator.registry.diff import BENCH_FIGURES, figure, latest_benchmark
from curator.registry.document import Document, Entry, models_of

TASK_ALIASES = {
    "chat": "chat-completion",
    "completion": "text-generation",
    "embedding": "embeddings",
    "asr": "automatic-speech-recognition",
}


@dataclass(frozen=True)
class Candidate:
    id: str
    decode_tokens_per_sec: float | None
    min_ram_gb: float


@dataclass(frozen=True)
class Exclusion:
    id: str
    reason: str


@dataclass(frozen=True)
class Selection:
    task: str
    capabilities: tuple[str, ...]
    ram_gb: float
    ranked: tuple[Candidate, ...]
    excluded: tuple[Exclusion, ...]

    @property
    def best(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None


def select_models(
    document: Document, task: str, capabilities: tuple[str, ...], ram_gb: float
) -> Selection:
    """Entries that fit, fastest measured decode first (unbenchmarked last, smallest RAM first)."""
    wanted_task = TASK_ALIASES.get(task, task)
    fitting: list[Candidate] = []
    excluded: list[Exclusion] = []
    for entry in models_of(document):
        reason = _exclusion_reason(entry, wanted_task, capabilities, ram_gb)
        if reason:
            excluded.append(Exclusion(str(entry.get("id")), reason))
            continue
        decode = figure(latest_benchmark(entry), BENCH_FIGURES["decode tok/s"][0])
        fitting.append(Candidate(entry["id"], decode, float(entry["minRamGb"])))
    fitting.sort(
        key=lambda c: (
            c.decode_tokens_per_sec is None,
            -(c.decode_tokens_per_sec or 0.0),
            c.min_ram_gb,
            c.id,
        )
    )
    return Selection(wanted_task, capabilities, ram_gb, tuple(fitting), tuple(excluded))


def _exclusion_reason(
    entry: Entry, task: str, capabilities: tuple[str, ...], ram_gb: float
) -> str | None:
    if entry.get("task") != task:
        return f"task is {entry.get('task')}, not {task}"
    missing = [c for c in capabilities if c not in entry.get("capabilities", [])]
    if missing:
        return f"lacks capability {', '.join(missing)}"
    if float(entry.get("minRamGb", 0)) > ram_gb:
        return f"needs {entry.get('minRamGb')} GB RAM, this machine has {ram_gb:.1f} GB"
    return None
