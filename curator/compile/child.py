"""A compile step run in a child process (``python -m MODULE ARGS``) that answers one JSON object
on the last line of its stdout: the adapter merge and the GGUF dequantization."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from curator.errors import PreflightError


def child_answer(module: str, *args: str, failed: str, hint: str) -> dict[str, Any]:
    """The JSON object the child module printed last; a child that printed none is one
    PreflightError: ``failed``, the child's exit code and the last line of its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise PreflightError(f"{failed} (exit code {done.returncode}): {last}", hint=hint) from None
    return answer
