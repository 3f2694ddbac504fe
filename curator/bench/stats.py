"""Aggregates of a sample: mean, percentiles, min, max and standard deviation.

Percentiles use linear interpolation between closest ranks (the "inclusive" definition, numpy's
default ``method="linear"``): for ``q`` in [0, 100] the rank is ``(n - 1) * q / 100``. The standard
deviation is the sample one (``n - 1`` in the denominator), 0.0 for a single value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILE_METHOD = "linear interpolation between closest ranks (numpy 'linear')"


@dataclass(frozen=True)
class Stat:
    """Summary of ``n`` values."""

    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    min: float
    max: float
    stdev: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside [0, 100]")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize(values: Iterable[float | None]) -> Stat | None:
    """A Stat over the values that are not None (None when there are none)."""
    sample = sorted(float(v) for v in values if v is not None)
    if not sample:
        return None
    n = len(sample)
    mean = math.fsum(sample) / n
    variance = math.fsum((v - mean) ** 2 for v in sample) / (n - 1) if n > 1 else 0.0
    return Stat(
        n=n,
        mean=mean,
        p50=percentile(sample, 50),
        p95=percentile(sample, 95),
        p99=percentile(sample, 99),
        min=sample[0],
        max=sample[-1],
        stdev=math.sqrt(variance),
    )
