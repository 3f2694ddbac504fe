"""`make mutation` report: the mutation score per guarded module, and every surviving mutant.

mutmut (configured in pyproject.toml [tool.mutmut]) mutates whole files; the guard is sometimes
only part of a file (the trust gate of the compile plan). GUARDED names,
per file, the functions whose mutants count (None: the whole file). Mutants mutmut found no test
for count as survivors: a guard no in-process test reaches is not guarded.

Run from the repository root after `mutmut run`:
    python tests/mutation_report.py [--out mutation-report.md] [--target 90]
Exit code 1 when a module scores below the target.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# file -> functions whose mutants count (None = every function in the file)
GUARDED: dict[str, tuple[str, ...] | None] = {
    "curator/registry/rules.py": None,
    "curator/registry/diff.py": None,
    "curator/registry/store.py": None,
    # verify_cache's lookup of a model registered from elsewhere goes through Foundry Local in
    # process; the subprocess tests cover it (tests/test_cache_untrusted.py, test_catalog.py).
    "curator/cache/inventory.py": (
        "verify_dir",
        "dir_ids",
        "_others",
        "_flag_shared",
        "_catalog_download",
        "ok",
    ),
    "curator/compile/preflight.py": None,  # every check, in process (tests/test_preflight.py)
    "curator/compile/source.py": ("custom_code_files",),
    "curator/compile/api.py": ("_olive_config", "plan_compile"),
    # every step's own logic, in process, collaborators passed in (tests/test_onboard_core.py)
    "curator/onboard/pipeline.py": None,
    "curator/bench/stats.py": None,
    "curator/bench/measure.py": None,
    "curator/smoke/run.py": None,  # over a fake Foundry runtime (tests/test_smoke_core.py)
    "curator/prompts.py": None,
    "curator/share/files.py": None,
    "curator/share/pull.py": ("is_published", "_checked"),
    "curator/register/entry.py": None,
    "curator/register/loadtest.py": None,
    "curator/hub/facts.py": None,
    "curator/formats/gguf.py": None,
    "curator/serve/openai_types.py": None,
    "curator/serve/app.py": None,  # the request handlers (tests/test_serve_app_core.py)
    "curator/serve/scheduler.py": None,
    "curator/formats/safetensors.py": None,  # the header reader `curator info` uses
}
# Where the guard is a few lines of a larger function (the rest needs a real compile, covered by
# the subprocess tests), only mutants whose diff touches a line matching this count.
GATE_LINES: dict[str, str] = {
    "curator/compile/api.py": r"trust_remote_code|check_custom_code|custom_code_files",
}
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


def function_of(mutant: str) -> str:
    """``curator.cache.inventory.xǁVerifyResultǁok__mutmut_2`` -> ``ok``; ``...x_verify_dir__mutmut_1`` ->
    ``verify_dir``."""
    mangled = mutant.rpartition(".")[2].partition("__mutmut_")[0]
    if "ǁ" in mangled:
        return mangled.rsplit("ǁ", 1)[1]
    return mangled[2:] if mangled.startswith("x_") else mangled


def score_module(path: str, functions: tuple[str, ...] | None, root: Path) -> ModuleScore:
    result = ModuleScore(path)
    meta = root / "mutants" / f"{path}.meta"
    if not meta.is_file():
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    gate = GATE_LINES.get(path)
    for mutant, code in sorted(codes.items()):
        if functions is not None and function_of(mutant) not in functions:
            continue
        if gate is not None and not touches(mutant, gate, root):
            continue
        if code is None:
            result.unchecked.append(mutant)
        elif code in KILLED or code in TIMEOUT:
            result.killed += 1
        elif code in NO_TESTS:
            result.untested.append(mutant)
        else:  # 0 survived; anything else (segfault, suspicious) is not a clean kill either
            result.survived.append(mutant)
    return result


def touches(mutant: str, pattern: str, root: Path) -> bool:
    """Whether the mutant's diff changes a line matching ``pattern``."""
    changed = [
        line
        for line in mutant_diff(mutant, root).splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return any(re.search(pattern, line) for line in changed)


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
    scores = [score_module(path, funcs, root) for path, funcs in GUARDED.items()]
    width = max(len(s.path) for s in scores)
    for s in scores:
        left = len(s.survived) + len(s.untested)
        print(
            f"{s.path:<{width}}  {s.killed:4d}/{s.total:<4d} killed  {s.score:5.1f}%  {left} left"
        )
    args.out.write_text(render(scores, args.target, root, not args.no_diffs), encoding="utf-8")
    print(f"survivors: {args.out}")
    below = [s.path for s in scores if s.score < args.target]
    if below:
        print(f"below {args.target:g}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
