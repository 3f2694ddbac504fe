"""The one row type every benchmark module returns, and the table that prints them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratio:
    """``ours / baseline`` for one figure, with the target the issue sets (None: report only)."""

    name: str
    ours: float
    baseline: float
    unit: str
    target: str = ""
    ok: bool | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def render(rows: Sequence[Ratio]) -> str:
    headers = ("figure", "ours", "baseline", "ratio", "target", "met")
    cells = [
        (
            r.name,
            f"{r.ours:.4g} {r.unit}",
            f"{r.baseline:.4g} {r.unit}",
            f"{r.ratio:.3f}",
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.ok],
        )
        for r in rows
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def workdir_main(
    prog: str, description: str | None, workdir: Path, table: Callable[[Path], str], argv: list[str]
) -> int:
    """``python -m perf.X [--workdir DIR]``: print ``table(workdir)`` (a Markdown table)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--workdir", type=Path, default=workdir, help="kept between runs")
    args = parser.parse_args(argv)
    print(table(args.workdir.resolve()))
    return 0
