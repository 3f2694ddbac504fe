"""What a pull request changes in the registry: models added, removed, changed field by field,
benchmark figures compared, and the policy problems of the result."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from curator.registry.document import Document, Entry
from curator.registry.rules import one_line, policy_of, validate_document
from curator.schemas import Problem, elide, load_schema

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
VALUE_LIMIT = 1000  # characters of one string value a review repeats (the middle is elided)
# Paths of the repository that judge a registry change (how it is reviewed, built, validated): a
# pull request that edits them besides the registry is marked, and by default fails the review.
SENSITIVE_PREFIXES = (".github/", "recipes/", "schemas/")
REGISTRY_PREFIX = "registry/"
CHANGED_PATHS_LIMIT = 10_000  # paths of a change the review reads (the list shows fewer)


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
    change_pct: float | None  # None when the base figure is 0: no percentage to speak of
    regression: bool
    base_id: str | None = None  # the earlier entry compared with, when not model_id itself


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
    schema_changes: tuple[FieldChange, ...] = ()
    # benchmark runs (same date on both sides) whose recorded figures the change edits
    rewritten_runs: tuple[str, ...] = ()
    # added entries compared with an earlier entry under another id: (id, earlier id, why)
    lineage: tuple[tuple[str, str, str], ...] = ()
    # files the change edits outside registry/ (when the changed paths were given), and which of
    # them are sensitive (SENSITIVE_PREFIXES)
    outside_changes: tuple[str, ...] = ()
    sensitive_changes: tuple[str, ...] = ()

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
    head_schema: Any = None,
    accept_schema_change: bool = False,
    changed_paths: tuple[str, ...] = (),
    accept_sensitive_change: bool = False,
) -> RegistryDiff:
    """Compare two registries. HEAD is judged by the base's policy: a change cannot loosen the
    rules it is checked against. A policy change is itself a violation until a maintainer accepts
    it (``accept_policy_change``); a registry file new in this change brings its own policy.

    ``head_schema`` is the change's own schemas/models.schema.json, when it has one: HEAD is always
    validated against this curator's schema (the base's, in CI); an edit of the schema is listed
    and is a violation until a maintainer accepts it (``accept_schema_change``).

    An added entry is compared with the earlier entries of the same model, so neither a version
    bump nor a new name can hide a regression: the newest base entry of its lineage (the same
    source repo at the same revision built with the same recipe, or the same weights file by
    sha256), whatever its id and alias, and the newest base entry that is another version of it
    (the same name, or the same alias and variant). The base entry may stay in HEAD or be removed.
    """
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
    rewritten: list[str] = []
    for key in sorted(base_models.keys() & head_models.keys()):
        old, new = base_models[key], head_models[key]
        if old == new:  # most entries: compared in C, nothing flattened
            continue
        runs = _rewritten_runs(old, new)
        fields = tuple(_field_changes(_flatten(old), _flatten(new)))
        fields += tuple(change for _, run_changes in runs for change in run_changes)
        if fields:
            changed.append((key, fields))
        figures.extend(_figure_changes(key, old, new, threshold))
        rewritten.extend(f"models[id={key}].{run}" for run, _ in runs)
    added_keys = sorted(head_models.keys() - base_models.keys())
    lineage: list[tuple[str, str, str]] = []
    if added_keys:
        previous = _previous_versions(base_models)
        for key in added_keys:
            for before, why in _earlier_entries(head_models[key], previous):
                lineage.append((key, str(before["id"]), why))
                figures.extend(
                    _figure_changes(key, before, head_models[key], threshold, str(before["id"]))
                )
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
    schema_changes = () if head_schema is None else schema_changes_of(head_schema)
    if schema_changes and not accept_schema_change:
        violations.append(
            Problem(
                "schema",
                "schema-changed",
                "the change edits the registry schema; the registry is validated against the "
                "base's schema until a maintainer accepts it (registry diff --accept-schema-change)",
            )
        )
    outside, sensitive = classify_changed_paths(changed_paths)
    if (
        sensitive
        and not accept_sensitive_change
        and policy.get("failOnSensitiveChange") is not False
    ):
        violations.append(
            Problem(
                "change",
                "sensitive-change",
                f"the change also edits {len(sensitive)} file(s) that judge registry changes "
                f"(workflows, recipes, schemas): {', '.join(sensitive[:5])}"
                + (" …" if len(sensitive) > 5 else "")
                + "; this review ran the base's copies. A maintainer accepts them with the "
                "sensitive-change label (registry diff --accept-sensitive-change)",
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
                elide(f"models[id={f.model_id}]"),
                "benchmark-regression",
                _regression_message(f, threshold),
            )
            for f in figures
            if f.regression
        )
    return RegistryDiff(
        base_label=base_label,
        head_label=head_label,
        added=tuple(_bounded(head_models[i]) for i in added_keys),
        removed=tuple(
            _bounded(base_models[i]) for i in sorted(base_models.keys() - head_models.keys())
        ),
        changed=tuple(changed),
        figures=tuple(figures),
        policy_changes=policy_changes,
        violations=tuple(
            Problem(one_line(p.path), p.rule, one_line(p.message)) for p in violations
        ),
        threshold_pct=threshold,
        base_exists=base_exists,
        schema_changes=schema_changes,
        rewritten_runs=tuple(elide(r) for r in rewritten),
        lineage=tuple((elide(a), elide(b), why) for a, b, why in lineage),
        outside_changes=outside,
        sensitive_changes=sensitive,
    )


def classify_changed_paths(paths: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The changed paths outside registry/ and the sensitive ones among them, sorted, bounded."""
    outside = sorted(
        {elide(p) for p in paths[:CHANGED_PATHS_LIMIT] if p and not p.startswith(REGISTRY_PREFIX)}
    )
    sensitive = [p for p in outside if p.startswith(SENSITIVE_PREFIXES)]
    return tuple(outside), tuple(sensitive)


