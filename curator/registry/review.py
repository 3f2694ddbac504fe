"""The Markdown a reviewer reads in a pull request (GitHub job summary or a comment)."""

from __future__ import annotations

import re
from typing import Any

from curator.registry.diff import BENCH_FIGURES, RegistryDiff, figure, latest_benchmark


def render_review(diff: RegistryDiff) -> str:
    lines = [f"## Registry review: {_code(diff.base_label)} → {_code(diff.head_label)}", ""]
    verdict = "❌ policy violations" if diff.violations else "✅ passes policy"
    lines.append(
        f"**{verdict}** · {len(diff.added)} added · {len(diff.removed)} removed · "
        f"{len(diff.changed)} changed · {len(diff.regressions)} regression(s) past "
        f"{diff.threshold_pct:g}%"
    )
    lines.append("")
    if not diff.base_exists:
        lines += [
            f"Base {_code(diff.base_label)} has no registry file: every model counts as added.",
            "",
        ]
    if diff.policy_changes:
        lines += ["### ⚠️ Policy changed", "", "| setting | base | head |", "|---|---|---|"]
        lines += [f"| {c.field} | {_md(c.base)} | {_md(c.head)} |" for c in diff.policy_changes]
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
                f"| {_md(_get(entry, 'build', 'recipe'))} | {_md(_get(entry, 'source', 'repo'))} "
                f"| {_md(decode)} |"
            )
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
            lines.append(
                f"| {_code(f.model_id)} | {f.figure} | {f.base:.4g} | {f.head:.4g} "
                f"| {f.change_pct:+.1f}% | {flag} |"
            )
        lines.append("")
    if not (diff.added or diff.removed or diff.changed or diff.policy_changes):
        lines += ["No model changes.", ""]
    return "\n".join(lines)


def _get(entry: dict[str, Any], *keys: str) -> Any:
    value: Any = entry
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_MARKUP = re.compile(r"([\\`*_\[\]<>&#!~()|])")


def _md(value: Any) -> str:
    """A table cell: untrusted text cannot break the table, start a line, or inject markup."""
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = _CONTROL.sub(" ", str(value))[:200]
    return _MARKUP.sub(r"\\\1", text)


def _code(value: Any) -> str:
    """Inline code for ids and paths: backslash escapes do not work inside backticks."""
    text = _CONTROL.sub(" ", str(value)).replace("`", "'").replace("|", "¦")
    return f"`{text[:200]}`"
