"""One ``curator bench`` invocation: pick the backend, run, write the reports, then optionally
write the annotation template and record into the registry. The CLI calls :func:`run_job` once."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from curator.bench.backends import Backend, EndpointBackend, FoundryBackend
from curator.bench.quality import TemplateRow, read_scores, write_template
from curator.bench.record import RecordOutcome, record_run
from curator.bench.reports import ReportFiles, write_reports
from curator.bench.runner import run_bench
from curator.bench.types import BenchRun, BenchSettings
from curator.errors import BenchError, UsageProblem
from curator.paths import foundry_cache_dir
from curator.progress import Progress
from curator.prompts import load_prompt_set

BENCH_MODELS_ENV = "BENCH_MODELS"


@dataclass(frozen=True)
class BenchRequest:
    model_ids: tuple[str, ...]
    settings: BenchSettings
    out_dir: Path
    prompts_file: Path | None = None
    endpoint: str | None = None  # None: Foundry Local in this process
    server_pid: int | None = None
    cache_dir: Path | None = None
    record_into: Path | None = None  # a registry file, with --record
    annotate: Path | None = None
    scores: Path | None = None


@dataclass(frozen=True)
class BenchOutcome:
    run: BenchRun
    files: ReportFiles
    annotated_rows: int | None
    recorded: tuple[RecordOutcome, ...]

    @property
    def ok(self) -> bool:
        """Every model measured, and (with --record) every summary recorded."""
        return all(m.status == "ok" for m in self.run.models) and all(
            r.outcome == "recorded" for r in self.recorded
        )


def model_ids_from(ids: Sequence[str]) -> tuple[str, ...]:
    """The given ids, else ``$BENCH_MODELS`` (comma-separated); duplicates dropped, order kept."""
    chosen = list(ids) or [i.strip() for i in os.environ.get(BENCH_MODELS_ENV, "").split(",")]
    chosen = [i for i in chosen if i]
    if not chosen:
        raise UsageProblem(
            "no model to benchmark",
            hint=f"curator bench ID... (or set {BENCH_MODELS_ENV}=id1,id2); "
            "curator cache ls lists ids",
        )
    return tuple(dict.fromkeys(chosen))


def open_backend(request: BenchRequest) -> Backend:
    cache = foundry_cache_dir(request.cache_dir)
    if request.endpoint:
        backend = EndpointBackend(request.endpoint, server_pid=request.server_pid, cache_dir=cache)
        try:
            backend.check_reachable()
        except BaseException:
            backend.close()
            raise
        return backend
    if request.server_pid is not None:
        raise UsageProblem("--server-pid needs --endpoint", hint="in process, bench samples itself")
    return FoundryBackend(cache)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".curator-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BenchError(
            f"cannot write reports to {out_dir}: {exc.strerror or exc}",
            hint="pass --out DIR with a directory you can write",
        ) from None


def run_job(request: BenchRequest, progress: Progress | None = None) -> BenchOutcome:
    prompt_set = load_prompt_set(request.prompts_file)
    manual = read_scores(request.scores) if request.scores else None
    _check_writable(request.out_dir)  # before the run, not after minutes of measuring
    backend = open_backend(request)
    try:
        run = run_bench(
            request.model_ids,
            prompt_set,
            backend,
            request.settings,
            endpoint=getattr(backend, "base_url", None),
            manual_scores=manual,
            progress=progress,
        )
    finally:
        backend.close()
    files = write_reports(run, request.out_dir)
    annotated = write_annotation(run, request.annotate) if request.annotate else None
    recorded = record_run(run, request.record_into) if request.record_into else ()
    return BenchOutcome(run, files, annotated, recorded)


def write_annotation(run: BenchRun, path: Path) -> int:
    """The manual-scoring template: one row per model and prompt, with the last measured answer."""
    rows = []
    for model in run.models:
        for prompt in run.prompt_set.prompts:
            answers = [r for r in model.requests if r.prompt_id == prompt.id and r.status == "ok"]
            if answers:
                answer = answers[-1].text
                rows.append(
                    TemplateRow(
                        model.model_id, prompt.id, prompt.expected, prompt.coverage(answer), answer
                    )
                )
    return write_template(path, rows)
