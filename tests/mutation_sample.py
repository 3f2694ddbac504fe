"""`make mutation-sample`: the mutation score estimated from a uniform random sample of mutants.

A whole `make mutation` run tests every one of about 10,000 mutants and takes hours on two cores;
a random sample of a few hundred gives the same score within a few points, with its confidence
interval, in well under an hour. mutmut generates every mutant and collects which tests reach
which function, then runs only the sampled mutants (named explicitly, so each is run even when an
earlier run left a result). A sampled mutant whose function no test reaches counts as a survivor
without running, as in tests/mutation_report.py.

Run from the repository root:
    python tests/mutation_sample.py [--size 400] [--seed 20261206] [--jobs 2] [--target 85]
Exit code 1 when the estimate is below the target.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_report import KILLED, NO_TESTS, TIMEOUT

GENERATE_ONLY = "curator.__generate_only__*"  # matches no mutant: mutmut generates, collects, stops


@dataclass(frozen=True)
class Estimate:
    sampled: int
    killed: int  # a test failed (or the type checker refused the mutant)
    timed_out: int  # counted as caught, and reported apart: a hang can also be the environment's
    survived: int
    untested: int

    @property
    def caught(self) -> int:
        return self.killed + self.timed_out

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson's 95% interval for the share caught."""
        n, p = self.sampled, self.caught / self.sampled
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half


def mutmut(*args: str) -> int:
    return subprocess.run([str(Path(sys.executable).with_name("mutmut")), *args]).returncode


def all_mutants(root: Path) -> dict[str, Path]:
    """Every generated mutant's name and the .meta file that records its result."""
    found: dict[str, Path] = {}
    for meta in sorted((root / "mutants").rglob("*.meta")):
        for name in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]:
            found[name] = meta
    return found


def has_tests(name: str, stats: dict[str, list[str]]) -> bool:
    mangled = name.partition("__mutmut_")[0]  # as mutmut names the function
    return bool(stats.get(mangled))


def estimate(sample: list[str], metas: dict[str, Path], untested: set[str]) -> Estimate:
    codes: dict[str, int | None] = {}
    for meta in set(metas[name] for name in sample):
        codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    tally: Counter[str] = Counter()
    for name in sample:
        code = None if name in untested else codes.get(name)
        if name in untested or code in NO_TESTS:
            tally["untested"] += 1
        elif code in KILLED:
            tally["killed"] += 1
        elif code in TIMEOUT:
            tally["timed_out"] += 1
        else:  # survived, or not run: neither is caught
            tally["survived"] += 1
    return Estimate(
        len(sample), tally["killed"], tally["timed_out"], tally["survived"], tally["untested"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--target", type=float, default=85.0)
    args = parser.parse_args(argv)
    root = Path.cwd()

    mutmut("run", "--max-children", str(args.jobs), GENERATE_ONLY)  # exits 1: nothing matches
    metas = all_mutants(root)
    stats_file = root / "mutants" / "mutmut-stats.json"
    if not metas or not stats_file.is_file():
        print("mutmut generated no mutants or no stats: see its output above", file=sys.stderr)
        return 2
    stats = json.loads(stats_file.read_text(encoding="utf-8"))["tests_by_mangled_function_name"]
    sample = sorted(random.Random(args.seed).sample(sorted(metas), min(args.size, len(metas))))
    untested = {name for name in sample if not has_tests(name, stats)}
    runnable = [name for name in sample if name not in untested]
    if runnable:
        mutmut("run", "--max-children", str(args.jobs), *runnable)

    result = estimate(sample, metas, untested)
    low, high = result.interval()
    share = 100.0 * result.caught / result.sampled
    print(
        f"sample of {result.sampled} from {len(metas)} mutants (seed {args.seed}): "
        f"{result.caught} caught ({result.killed} by a failing test, {result.timed_out} by a "
        f"timeout), {result.survived} survived, {result.untested} reached by no test"
    )
    print(f"estimated score {share:.1f}% (95% interval {100 * low:.1f}-{100 * high:.1f}%)")
    by_file = Counter(str(metas[name].relative_to(root / "mutants")) for name in sample)
    print("sampled per file: " + ", ".join(f"{k[:-5]} {v}" for k, v in sorted(by_file.items())))
    return 0 if share >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
