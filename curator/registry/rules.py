"""Registry validation: the JSON Schema plus the rules a schema cannot say.

Registry entries arrive in pull requests, so they are untrusted: paths, sizes and names are checked
here before anything uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from curator.registry.document import Document
from curator.schemas import Problem, schema_problems

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SIZE_TOLERANCE = 0.01  # fileSizeMb may differ from the artifacts' sum by 1% (rounding)


@dataclass(frozen=True)
class ValidationReport:
    problems: tuple[Problem, ...]
    models: int

    @property
    def valid(self) -> bool:
        return not self.problems


def validate_document(document: Any, policy: dict[str, Any] | None = None) -> ValidationReport:
    """Schema first; the semantic rules run on entries whose shape the schema accepted.

    The policy rules (license, fidelity) use ``policy`` when given (a review judges a change by
    the base's policy), else the document's own, and are skipped when that policy is malformed
    (the schema has reported it).
    """
    problems = schema_problems(document, "models")
    models = document.get("models") if isinstance(document, dict) else None
    if policy is None and not any(p.path == "$" or p.path.startswith("policy") for p in problems):
        policy = policy_of(document)
    if isinstance(models, list):
        shape_broken = {_model_index(p.path) for p in problems}
        problems.extend(_semantic_problems(document, shape_broken, policy))
    return ValidationReport(tuple(problems), len(models) if isinstance(models, list) else 0)


def policy_of(document: Document) -> dict[str, Any]:
    policy = document.get("policy")
    return policy if isinstance(policy, dict) else {}


def _model_index(path: str) -> int | None:
    match = re.match(r"^models\[(\d+)\]", path)
    return int(match.group(1)) if match else None


def _semantic_problems(
    document: Document, shape_broken: set[int | None], policy: dict[str, Any] | None
) -> Iterator[Problem]:
    seen_ids: dict[str, int] = {}
    seen_alias: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(document["models"]):
        if index in shape_broken or not isinstance(entry, dict):
            continue
        where = f"models[{index}]"
        model_id, alias, variant = entry["id"], entry["alias"], entry["variant"]
        if model_id in seen_ids:
            yield Problem(
                f"{where}.id", "unique-id", f"id {model_id!r} is also models[{seen_ids[model_id]}]"
            )
        seen_ids.setdefault(model_id, index)
        if (alias, variant) in seen_alias:
            yield Problem(
                f"{where}.alias",
                "unique-alias-per-variant",
                f"alias {alias!r} with variant {variant!r} is also "
                f"models[{seen_alias[alias, variant]}]",
            )
        seen_alias.setdefault((alias, variant), index)
        yield from _entry_problems(entry, where, policy)


def _entry_problems(
    entry: dict[str, Any], where: str, policy: dict[str, Any] | None
) -> Iterator[Problem]:
    name = entry["id"].rsplit(":", 1)[0]
    if not name.endswith(f"-{entry['variant']}"):
        yield Problem(
            f"{where}.id",
            "id-names-variant",
            f"id {entry['id']!r} must be <name>-{entry['variant']}:<version>",
        )
    device = entry["variant"].rsplit("-", 1)[1].upper()
    if entry["runtime"]["deviceType"] != device:
        yield Problem(
            f"{where}.runtime.deviceType",
            "runtime-matches-variant",
            f"deviceType {entry['runtime']['deviceType']} but variant "
            f"{entry['variant']!r} is for {device}",
        )
    yield from _artifact_problems(entry, where)
    yield from _distribution_problems(entry, where)
    yield from _benchmark_problems(entry, where)
    if policy is not None:
        yield from _policy_problems(entry, where, policy)


def _policy_problems(
    entry: dict[str, Any], where: str, policy: dict[str, Any]
) -> Iterator[Problem]:
    allowed = set(policy.get("allowedLicenses", []))
    if entry["license"] not in allowed:
        yield Problem(
            f"{where}.license",
            "license-allowed",
            f"license {entry['license']!r} is not in policy.allowedLicenses "
            f"({', '.join(sorted(allowed)) or 'empty'})",
        )
    yield from _fidelity_problems(entry, where, policy)


def _artifact_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    artifacts = entry["build"]["artifacts"]
    paths: set[str] = set()
    for i, artifact in enumerate(artifacts):
        at = f"{where}.build.artifacts[{i}]"
        problem = unsafe_path_reason(artifact["path"])
        if problem:
            yield Problem(f"{at}.path", "artifact-path-safe", f"{artifact['path']!r}: {problem}")
        if artifact["path"] in paths:
            yield Problem(
                f"{at}.path", "artifact-path-unique", f"{artifact['path']!r} listed twice"
            )
        paths.add(artifact["path"])
        if not SHA256.match(artifact["sha256"]):
            yield Problem(
                f"{at}.sha256", "sha256-format", "sha256 must be 64 lowercase hexadecimal digits"
            )
    total_mb = sum(a["bytes"] for a in artifacts) / 2**20
    declared = entry["fileSizeMb"]
    if abs(declared - total_mb) > max(SIZE_TOLERANCE * total_mb, 0.01):
        yield Problem(
            f"{where}.fileSizeMb",
            "file-size-matches-artifacts",
            f"fileSizeMb {declared} but the artifacts add up to {total_mb:.2f} MiB",
        )


def _distribution_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    """A published entry's files must be exactly its build's artifacts (path, sha256, bytes)."""
    distribution = entry.get("distribution")
    if not distribution:
        return
    reason = distribution_mismatch(distribution["files"], entry["build"]["artifacts"])
    if reason:
        yield Problem(
            f"{where}.distribution.files",
            "distribution-matches-build",
            f"the published files differ from build.artifacts: {reason}",
        )


def distribution_mismatch(files: list[dict[str, Any]], artifacts: list[dict[str, Any]]) -> str:
    """How published ``files`` differ from ``artifacts`` ('' when they are the same set)."""

    def keyed(items: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
        return {str(i["path"]): (i["sha256"], i["bytes"]) for i in items}

    published, built = keyed(files), keyed(artifacts)
    parts = []
    for label, paths in (
        ("not published", sorted(built.keys() - published.keys())),
        ("not built", sorted(published.keys() - built.keys())),
        ("changed", sorted(p for p in built.keys() & published.keys() if built[p] != published[p])),
    ):
        if paths:
            parts.append(f"{label}: {', '.join(paths)}")
    if not parts and len(files) != len(published):
        parts.append("a file is listed twice")
    return "; ".join(parts)


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` is not a safe relative artifact path (None when it is)."""
    if _CONTROL.search(path):
        return "contains control characters"
    if "\\" in path:
        return "use '/' as the separator"
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        return "must be relative to the model directory"
    parts = path.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' segment"
    return None


def _benchmark_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    benchmarks = entry.get("benchmarks") or []
    if not benchmarks:
        return
    latest_index = max(range(len(benchmarks)), key=lambda i: benchmarks[i]["date"])
    peak_gb = benchmarks[latest_index]["peakMemoryMb"] / 1024
    if entry["minRamGb"] < peak_gb:
        yield Problem(
            f"{where}.minRamGb",
            "min-ram-covers-benchmark",
            f"minRamGb {entry['minRamGb']} is below the peak memory of the latest "
            f"benchmark ({peak_gb:.2f} GiB, benchmarks[{latest_index}])",
        )


def _fidelity_problems(
    entry: dict[str, Any], where: str, policy: dict[str, Any]
) -> Iterator[Problem]:
    fidelity = entry.get("fidelity")
    if not fidelity:
        return
    floor = policy.get("minTop1Agreement")
    if floor is not None and fidelity["top1Agreement"] < floor:
        yield Problem(
            f"{where}.fidelity.top1Agreement",
            "fidelity-top1",
            f"top-1 agreement {fidelity['top1Agreement']:.3f} is below the policy's "
            f"minTop1Agreement {floor}",
        )
    ceiling = policy.get("maxKlDivergence")
    if ceiling is not None and fidelity["klMean"] > ceiling:
        yield Problem(
            f"{where}.fidelity.klMean",
            "fidelity-kl",
            f"mean KL {fidelity['klMean']:.4f} is above the policy's maxKlDivergence {ceiling}",
        )
