"""``curator bench ID...`` (= ``curator bench run ID...``) and ``curator bench compare OLD NEW``.

A group whose default command is ``run``: ``curator bench m1 m2`` reads as the issue spells it,
while ``compare`` stays a real subcommand with its own options and help. (A model literally named
``run`` or ``compare`` is benchmarked with ``curator bench run compare``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curator.cli._options import (
    cache_dir_option,
    json_option,
    prompts_option,
    registry_option,
    seed_option,
)
from curator.cli._output import Output
from curator.errors import UsageProblem
from curator.paths import registry_path

if TYPE_CHECKING:
    from curator.bench.job import BenchOutcome

ENDPOINT_ENV = "FOUNDRY_LOCAL_ENDPOINT"
DEFAULT_OUT = Path("bench-out")


class _RunByDefault(click.Group):
    """Arguments that do not start with a subcommand name go to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault)
def bench() -> None:
    """Benchmark models: `curator bench ID...` runs them, `curator bench compare` compares reports.

    `curator bench ID... [OPTIONS]` is short for `curator bench run ID... [OPTIONS]`.
    """


@bench.command("run")
@click.argument("ids", nargs=-1)
@prompts_option("prompts_file", help="Prompt set [default: the shipped smoke set].")
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Measured rounds over the prompt set.",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Warm-up rounds (not measured).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Answer cap per request (a prompt's own maxTokens caps it further).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="0 is greedy decoding.",
)
@seed_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Requests at once (endpoint mode).",
)
@click.option(
    "--endpoint",
    envvar=ENDPOINT_ENV,
    default=None,
    metavar="URL",
    help=f"OpenAI-compatible server to bench [default: ${ENDPOINT_ENV}; "
    "without either, Foundry Local in this process].",
)
@click.option(
    "--in-process",
    is_flag=True,
    help=f"Use Foundry Local in this process even if ${ENDPOINT_ENV} is set.",
)
@click.option(
    "--server-pid",
    type=int,
    default=None,
    help="PID of the endpoint's server, to sample its peak memory.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where the reports go.",
)
@click.option(
    "--record", is_flag=True, help="Append each model's summary to its registry entry (benchmarks)."
)
@registry_option
@cache_dir_option
@click.option(
    "--annotate",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.csv",
    help="Write a template for manual 1-5 quality scores.",
)
@click.option(
    "--scores",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.csv",
    help="Read filled manual scores into the report.",
)
@json_option
def run(
    ids: tuple[str, ...],
    prompts_file: Path | None,
    rounds: int,
    warmup: int,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    concurrency: int,
    endpoint: str | None,
    in_process: bool,
    server_pid: int | None,
    out_dir: Path,
    record: bool,
    registry: Path | None,
    cache_dir: Path | None,
    annotate: Path | None,
    scores: Path | None,
    as_json: bool,
) -> None:
    """Benchmark models: TTFT, latency, decode tokens/s, memory, quality (exit 1 if any failed)."""
    from curator.bench.job import BenchRequest, model_ids_from, run_job  # start-up: kept off --help
    from curator.bench.reports import report_document  # start-up: kept off --help
    from curator.bench.types import BenchSettings  # start-up: kept off --help

    source = click.get_current_context().get_parameter_source("endpoint")
    if in_process and endpoint and source is click.core.ParameterSource.COMMANDLINE:
        raise UsageProblem("--in-process and --endpoint contradict each other", hint="pick one")
    request = BenchRequest(
        model_ids=model_ids_from(ids),
        settings=BenchSettings(rounds, warmup, max_tokens, temperature, seed, concurrency),
        out_dir=out_dir,
        prompts_file=prompts_file,
        endpoint=None if in_process else (endpoint or None),
        server_pid=server_pid,
        cache_dir=cache_dir,
        record_into=registry_path(registry) if record else None,
        annotate=annotate,
        scores=scores,
    )
    out = Output(as_json)
    outcome = run_job(request, progress=out.progress)
    if as_json:
        out.json(
            {
                "files": outcome.files,
                "annotate": str(annotate) if annotate else None,
                "recorded": [
                    {"id": r.model_id, "outcome": r.outcome, "detail": r.detail}
                    for r in outcome.recorded
                ],
                "report": report_document(outcome.run),
            }
        )
    else:
        _render_run(out, outcome, annotate)
    if not outcome.ok:
        raise SystemExit(1)


