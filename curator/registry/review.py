"""The Markdown a reviewer reads in a pull request (GitHub job summary or a comment)."""

from __future__ import annotations

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


def _md(value: Any) -> str:
    """A table cell: untrusted text cannot break the table or inject markup."""
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    for char in "<>`*_[]":
        text = text.replace(char, "\\" + char)
    return text[:200]


def _code(value: Any) -> str:
    """Inline code for ids and paths: backslash escapes do not work inside backticks."""
    text = str(value).replace("`", "'").replace("|", "¦").replace("\n", " ")
    return f"`{text[:200]}`"
