"""Registry review speed: validating a 10,000-entry registry (target under 2 s), and
`curator --help` start-up against `python -c pass`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench._table import Ratio
from curator.jsonio import write_json_atomic
from tests.samples import make_benchmark, make_document, make_entry

ENTRIES = 10_000


def _best_of(command: list[str], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def measure(workdir: Path) -> list[Ratio]:
    workdir.mkdir(parents=True, exist_ok=True)
    registry = workdir / "models.json"
    entries = [make_entry(i, benchmarks=[make_benchmark()]) for i in range(ENTRIES)]
    write_json_atomic(registry, make_document(entries), sort_keys=True)
    baseline = _best_of([sys.executable, "-c", "pass"])
    validate = _best_of(
        [sys.executable, "-m", "curator", "registry", "validate", "--registry", str(registry)],
        runs=3,
    )
    help_time = _best_of([sys.executable, "-m", "curator", "--help"])
    return [
        Ratio(
            f"registry validate, {ENTRIES} entries (vs 2 s target)",
            validate,
            2.0,
            "s",
            "< 1.0",
            validate < 2.0,
        ),
        Ratio("curator --help start-up vs python -c pass", help_time, baseline, "s"),
    ]
