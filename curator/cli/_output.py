"""The one output object: tables and text for people on stdout, JSON for scripts, progress on stderr."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click


def to_jsonable(value: Any) -> Any:
    """Frozen dataclasses, paths and tuples as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class Output:
    def __init__(self, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def json(self, value: Any) -> None:
        click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))

    def text(self, message: str = "") -> None:
        click.echo(message)

    def table(self, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
        """A plain aligned table; ``-`` stands for a missing value."""
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
        click.echo(line.rstrip())
        for row in cells:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    def progress(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    @contextmanager
    def step(self, name: str, heartbeat: float = 10.0) -> Iterator[None]:
        """``name ...``, every ``heartbeat`` seconds ``name: still running (20 s)``, then
        ``name done (1.2 s)`` on stderr: the one progress helper for a step that says nothing
        while it works (a model load, a fidelity run, hashing a cache)."""
        start = time.monotonic()
        self.progress(f"{name} ...")
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(heartbeat):
                self.progress(f"{name}: still running ({time.monotonic() - start:.0f} s)")

        beating = threading.Thread(target=beat, name="curator-progress", daemon=True)
        beating.start()
        try:
            yield
        finally:
            stop.set()
            beating.join()
        self.progress(f"{name} done ({time.monotonic() - start:.1f} s)")

    def warn(self, message: str) -> None:
        click.secho(f"warning: {message}", err=True, fg="yellow")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


@dataclass(frozen=True)
class ErrorReport:
    """A failed command as the user sees it: ``code`` is a stable name for scripts."""

    error: str
    hint: str | None
    code: str
    exit_code: int
    problems: tuple[str, ...] = ()


def report_error(report: ErrorReport, as_json: bool) -> None:
    """``error: ...`` / ``hint: ...`` on stderr, or with ``--json`` one JSON object on stdout."""
    if as_json:
        document: dict[str, Any] = {
            "error": report.error,
            "hint": report.hint,
            "code": report.code,
            "exit_code": report.exit_code,
        }
        if report.problems:
            document["problems"] = list(report.problems)
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.secho(f"error: {report.error}", err=True, fg="red")
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    if report.hint:
        click.echo(f"hint: {report.hint}", err=True)
