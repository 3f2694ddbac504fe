"""What a pull request changes in the registry: models added, removed, changed field by field,
benchmark figures compared, and the policy problems of the result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from curator.registry.document import Document, Entry
from curator.registry.rules import policy_of, validate_document
from curator.schemas import Problem

# figure name -> (path into a benchmark summary, True when higher is better)
BENCH_FIGURES: dict[str, tuple[tuple[str, ...], bool]] = {
    "decode tok/s": (("decodeTokensPerSec", "mean"), True),
    "TTFT mean ms": (("ttftMs", "mean"), False),
    "TTFT p95 ms": (("ttftMs", "p95"), False),
    "latency mean ms": (("latencyMs", "mean"), False),
    "peak memory MB": (("peakMemoryMb",), False),
}
FIDELITY_FIGURES: dict[str, tuple[tuple[str, ...], bool]] = {
    "fidelity KL mean": (("klMean",), False),
    "fidelity top-1": (("top1Agreement",), True),
}


@dataclass(frozen=True)
class FieldChange:
    field: str
    base: Any
    head: Any


@dataclass(frozen=True)
class FigureChange:
    model_id: str
    figure: str
    base: float
    head: float
    change_pct: float
    regression: bool


@dataclass(frozen=True)
class RegistryDiff:
    base_label: str
    head_label: str
    added: tuple[Entry, ...]
    removed: tuple[Entry, ...]
    changed: tuple[tuple[str, tuple[FieldChange, ...]], ...]
    figures: tuple[FigureChange, ...]
    policy_changes: tuple[FieldChange, ...]
    violations: tuple[Problem, ...]
    threshold_pct: float
    base_exists: bool = True

    @property
    def regressions(self) -> tuple[FigureChange, ...]:
        return tuple(f for f in self.figures if f.regression)


def diff_documents(
    base: Document,
    head: Document,
    base_label: str = "base",
    head_label: str = "head",
    threshold_pct: float | None = None,
    fail_on_regression: bool | None = None,
    accept_policy_change: bool = False,
    base_exists: bool = True,
) -> RegistryDiff:
    """Compare two registries. HEAD is judged by the base's policy: a change cannot loosen the
    rules it is checked against. A policy change is itself a violation until a maintainer accepts
    it (``accept_policy_change``); a registry file new in this change brings its own policy."""
    base_models = _by_id(base)
    head_models = _by_id(head)
    policy_changes = tuple(_field_changes(_flatten(policy_of(base)), _flatten(policy_of(head))))
    judge_by_head = accept_policy_change or not base_exists or not policy_changes
    policy = policy_of(head) if judge_by_head else policy_of(base)
    threshold = (
        threshold_pct if threshold_pct is not None else _number(policy, "maxRegressionPct", 10)
    )
    changed: list[tuple[str, tuple[FieldChange, ...]]] = []
    figures: list[FigureChange] = []
    for model_id in sorted(base_models.keys() & head_models.keys()):
        old, new = base_models[model_id], head_models[model_id]
        fields = tuple(_field_changes(_flatten(old), _flatten(new)))
        if fields:
            changed.append((model_id, fields))
        figures.extend(_figure_changes(model_id, old, new, threshold))
    violations = list(validate_document(head, None if judge_by_head else policy).problems)
    if not judge_by_head:
        violations.append(
            Problem(
                "policy",
                "policy-changed",
                "the change edits the policy; models are judged by the base's policy until a "
                "maintainer accepts it (registry diff --accept-policy-change)",
            )
        )
    regression_fails = (
        fail_on_regression
        if fail_on_regression is not None
        else policy.get("failOnRegression") is True
    )
    if regression_fails:
        violations.extend(
            Problem(
                f"models[id={f.model_id}]",
                "benchmark-regression",
                f"{f.figure} {f.change_pct:+.1f}% is past the {threshold:g}% threshold",
            )
            for f in figures
            if f.regression
        )
    return RegistryDiff(
        base_label=base_label,
        head_label=head_label,
        added=tuple(head_models[i] for i in sorted(head_models.keys() - base_models.keys())),
        removed=tuple(base_models[i] for i in sorted(base_models.keys() - head_models.keys())),
        changed=tuple(changed),
        figures=tuple(figures),
        policy_changes=policy_changes,
        violations=tuple(violations),
        threshold_pct=threshold,
        base_exists=base_exists,
    )


def _number(policy: dict[str, Any], key: str, default: float) -> float:
    value = policy.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value) if math.isfinite(value) and value > 0 else default


def _by_id(document: Document) -> dict[str, Entry]:
    models = document.get("models")
    if not isinstance(models, list):
        return {}
    return {str(m["id"]): m for m in models if isinstance(m, dict) and "id" in m}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaves; benchmarks are compared as figures, artifacts by path."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if path == "benchmarks":
                flat[path] = f"{len(item)} run(s)" if isinstance(item, list) else item
            elif path in ("build.artifacts", "distribution.files") and isinstance(item, list):
                for artifact in item:
                    if isinstance(artifact, dict):
                        flat[f"{path}[{artifact.get('path')}]"] = (
                            f"{artifact.get('sha256', '')[:12]} {artifact.get('bytes')} B"
                        )
            else:
                flat.update(_flatten(item, path))
        return flat
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return {prefix: ", ".join(map(str, value))}
    if isinstance(value, list):
        flat = {}
        for i, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{i}]"))
        return flat
    return {prefix: value}


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    return [
        FieldChange(k, old.get(k), new.get(k))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def latest_benchmark(entry: Entry) -> dict[str, Any] | None:
    runs = entry.get("benchmarks")
    if not isinstance(runs, list) or not runs:
        return None
    return max(
        (r for r in runs if isinstance(r, dict)), key=lambda r: str(r.get("date", "")), default=None
    )


def figure(record: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _figure_changes(model_id: str, old: Entry, new: Entry, threshold: float) -> list[FigureChange]:
    pairs = [
        (latest_benchmark(old), latest_benchmark(new), BENCH_FIGURES),
        (old.get("fidelity"), new.get("fidelity"), FIDELITY_FIGURES),
    ]
    changes = []
    for before, after, figures in pairs:
        for name, (path, higher_is_better) in figures.items():
            a, b = figure(before, path), figure(after, path)
            if a is None or b is None or a == b:
                continue
            pct = (b - a) / a * 100 if a else float("inf")
            worse = -pct if higher_is_better else pct
            changes.append(FigureChange(model_id, name, a, b, pct, worse > threshold))
    return changes
