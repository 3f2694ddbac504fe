"""``curator smoke``: load a registered model and run a fixed prompt set through it.

A prompt fails on a runtime error, an empty answer, a missing usage count, its time limit, or an
answer that lacks any of the prompt's ``expected`` words: a garbled answer is a failure (issue 11:
an int4 build answering "Le Grand Jestam" to "What is the capital of France?" passed before).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from curator.errors import CuratorError
from curator.foundry import LoadedModel, Usage
from curator.prompts import Prompt, load_prompt_set


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
) -> SmokeReport:
    """Run every prompt of ``prompts`` (default: the shipped smoke set) on ``model_id``.

    A model that cannot load raises FoundryError / NotFound; prompt failures are reported in the
    outcomes (the run goes on to the next prompt).
    """
    from curator.foundry import runtime

    rt = runtime(cache_dir)
    if prompts is None:  # a completion-only model continues text: its own default set
        from curator.compile.chat_templates import is_completion_only
        from curator.prompts import default_prompt_set_path

        registered = rt.get(model_id)
        if registered is not None and is_completion_only(registered.path):
            prompts = default_prompt_set_path("completion")
    prompt_set = load_prompt_set(prompts)
    start = time.perf_counter()
    model = rt.load(model_id)
    load_ms = (time.perf_counter() - start) * 1000
    try:
        outcomes = tuple(
            _run_prompt(model, prompt, time_limit_sec or prompt.time_limit_sec)
            for prompt in prompt_set.prompts
        )
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
