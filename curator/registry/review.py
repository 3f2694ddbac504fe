"""The Markdown a reviewer reads in a pull request (GitHub job summary or a comment)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from curator.registry.diff import BENCH_FIGURES, RegistryDiff, figure, latest_benchmark
from curator.registry.rules import LINE_SEPARATORS
from curator.schemas import elide


def render_review(diff: RegistryDiff) -> str:
    lines = [f"## Registry review: {_code(diff.base_label)} → {_code(diff.head_label)}", ""]
    verdict = "❌ policy violations" if diff.violations else "✅ passes policy"
    lines.append(
        f"**{verdict}** · {len(diff.added)} added · {len(diff.removed)} removed · "
        f"{len(diff.changed)} changed · {len(diff.regressions)} regression(s) past "
        f"{diff.threshold_pct:g}%"
    )
    lines.append("")
    if diff.schema_changes:
        lines += [
            "### ⚠️ Schema changed",
            "",
            "The registry is validated against the base's schema, not this one.",
            "",
            "| schema path | base | head |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_md(c.field)} | {_md(c.base)} | {_md(c.head)} |" for c in diff.schema_changes
        ]
        lines.append("")
    if diff.outside_changes:
        lines += _outside_changes(diff)
    if not diff.base_exists:
        lines += [
            f"Base {_code(diff.base_label)} has no registry file: every model counts as added.",
            "",
        ]
    if diff.policy_changes:
        lines += ["### ⚠️ Policy changed", "", "| setting | base | head |", "|---|---|---|"]
        lines += [
            f"| {_md(c.field)} | {_md(c.base)} | {_md(c.head)} |" for c in diff.policy_changes
        ]
        lines.append("")
    if diff.rewritten_runs:
        lines += [
            "### ⚠️ Recorded benchmark runs edited in place",
            "",
            "A new measurement is recorded as a new run (`curator bench --record`); these "
            "runs keep their date but their figures changed:",
            "",
        ]
        lines += [f"- {_code(run)}" for run in diff.rewritten_runs]
        lines.append("")
    if diff.violations:
        lines += ["### Policy violations", ""]
        lines += [f"- {_code(p.path)} {_md(p.message)} (`{p.rule}`)" for p in diff.violations]
        lines.append("")
    if diff.added:
        lines += [
            "### Added",
            "",
            "| id | name | license | size MB | min RAM GB | recipe | source | decode tok/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in diff.added:
            decode = figure(latest_benchmark(entry), BENCH_FIGURES["decode tok/s"][0])
            lines.append(
                f"| {_code(entry.get('id'))} | {_md(entry.get('displayName'))} "
                f"| {_md(entry.get('license'))} "
                f"| {_md(entry.get('fileSizeMb'))} | {_md(entry.get('minRamGb'))} "
                f"| {_md(_get(entry, 'build', 'recipe'))} | {_md(_source_label(entry))} "
                f"| {_md(decode)} |"
            )
        lines.append("")
    if diff.lineage:
        lines += [
            "### Compared with an earlier entry",
            "",
            "Added entries whose figures are compared with an earlier entry of the same model "
            "(a new id or name does not hide a regression):",
            "",
        ]
        lines += [f"- {_code(new)} vs {_code(old)}: {_md(why)}" for new, old, why in diff.lineage]
        lines.append("")
    if diff.removed:
        lines += ["### Removed", ""]
        lines += [f"- {_code(entry.get('id'))}" for entry in diff.removed]
        lines.append("")
    if diff.changed:
        lines += ["### Changed", ""]
        for model_id, fields in diff.changed:
            lines += [f"#### {_code(model_id)}", "", "| field | base | head |", "|---|---|---|"]
            lines += [f"| {_md(c.field)} | {_md(c.base)} | {_md(c.head)} |" for c in fields]
            lines.append("")
    if diff.figures:
        lines += [
            "### Benchmarks and fidelity (latest run)",
            "",
            "| model | figure | base | head | change | |",
            "|---|---|---|---|---|---|",
        ]
        for f in diff.figures:
            flag = "🔻 regression" if f.regression else ""
            model = _code(f.model_id) + (f" (vs {_code(f.base_id)})" if f.base_id else "")
            change = "from 0" if f.change_pct is None else f"{f.change_pct:+.1f}%"
            lines.append(
                f"| {model} | {f.figure} | {f.base:.4g} | {f.head:.4g} | {change} | {flag} |"
            )
        lines.append("")
    if not (
        diff.added
        or diff.removed
        or diff.changed
        or diff.figures
        or diff.policy_changes
        or diff.schema_changes
        or diff.outside_changes
    ):
        lines += ["No model changes.", ""]
    return "\n".join(lines)


OUTSIDE_LIST_LIMIT = 30  # paths named in the review; the rest are counted


def _outside_changes(diff: RegistryDiff) -> list[str]:
    heading = (
        "### ⚠️ Changes outside the registry"
        if diff.sensitive_changes
        else ("### Changes outside the registry")
    )
    shown = [_code(p) + (" ⚠️" if p in diff.sensitive_changes else "") for p in diff.outside_changes]
    more = len(shown) - OUTSIDE_LIST_LIMIT
    listed = ", ".join(shown[:OUTSIDE_LIST_LIMIT]) + (f" and {more} more" if more > 0 else "")
    lines = [heading, "", f"changes outside the registry: {listed}", ""]
    if diff.sensitive_changes:
        lines += [
            f"{len(diff.sensitive_changes)} of them (⚠️) judge registry changes: workflows, "
            "recipes or schemas. This review ran the base branch's copies; the pull request's "
            "take effect only once merged, so a maintainer must review them.",
            "",
        ]
    return lines


def render_failed_review(
    base: str,
    head: str,
    message: str,
    hint: str | None,
    cause: str = "the registry could not be read",
) -> str:
    """The review when the registries could not even be compared (unreadable, not JSON, a bug in
    curator, ...): still posted, so that the pull request says why it fails."""
    lines = [
        f"## Registry review: {_code(base)} → {_code(head)}",
        "",
        f"**❌ cannot review** · {_md(cause)}",
        "",
        f"- {_md(message)}",
    ]
    if hint:
        lines.append(f"- hint: {_md(hint)}")
    return "\n".join([*lines, ""])


def _source_label(entry: dict[str, Any]) -> Any:
    """Where the weights come from: the Hub repo, or ``foundry-local:<id>`` for a catalog model."""
    catalog = _get(entry, "source", "catalog")
    if catalog is not None:
        return f"{catalog}:{_get(entry, 'source', 'id')}"
    return _get(entry, "source", "repo")


def _get(entry: dict[str, Any], *keys: str) -> Any:
    value: Any = entry
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


CELL_LIMIT = 300  # characters of one cell; the middle of a longer text is elided
_MARKUP = re.compile(r"([\\`*_\[\]<>&#!~()|])")


def _md(value: Any) -> str:
    """A table cell: untrusted text cannot break the table, start a line, or inject markup."""
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return _MARKUP.sub(r"\\\1", _visible(value))


def _code(value: Any) -> str:
    """Inline code for ids and paths: backslash escapes do not work inside backticks."""
    return "`" + _visible(value).replace("`", "'").replace("|", "¦") + "`"


def _visible(value: Any) -> str:
    """Shortened in the middle (the reason at the end of a message survives), then every
    invisible or control character spelled out."""
    text = elide(str(value), CELL_LIMIT)
    if text.isprintable():
        return text
    spelled = "".join(f"⟨U+{ord(c):04X}⟩" if _hidden(c) else c for c in text)
    return elide(spelled, CELL_LIMIT)  # 300 hidden characters would spell out to 3,000


def _hidden(char: str) -> bool:
    """Control, format, private-use, surrogate and unassigned code points, tab and newline too
    (rules.hidden_character with no exceptions: nothing in a cell may break a line)."""
    return unicodedata.category(char)[0] == "C" or char in LINE_SEPARATORS
