"""Guards: curator.bench.measure, curator.bench.quality, curator.bench.runner, curator.bench.stats,
  curator.bench.types, curator.errors, curator.prompts

Aggregates, one-request measurement and manual scores on known inputs."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from curator.bench.measure import RequestMeasurement, StreamChunk, Usage, measure_stream
from curator.bench.quality import RUBRIC, read_scores
from curator.bench.stats import percentile, summarize
from curator.errors import BenchError
from curator.prompts import Message


def test_summary_of_known_values() -> None:
    stat = summarize([4.0, 1.0, 3.0, 2.0, None])
    assert stat is not None
    assert stat.n == 4
    assert stat.mean == 2.5
    assert stat.p50 == 2.5
    assert stat.p95 == pytest.approx(3.85)  # rank 0.95 * 3 = 2.85: 3 + 0.85 * (4 - 3)
    assert stat.p99 == pytest.approx(3.97)
    assert (stat.min, stat.max) == (1.0, 4.0)
    assert stat.stdev == pytest.approx(math.sqrt(5 / 3))  # sample stdev


def test_single_value_and_empty_sample() -> None:
    one = summarize([7.0])
    assert one is not None
    assert (one.mean, one.p50, one.p95, one.p99, one.min, one.max, one.stdev) == (
        7.0,
        7.0,
        7.0,
        7.0,
        7.0,
        7.0,
        0.0,
    )
    assert summarize([]) is None
    assert summarize([None, None]) is None


def test_percentiles_agree_with_numpy_linear_method() -> None:
    import numpy

    rng = random.Random(8)
    for size in (2, 3, 10, 101):
        values = [rng.uniform(0, 1000) for _ in range(size)]
        stat = summarize(values)
        assert stat is not None
        for q, got in ((50, stat.p50), (95, stat.p95), (99, stat.p99)):
            assert got == pytest.approx(float(numpy.percentile(values, q)), rel=1e-12)
        assert stat.stdev == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert stat.mean == pytest.approx(statistics.fmean(values), rel=1e-12)


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


class Clock:
    """Time advances only when a chunk is produced, by the gap scripted for it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scripted(clock: Clock, steps: list[tuple[float, StreamChunk]]) -> Iterator[StreamChunk]:
    for gap, chunk in steps:
        clock.now += gap
        yield chunk


MESSAGES = (Message("user", "hi"),)


def test_measure_stream_times_first_token_and_decode() -> None:
    clock = Clock()
    steps = [
        (0.200, StreamChunk("a")),  # first token after 200 ms
        (0.010, StreamChunk("b")),
        (0.010, StreamChunk("")),  # empty pieces are not tokens in time
        (0.030, StreamChunk("c")),  # last text at +250 ms
        (0.005, StreamChunk("", Usage(prompt_tokens=9, completion_tokens=5))),
    ]
    result = measure_stream("m", "p", 0, MESSAGES, lambda: scripted(clock, steps), clock=clock)
    assert result.status == "ok" and result.error is None
    assert result.text == "abc"
    assert result.ttft_ms == pytest.approx(200.0)
    assert result.latency_ms == pytest.approx(255.0)
    assert (result.prompt_tokens, result.completion_tokens) == (9, 5)
    assert not result.tokens_estimated
    # 4 tokens after the first, over the 50 ms from the first text to the last.
    assert result.decode_tokens_per_sec == pytest.approx(4 / 0.050)
    assert result.inter_token_ms == pytest.approx(12.5)
    assert result.chunks == 5
    assert not result.bursty


def test_measure_stream_marks_tokens_delivered_in_a_burst() -> None:
    clock = Clock()
    steps = [(0.050, StreamChunk("a"))] + [(0.00001, StreamChunk("b")) for _ in range(9)]
    steps.append((0.0, StreamChunk("", Usage(prompt_tokens=3, completion_tokens=10))))
    result = measure_stream("m", "p", 0, MESSAGES, lambda: scripted(clock, steps), clock=clock)
    assert result.bursty
    assert result.decode_tokens_per_sec == pytest.approx(9 / 0.00009)


