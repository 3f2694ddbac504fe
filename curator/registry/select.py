"""Choose the best registry entry for a machine: task, capabilities and RAM, ranked by measured speed."""

from __future__ import annotations

from dataclasses import dataclass

from curator.registry.diff import BENCH_FIGURES, figure, finite, latest_benchmark
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
        fitting.append(Candidate(str(entry["id"]), decode, finite(entry["minRamGb"]) or 0.0))
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
    # The registry may be invalid (select reads it as it is): an entry whose fields are malformed
    # is excluded with the reason, never a crash.
    if type(entry.get("id")) is not str:
        return "has no id"
    if entry.get("task") != task:
        return f"task is {entry.get('task')}, not {task}"
    listed = entry.get("capabilities", [])
    listed = listed if isinstance(listed, list) else []
    missing = [c for c in capabilities if c not in listed]
    if missing:
        return f"lacks capability {', '.join(missing)}"
    min_ram = finite(entry.get("minRamGb"))
    if min_ram is None or min_ram <= 0:
        return "minRamGb is not a positive number (curator registry validate)"
    if min_ram > ram_gb:
        return f"needs {entry.get('minRamGb')} GB RAM, more than the {ram_gb:.1f} GB to fit in"
    return None
