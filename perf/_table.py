"""The one row type every benchmark module returns, and the table that prints them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
