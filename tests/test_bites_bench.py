"""Guards: curator.bench.measure, curator.bench.stats

Tests that bite (issue 17), the bench figures: each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curator.bench.measure import (
    BURST_GAP_S,
    StreamChunk,
    TokenizerFileCounter,
    Usage,
    describe_error,
    measure_stream,
)
from curator.bench.stats import percentile, summarize
from curator.errors import UsageProblem
from curator.prompts import Message


def test_percentile_bounds_and_interpolation() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 10) == pytest.approx(13.0)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match=r"^percentile of an empty sample$"):
        percentile([], 50)
    for q in (-0.001, 100.001):
        with pytest.raises(ValueError, match=rf"^percentile {q} outside \[0, 100\]$"):
            percentile(values, q)


def test_summary_spread_of_two_values() -> None:
    stat = summarize([1.0, 3.0])
    assert stat is not None
    assert (stat.n, stat.mean, stat.stdev, stat.p95) == (2, 2.0, pytest.approx(2**0.5), 2.9)


class Clock:
    def __init__(self, start: float = 50.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def run_script(
    steps: list[tuple[float, StreamChunk]], counter: Any = None, start: float = 50.0
) -> Any:  # RequestMeasurement
    clock = Clock(start)

    def stream() -> Iterator[StreamChunk]:
        for gap, chunk in steps:
            clock.now += gap
            yield chunk

    return measure_stream("m", "p", 2, (Message("user", "hi there"),), stream, counter, clock)


def test_decode_speed_leaves_out_the_first_token() -> None:
    """Bug: decode tok/s counting the first token (prompt processing counted as decoding)."""
    steps = [(0.5, StreamChunk("a")), (0.1, StreamChunk("b")), (0.1, StreamChunk("c"))]
    steps.append((0.0, StreamChunk("", Usage(4, 3))))
    result = run_script(steps)
    assert (result.model_id, result.prompt_id, result.round) == ("m", "p", 2)
    assert result.decode_tokens_per_sec == pytest.approx(2 / 0.2)
    assert result.inter_token_ms == pytest.approx(100.0)
    assert result.ttft_ms == pytest.approx(500.0) and result.latency_ms == pytest.approx(700.0)
    assert result.started_at == 50.0 and result.chunks == 4


def test_two_tokens_give_a_decode_speed() -> None:
    result = run_script([(0.2, StreamChunk("a")), (0.05, StreamChunk("b", Usage(3, 2)))])
    assert result.decode_tokens_per_sec == pytest.approx(1 / 0.05)


@pytest.mark.parametrize("tokens", [None, 0, 1])
def test_no_decode_speed_from_fewer_than_two_tokens(tokens: int | None) -> None:
    usage = Usage(3, tokens) if tokens is not None else None
    steps = [(0.2, StreamChunk("a")), (0.1, StreamChunk("b", usage))]
    result = run_script(steps)
    assert result.decode_tokens_per_sec is None and result.inter_token_ms is None


def test_no_decode_speed_when_all_text_came_at_once() -> None:
    result = run_script([(0.2, StreamChunk("abc", Usage(3, 3)))])
    assert result.decode_tokens_per_sec is None and result.ttft_ms == pytest.approx(200.0)


def test_no_text_means_no_first_token() -> None:
    result = run_script([(0.2, StreamChunk("", Usage(3, 0)))])
    assert result.ttft_ms is None and result.text == "" and result.status == "ok"


def test_the_last_usage_reported_wins() -> None:
    steps = [(0.1, StreamChunk("a", Usage(1, 1))), (0.1, StreamChunk("b", Usage(7, 9)))]
    result = run_script(steps)
    assert (result.prompt_tokens, result.completion_tokens) == (7, 9)


def test_a_burst_is_marked_only_when_most_gaps_are_tiny() -> None:
    tiny = BURST_GAP_S / 2
    # A gap of exactly BURST_GAP_S is no burst: 1e-4 -> 2e-4 is an exact difference in binary.
    at_gap = [(BURST_GAP_S, StreamChunk(t)) for t in "abc"]
    assert not run_script(at_gap, start=0.0).bursty
    one_of_three = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))]
    one_of_three += [(0.01, StreamChunk("c")), (0.01, StreamChunk("d"))]
    assert not run_script(one_of_three).bursty  # one tiny gap of three: not half
    half = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b")), (0.01, StreamChunk("c"))]
    assert run_script(half).bursty  # one tiny gap of two: half the gaps
    two = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))]
    assert not run_script(two).bursty  # fewer than three text chunks are never a burst
    mostly_slow = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))] + [
        (0.01, StreamChunk("c")) for _ in range(3)
    ]
    assert not run_script(mostly_slow).bursty


def test_describe_error_uses_a_curator_errors_own_message() -> None:
    assert describe_error(UsageProblem("bad thing", hint="do x")) == "bad thing"
    assert describe_error(ValueError("")) == "ValueError:"
    assert describe_error(KeyError("k")) == "KeyError: 'k'"


def test_counts_are_estimated_with_the_tokenizer_when_the_runtime_gives_none(
    tmp_path: Path,
) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hi": 1, "there": 2, "one": 3, "two": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    counter = TokenizerFileCounter(tmp_path / "tokenizer.json")
    result = run_script([(0.1, StreamChunk("one ")), (0.1, StreamChunk("two x"))], counter)
    assert result.tokens_estimated
    assert (result.prompt_tokens, result.completion_tokens) == (2, 3)
    no_counter = run_script([(0.1, StreamChunk("one"))])
    assert no_counter.tokens_estimated and no_counter.prompt_tokens is None
