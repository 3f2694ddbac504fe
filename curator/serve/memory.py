"""Give memory freed by large requests back to the system.

A large prompt is parsed, checked and tokenized on worker threads; glibc keeps what they freed in
per-thread arenas, so the server's resident memory would stay at its high-water mark (tens of MiB
after a few 1 MB prompts). ``malloc_trim`` returns the free pages of every arena; elsewhere than
glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

# Requests with bodies at least this large trigger a trim when they end.
LARGE_BODY_BYTES = 256 * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
