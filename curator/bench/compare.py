"""``curator bench compare OLD NEW``: per model and figure, the change from one report to another.

A figure regresses when it moves the wrong way by more than ``threshold_pct`` percent of the old
value (slower decode, longer TTFT or latency, more memory, slower load, lower quality or
throughput). A model that was ``ok`` and is now ``failed`` or missing is a regression too. Reports
from different machines or prompt sets are compared, but the comparison says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_THRESHOLD_PCT = 10.0

# name -> (path in a report's model object, higher is better)
FIGURES: dict[str, tuple[tuple[str, ...], bool]] = {
    "decodeTokensPerSec.mean": (("summary", "decodeTokensPerSec", "mean"), True),
    "ttftMs.p50": (("summary", "ttftMs", "p50"), False),
    "ttftMs.p95": (("summary", "ttftMs", "p95"), False),
    "latencyMs.p50": (("summary", "latencyMs", "p50"), False),
    "latencyMs.p95": (("summary", "latencyMs", "p95"), False),
    "peakMemoryMb": (("peakMemoryMb",), False),
    "loadTimeMs": (("loadTimeMs",), False),
    "outputTokensPerSec": (("throughput", "outputTokensPerSec"), True),
    "qualityScore": (("quality", "score"), True),
}


@dataclass(frozen=True)
class FigureDelta:
    figure: str
    old: float | None
    new: float | None
    delta_pct: float | None  # (new - old) / old * 100
    higher_is_better: bool
    regression: bool


@dataclass(frozen=True)
class ModelComparison:
    model_id: str
    old_status: str | None  # None: not in that report
    new_status: str | None
    deltas: tuple[FigureDelta, ...]
    regression: bool
    note: str | None


@dataclass(frozen=True)
class Comparison:
    threshold_pct: float
    models: tuple[ModelComparison, ...]
    notes: tuple[str, ...]

    @property
    def regressed_models(self) -> tuple[str, ...]:
        return tuple(m.model_id for m in self.models if m.regression)


def _isolated(report: dict[str, Any]) -> bool:
    """The report's in-process models ran each in its own process (curator.bench.isolated)."""
    return any("in its own fresh process" in str(note) for note in report.get("notes") or ())


def _value(model: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = model
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _delta(
    name: str, old: float | None, new: float | None, higher: bool, threshold: float
) -> FigureDelta:
    if old is None or new is None or old == 0:
        return FigureDelta(name, old, new, None, higher, False)
    pct = (new - old) / abs(old) * 100.0
    worse = -pct if higher else pct
    return FigureDelta(name, old, new, pct, higher, worse > threshold)


def compare_reports(
    old: dict[str, Any], new: dict[str, Any], threshold_pct: float = DEFAULT_THRESHOLD_PCT
) -> Comparison:
    """Compare two validated report documents (see curator.bench.reports.load_report)."""
    notes = []
    if old["machine"]["fingerprint"] != new["machine"]["fingerprint"]:
        notes.append(
            f"different machines ({old['machine']['fingerprint']} vs "
            f"{new['machine']['fingerprint']}): speed figures are not comparable"
        )
    if old["promptSet"]["sha256"] != new["promptSet"]["sha256"]:
        notes.append("different prompt sets: figures measure different work")
    if old["backend"] != new["backend"]:
        notes.append(f"backends differ: {old['backend']} -> {new['backend']}")
    for key in ("maxTokens", "temperature", "concurrency"):
        if old["settings"][key] != new["settings"][key]:
            notes.append(f"settings differ: {key} {old['settings'][key]} -> {new['settings'][key]}")
    isolated = [_isolated(r) for r in (old, new)]
    if old["backend"] == new["backend"] == "in-process" and isolated[0] != isolated[1]:
        notes.append(
            "peak memory was measured differently: "
            + ("OLD" if isolated[1] else "NEW")
            + " ran its models in one process (each figure may hold what earlier models left "
            "allocated), the other each model in its own fresh process"
        )
    old_models = {m["id"]: m for m in old["models"]}
    new_models = {m["id"]: m for m in new["models"]}
    compared = []
    for model_id in [*old_models, *(i for i in new_models if i not in old_models)]:
        before, after = old_models.get(model_id), new_models.get(model_id)
        compared.append(_compare_model(model_id, before, after, threshold_pct))
    return Comparison(threshold_pct, tuple(compared), tuple(notes))


def _compare_model(
    model_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    threshold: float,
) -> ModelComparison:
    old_status = before["status"] if before else None
    new_status = after["status"] if after else None
    if before is None:
        return ModelComparison(model_id, None, new_status, (), False, "new in this report")
    if after is None:
        regression = old_status == "ok"
        return ModelComparison(model_id, old_status, None, (), regression, "missing from NEW")
    if new_status != "ok":
        note = f"failed: {after.get('error')}"
        return ModelComparison(model_id, old_status, new_status, (), old_status == "ok", note)
    deltas = tuple(
        _delta(name, _value(before, path), _value(after, path), higher, threshold)
        for name, (path, higher) in FIGURES.items()
    )
    deltas = tuple(d for d in deltas if d.old is not None or d.new is not None)
    recovered = "was failed, now ok" if old_status != "ok" else None
    return ModelComparison(
        model_id, old_status, new_status, deltas, any(d.regression for d in deltas), recovered
    )


def comparison_document(comparison: Comparison) -> dict[str, Any]:
    """The ``--json`` form (camelCase, like the reports)."""
    return {
        "thresholdPct": comparison.threshold_pct,
        "regressedModels": list(comparison.regressed_models),
        "notes": list(comparison.notes),
        "models": [
            {
                "id": m.model_id,
                "oldStatus": m.old_status,
                "newStatus": m.new_status,
                "regression": m.regression,
                "note": m.note,
                "deltas": [
                    {
                        "figure": d.figure,
                        "old": d.old,
                        "new": d.new,
                        "deltaPct": None if d.delta_pct is None else round(d.delta_pct, 2),
                        "higherIsBetter": d.higher_is_better,
                        "regression": d.regression,
                    }
                    for d in m.deltas
                ],
            }
            for m in comparison.models
        ],
    }
