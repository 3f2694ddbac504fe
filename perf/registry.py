"""Registry review speed: validating a 10,000-entry registry (target under 2 s), diffing two
10,000-entry registries that differ in 100 entries (target under 1 s), and `curator --help`
start-up against `python -c pass`."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

from curator.jsonio import write_json_atomic
from perf._table import Ratio
from tests.samples import make_benchmark, make_document, make_entry

ENTRIES = 10_000
CHANGED_EVERY = 100  # 100 of the 10,000 entries differ: a new benchmark run 10% slower


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _best_of(command: list[str], runs: int = 5) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``runs`` runs, in seconds."""
    best_wall = best_cpu = float("inf")
    for _ in range(runs):
        cpu_before, start = _children_cpu(), time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, _children_cpu() - cpu_before)
    return best_wall, best_cpu


def _registries(workdir: Path) -> tuple[Path, Path]:
    entries = [make_entry(i, benchmarks=[make_benchmark()]) for i in range(ENTRIES)]
    base = workdir / "base.json"
    write_json_atomic(base, make_document(entries), sort_keys=True)
    later = make_benchmark(date="2026-11-20T00:00:00Z", decode=45.0)
    for entry in entries[::CHANGED_EVERY]:
        entry["benchmarks"] = [*entry["benchmarks"], later]
    head = workdir / "models.json"
    write_json_atomic(head, make_document(entries), sort_keys=True)
    return base, head


def measure(workdir: Path) -> list[Ratio]:
    workdir.mkdir(parents=True, exist_ok=True)
    base, registry = _registries(workdir)
    curator = [sys.executable, "-m", "curator"]
    baseline, _ = _best_of([sys.executable, "-c", "pass"])
    validate, _ = _best_of([*curator, "registry", "validate", "--registry", str(registry)], runs=3)
    diff_wall, diff_cpu = _best_of([*curator, "registry", "diff", str(base), str(registry)], runs=3)
    help_time, _ = _best_of([*curator, "--help"])
    print(
        f"registry diff, {ENTRIES} vs {ENTRIES} entries, {ENTRIES // CHANGED_EVERY} differ: "
        f"best of 3 {diff_wall:.2f} s wall, {diff_cpu:.2f} s CPU",
        file=sys.stderr,
    )
    return [
        Ratio(
            f"registry validate, {ENTRIES} entries (vs 2 s target)",
            validate,
            2.0,
            "s",
            "< 1.0",
            validate < 2.0,
        ),
        Ratio(
            f"registry diff, {ENTRIES} entries, {ENTRIES // CHANGED_EVERY} differ, wall (vs 1 s)",
            diff_wall,
            1.0,
            "s",
            "< 1.0",
            diff_wall < 1.0,
        ),
        Ratio(
            f"registry diff, {ENTRIES} entries, {ENTRIES // CHANGED_EVERY} differ, CPU (vs 1 s)",
            diff_cpu,
            1.0,
            "s",
            "< 1.0",
            diff_cpu < 1.0,
        ),
        Ratio("curator --help start-up vs python -c pass", help_time, baseline, "s"),
    ]
