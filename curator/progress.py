"""The progress callback core functions take: one line of text for the person waiting.

The core never prints (a rule of the house): a long step takes ``progress: Progress | None`` and
calls it with short messages; the CLI passes ``Output.progress`` (stderr, quiet with --json or
--quiet) and scripts pass None."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def say(progress: Progress | None, message: str) -> None:
    """Tell ``progress`` (if any) ``message``."""
    if progress is not None:
        progress(message)