def _render_run(out: Output, outcome: BenchOutcome, annotate: Path | None) -> None:
    result, files, recorded = outcome.run, outcome.files, outcome.recorded
    rows = []
    for m in result.models:
        f = m.figures
        rows.append(
            (
                m.model_id,
                m.status,
                None if m.load_ms is None else round(m.load_ms),
                None if m.peak_memory_mb is None else round(m.peak_memory_mb),
                _p(f.ttft_ms, "p50") if f else None,
                _p(f.ttft_ms, "p95") if f else None,
                _p(f.latency_ms, "p50") if f else None,
                _p(f.decode_tokens_per_sec, "mean") if f else None,
                _p(f.completion_tokens, "mean") if f else None,
                None if m.quality is None or m.quality.score is None else round(m.quality.score, 2),
            )
        )
    out.table(
        rows,
        (
            "model",
            "status",
            "load ms",
            "peak MiB",
            "ttft p50",
            "ttft p95",
            "latency p50",
            "decode tok/s",
            "out tokens",
            "quality",
        ),
    )
    for m in result.models:
        if m.tokens_estimated:
            out.warn(f"{m.model_id}: the endpoint gave no usage; token counts are estimated")
        if m.bursty_requests:
            out.warn(
                f"{m.model_id}: tokens arrived in bursts in {m.bursty_requests} request(s): "
                "its decode tok/s measures the stream's delivery, not generation"
            )
        if m.error:
            out.text(f"{m.model_id}: FAILED: {m.error}")
        if m.throughput is not None and m.throughput.concurrency > 1:
            t = m.throughput
            out.text(
                f"{m.model_id}: concurrency {t.concurrency}: {t.requests_per_sec:.2f} req/s, "
                f"{t.output_tokens_per_sec:.1f} output tok/s"
            )
    out.text(f"report: {files.json}")
    out.text(f"requests: {files.csv}")
    out.text(f"markdown: {files.markdown}")
    if files.chart:
        out.text(f"chart: {files.chart}")
    if annotate:
        rows_written = outcome.annotated_rows
        out.text(f"annotation template: {annotate} ({rows_written} rows; score 1-5, then --scores)")
    for r in recorded:
        out.text(f"record {r.model_id}: {r.outcome} ({r.detail})")


def _p(stat: Any, name: str) -> float | None:
    return None if stat is None else round(float(getattr(stat, name)), 1)


@bench.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="PCT",
    help="Flag a figure that worsens by more than this percentage.",
)
@json_option
def compare(old: Path, new: Path, threshold: float, as_json: bool) -> None:
    """Compare two bench reports: deltas per model and figure; exit 1 on a regression."""
    from curator.bench.compare import (  # start-up: kept off --help
        compare_reports,
        comparison_document,
    )
    from curator.bench.reports import load_report  # start-up: kept off --help

    comparison = compare_reports(load_report(old), load_report(new), threshold)
    out = Output(as_json)
    if as_json:
        out.json({"old": str(old), "new": str(new), **comparison_document(comparison)})
    else:
        rows: list[tuple[Any, ...]] = []
        for m in comparison.models:
            if not m.deltas:
                rows.append(
                    (
                        m.model_id,
                        m.note or "",
                        None,
                        None,
                        None,
                        "REGRESSION" if m.regression else "",
                    )
                )
            for d in m.deltas:
                pct = None if d.delta_pct is None else f"{d.delta_pct:+.1f}%"
                rows.append(
                    (m.model_id, d.figure, d.old, d.new, pct, "REGRESSION" if d.regression else "")
                )
        out.table(rows, ("model", "figure", "old", "new", "delta", "flag"))
        for note in comparison.notes:
            out.warn(note)
        verdict = (
            f"{len(comparison.regressed_models)} model(s) regressed past {threshold:g}%: "
            + ", ".join(comparison.regressed_models)
            if comparison.regressed_models
            else f"no regression past {threshold:g}%"
        )
        out.text(verdict)
    if comparison.regressed_models:
        raise SystemExit(1)
