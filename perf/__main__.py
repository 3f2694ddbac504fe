"""Run every benchmark module in one process run and print one table of ratios.

Each module in MODULES has ``measure(workdir: Path) -> list[Ratio]``. Select some with
``python -m perf NAME ...``; ``--rungs 0.5b,1.5b`` chooses the size ladder's rungs (perf.ladder).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback
from pathlib import Path

from perf._table import Ratio, render

MODULES = ("registry", "hub", "bench_harness", "quant", "compile", "serve", "ladder")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf", description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default all)")
    parser.add_argument("--rungs", help="the ladder's rungs, e.g. 0.4b,1.5b (see perf.ladder)")
    args = parser.parse_args(argv)
    chosen = args.modules or list(MODULES)
    rows: list[Ratio] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        for name in chosen:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                module = importlib.import_module(f"perf.{name}")
                options = {"rungs": args.rungs} if name == "ladder" and args.rungs else {}
                rows.extend(module.measure(Path(tmp) / name, **options))
            except Exception:
                failed.append(name)
                traceback.print_exc()
    print(render(rows))
    if failed:
        print(f"bench modules that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