class WordCounter:
    def count_text(self, text: str) -> int:
        return len(text.split())

    def count_messages(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) for m in messages)


def test_measure_stream_estimates_counts_without_usage_and_keeps_errors() -> None:
    clock = Clock()
    steps = [(0.1, StreamChunk("one ")), (0.1, StreamChunk("two three"))]
    result = measure_stream(
        "m", "p", 1, MESSAGES, lambda: scripted(clock, steps), WordCounter(), clock=clock
    )
    assert result.tokens_estimated
    assert (result.prompt_tokens, result.completion_tokens) == (1, 3)
    assert result.decode_tokens_per_sec == pytest.approx(2 / 0.1)

    def broken() -> Iterator[StreamChunk]:
        yield StreamChunk("x")
        raise RuntimeError("connection dropped")

    failed = measure_stream("m", "p", 0, MESSAGES, broken)
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: connection dropped"
    assert failed.text == "x"


def test_read_scores_checks_values(tmp_path: Path) -> None:
    header = "model,prompt_id," + ",".join(RUBRIC) + ",notes\n"
    good = tmp_path / "good.csv"
    good.write_text(header + "m,p1,5,4,,3,ok\nm,p2,,,,,\n")
    scores = read_scores(good)
    assert list(scores) == [("m", "p1")]  # the row with no score is skipped
    assert scores[("m", "p1")].scores == (("correctness", 5), ("completeness", 4), ("clarity", 3))
    assert scores[("m", "p1")].mean == 4.0
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "m,p1,0,4,4,4,\n")
    with pytest.raises(BenchError, match=r"bad.csv:2: correctness must be a whole number"):
        read_scores(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("model,prompt_id,correctness\n")
    with pytest.raises(BenchError, match="missing columns: completeness, relevance, clarity"):
        read_scores(missing)


def _request(decode: float, bursty: bool) -> RequestMeasurement:
    return RequestMeasurement(
        model_id="m",
        prompt_id="p",
        round=0,
        status="ok",
        error=None,
        ttft_ms=10.0,
        latency_ms=20.0,
        prompt_tokens=5,
        completion_tokens=11,
        tokens_estimated=False,
        decode_tokens_per_sec=decode,
        inter_token_ms=1.0,
        chunks=11,
        text="x",
        started_at=0.0,
        bursty=bursty,
    )


def test_decode_figures_leave_out_bursty_requests_unless_all_are() -> None:
    from curator.bench.runner import figures

    mixed = figures([_request(100.0, False), _request(120.0, False), _request(90000.0, True)])
    assert mixed.decode_tokens_per_sec is not None
    assert (mixed.decode_tokens_per_sec.n, mixed.decode_tokens_per_sec.max) == (2, 120.0)
    assert mixed.ttft_ms is not None and mixed.ttft_ms.n == 3  # only decode speed is filtered
    only_bursty = figures([_request(90000.0, True)])
    assert only_bursty.decode_tokens_per_sec is not None
    assert only_bursty.decode_tokens_per_sec.mean == 90000.0


@pytest.mark.parametrize(
    ("gaps", "bursty"),
    [
        ([0.01, 0.00001], False),  # two text chunks: too few to call it a burst
        ([0.01, 0.00001, 0.01], True),  # three: one of two gaps is a burst, half
        ([0.01, 0.00001, 0.01, 0.01], False),  # four: one of three gaps, under half
        ([0.01, 0.00001, 0.00001, 0.01, 0.01], True),  # five: two of four, half
    ],
)
def test_a_stream_is_bursty_when_at_least_half_its_gaps_are_bursts(
    gaps: list[float], bursty: bool
) -> None:
    clock = Clock()
    steps = [(gap, StreamChunk("w")) for gap in gaps]
    steps.append((0.0, StreamChunk("", Usage(prompt_tokens=1, completion_tokens=len(gaps)))))
    result = measure_stream("m", "p", 0, MESSAGES, lambda: scripted(clock, steps), clock=clock)
    assert result.bursty is bursty
    assert result.chunks == len(gaps) + 1
