"""``curator smoke``: load a registered model and run a fixed prompt set through it.

A prompt fails on a runtime error, an empty answer, a missing usage count, its time limit, an
answer that lacks any of the prompt's ``expected`` words (issue 11: an int4 build answering "Le
Grand Jestam" to "What is the capital of France?" passed before), or a degenerate answer
(:mod:`curator.smoke.degeneracy`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from curator import foundry
from curator.compile.chat_templates import is_completion_only
from curator.errors import CuratorError
from curator.foundry import FoundryRuntime, LoadedModel, Usage
from curator.names import load_registered, resolve_registered
from curator.progress import Progress, say
from curator.prompts import Prompt, default_prompt_set_path, load_prompt_set
from curator.smoke.degeneracy import degeneracy


@dataclass(frozen=True)
class PromptOutcome:
    """One prompt's run: ``error`` is None when it passed."""

    id: str
    ok: bool
    error: str | None
    answer: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    first_token_ms: float | None
    missing: tuple[str, ...] = ()  # expected words the answer lacks


@dataclass(frozen=True)
class SmokeReport:
    model_id: str
    prompt_set: Path
    prompt_set_sha256: str
    load_ms: float
    outcomes: tuple[PromptOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.outcomes if not o.ok)


def run_smoke(
    model_id: str,
    *,
    cache_dir: Path,
    prompts: Path | None = None,
    time_limit_sec: float | None = None,
    progress: Progress | None = None,
    runtime: FoundryRuntime | None = None,
) -> SmokeReport:
    """Run every prompt of ``prompts`` (default: the shipped smoke set) on ``model_id``.

    A model that cannot load raises FoundryError / NotFound; prompt failures are reported in the
    outcomes (the run goes on to the next prompt). ``runtime`` is the Foundry runtime to load
    the model from (default: this process's, for ``cache_dir``).
    """
    rt = runtime or foundry.runtime(cache_dir)
    model_id = resolve_registered(rt, model_id)  # an id, an id without version or an alias
    if prompts is None:  # a completion-only model continues text: its own default set
        registered = rt.get(model_id)
        if registered is not None and is_completion_only(registered.path):
            prompts = default_prompt_set_path("completion")
    prompt_set = load_prompt_set(prompts)
    start = time.perf_counter()
    say(progress, f"smoke: loading {model_id}")
    model = load_registered(rt, model_id)  # a miss says "did you mean" the closest name
    load_ms = (time.perf_counter() - start) * 1000
    try:
        done: list[PromptOutcome] = []
        for number, prompt in enumerate(prompt_set.prompts, 1):
            say(progress, f"smoke: prompt {number}/{len(prompt_set.prompts)} {prompt.id}")
            done.append(_run_prompt(model, prompt, time_limit_sec or prompt.time_limit_sec))
        outcomes = tuple(done)
    finally:
        model.unload()
    return SmokeReport(
        model_id=model_id,
        prompt_set=prompt_set.path,
        prompt_set_sha256=prompt_set.sha256,
        load_ms=round(load_ms, 1),
        outcomes=outcomes,
    )


def _run_prompt(model: LoadedModel, prompt: Prompt, limit: float) -> PromptOutcome:
    parts: list[str] = []
    usage: Usage | None = None
    first_ms: float | None = None
    error: str | None = None
    start = time.perf_counter()
    try:
        stream = model.chat_stream(prompt.chat_messages(), max_tokens=prompt.max_tokens)
        with contextlib.closing(stream):
            for chunk in stream:
                if chunk.text and first_ms is None:
                    first_ms = (time.perf_counter() - start) * 1000
                parts.append(chunk.text)
                if chunk.usage is not None:
                    usage = chunk.usage
                if time.perf_counter() - start > limit:
                    error = f"over the time limit of {limit:g} s"
                    break
    except CuratorError as exc:
        error = exc.message
    seconds = time.perf_counter() - start
    answer = "".join(parts)
    if error is None and usage is None:
        error = "the runtime reported no token usage"
    if error is None and not answer.strip():
        error = "empty answer"
    if error is None and seconds > limit:
        error = f"over the time limit of {limit:g} s ({seconds:.1f} s)"
    missing = prompt.missing(answer) if error is None else ()
    if missing:
        listed = ", ".join(repr(word) for word in missing)
        error = f"the answer lacks the expected {listed}: {_excerpt(answer)!r}"
    if error is None:
        degenerate = degeneracy(answer, prompt)
        if degenerate is not None:
            error = f"degenerate answer: {degenerate}: {_excerpt(answer)!r}"
    return PromptOutcome(
        id=prompt.id,
        ok=error is None,
        error=error,
        answer=answer,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        seconds=round(seconds, 3),
        first_token_ms=round(first_ms, 1) if first_ms is not None else None,
        missing=missing,
    )


def _excerpt(answer: str, limit: int = 80) -> str:
    """The answer on one line, cut to ``limit`` characters (error messages quote it)."""
    flat = " ".join(answer.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"
