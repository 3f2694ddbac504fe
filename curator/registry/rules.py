"""Registry validation: the JSON Schema plus the rules a schema cannot say.

Registry entries arrive in pull requests, so they are untrusted: paths, sizes and names are checked
here before anything uses them. Formats (sha256, ids, text) are the schema's: its patterns match
the whole string, where Python's re "$" lets a trailing newline through.

Each rule reads only the fields it needs and runs whenever those have the right type, whatever else
is broken: one malformed field (in an entry, the policy or the top level) never switches off a rule
that does not depend on it. A rule whose own input is broken fails closed (a malformed
allowedLicenses allows no licence).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from curator.registry.document import Document
from curator.schemas import Problem, elide, load_schema, schema_problems

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_VARIANT = re.compile(r"[a-z0-9]+-(cpu|gpu|npu)")
SIZE_TOLERANCE = 0.01  # fileSizeMb may differ from the artifacts' sum by 1% (rounding)


@dataclass(frozen=True)
class ValidationReport:
    problems: tuple[Problem, ...]
    models: int

    @property
    def valid(self) -> bool:
        return not self.problems


def validate_document(document: Any, policy: dict[str, Any] | None = None) -> ValidationReport:
    """The schema, then the semantic rules on every entry that is an object.

    The policy rules (license, fidelity) use ``policy`` when given (a review judges a change by
    the base's policy), else the document's own.
    """
    problems = schema_problems(document, "models")
    problems.extend(_integer_literal_problems(document))
    models = document.get("models") if isinstance(document, dict) else None
    if isinstance(models, list):
        if policy is None:
            policy = policy_of(document)
        problems.extend(_semantic_problems(models, policy))
    bounded = tuple(Problem(one_line(p.path), p.rule, one_line(p.message)) for p in problems)
    return ValidationReport(bounded, len(models) if isinstance(models, list) else 0)


def one_line(text: str) -> str:
    """``text`` elided in the middle, then every hidden character (a line break in a key, a
    bidirectional override in a value) spelled out as <U+XXXX>: a problem stays one honest line."""
    text = elide(text)
    if text.isprintable():
        return text
    return elide(
        "".join(
            f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c)[0] == "C" or c in LINE_SEPARATORS else c
            for c in text
        )
    )


@lru_cache(maxsize=1)
def integer_paths() -> tuple[tuple[str, ...], ...]:
    """Where the models schema says ``integer``: key paths with ``*`` for any list item or key.

    JSON Schema counts 368.0 as an integer, but Python reads it as a float: a rule testing
    ``type(x) is int`` would skip it (a float byte count once switched off the file-size rule)
    and ``curator pull`` would refuse what review passed. So an integer field must be written as
    an integer literal (rule ``integer-literal``), read from the schema so no field is missed.
    """
    schema = load_schema("models")
    found: set[tuple[str, ...]] = set()

    def walk(node: Any, path: tuple[str, ...], refs: frozenset[str]) -> None:
        if not isinstance(node, dict) or len(path) > 12:
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in refs:
            walk(schema["$defs"].get(ref[len("#/$defs/") :]), path, refs | {ref})
        const = node.get("const")
        if node.get("type") == "integer" or (type(const) is int and path):
            found.add(path)
        for key, child in (node.get("properties") or {}).items():
            walk(child, (*path, key), refs)
        for key in ("items", "additionalProperties"):
            walk(node.get(key), (*path, "*"), refs)
        for key in ("if", "then", "else"):
            walk(node.get(key), path, refs)

    walk(schema, (), frozenset())
    return tuple(sorted(found))


def _integer_literal_problems(document: Any) -> Iterator[Problem]:
    # Fast pass: the values at every integer path, level by level in comprehensions (prefixes
    # shared); only a path that holds a float is walked again to name where.
    levels: dict[tuple[str, ...], list[Any]] = {(): [document]}
    for path in integer_paths():
        level = levels[()]
        for depth, key in enumerate(path, 1):
            prefix = path[:depth]
            if prefix not in levels:
                levels[prefix] = _descend(level, key)
            level = levels[prefix]
        if not any(type(value) is float for value in level):
            continue
        for where, value in _at_path(document, path, ""):
            if type(value) is float and value.is_integer():
                shown = int(value) if abs(value) < 2**63 else value
                yield Problem(
                    where,
                    "integer-literal",
                    f"{value!r} must be written as an integer ({shown}): readers differ on "
                    "whether a number with a fraction part is an integer",
                )


def _descend(level: list[Any], key: str) -> list[Any]:
    if key != "*":
        return [v[key] for v in level if type(v) is dict and key in v]
    items = [c for v in level if type(v) is list for c in v]
    return items + [c for v in level if type(v) is dict for c in v.values()]


def _at_path(value: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield where, value
        return
    key, rest = path[0], path[1:]
    if key == "*" and type(value) is list:
        for i, item in enumerate(value):
            yield from _at_path(item, rest, f"{where}[{i}]")
    elif key == "*" and type(value) is dict:
        for name, item in value.items():
            yield from _at_path(item, rest, f"{where}.{name}" if where else str(name))
    elif type(value) is dict and key in value:
        yield from _at_path(value[key], rest, f"{where}.{key}" if where else key)


def policy_of(document: Document) -> dict[str, Any]:
    policy = document.get("policy")
    return policy if isinstance(policy, dict) else {}


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if type(value) is str else None


def _number(value: Any) -> float | None:
    """A finite JSON number (not a bool), else None."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value) if -_FLOAT_MAX_INT < value < _FLOAT_MAX_INT else None
    return None


_FLOAT_MAX_INT = 2**1023  # an int this large overflows float() (only in a document built in memory)


def _records(value: Any, *keys: str) -> list[dict[str, Any]] | None:
    """``value`` when it is a list of objects that all have ``keys``, else None."""
    if not isinstance(value, list):
        return None
    if all(isinstance(item, dict) and all(k in item for k in keys) for item in value):
        return value
    return None


def _semantic_problems(models: list[Any], policy: dict[str, Any]) -> Iterator[Problem]:
    seen_ids: dict[str, int] = {}
    seen_alias: dict[tuple[str, str], int] = {}
    allowed = _allowed_licenses(policy)
    for index, entry in enumerate(models):
        if not isinstance(entry, dict):
            continue
        where = f"models[{index}]"
        model_id, alias, variant = (
            _text(entry, "id"),
            _text(entry, "alias"),
            _text(entry, "variant"),
        )
        if model_id is not None:
            if model_id in seen_ids:
                yield Problem(
                    f"{where}.id",
                    "unique-id",
                    f"id {model_id!r} is also models[{seen_ids[model_id]}]",
                )
            seen_ids.setdefault(model_id, index)
        if alias is not None and variant is not None:
            if (alias, variant) in seen_alias:
                yield Problem(
                    f"{where}.alias",
                    "unique-alias-per-variant",
                    f"alias {alias!r} with variant {variant!r} is also "
                    f"models[{seen_alias[alias, variant]}]",
                )
            seen_alias.setdefault((alias, variant), index)
        yield from _entry_problems(entry, where)
        yield from _license_problems(entry, where, allowed)
        yield from _fidelity_problems(entry, where, policy)


def _entry_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    model_id, variant = _text(entry, "id"), _text(entry, "variant")
    if model_id is not None and variant is not None:
        name = model_id.rsplit(":", 1)[0]
        if not name.endswith(f"-{variant}"):
            yield Problem(
                f"{where}.id",
                "id-names-variant",
                f"id {model_id!r} must be <name>-{variant}:<version>",
            )
    runtime = entry.get("runtime")
    device = runtime.get("deviceType") if isinstance(runtime, dict) else None
    expected = _device_of(variant) if variant is not None else None
    if expected is not None and type(device) is str and device != expected:
        yield Problem(
            f"{where}.runtime.deviceType",
            "runtime-matches-variant",
            f"deviceType {device} but variant {variant!r} is for {expected}",
        )
    yield from _catalog_source_problems(entry, where)
    yield from _artifact_problems(entry, where)
    yield from _distribution_problems(entry, where)
    yield from _benchmark_problems(entry, where)


@lru_cache(maxsize=256)
def _device_of(variant: str) -> str | None:
    """CPU, GPU or NPU from a well-formed variant (generic-cpu), else None."""
    return variant.rsplit("-", 1)[1].upper() if _VARIANT.fullmatch(variant) else None


def _allowed_licenses(policy: dict[str, Any]) -> frozenset[str] | None:
    """The licences the policy allows; None when allowedLicenses is malformed (nothing allowed)."""
    value = policy.get("allowedLicenses", [])
    if not isinstance(value, list):
        return None
    return frozenset(v for v in value if isinstance(v, str))


def _license_problems(
    entry: dict[str, Any], where: str, allowed: frozenset[str] | None
) -> Iterator[Problem]:
    license_id = _text(entry, "license")
    if license_id is None:
        return
    if allowed is None:
        yield Problem(
            f"{where}.license",
            "license-allowed",
            f"license {license_id!r} cannot be allowed: policy.allowedLicenses is not a list",
        )
    elif license_id not in allowed:
        yield Problem(
            f"{where}.license",
            "license-allowed",
            f"license {license_id!r} is not in policy.allowedLicenses "
            f"({', '.join(sorted(allowed)) or 'empty'})",
        )


def _catalog_source_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    """A Foundry catalog model is registered under its catalog id (what Foundry Local loads)."""
    source = entry.get("source")
    if not isinstance(source, dict) or "catalog" not in source:
        return
    catalog_id, model_id = source.get("id"), entry.get("id")
    if isinstance(catalog_id, str) and isinstance(model_id, str) and catalog_id != model_id:
        yield Problem(
            f"{where}.source.id",
            "catalog-id-is-entry-id",
            f"catalog id {catalog_id!r} but the entry's id is {model_id!r}",
        )


def _artifact_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    build = entry.get("build")
    artifacts = build.get("artifacts") if type(build) is dict else None
    if type(artifacts) is not list:
        return
    paths: dict[str, str] = {}  # identity (case and normalisation folded) -> the path listed
    total_bytes: float | None = 0
    for i, artifact in enumerate(artifacts):
        if type(artifact) is not dict:
            total_bytes = None
            continue
        # A whole number written as 368.0 still counts (integer-literal flags how it is written):
        # the size rule must not be switched off by the way a number is spelled.
        size = _number(artifact.get("bytes"))
        total_bytes = (
            total_bytes + size
            if total_bytes is not None and size is not None and size.is_integer()
            else None
        )
        path = artifact.get("path")
        if type(path) is not str:
            continue
        problem = unsafe_path_reason(path)
        if problem:
            yield Problem(
                f"{where}.build.artifacts[{i}].path", "artifact-path-safe", f"{path!r}: {problem}"
            )
        identity = path_identity(path)
        if identity in paths:
            same = paths[identity]
            yield Problem(
                f"{where}.build.artifacts[{i}].path",
                "artifact-path-unique",
                f"{path!r} listed twice"
                if same == path
                else f"{path!r} and {same!r} are one file on Windows and macOS (they differ only "
                "by case or Unicode normalisation)",
            )
        paths.setdefault(identity, path)
    declared = _number(entry.get("fileSizeMb"))
    if declared is None or total_bytes is None:
        return
    total_mb = total_bytes / 2**20
    if abs(declared - total_mb) > max(SIZE_TOLERANCE * total_mb, 0.01):
        yield Problem(
            f"{where}.fileSizeMb",
            "file-size-matches-artifacts",
            f"fileSizeMb {entry['fileSizeMb']} but the artifacts add up to {total_mb:.2f} MiB",
        )


def _distribution_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    """A published entry's files must be exactly its build's artifacts (path, sha256, bytes)."""
    distribution = entry.get("distribution")
    if not distribution or not isinstance(distribution, dict):
        return
    build = entry.get("build")
    files = _records(distribution.get("files"), "path", "sha256", "bytes")
    artifacts = _records(
        build.get("artifacts") if isinstance(build, dict) else None, "path", "sha256", "bytes"
    )
    if files is None or artifacts is None:
        return  # the schema names what is malformed
    reason = distribution_mismatch(files, artifacts)
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


# Text: every code point in the Unicode categories Cc (control), Cf (format: bidirectional
# overrides, zero-width joiners, soft hyphens, tags), Co (private use), Cs (surrogates) and Cn
# (unassigned, by the Unicode tables of the Python running curator), plus the line and paragraph
# separators U+2028/U+2029, is hidden: refused in every text field and artifact path, spelled out
# as <U+XXXX> in the review. The only exceptions are the schema's: tab and newline in free text
# ($defs.safeText: notes, licenseDescription). No exception for ZWJ (U+200D), even in emoji
# sequences: it also hides and joins text, and a model's name needs no emoji.
LINE_SEPARATORS = "\u2028\u2029"


def hidden_character(text: str, allowed: str = "") -> str | None:
    """The first hidden character of ``text`` (see above) not in ``allowed``, else None."""
    if text.isprintable():  # C speed: no C* character and no separator (only Zs spaces differ)
        return None
    for char in text:
        if char in allowed:
            continue
        if unicodedata.category(char)[0] == "C" or char in LINE_SEPARATORS:
            return char
    return None


def describe_character(char: str) -> str:
    category = unicodedata.category(char)
    kind = {
        "Cc": "control",
        "Cf": "invisible formatting",
        "Co": "private-use",
        "Cs": "surrogate",
        "Cn": "unassigned",
    }.get(category, "line-separator")
    return f"U+{ord(char):04X} ({kind} character)"


# Windows: reserved device names (with any extension, any case; the superscript digits count too)
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"{kind}{digit}" for kind in ("com", "lpt") for digit in "123456789\u00b9\u00b2\u00b3"]
)
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')


