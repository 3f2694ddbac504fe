"""What every fuzzed reader promises (issue 23 item 7): a refusal is its documented error type with
one line of cause and one of hint, a few KB at most; no reader takes long over a small input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_MESSAGE_CHARS = 2048  # "no output over a few KB"
MAX_SECONDS = 5.0  # per case, on inputs of a few KB (a hang shows as far more; load is no hang)


def assert_one_line(message: str, hint: str | None = None) -> None:
    """A refusal a person reads: one line of cause, at most one of hint, a few KB in all."""
    assert message and "\n" not in message and "\r" not in message, repr(message[:300])
    assert hint is None or ("\n" not in hint and "\r" not in hint), repr(hint[:300])
    assert len(message) + len(hint or "") <= MAX_MESSAGE_CHARS, len(message)


@contextmanager
def bounded(seconds: float = MAX_SECONDS) -> Iterator[None]:
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s"
