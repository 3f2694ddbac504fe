"""The pull-request-ready Markdown that ``curator onboard`` leaves in its output directory.

It is written for a pull request: every path in it is relative (to the repository's top when the
output lies in a git checkout, else to the working directory), its figures are the bench report's
own (TTFT and latency medians with p95, decode tokens/s mean and median, peak memory in MiB), the
fidelity result is judged against the registry's policy, and its review steps are commands that
work as written from the repository's top against the team registry.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curator.onboard.pipeline import OnboardRequest, StepOutcome

TEAM_REGISTRY = Path("registry") / "models.json"


@dataclass(frozen=True)
class Place:
    """Where the summary's paths are relative to: the git checkout's top, or else the working
    directory; ``base`` is the revision a pull request compares with (None outside git)."""

    root: Path
    in_git: bool
    base: str | None

    def rel(self, path: Path | str) -> str:
        """``path`` relative to the root (``~/...`` under the home directory when outside it)."""
        absolute = Path(path).expanduser().absolute()
        try:
            return absolute.relative_to(self.root).as_posix() or "."
        except ValueError:
            pass
        home = Path.home()
        if absolute.is_relative_to(home):
            return "~/" + absolute.relative_to(home).as_posix()
        return Path(os.path.relpath(absolute, self.root)).as_posix()

    def scrub(self, text: str) -> str:
        """``text`` with the root's and the home directory's absolute prefixes taken out."""
        text = text.replace(f"{self.root}{os.sep}", "").replace(str(self.root), ".")
        return text.replace(f"{Path.home()}{os.sep}", "~/")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def locate(out_dir: Path) -> Place:
    """The git checkout ``out_dir`` is in (and the revision to review against), else the cwd."""
    probe = out_dir.absolute()
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    top = _git(["rev-parse", "--show-toplevel"], probe)
    if top is None:
        return Place(Path.cwd().absolute(), False, None)
    root = Path(top)
    for revision in ("origin/main", "origin/HEAD", "main", "HEAD"):
        if _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], root):
            return Place(root, True, revision)
    return Place(root, True, None)


def _ignored(place: Place, path: Path) -> bool:
    if not place.in_git:
        return False
    done = _git(["check-ignore", "--no-index", "-q", "--", place.rel(path)], place.root)
    return done is not None


def review_steps(place: Place, registry: Path, model_id: str, out_dir: Path) -> list[str]:
    """Numbered next steps: review the change against the team registry, get the entry into it,
    open the pull request. Commands run as written from ``place.root``."""
    team = place.root / TEAM_REGISTRY
    registry = registry.expanduser().absolute()
    shown = place.rel(registry)
    is_team = registry == team.absolute()
    steps: list[str] = []
    if place.base is None:
        steps.append(f"`curator registry validate --registry {shown}` checks the entry.")
    elif is_team:
        steps.append(
            f"`curator registry diff git:{place.base}` reviews the change as the pull request's "
            "review will."
        )
    else:
        steps.append(
            f"`curator registry diff git:{place.base}:{TEAM_REGISTRY.as_posix()} {shown}` reviews "
            f"this entry against the team registry as the pull request's review will."
        )
    if is_team:
        steps.append(
            f"Commit `{TEAM_REGISTRY.as_posix()}` on a branch and open a pull request; the "
            "registry-review workflow validates it and posts the diff."
        )
    else:
        fragment = place.rel(out_dir / "registry-fragment.json")
        why = " (it is ignored by git)" if _ignored(place, registry) else ""
        steps.append(
            f"`{shown}` is not the team registry{why}: copy the entry into it with "
            f"`curator registry fragment {model_id} --registry {shown} --output {fragment}` "
            f"and `curator registry merge {fragment} --registry {TEAM_REGISTRY.as_posix()}`, "
            f"then commit `{TEAM_REGISTRY.as_posix()}` on a branch and open a pull request."
        )
    steps.append(
        "Keep this summary and the bench report with the pull request if useful; the compiled "
        "model stays in the Foundry cache (never commit model files)."
    )
    return [f"{n}. {text}" for n, text in enumerate(steps, 1)]


def render_summary(
    entry: dict[str, Any],
    steps: Sequence[StepOutcome],
    request: OnboardRequest,
    bench_report: Path | None,
    answers: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    place: Place | None = None,
) -> str:
    place = place or locate(request.out_dir)
    source, build = entry.get("source", {}), entry.get("build", {})
    shown_source = place.rel(request.source) if _is_path(request.source) else request.source
    size = entry.get("fileSizeMb")
    lines = [
        f"# Onboard `{entry['id']}`",
        "",
        f"{entry.get('displayName', entry['id'])}, compiled from `{shown_source}` with the "
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
        f"| compiled size | {_mib(size)} |",
        f"| min RAM | {entry.get('minRamGb')} GiB |",
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
    lines += _fidelity_lines(entry, request.registry, place)
    lines += ["## Steps", "", "| step | status | seconds | detail |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {_cell(s.detail)} |" for s in steps]
    lines += ["", "## Next steps", "", "Run these from the repository's top directory:", ""]
    lines += review_steps(place, request.registry, str(entry["id"]), request.out_dir)
    lines.append("")
    return place.scrub("\n".join(lines))


def _is_path(source: str) -> bool:
    return Path(source).expanduser().exists()


def _mib(value: Any) -> str:
    return f"{value:,.1f} MiB" if isinstance(value, (int, float)) else "-"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _answer_lines(answers: Sequence[tuple[str, str]]) -> list[str]:
    if not answers:
        return []
    lines = [
        "## Smoke answers",
        "",
        "Every answer holds its prompt's expected words and none is degenerate (`curator smoke`).",
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


def _figure(stat: Any, key: str) -> str:
    value = stat.get(key) if isinstance(stat, dict) else None
    return f"{value:,.1f}" if isinstance(value, (int, float)) else "-"


def _benchmark_lines(entry: dict[str, Any], bench_report: Path | None, out_dir: Path) -> list[str]:
    from curator.bench.reports import CHART_NAME, MARKDOWN_NAME  # start-up: loads curator.bench

    runs = entry.get("benchmarks") or []
    if not runs:
        return []
    latest = max(runs, key=lambda r: r["date"])
    machine = latest["machine"]
    lines = [
        "## Benchmark",
        "",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['ramGb']} GiB RAM, {machine['os']} "
        f"({latest['date']}; {latest.get('rounds', '?')} round(s) of the prompt set, the model "
        "alone in its own process)",
        "",
        "| figure | median (p50) | p95 | mean |",
        "|---|---|---|---|",
    ]
    for label, key in (
        ("time to first token, ms", "ttftMs"),
        ("latency, ms", "latencyMs"),
        ("decode tokens/s", "decodeTokensPerSec"),
    ):
        stat = latest.get(key)
        lines.append(
            f"| {label} | {_figure(stat, 'p50')} | {_figure(stat, 'p95')} | {_figure(stat, 'mean')} |"
        )
    lines.append(f"| peak memory, MiB | {latest['peakMemoryMb']:,.0f} | | |")
    lines.append("")
    if bench_report is not None:
        chart = bench_report.parent / CHART_NAME
        if chart.exists():
            lines += [f"![TTFT and tokens/s]({_link(chart, out_dir)})", ""]
        markdown = bench_report.parent / MARKDOWN_NAME
        if markdown.exists():
            lines += [f"Full bench report: [{MARKDOWN_NAME}]({_link(markdown, out_dir)})", ""]
    return lines


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path.absolute(), out_dir.absolute())).as_posix()


def _fidelity_lines(entry: dict[str, Any], registry: Path, place: Place) -> list[str]:
    fidelity = entry.get("fidelity")
    if not fidelity:
        return []
    reference = str(fidelity["reference"])
    if Path(reference).is_absolute():
        reference = place.rel(reference)
    lines = [
        "## Fidelity against the fp32 reference",
        "",
        f"Reference `{reference}`, {fidelity['tokens']} tokens: mean KL "
        f"{fidelity['klMean']:.4f} (p99 {fidelity['klP99']:.4f}), top-1 agreement "
        f"{fidelity['top1Agreement']:.1%}, perplexity {fidelity['perplexity']:.2f} against "
        f"{fidelity['referencePerplexity']:.2f}.",
        "",
        _policy_verdict(fidelity, registry, place),
        "",
    ]
    return lines


def _policy_verdict(fidelity: dict[str, Any], registry: Path, place: Place) -> str:
    """Whether the figures meet the registry's fidelity limits, with the limits named."""
    from curator.fidelity.api import policy_thresholds  # start-up: loads curator.fidelity

    limits = policy_thresholds(registry)
    where = f"`{place.rel(registry)}`"
    if limits.max_kl is None and limits.min_top1 is None:
        return f"The policy of {where} sets no fidelity limits (maxKlDivergence, minTop1Agreement)."
    checks: list[tuple[bool, str]] = []
    if limits.max_kl is not None:
        kl = float(fidelity["klMean"])
        checks.append((kl <= limits.max_kl, f"mean KL {kl:.4f} ≤ {limits.max_kl:g}"))
    if limits.min_top1 is not None:
        top1 = float(fidelity["top1Agreement"])
        checks.append((top1 >= limits.min_top1, f"top-1 {top1:.1%} ≥ {limits.min_top1:.0%}"))
    failed = [text for ok, text in checks if not ok]
    if failed:
        return f"**Fails** the policy of {where}: not {'; not '.join(failed)}."
    return f"**Passes** the policy of {where}: {'; '.join(text for _ok, text in checks)}."


def _count(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)
