"""One streamed request, measured: time to first token, latency, token counts and decode speed.

Timing uses ``time.perf_counter``. The clock starts just before the first chunk is asked for
(the backends start the request lazily, on that first ``next``), so connection set-up and prompt
processing are inside the time to first token. Decode speed counts only the tokens after the first:
``(completion_tokens - 1) / (time of the last text chunk - time of the first)``; inter-token
latency is the inverse, in ms. A request whose text chunks mostly arrive less than 0.1 ms apart is
marked ``bursty``: the runtime generated them faster than its stream delivered them (a toy model),
so its decode speed measures delivery rather than generation. Token counts come from the runtime's usage; where a backend gives
none they are counted with the model's ``tokenizer.json`` and marked ``estimated``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from curator.errors import CuratorError
from curator.prompts import Message

BURST_GAP_S = 0.0001


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the runtime for one request."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class StreamChunk:
    """One piece of a streamed answer; the last one may carry the runtime's usage."""

    text: str
    usage: Usage | None = None


class TokenCounter(Protocol):
    """Counts tokens where a runtime reports none (the figure is then marked estimated)."""

    def count_text(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Message]) -> int: ...


class TokenizerFileCounter:
    """Counts with a model's ``tokenizer.json`` through the ``tokenizers`` library, loaded lazily.

    Prompt counts encode the messages' contents only (no chat template), so they underestimate by
    the template's few tokens; completion counts re-encode the answer, which may differ from what
    the model emitted. Both are estimates and reported as such.
    """

    def __init__(self, tokenizer_json: Path) -> None:
        self.path = tokenizer_json

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.path))

    def count_text(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return sum(self.count_text(m.content) for m in messages)


@dataclass(frozen=True)
class RequestMeasurement:
    """Everything measured about one request. Times in ms; None where it cannot be known."""

    model_id: str
    prompt_id: str
    round: int
    status: str  # "ok" or "failed"
    error: str | None
    ttft_ms: float | None
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_estimated: bool
    decode_tokens_per_sec: float | None
    inter_token_ms: float | None
    chunks: int
    text: str
    started_at: float  # perf_counter at the start, to place concurrent requests on one timeline
    bursty: bool = False  # text arrived in bursts: decode speed reflects delivery, not generation


def measure_stream(
    model_id: str,
    prompt_id: str,
    round_index: int,
    messages: Sequence[Message],
    open_stream: Callable[[], Iterator[StreamChunk]],
    counter: TokenCounter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RequestMeasurement:
    """Run one streamed request and measure it; an exception becomes a failed measurement."""
    start = clock()
    first: float | None = None
    last: float | None = None
    pieces: list[str] = []
    usage: Usage | None = None
    chunks = 0
    text_chunks = 0
    burst_gaps = 0
    error: str | None = None
    try:
        for chunk in open_stream():
            now = clock()
            chunks += 1
            if chunk.text:
                pieces.append(chunk.text)
                if first is None:
                    first = now
                elif now - (last or now) < BURST_GAP_S:
                    burst_gaps += 1
                last = now
                text_chunks += 1
            if chunk.usage is not None:
                usage = chunk.usage
    except Exception as exc:  # a failing request is a result, not a crash of the run
        error = describe_error(exc)
    end = clock()
    text = "".join(pieces)
    prompt_tokens, completion_tokens, estimated = _token_counts(usage, text, messages, counter)
    decode, inter_token = _decode_rate(first, last, completion_tokens)
    return RequestMeasurement(
        model_id=model_id,
        prompt_id=prompt_id,
        round=round_index,
        status="failed" if error else "ok",
        error=error,
        ttft_ms=(first - start) * 1000.0 if first is not None else None,
        latency_ms=(end - start) * 1000.0,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        tokens_estimated=estimated,
        decode_tokens_per_sec=decode,
        inter_token_ms=inter_token,
        chunks=chunks,
        text=text,
        started_at=start,
        bursty=text_chunks >= 3 and burst_gaps * 2 >= text_chunks - 1,
    )


def describe_error(exc: BaseException) -> str:
    """One line: a CuratorError's own message, else the exception's type and message."""
    if isinstance(exc, CuratorError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".strip()


def _token_counts(
    usage: Usage | None, text: str, messages: Sequence[Message], counter: TokenCounter | None
) -> tuple[int | None, int | None, bool]:
    if usage is not None:
        return usage.prompt_tokens, usage.completion_tokens, False
    if counter is None:
        return None, None, True
    return counter.count_messages(messages), counter.count_text(text), True


def _decode_rate(
    first: float | None, last: float | None, completion_tokens: int | None
) -> tuple[float | None, float | None]:
    """Tokens/s and ms/token over the tokens after the first (None when fewer than two)."""
    if first is None or last is None or completion_tokens is None or completion_tokens < 2:
        return None, None
    span = last - first
    if span <= 0:
        return None, None
    after_first = completion_tokens - 1
    return after_first / span, span * 1000.0 / after_first