def schema_changes_of(head_schema: Any) -> tuple[FieldChange, ...]:
    """How the change's models schema differs from the one this curator validates with."""
    return tuple(_field_changes(_flatten(load_schema("models")), _flatten(head_schema)))


def _regression_message(change: FigureChange, threshold: float) -> str:
    against = f" (against {elide(change.base_id)})" if change.base_id else ""
    if change.change_pct is None:
        return f"{change.figure} went from 0 to {change.head:g}{against}"
    return (
        f"{change.figure} {change.change_pct:+.1f}% is past the {threshold:g}% threshold{against}"
    )


def _number(policy: dict[str, Any], key: str, default: float) -> float:
    value = finite(policy.get(key))
    return value if value is not None and value > 0 else default


def _by_id(document: Document) -> dict[str, Entry]:
    """Entries by id; a repeated id gets its own key (``id (2)``) so that it shows as added
    rather than vanishing into the first."""
    models = document.get("models")
    if not isinstance(models, list):
        return {}
    keyed: dict[str, Entry] = {}
    for model in models:
        if not isinstance(model, dict) or "id" not in model:
            continue
        keyed[_unused_key(keyed, str(model["id"]))] = model
    return keyed


def _bounded(value: Any) -> Any:
    """``value`` with every string longer than VALUE_LIMIT elided (a copy only where needed)."""
    if isinstance(value, str):
        return elide(value, VALUE_LIMIT)
    if isinstance(value, dict):
        return {elide(str(k), VALUE_LIMIT): _bounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v) for v in value]
    return value


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
                            f"{str(artifact.get('sha256', ''))[:12]} {artifact.get('bytes')} B"
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
        FieldChange(elide(k), _bounded(old.get(k)), _bounded(new.get(k)))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def _runs_by_date(entry: Entry) -> dict[str, Any]:
    runs = entry.get("benchmarks")
    keyed: dict[str, Any] = {}
    for run in runs if isinstance(runs, list) else []:
        date = run.get("date") if isinstance(run, dict) else None
        keyed[_unused_key(keyed, f"benchmarks[{date}", "]")] = run
    return keyed


def _unused_key(keyed: dict[str, Any], head: str, tail: str = "") -> str:
    """``head + tail``, or for the n-th with that key ``head + " (n)" + tail``: several entries with
    the same id (or runs with the same date) are each compared under their own key."""
    key, n = head + tail, 1
    while key in keyed:
        n += 1
        key = f"{head} ({n}){tail}"
    return key


def _rewritten_runs(old: Entry, new: Entry) -> list[tuple[str, list[FieldChange]]]:
    """Benchmark runs both sides have (same date) whose content differs: edited in place."""
    before, after = _runs_by_date(old), _runs_by_date(new)
    return [
        (
            key,
            [
                FieldChange(f"{key}.{c.field}", c.base, c.head)
                for c in _field_changes(_flatten(before[key]), _flatten(after[key]))
            ],
        )
        for key in sorted(before.keys() & after.keys())
        if before[key] != after[key]
    ]


