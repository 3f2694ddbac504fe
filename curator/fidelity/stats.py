"""Summaries of per-token figures: mean, percentile, perplexity (pure Python)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from curator.bench.stats import percentile as sorted_percentile


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), the same definition as the benchmark reports use."""
    return sorted_percentile(sorted(values), q)


def perplexity(nll: Sequence[float]) -> float:
    """exp(mean negative log-likelihood in nats)."""
    return math.exp(mean(nll))
