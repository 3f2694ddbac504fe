"""A benchmark run: for each model, load (cold load time), warm up (excluded), then measure
``rounds`` x prompts streamed requests while sampling the serving process's peak RSS.

Each request is independent (no chat history), so every round is the same work. A model that fails
to load, or whose requests fail, is reported ``failed`` with its error and the run goes on.
With ``concurrency`` > 1 (endpoint backends only) the measured requests are sent by that many
workers at once; request throughput and aggregate output tokens/s are over the measured phase's
wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from curator.bench.backends import Backend, FoundryBackend
from curator.bench.isolated import ALLOCATOR_NOTE, bench_model_in_child
from curator.bench.machine import describe_machine, thread_note
from curator.bench.measure import (
    RequestMeasurement,
    TokenCounter,
    describe_error,
    measure_stream,
)
from curator.bench.memory import PeakRssSampler
from curator.bench.quality import ManualScore, summarize_quality
from curator.bench.stats import summarize
from curator.bench.types import (
    BenchRun,
    Figures,
    ModelResult,
    PromptResult,
    Throughput,
)
from curator.bench.types import BenchSettings as BenchSettings  # re-exported: onboard.pipeline
from curator.cache.modeldir import find_model_dir
from curator.errors import BenchError
from curator.progress import Progress
from curator.prompts import Prompt, PromptSet


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_bench(
    model_ids: Sequence[str],
    prompt_set: PromptSet,
    backend: Backend,
    settings: BenchSettings,
    *,
    endpoint: str | None = None,
    manual_scores: Mapping[tuple[str, str], ManualScore] | None = None,
    progress: Progress | None = None,
) -> BenchRun:
    """Benchmark each model in turn; never raises for a model's failure."""
    settings.check(backend)
    say = progress or (lambda _message: None)
    started = utc_now()
    machine = describe_machine()
    results = []
    isolated = _isolated_cache(backend)
    for model_id in model_ids:
        scores = [s for (m, _p), s in (manual_scores or {}).items() if m == model_id]
        if isolated is not None:
            results.append(
                bench_model_in_child(
                    bench_model, model_id, prompt_set, isolated, settings, scores, say
                )
            )
        else:
            results.append(bench_model(model_id, prompt_set, backend, settings, scores, say))
    notes: list[str] = []
    cache_dir = getattr(backend, "cache_dir", None)
    if backend.kind == "in-process" and isinstance(cache_dir, Path):
        for model_id in model_ids:
            notes.append(thread_note(model_id, find_model_dir(cache_dir, model_id), machine.cores))
    if isolated is not None:
        notes.append(ALLOCATOR_NOTE)
    if backend.kind == "endpoint":
        notes.append("endpoint mode: no load step to time (loadTimeMs is null)")
        if backend.serving_pid() is None:
            notes.append("endpoint mode without --server-pid: peak memory is unknown (null)")
        else:
            notes.append(
                "endpoint mode: peak memory is the whole server process's, which may hold "
                "other models loaded earlier"
            )
    return BenchRun(
        notes=tuple(notes),
        started_at=started,
        finished_at=utc_now(),
        backend=backend.kind,
        endpoint=endpoint,
        settings=settings,
        machine=machine,
        prompt_set=prompt_set,
        models=tuple(results),
    )


def _isolated_cache(backend: Backend) -> Path | None:
    """The cache of a Foundry backend in this process, whose models are benched each in its own
    child process (curator.bench.isolated); None for other backends (run here)."""
    return backend.cache_dir if isinstance(backend, FoundryBackend) else None


def bench_model(
    model_id: str,
    prompt_set: PromptSet,
    backend: Backend,
    settings: BenchSettings,
    manual: Sequence[ManualScore],
    say: Progress,
) -> ModelResult:
    pid = backend.serving_pid()
    sampler = PeakRssSampler(pid) if pid is not None else None
    load_ms: float | None = None
    requests: tuple[RequestMeasurement, ...] = ()
    wall = 0.0
    error: str | None = None
    stack = contextlib.ExitStack()
    try:
        if sampler is not None:
            stack.enter_context(sampler)
        say(f"{model_id}: loading")
        load_ms = backend.load(model_id)
        counter = backend.token_counter(model_id)
        for warm in range(settings.warmup):
            say(f"{model_id}: warm-up round {warm + 1}/{settings.warmup}")
            for prompt in prompt_set.prompts:
                warm_result = _one(model_id, prompt, -1 - warm, backend, settings, counter)
                if warm_result.status != "ok":
                    raise BenchError(f"warm-up failed on prompt {prompt.id}: {warm_result.error}")
        count = len(prompt_set.prompts)
        say(f"{model_id}: measuring {settings.rounds} round(s) x {count} prompt(s)")
        requests, wall = _measured(model_id, prompt_set, backend, settings, counter)
    except Exception as exc:  # one model's failure must not stop the others
        error = describe_error(exc)
    finally:
        try:
            backend.unload(model_id)
        except Exception as exc:
            error = error or f"unload failed: {describe_error(exc)}"
        stack.close()
    failed = [r for r in requests if r.status != "ok"]
    if error is None and failed:
        error = f"{len(failed)} of {len(requests)} requests failed; first: {failed[0].error}"
    if error:
        say(f"{model_id}: FAILED: {error}")
    return _result(model_id, prompt_set, settings, error, load_ms, sampler, requests, wall, manual)


