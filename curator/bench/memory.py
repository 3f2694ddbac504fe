"""Peak resident memory of the process serving a model, sampled in a background thread.

The sampler reads the process's RSS every ``interval`` seconds with psutil. On Linux it also resets
the kernel's high-water mark (``/proc/PID/clear_refs``, value 5) at the start and reads ``VmHWM``
at the end, which catches peaks shorter than the sampling interval; where that is not allowed the
sampled maximum stands alone. The figure is in MiB. (The reset also restarts what ``getrusage``
reports as ``ru_maxrss`` for that process: read any whole-process peak before a bench run.)
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import TracebackType

from curator.portable import process_peak_rss_bytes

MIB = 1024 * 1024


class PeakRssSampler:
    """``with PeakRssSampler(pid) as s: ...`` then ``s.peak_mb`` (None if the process is gone)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self._peak_bytes = 0
        self._hwm_reset = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: object | None = None

    def __enter__(self) -> PeakRssSampler:
        import psutil

        try:
            self._process = psutil.Process(self.pid)
        except psutil.Error:
            self._process = None
            return self
        self._hwm_reset = _reset_high_water_mark(self.pid)
        self._sample()
        self._thread = threading.Thread(target=self._run, name="curator-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._hwm_reset:
            hwm = process_peak_rss_bytes(self.pid)
            if hwm is not None:
                self._peak_bytes = max(self._peak_bytes, hwm)

    @property
    def peak_mb(self) -> float | None:
        return self._peak_bytes / MIB if self._peak_bytes else None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        import psutil

        if self._process is None:
            return
        try:
            rss = int(self._process.memory_info().rss)  # type: ignore[attr-defined]
        except psutil.Error:
            return
        self._peak_bytes = max(self._peak_bytes, rss)


def _reset_high_water_mark(pid: int) -> bool:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    return False
