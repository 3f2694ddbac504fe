"""`make mutation` report: the mutation score per mutated module, and every surviving mutant.

mutmut (configured in pyproject.toml [tool.mutmut]) mutates whole files, and every mutant of every
function counts. Mutants mutmut found no test for count as survivors: code no in-process test
reaches is not guarded.

Run from the repository root after `mutmut run`:
    python tests/mutation_report.py [--out mutation-report.md] [--target 90]
Exit code 1 when a module scores below the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


def mutated_files(root: Path) -> list[str]:
    """The files `make mutation` mutates: pyproject.toml's [tool.mutmut] only_mutate, each
    counted whole (every mutant of every function)."""
    with (root / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["tool"]["mutmut"]["only_mutate"])


KILLED = {1, 3, 37}  # test failed, pytest internal error, caught by the type checker
TIMEOUT = {36, 24, -24, 152, 255}  # a mutant that hangs the tests is caught too
NO_TESTS = {5, 33}


@dataclass
class ModuleScore:
    path: str
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.untested)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def score_module(path: str, root: Path) -> ModuleScore:
    result = ModuleScore(path)
    meta = root / "mutants" / f"{path}.meta"
    if not meta.is_file():
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    for mutant, code in sorted(codes.items()):
        if code is None:
            result.unchecked.append(mutant)
        elif code in KILLED or code in TIMEOUT:
            result.killed += 1
        elif code in NO_TESTS:
            result.untested.append(mutant)
        else:  # 0 survived; anything else (segfault, suspicious) is not a clean kill either
            result.survived.append(mutant)
    return result


def mutant_diff(mutant: str, root: Path) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "show", mutant],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or done.stderr.strip()


def render(scores: list[ModuleScore], target: float, root: Path, diffs: bool) -> str:
    lines = ["# Mutation report", "", "| module | killed | total | score |", "|---|---:|---:|---:|"]
    for s in scores:
        mark = "" if s.score >= target else " (below target)"
        lines.append(f"| {s.path} | {s.killed} | {s.total} | {s.score:.1f}%{mark} |")
    killed = sum(s.killed for s in scores)
    total = sum(s.total for s in scores)
    lines.append(
        f"| all guarded code | {killed} | {total} | {100.0 * killed / max(total, 1):.1f}% |"
    )
    for s in scores:
        left = [(m, "survived") for m in s.survived] + [
            (m, "no test reaches it") for m in s.untested
        ]
        if not left and not s.unchecked:
            continue
        lines += ["", f"## {s.path}", ""]
        if s.unchecked:
            lines.append(f"{len(s.unchecked)} mutant(s) not run yet (rerun `make mutation`).")
        for mutant, why in left:
            lines += [f"### {mutant}: {why}", ""]
            if diffs:
                lines += ["```diff", mutant_diff(mutant, root), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mutation-report.md"))
    parser.add_argument("--target", type=float, default=90.0)
    parser.add_argument("--no-diffs", action="store_true", help="list survivors without diffs")
    args = parser.parse_args(argv)
    root = Path.cwd()
    scores = [score_module(path, root) for path in mutated_files(root)]
    width = max(len(s.path) for s in scores)
    for s in scores:
        left = len(s.survived) + len(s.untested)
        figure = f"{s.score:5.1f}%" if s.total else "not run"
        unrun = f", {len(s.unchecked)} not run" if s.unchecked else ""
        print(
            f"{s.path:<{width}}  {s.killed:4d}/{s.total:<4d} killed  {figure}  {left} left{unrun}"
        )
    args.out.write_text(render(scores, args.target, root, not args.no_diffs), encoding="utf-8")
    print(f"survivors: {args.out}")
    below = [s.path for s in scores if s.score < args.target or s.unchecked]
    if below:
        print(f"below {args.target:g}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
