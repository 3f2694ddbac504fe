"""Parameter counts as people write them: 8B, 1.5b, 500M, 120k, 7e9."""

from __future__ import annotations

import re

from curator.errors import UsageProblem

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)


def parse_param_count(text: str) -> int:
    """``"8B"`` -> 8_000_000_000; UsageProblem for anything else."""
    match = _PATTERN.match(text)
    if not match:
        raise UsageProblem(
            f"cannot read {text!r} as a parameter count",
            hint="write it like 8B, 1.5B, 500M or 7000000000",
        )
    number, suffix = match.groups()
    return round(float(number) * _SUFFIX[suffix.upper()])


def format_param_count(count: int) -> str:
    """The shortest exact spelling the Hub's num_parameters filter reads: 8B, 500M, 1234."""
    for suffix in ("T", "B", "M", "K"):
        scale = _SUFFIX[suffix]
        if count >= scale and count % scale == 0:
            return f"{count // scale}{suffix}"
    return str(count)


def human_count(count: int | None) -> str | None:
    """0.5B / 135M / 64K for tables."""
    if count is None:
        return None
    for suffix in ("T", "B", "M", "K"):
        scale = _SUFFIX[suffix]
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


def human_bytes(count: int | None) -> str | None:
    """1.2 GiB / 340.0 MiB / 12.0 KiB for tables: binary units, as every size curator prints
    (issue 25: one model's size appeared as MB and MiB in four ways)."""
    if count is None:
        return None
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