@lru_cache(maxsize=4096)  # the same few file names recur in every entry
def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` is not a safe relative artifact path (None when it is): a path must mean the
    same file on Linux, macOS and Windows, where most Foundry Local users are."""
    hidden = hidden_character(path)
    if hidden is not None:
        if unicodedata.category(hidden) == "Cc":
            return "contains control characters"
        return f"contains {describe_character(hidden)}"
    if "\\" in path:
        return "use '/' as the separator"
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        return "must be relative to the model directory"
    parts = path.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' segment"
    forbidden = _WINDOWS_FORBIDDEN.search(path)
    if forbidden:
        return f"contains {forbidden.group()!r}, which Windows does not allow in a file name"
    for part in parts:
        if part[-1] in ". ":
            return f"segment {part!r} ends in a dot or space, which Windows drops"
        if part.split(".", 1)[0].rstrip(" ").lower() in _RESERVED_NAMES:
            return f"segment {part!r} is a reserved device name on Windows"
    return None


def path_identity(path: str) -> str:
    """What a case-insensitive, normalisation-insensitive file system (Windows, macOS) sees:
    two paths with the same identity are one file there."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def ram_floor_gb(peak_memory_mb: float) -> float:
    """The least minRamGb that covers a measured peak (rule min-ram-covers-benchmark): the peak in
    GiB rounded up to 0.1. Register and onboard raise an entry's minRamGb to it."""
    return math.ceil(peak_memory_mb / 1024 * 10) / 10


def _benchmark_problems(entry: dict[str, Any], where: str) -> Iterator[Problem]:
    runs = entry.get("benchmarks")
    if not isinstance(runs, list):
        return
    dated = [
        (run["date"], i, peak)
        for i, run in enumerate(runs)
        if isinstance(run, dict)
        and isinstance(run.get("date"), str)
        and (peak := _number(run.get("peakMemoryMb"))) is not None
    ]
    min_ram = _number(entry.get("minRamGb"))
    if not dated or min_ram is None:
        return
    _, latest_index, peak_mb = max(dated, key=lambda d: d[0])
    peak_gb = peak_mb / 1024
    if min_ram < peak_gb:
        yield Problem(
            f"{where}.minRamGb",
            "min-ram-covers-benchmark",
            f"minRamGb {entry['minRamGb']} is below the peak memory of the latest "
            f"benchmark ({peak_gb:.2f} GiB, benchmarks[{latest_index}])",
        )


def _threshold(policy: dict[str, Any], key: str) -> float | str | None:
    """A policy limit: its value, None when unset, or the reason it cannot be used."""
    if key not in policy:
        return None
    value = _number(policy[key])
    return f"policy.{key} is not a finite number" if value is None else value


def _fidelity_problems(
    entry: dict[str, Any], where: str, policy: dict[str, Any]
) -> Iterator[Problem]:
    fidelity = entry.get("fidelity")
    if not isinstance(fidelity, dict):
        return
    checks = (
        ("top1Agreement", "minTop1Agreement", "fidelity-top1", True),
        ("klMean", "maxKlDivergence", "fidelity-kl", False),
    )
    for field, key, rule, is_floor in checks:
        limit = _threshold(policy, key)
        value = _number(fidelity.get(field))
        if limit is None or value is None:
            continue
        if isinstance(limit, str):
            yield Problem(f"{where}.fidelity.{field}", rule, f"cannot be checked: {limit}")
        elif is_floor and value < limit:
            yield Problem(
                f"{where}.fidelity.{field}",
                rule,
                f"top-1 agreement {value:.3f} is below the policy's {key} {policy[key]}",
            )
        elif not is_floor and value > limit:
            yield Problem(
                f"{where}.fidelity.{field}",
                rule,
                f"mean KL {value:.4f} is above the policy's {key} {policy[key]}",
            )
