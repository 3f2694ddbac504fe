"""What a benchmark run is asked to do and what it reports: settings, figures, one model's result,
the run. The runner (curator.bench.runner) fills them; a model benched in its own process
(curator.bench.isolated) sends its result back as one; reports and records read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from curator.bench.backends import Backend
from curator.bench.machine import Machine
from curator.bench.measure import RequestMeasurement
from curator.bench.quality import Quality
from curator.bench.stats import Stat
from curator.errors import UsageProblem
from curator.prompts import PromptSet


@dataclass(frozen=True)
class BenchSettings:
    rounds: int = 3
    warmup: int = 1
    max_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = None
    concurrency: int = 1

    def check(self, backend: Backend) -> None:
        if self.rounds < 1:
            raise UsageProblem("--rounds must be at least 1", hint="e.g. --rounds 3")
        if self.warmup < 0:
            raise UsageProblem("--warmup cannot be negative", hint="e.g. --warmup 1")
        if self.max_tokens < 1:
            raise UsageProblem("--max-tokens must be at least 1", hint="e.g. --max-tokens 128")
        if self.concurrency < 1:
            raise UsageProblem("--concurrency must be at least 1", hint="e.g. --concurrency 4")
        if self.concurrency > 1 and not backend.concurrent:
            raise UsageProblem(
                "--concurrency above 1 needs an endpoint",
                hint="serve the models (curator serve) and pass --endpoint URL",
            )


@dataclass(frozen=True)
class Figures:
    """Aggregates of the successful measured requests of one model (or one prompt)."""

    requests: int
    failed: int
    ttft_ms: Stat | None
    latency_ms: Stat | None
    decode_tokens_per_sec: Stat | None
    inter_token_ms: Stat | None
    prompt_tokens: Stat | None
    completion_tokens: Stat | None


@dataclass(frozen=True)
class PromptResult:
    prompt_id: str
    max_tokens: int  # what each request of this prompt asked for
    figures: Figures
    aspect_coverage: float | None


@dataclass(frozen=True)
class Throughput:
    concurrency: int
    wall_s: float
    requests_per_sec: float
    output_tokens_per_sec: float


@dataclass(frozen=True)
class ModelResult:
    model_id: str
    status: str  # "ok" or "failed"
    error: str | None
    load_ms: float | None
    peak_memory_mb: float | None
    tokens_estimated: bool
    bursty_requests: int
    figures: Figures | None
    prompts: tuple[PromptResult, ...]
    throughput: Throughput | None
    quality: Quality | None
    requests: tuple[RequestMeasurement, ...]


@dataclass(frozen=True)
class BenchRun:
    started_at: str
    finished_at: str
    backend: str
    endpoint: str | None
    settings: BenchSettings
    machine: Machine
    prompt_set: PromptSet
    models: tuple[ModelResult, ...]
    notes: tuple[str, ...] = field(default=())


def failed_result(model_id: str, error: str) -> ModelResult:
    """A model that produced no measurement."""
    return ModelResult(
        model_id=model_id,
        status="failed",
        error=error,
        load_ms=None,
        peak_memory_mb=None,
        tokens_estimated=False,
        bursty_requests=0,
        figures=None,
        prompts=(),
        throughput=None,
        quality=None,
        requests=(),
    )
