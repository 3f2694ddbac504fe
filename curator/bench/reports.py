"""Bench reports: JSON (checked against schemas/bench-report.schema.json), CSV with one row per
request, Markdown with a comparison table, and a PNG chart of TTFT and decode tokens/s per model.

matplotlib is imported only to draw the chart, with the Agg backend (no display needed).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.bench.measure import RequestMeasurement
from curator.bench.stats import PERCENTILE_METHOD, Stat
from curator.bench.types import BenchRun, Figures, ModelResult
from curator.errors import BenchError
from curator.jsonio import read_json, write_json_atomic, write_text_atomic
from curator.schemas import schema_problems

SCHEMA = "bench-report"
JSON_NAME = "bench-report.json"
CSV_NAME = "bench-requests.csv"
MARKDOWN_NAME = "bench-report.md"
CHART_NAME = "bench-chart.png"

CSV_COLUMNS = (
    "model",
    "model_status",
    "prompt_id",
    "round",
    "status",
    "error",
    "ttft_ms",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "tokens_estimated",
    "decode_tokens_per_sec",
    "inter_token_ms",
    "chunks",
)


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    csv: Path
    markdown: Path
    chart: Path | None  # None when no model produced figures to draw


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _stat(stat: Stat | None) -> dict[str, Any] | None:
    if stat is None:
        return None
    return {
        "n": stat.n,
        "mean": _num(stat.mean),
        "p50": _num(stat.p50),
        "p95": _num(stat.p95),
        "p99": _num(stat.p99),
        "min": _num(stat.min),
        "max": _num(stat.max),
        "stdev": _num(stat.stdev),
    }


def _figures(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "requests": figures.requests,
        "failed": figures.failed,
        "ttftMs": _stat(figures.ttft_ms),
        "latencyMs": _stat(figures.latency_ms),
        "decodeTokensPerSec": _stat(figures.decode_tokens_per_sec),
        "interTokenMs": _stat(figures.inter_token_ms),
        "promptTokens": _stat(figures.prompt_tokens),
        "completionTokens": _stat(figures.completion_tokens),
    }


def _request(r: RequestMeasurement) -> dict[str, Any]:
    return {
        "promptId": r.prompt_id,
        "round": r.round,
        "status": r.status,
        "error": r.error,
        "ttftMs": _num(r.ttft_ms),
        "latencyMs": _num(r.latency_ms),
        "promptTokens": r.prompt_tokens,
        "completionTokens": r.completion_tokens,
        "tokensEstimated": r.tokens_estimated,
        "decodeTokensPerSec": _num(r.decode_tokens_per_sec),
        "interTokenMs": _num(r.inter_token_ms),
        "chunks": r.chunks,
        "bursty": r.bursty,
        "text": r.text,
    }


def _model(m: ModelResult) -> dict[str, Any]:
    quality = None
    if m.quality is not None:
        q = m.quality
        quality = {
            "aspectCoverage": _num(q.aspect_coverage, 4),
            "promptsWithAspects": q.prompts_with_aspects,
            "manualMean": _num(q.manual_mean, 3),
            "manualByCriterion": {k: round(v, 3) for k, v in q.manual_by_criterion},
            "manualRows": q.manual_rows,
            "staleManualRows": q.stale_manual_rows,
            "score": _num(q.score, 4),
            "source": q.source,
        }
    throughput = None
    if m.throughput is not None:
        t = m.throughput
        throughput = {
            "concurrency": t.concurrency,
            "wallS": _num(t.wall_s, 4),
            "requestsPerSec": _num(t.requests_per_sec, 4),
            "outputTokensPerSec": _num(t.output_tokens_per_sec),
        }
    return {
        "id": m.model_id,
        "status": m.status,
        "error": m.error,
        "loadTimeMs": _num(m.load_ms, 1),
        "peakMemoryMb": _num(m.peak_memory_mb, 1),
        "tokensEstimated": m.tokens_estimated,
        "burstyRequests": m.bursty_requests,
        "summary": _figures(m.figures),
        "throughput": throughput,
        "quality": quality,
        "prompts": [
            {
                "id": p.prompt_id,
                "maxTokens": p.max_tokens,
                "summary": _figures(p.figures),
                "aspectCoverage": p.aspect_coverage,
            }
            for p in m.prompts
        ],
        "requests": [_request(r) for r in m.requests],
    }


def report_document(run: BenchRun) -> dict[str, Any]:
    """The JSON report of ``run`` (camelCase; times in ms, memory in MiB)."""
    s = run.settings
    machine = run.machine
    return {
        "schemaVersion": 1,
        "kind": "curator-bench-report",
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "backend": run.backend,
        "endpoint": run.endpoint,
        "settings": {
            "rounds": s.rounds,
            "warmup": s.warmup,
            "maxTokens": s.max_tokens,
            "temperature": s.temperature,
            "seed": s.seed,
            "concurrency": s.concurrency,
        },
        "machine": {
            **machine.registry_record(),
            "arch": machine.arch,
            "python": machine.python,
            "packages": dict(machine.packages),
        },
        "promptSet": {
            "path": str(run.prompt_set.path),
            "sha256": run.prompt_set.sha256,
            "ids": [p.id for p in run.prompt_set.prompts],
        },
        "statistics": {"percentiles": PERCENTILE_METHOD, "stdev": "sample (n - 1)"},
        "notes": list(run.notes),
        "models": [_model(m) for m in run.models],
    }


def report_problems(document: Any) -> list[str]:
    return [str(p) for p in schema_problems(document, SCHEMA)]


def load_report(path: Path) -> dict[str, Any]:
    """Read a report.json and check it against the schema (BenchError naming the first problem)."""
    document = read_json(path, "bench report")
    problems = report_problems(document)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(
            f"{path} is not a curator bench report: {problems[0]}{more}",
            hint="pass a bench-report.json written by curator bench --out DIR",
        )
    assert isinstance(document, dict)
    return document


def write_reports(run: BenchRun, out_dir: Path) -> ReportFiles:
    """Write JSON, CSV, Markdown and (if anything can be drawn) the PNG chart into ``out_dir``."""
    document = report_document(run)
    problems = report_problems(document)
    if problems:  # a bug in this module, not the user's doing: say exactly what
        raise BenchError(
            f"the bench report does not match its schema: {problems[0]}",
            hint="report this as a curator bug (CURATOR_DEBUG=1 shows more)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / JSON_NAME
    write_json_atomic(json_path, document)
    csv_path = out_dir / CSV_NAME
    write_text_atomic(csv_path, render_csv(run))
    chart_path = out_dir / CHART_NAME
    drawn = write_chart(document, chart_path)
    md_path = out_dir / MARKDOWN_NAME
    write_text_atomic(md_path, render_markdown(document, CHART_NAME if drawn else None))
    return ReportFiles(json_path, csv_path, md_path, chart_path if drawn else None)


def render_csv(run: BenchRun) -> str:
    """One row per measured request (warm-up excluded); answers are in the JSON report."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for model in run.models:
        for r in model.requests:
            writer.writerow(
                [
                    r.model_id,
                    model.status,
                    r.prompt_id,
                    r.round,
                    r.status,
                    r.error or "",
                    _cell(r.ttft_ms),
                    _cell(r.latency_ms),
                    _cell(r.prompt_tokens),
                    _cell(r.completion_tokens),
                    "yes" if r.tokens_estimated else "no",
                    _cell(r.decode_tokens_per_sec),
                    _cell(r.inter_token_ms),
                    r.chunks,
                ]
            )
    return buffer.getvalue()


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(document: dict[str, Any], chart_name: str | None) -> str:
    """A comparison table of the models, a per-prompt table, and the chart."""
    s = document["settings"]
    m = document["machine"]
    lines = [
        "# curator bench",
        "",
        f"{document['finishedAt']} · backend {document['backend']}"
        + (f" ({document['endpoint']})" if document["endpoint"] else "")
        + f" · {s['rounds']} round(s) after {s['warmup']} warm-up · max tokens {s['maxTokens']}"
        + " (a prompt's own maxTokens caps it)"
        + f" · temperature {s['temperature']} · concurrency {s['concurrency']}",
        "",
        f"Machine `{m['fingerprint']}`: {m['cpu']}, {m['cores']} cores, {m['ramGb']} GiB RAM, "
        f"{m['os']} ({m['arch']}), Python {m['python']}. Prompt set sha256 "
        f"`{document['promptSet']['sha256'][:16]}…` ({len(document['promptSet']['ids'])} prompts).",
        "",
        "| Model | Status | Load ms | Peak MiB | TTFT p50 / p95 ms | Latency p50 ms "
        "| Decode tok/s mean (p50) | ITL ms | Output tokens | Quality | Req/s | Out tok/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in document["models"]:
        summary = model["summary"]
        estimated = " (est.)" if model["tokensEstimated"] else ""
        status = model["status"] if model["status"] == "ok" else f"**failed**: {model['error']}"
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{model['id']}`",
                    _md(status),
                    _fmt(model["loadTimeMs"], 0),
                    _fmt(model["peakMemoryMb"], 0),
                    f"{_fmt(_get(summary, 'ttftMs', 'p50'))} / "
                    f"{_fmt(_get(summary, 'ttftMs', 'p95'))}",
                    _fmt(_get(summary, "latencyMs", "p50")),
                    f"{_fmt(_get(summary, 'decodeTokensPerSec', 'mean'))} "
                    f"({_fmt(_get(summary, 'decodeTokensPerSec', 'p50'))}){estimated}",
                    _fmt(_get(summary, "interTokenMs", "mean"), 2),
                    _fmt(_get(summary, "completionTokens", "mean")) + estimated,
                    _fmt(_get(model, "quality", "score"), 2),
                    _fmt(_get(model, "throughput", "requestsPerSec"), 2),
                    _fmt(_get(model, "throughput", "outputTokensPerSec")),
                ]
            )
            + " |"
        )
    for model in document["models"]:
        if model["burstyRequests"]:
            lines += [
                "",
                f"Note: `{model['id']}`: in {model['burstyRequests']} request(s) the tokens arrived "
                "in bursts (most less than 0.1 ms apart): the model generates faster than the "
                "runtime's stream delivers, so their decode rate measures delivery, not generation; "
                "the decode tok/s figures leave them out unless every request was bursty.",
            ]
    lines += [
        "",
        "Times are per request from one streamed request; decode tok/s counts the tokens after "
        "the first. Percentiles interpolate linearly between closest ranks. Quality is the "
        "manual 1-5 mean mapped to 0-1 where scored, else the coverage of expected aspects.",
        "",
        "## Per prompt",
        "",
        "| Model | Prompt | n | Max tokens | TTFT p50 ms | Latency p50 ms | Decode tok/s mean "
        "| Output tokens | Aspect coverage |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in document["models"]:
        for prompt in model["prompts"]:
            summary = prompt["summary"]
            lines.append(
                f"| `{model['id']}` | {_md(prompt['id'])} | {summary['requests']} "
                f"| {prompt['maxTokens']} "
                f"| {_fmt(_get(summary, 'ttftMs', 'p50'))} "
                f"| {_fmt(_get(summary, 'latencyMs', 'p50'))} "
                f"| {_fmt(_get(summary, 'decodeTokensPerSec', 'mean'))} "
                f"| {_fmt(_get(summary, 'completionTokens', 'mean'))} "
                f"| {_fmt(prompt['aspectCoverage'], 2)} |"
            )
    for note in document.get("notes", []):
        lines += ["", f"Note: {note}."]
    if chart_name:
        lines += ["", f"![TTFT and decode tokens/s per model]({chart_name})"]
    return "\n".join(lines) + "\n"


def write_chart(document: dict[str, Any], path: Path) -> bool:
    """Bars of TTFT p50 (p95 marked) and decode tok/s mean per model; False: nothing to draw."""
    figure = chart_figure(document)
    if figure is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp_name, format="png")
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return True


def chart_figure(document: dict[str, Any]) -> Any:
    """The chart as a matplotlib Figure (None: nothing to draw, or no matplotlib)."""
    rows = [
        (
            str(m["id"]),
            _get(m, "summary", "ttftMs", "p50"),
            _get(m, "summary", "ttftMs", "p95"),
            _get(m, "summary", "decodeTokensPerSec", "mean"),
        )
        for m in document["models"]
        if m["status"] == "ok" and m["summary"] is not None
    ]
    rows = [r for r in rows if r[1] is not None or r[3] is not None]
    if not rows:
        return None
    try:
        import matplotlib
    except ImportError:  # the light install: reports without the chart
        return None

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # Horizontal bars: model ids (often 40 characters) read on the y axis, one row per model,
    # values written at the bar ends, short titles, and the legend below both panels.
    rows = rows[::-1]  # the first model on top
    names = [r[0] for r in rows]
    positions = list(range(len(rows)))
    height = 1.9 + 0.55 * len(rows)
    figure = Figure(figsize=(11.0, height), dpi=100, layout="constrained")
    ttft_axes, decode_axes = figure.subplots(1, 2, sharey=True)
    ttft = [r[1] or 0.0 for r in rows]
    p95 = [r[2] for r in rows]
    decode = [r[3] or 0.0 for r in rows]
    ttft_axes.barh(positions, ttft, color="#4C72B0", height=0.6)
    for y, (p50, high) in enumerate(zip(ttft, p95, strict=True)):
        if high is not None:
            ttft_axes.plot([p50, high], [y, y], color="black", linewidth=1, zorder=3)
            ttft_axes.plot([high], [y], color="black", marker="|", markersize=14, zorder=3)
        end = max(p50, high or 0.0)
        label = f"{p50:,.0f}" + (f"  (p95 {high:,.0f})" if high is not None else "")
        ttft_axes.annotate(
            label, (end, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8
        )
    decode_axes.barh(positions, decode, color="#55A868", height=0.6)
    for y, value in enumerate(decode):
        decode_axes.annotate(
            f"{value:,.1f}", (value, y), xytext=(4, 0), textcoords="offset points",
            va="center", fontsize=8,
        )  # fmt: skip
    ttft_axes.set_title("Time to first token, ms\n(lower is better)", fontsize="medium")
    decode_axes.set_title("Decode, tokens/s\n(higher is better)", fontsize="medium")
    widest_ttft = max([*ttft, *(h for h in p95 if h is not None)], default=0.0)
    for axes, widest in ((ttft_axes, widest_ttft), (decode_axes, max(decode, default=0.0))):
        axes.set_xlim(0, (widest or 1.0) * 1.45)  # room for the values at the bar ends
        axes.grid(axis="x", alpha=0.3)
        axes.set_yticks(positions)
        axes.set_ylim(-0.6, len(rows) - 0.4)
    ttft_axes.set_yticklabels(names, fontsize="small")
    decode_axes.tick_params(axis="y", left=False)
    figure.legend(
        handles=[
            Patch(color="#4C72B0", label="TTFT median (p50)"),
            Line2D([], [], color="black", marker="|", markersize=10, label="TTFT p95"),
            Patch(color="#55A868", label="decode tokens/s, mean"),
        ],
        loc="outside lower center",
        ncol=3,
        fontsize="small",
        frameon=False,
    )
    return figure
