"""The pull-request-ready Markdown that ``curator onboard`` leaves in its output directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curator.onboard.pipeline import OnboardRequest, StepOutcome


def render_summary(
    entry: dict[str, Any],
    steps: Sequence[StepOutcome],
    request: OnboardRequest,
    bench_report: Path | None,
    answers: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> str:
    source, build = entry.get("source", {}), entry.get("build", {})
    lines = [
        f"# Onboard `{entry['id']}`",
        "",
        f"{entry.get('displayName', entry['id'])}, compiled from `{request.source}` with the "
        f"`{request.recipe}` recipe.",
        "",
        *(f"**Note:** {note}.\n" for note in notes),
        "| fact | value |",
        "|---|---|",
        f"| source | `{source.get('repo')}` @ `{source.get('revision') or 'local'}` |",
        f"| architecture | {source.get('architecture')} |",
        f"| parameters | {_count(source.get('parameters'))} |",
        f"| license | {entry.get('license')} |",
        f"| capabilities | {', '.join(entry.get('capabilities', []))} |",
        f"| compiled size | {entry.get('fileSizeMb')} MB |",
        f"| min RAM | {entry.get('minRamGb')} GB |",
        f"| context length | {entry.get('contextLength')} |",
        f"| runtime | {entry['runtime']['deviceType']} / {entry['runtime']['executionProvider']} |",
        "",
        "## Provenance",
        "",
        f"- recipe `{build.get('recipe')}` (sha256 `{build.get('recipeSha256', '')[:16]}…`)",
        f"- tools: {', '.join(f'{k} {v}' for k, v in sorted(build.get('tools', {}).items()))}",
        f"- {len(build.get('artifacts', []))} artifacts, each with its sha256 in the registry entry",
        "",
    ]
    lines += _answer_lines(answers)
    lines += _benchmark_lines(entry, bench_report, request.out_dir)
    lines += _fidelity_lines(entry)
    lines += ["## Steps", "", "| step | status | seconds | detail |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.detail} |" for s in steps]
    lines += [
        "",
        "## Next steps",
        "",
        f"1. `curator registry diff git:origin/main --registry {request.registry}` to review.",
        f"2. Commit `{request.registry}` on a branch and open a pull request; the registry-review "
        "workflow validates it and posts the diff.",
        "3. Keep this summary and the bench report with the pull request if useful; the compiled "
        "model stays in the Foundry cache (never commit model files).",
        "",
    ]
    return "\n".join(lines)


def _answer_lines(answers: Sequence[tuple[str, str]]) -> list[str]:
    if not answers:
        return []
    lines = [
        "## Smoke answers",
        "",
        "Every answer holds its prompt's expected words (`curator smoke`).",
        "",
        "| prompt | answer |",
        "|---|---|",
    ]
    for prompt_id, answer in answers:
        flat = " ".join(answer.split())
        flat = flat[:160] + ("…" if len(flat) > 160 else "")  # cut before escaping
        for raw, escaped in (("\\", "\\\\"), ("|", "\\|"), ("`", "\\`"), ("<", "&lt;")):
            flat = flat.replace(raw, escaped)
        lines.append(f"| {prompt_id} | {flat} |")
    return [*lines, ""]


def _benchmark_lines(entry: dict[str, Any], bench_report: Path | None, out_dir: Path) -> list[str]:
    runs = entry.get("benchmarks") or []
    if not runs:
        return []
    latest = max(runs, key=lambda r: r["date"])
    machine = latest["machine"]
    lines = [
        "## Benchmark",
        "",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['ramGb']} GB, {machine['os']} "
        f"({latest['date']})",
        "",
        "| figure | mean | p95 |",
        "|---|---|---|",
    ]
    for label, key in (
        ("decode tokens/s", "decodeTokensPerSec"),
        ("time to first token, ms", "ttftMs"),
        ("latency, ms", "latencyMs"),
    ):
        lines.append(f"| {label} | {latest[key]['mean']:.1f} | {latest[key]['p95']:.1f} |")
    lines.append(f"| peak memory, MB | {latest['peakMemoryMb']:.0f} | |")
    lines.append("")
    if bench_report is not None:
        from curator.bench.reports import CHART_NAME

        chart = bench_report.parent / CHART_NAME
        if chart.exists():
            lines += [f"![TTFT and tokens/s]({os.path.relpath(chart, out_dir)})", ""]
        lines += [f"Full report: `{os.path.relpath(bench_report, out_dir)}`", ""]
    return lines


def _fidelity_lines(entry: dict[str, Any]) -> list[str]:
    fidelity = entry.get("fidelity")
    if not fidelity:
        return []
    return [
        "## Fidelity against the fp32 reference",
        "",
        f"Reference `{fidelity['reference']}`, {fidelity['tokens']} tokens: mean KL "
        f"{fidelity['klMean']:.4f} (p99 {fidelity['klP99']:.4f}), top-1 agreement "
        f"{fidelity['top1Agreement']:.1%}, perplexity {fidelity['perplexity']:.2f} against "
        f"{fidelity['referencePerplexity']:.2f}.",
        "",
    ]


def _count(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)
