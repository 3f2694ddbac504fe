"""``curator fidelity``: find the model and its reference, measure, check limits, record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import NotFound
from curator.fidelity.locate import find_compiled, model_label, resolve_reference
from curator.fidelity.measure import DEFAULT_WINDOW, measure_fidelity
from curator.fidelity.record import record_in_manifest, record_in_registry
from curator.fidelity.text import load_text
from curator.fidelity.types import FidelityResult, Thresholds
from curator.names import cache_suggestion, resolve_in_cache, with_suggestion
from curator.paths import foundry_cache_dir, registry_path
from curator.progress import Progress, say
from curator.registry import load_registry


@dataclass(frozen=True)
class FidelityRequest:
    """``curator fidelity ID ...`` as plain values."""

    model: str
    reference: str | None = None
    text: Path | None = None
    cache_dir: Path | None = None
    registry: Path | None = None
    record: bool = False
    max_kl: float | None = None
    min_top1: float | None = None
    window: int = DEFAULT_WINDOW
    max_tokens: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class FidelityReport:
    """A measurement, the limits it was held to (and where they came from), and where it went."""

    result: FidelityResult
    thresholds: Thresholds
    thresholds_from: str
    violations: tuple[str, ...]
    manifest: Path | None
    registry: Path | None

    @property
    def ok(self) -> bool:
        return not self.violations


def policy_thresholds(registry: Path) -> Thresholds:
    """``minTop1Agreement`` / ``maxKlDivergence`` from the registry's policy (none if absent)."""
    if not registry.is_file():
        return Thresholds()

    document: Any = load_registry(registry)
    policy = document.get("policy") if isinstance(document, dict) else None
    if not isinstance(policy, dict):
        return Thresholds()
    max_kl, min_top1 = policy.get("maxKlDivergence"), policy.get("minTop1Agreement")
    return Thresholds(
        max_kl=float(max_kl) if isinstance(max_kl, (int, float)) else None,
        min_top1=float(min_top1) if isinstance(min_top1, (int, float)) else None,
    )


def find_model(name: str, cache_dir: Path | None = None) -> Path:
    """The compiled model ``name`` names: an id, an id without version or an alias in the
    Foundry cache, or a directory (NotFound with a 'did you mean' hint)."""
    cache = foundry_cache_dir(cache_dir)
    try:
        return find_compiled(cache, resolve_in_cache(cache, name))
    except NotFound as exc:
        suggestion = cache_suggestion(cache, name)
        raise NotFound(exc.message, hint=with_suggestion(exc.hint, suggestion)) from None


def run_fidelity(request: FidelityRequest, progress: Progress | None = None) -> FidelityReport:
    """Measure, hold to ``--max-kl``/``--min-top1`` (else the registry policy); with ``record``
    write the result into the compile manifest and the registry entry (without it nothing is
    written)."""
    cache = foundry_cache_dir(request.cache_dir)
    model_dir = find_model(request.model, request.cache_dir)
    say(progress, f"fidelity: finding the fp32 reference of {model_dir.name}")
    reference = resolve_reference(request.reference, model_dir, cache)
    text = load_text(request.text)
    model_id = model_label(model_dir)
    say(
        progress,
        f"fidelity: scoring {model_id} against {reference.label} (a forward pass per window)",
    )
    result = measure_fidelity(
        model_dir,
        reference,
        text,
        model=model_id,
        window=request.window,
        max_tokens=request.max_tokens,
        threads=request.threads,
    )
    registry = registry_path(request.registry)
    if request.max_kl is not None or request.min_top1 is not None:
        thresholds, origin = Thresholds(request.max_kl, request.min_top1), "options"
    else:
        thresholds, origin = policy_thresholds(registry), f"policy of {registry}"
    manifest = recorded = None
    if request.record:  # without --record, a measurement writes nothing (issue 25)
        record_in_registry(registry, model_id, result)
        recorded = registry
        manifest = record_in_manifest(model_dir, result)
    return FidelityReport(
        result=result,
        thresholds=thresholds,
        thresholds_from=origin,
        violations=thresholds.violations(result),
        manifest=manifest,
        registry=recorded,
    )
