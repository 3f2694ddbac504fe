"""Run every benchmark module in one process run and print one table of ratios.

Each module in MODULES has ``measure(workdir: Path) -> list[Ratio]``. Select some with
``python -m perf NAME ...``.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import traceback
from pathlib import Path

from perf._table import Ratio, render

MODULES = ("registry", "hub", "bench_harness", "quant", "compile", "serve")


def main(argv: list[str]) -> int:
    chosen = argv or list(MODULES)
    rows: list[Ratio] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        for name in chosen:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                module = importlib.import_module(f"bench.{name}")
                rows.extend(module.measure(Path(tmp) / name))
            except Exception:
                failed.append(name)
                traceback.print_exc()
    print(render(rows))
    if failed:
        print(f"bench modules that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