def _name_and_version(model_id: str) -> tuple[str, int]:
    name, _, version = model_id.rpartition(":")
    return (name, int(version)) if name and version.isdigit() else (model_id, 0)


def _previous_versions(models: dict[str, Entry]) -> dict[tuple[str, ...], list[Entry]]:
    """Base entries by lineage (source and recipe, weights sha256), by model name (the id without
    its version) and by (alias, variant)."""
    index: dict[tuple[str, ...], list[Entry]] = {}
    for entry in models.values():
        for key in (*_lineage_keys(entry), *_version_keys(entry)):
            index.setdefault(key, []).append(entry)
    return index


def _lineage_keys(entry: Entry) -> Iterable[tuple[str, ...]]:
    """What makes two entries the same compiled model whatever their ids: the source repo at one
    revision built with one recipe (as the compile manifest records them), or the same weights
    file (the largest artifact, by sha256)."""
    source, build = entry.get("source"), entry.get("build")
    if not isinstance(source, dict) or not isinstance(build, dict):
        return
    repo, revision, recipe = source.get("repo"), source.get("revision"), build.get("recipe")
    if isinstance(repo, str) and isinstance(revision, str) and isinstance(recipe, str):
        yield ("lineage", repo, revision, recipe)
    artifacts = build.get("artifacts")
    sized = [
        (finite(a.get("bytes")) or 0.0, a["sha256"])
        for a in (artifacts if isinstance(artifacts, list) else [])
        if isinstance(a, dict) and isinstance(a.get("sha256"), str)
    ]
    if sized:
        yield ("weights", max(sized)[1])


def _lineage_reason(key: tuple[str, ...]) -> str:
    if key[0] == "lineage":
        return f"same source {key[1]}@{key[2][:12]} and recipe {key[3]}"
    return f"same weights (sha256 {key[1][:12]})"


def _version_keys(entry: Entry) -> Iterable[tuple[str, ...]]:
    yield ("name", _name_and_version(str(entry["id"]))[0])
    alias, variant = entry.get("alias"), entry.get("variant")
    if isinstance(alias, str) and isinstance(variant, str):
        yield ("alias", alias, variant)


def _earlier_entries(
    entry: Entry, index: dict[tuple[str, ...], list[Entry]]
) -> list[tuple[Entry, str]]:
    """The base entries an added ``entry`` is compared with, and why: the newest of its lineage,
    and the newest other version of it (by name or alias), when there are such (one when they
    are the same entry). Both, so that neither a decoy name nor a new name decides the baseline."""
    found: list[tuple[Entry, str]] = []
    for keys, why in (
        (list(_lineage_keys(entry)), None),
        (list(_version_keys(entry)), "previous version"),
    ):
        candidates = [
            (other, why or _lineage_reason(key))
            for key in keys
            for other in index.get(key, [])
            if str(other["id"]) != str(entry["id"])
        ]
        if not candidates:
            continue
        newest = max(
            candidates, key=lambda c: (_name_and_version(str(c[0]["id"]))[1], str(c[0]["id"]))
        )
        if all(newest[0] is not earlier for earlier, _ in found):
            found.append(newest)
    return found


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
    return finite(value)


def finite(value: Any) -> float | None:
    """``value`` as a finite float when it is a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past 1e308 (only in a document built in memory)
        return None
    return number if math.isfinite(number) else None


def _change_pct(base: float, head: float) -> float | None:
    """The change in percent; None from a base of 0, or from one so near 0 (5e-324) that the
    percentage would overflow to Infinity, which JSON cannot hold: both read "from 0"."""
    if not base:
        return None
    try:
        pct = (head - base) / abs(base) * 100
    except OverflowError:
        return None
    return pct if math.isfinite(pct) else None


def _figure_changes(
    model_id: str, old: Entry, new: Entry, threshold: float, base_id: str | None = None
) -> list[FigureChange]:
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
            pct = _change_pct(a, b)
            if pct is None:  # from 0: worse exactly when it moved the wrong way
                worse = b < a if higher_is_better else b > a
            else:
                worse = (-pct if higher_is_better else pct) > threshold
            changes.append(FigureChange(model_id, name, a, b, pct, worse, base_id))
    return changes
