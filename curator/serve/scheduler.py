"""Per-model admission: N generations at once, a bounded line behind them, 429 beyond it.

Runs on the server's event loop (no locks needed: admission is synchronous). A request first
takes a place (:meth:`ModelSlots.admit`, which refuses with a 429 and a Retry-After estimate when
``parallel + queue`` places are taken), then waits for a slot in arrival order
(:meth:`Place.run_slot`), and gives its place back when it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

from curator.serve.openai_types import ApiError

# Until a request has finished, the Retry-After estimate assumes this many seconds per request.
FIRST_GUESS_SECONDS = 5.0


class ModelSlots:
    """Admission for one model: ``parallel`` running, at most ``queue`` waiting."""

    def __init__(
        self,
        model_id: str,
        parallel: int,
        queue: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_id = model_id
        self.parallel = parallel
        self.queue = queue
        self.clock = clock  # seconds: times each run for the Retry-After estimate
        self._slots = asyncio.Semaphore(parallel)
        self._places = 0
        self._mean_seconds: float | None = None

    @property
    def taken(self) -> int:
        """Requests admitted and not yet finished (running or waiting)."""
        return self._places

    def retry_after(self) -> int:
        """Seconds until a place is likely to free up (at least 1)."""
        per_request = self._mean_seconds or FIRST_GUESS_SECONDS
        waves = (self._places - self.parallel) / self.parallel + 1
        return max(1, min(300, math.ceil(per_request * max(waves, 1.0))))

    def admit(self) -> Place:
        """A place in line, or ApiError 429 (with Retry-After) when the line is full."""
        if self._places >= self.parallel + self.queue:
            seconds = self.retry_after()
            raise ApiError(
                429,
                f"{self.model_id} is busy: {self.parallel} requests running and {self.queue} "
                f"waiting; retry in about {seconds} s",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(seconds)},
            )
        self._places += 1
        return Place(self)

    def _finished(self, seconds: float | None) -> None:
        self._places -= 1
        if seconds is not None:
            mean = self._mean_seconds
            self._mean_seconds = seconds if mean is None else 0.8 * mean + 0.2 * seconds


class Place:
    """One admitted request; release it exactly once (``close``), whether it ran or not."""

    def __init__(self, slots: ModelSlots) -> None:
        self._slots = slots
        self._closed = False
        self._started: float | None = None

    @contextlib.asynccontextmanager
    async def run_slot(self) -> AsyncIterator[None]:
        """Wait for one of the model's generation slots (arrival order) and hold it."""
        async with self._slots._slots:
            self._started = self._slots.clock()
            yield

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        started = self._started
        self._slots._finished(None if started is None else self._slots.clock() - started)