def _one(
    model_id: str,
    prompt: Prompt,
    round_index: int,
    backend: Backend,
    settings: BenchSettings,
    counter: TokenCounter | None,
) -> RequestMeasurement:
    max_tokens = request_max_tokens(settings, prompt)
    return measure_stream(
        model_id,
        prompt.id,
        round_index,
        prompt.messages,
        lambda: backend.stream(
            model_id,
            prompt.messages,
            max_tokens=max_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
        ),
        counter,
    )


def request_max_tokens(settings: BenchSettings, prompt: Prompt) -> int:
    """``--max-tokens``, capped by the prompt's own ``maxTokens`` (the prompt set's cap)."""
    return min(settings.max_tokens, prompt.max_tokens)


def _measured(
    model_id: str,
    prompt_set: PromptSet,
    backend: Backend,
    settings: BenchSettings,
    counter: TokenCounter | None,
) -> tuple[tuple[RequestMeasurement, ...], float]:
    work = [(r, p) for r in range(settings.rounds) for p in prompt_set.prompts]
    start = time.perf_counter()
    if settings.concurrency == 1:
        done = [_one(model_id, p, r, backend, settings, counter) for r, p in work]
    else:
        with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="curator-bench") as pool:
            futures = [
                pool.submit(_one, model_id, p, r, backend, settings, counter) for r, p in work
            ]
            done = [f.result() for f in futures]
    return tuple(done), time.perf_counter() - start


def figures(requests: Sequence[RequestMeasurement]) -> Figures:
    """Aggregates of the successful requests. Decode speed leaves out bursty requests (their
    rate is the stream's delivery, not generation) unless every request was bursty."""
    ok = [r for r in requests if r.status == "ok"]
    steady = [r for r in ok if not r.bursty] or ok
    return Figures(
        requests=len(requests),
        failed=len(requests) - len(ok),
        ttft_ms=summarize(r.ttft_ms for r in ok),
        latency_ms=summarize(r.latency_ms for r in ok),
        decode_tokens_per_sec=summarize(r.decode_tokens_per_sec for r in steady),
        inter_token_ms=summarize(r.inter_token_ms for r in ok),
        prompt_tokens=summarize(r.prompt_tokens for r in ok),
        completion_tokens=summarize(r.completion_tokens for r in ok),
    )


def _result(
    model_id: str,
    prompt_set: PromptSet,
    settings: BenchSettings,
    error: str | None,
    load_ms: float | None,
    sampler: PeakRssSampler | None,
    requests: tuple[RequestMeasurement, ...],
    wall: float,
    manual: Sequence[ManualScore],
) -> ModelResult:
    prompts = []
    answers: dict[str, str] = {}
    for prompt in prompt_set.prompts:
        mine = [r for r in requests if r.prompt_id == prompt.id]
        ok = [r for r in mine if r.status == "ok"]
        if ok:
            answers[prompt.id] = ok[-1].text
        covs = [c for c in (prompt.coverage(r.text) for r in ok) if c is not None]
        prompts.append(
            PromptResult(
                prompt.id,
                request_max_tokens(settings, prompt),
                figures(mine),
                sum(covs) / len(covs) if covs else None,
            )
        )
    ok_requests = [r for r in requests if r.status == "ok"]
    throughput = None
    if requests and wall > 0:
        throughput = Throughput(
            concurrency=settings.concurrency,
            wall_s=wall,
            requests_per_sec=len(ok_requests) / wall,
            output_tokens_per_sec=sum(r.completion_tokens or 0 for r in ok_requests) / wall,
        )
    quality = None
    if requests:
        quality = summarize_quality(
            {p.prompt_id: p.aspect_coverage for p in prompts}, manual, answers
        )
    return ModelResult(
        model_id=model_id,
        status="failed" if error else "ok",
        error=error,
        load_ms=load_ms,
        peak_memory_mb=sampler.peak_mb if sampler is not None else None,
        tokens_estimated=any(r.tokens_estimated for r in ok_requests),
        bursty_requests=sum(r.bursty for r in ok_requests),
        figures=figures(requests) if requests else None,
        prompts=tuple(prompts) if requests else (),
        throughput=throughput,
        quality=quality,
        requests=requests,
    )
