"""Run ``olive run --config`` in a child process: progress from its log, peak RSS of its tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from curator.portable import own_group_kwargs, poll_child, stop_tree, tree_rss_bytes
from curator.progress import Progress

WAIT_SECONDS = 0.05  # how soon the child's exit is noticed
SAMPLE_EVERY = 4  # RSS and log are read every SAMPLE_EVERY waits (0.2 s)
HEARTBEAT_SECONDS = 15.0
_STARTED = re.compile(r"Running pass (\S+)")
_FINISHED = re.compile(r"Pass (\S+) finished in ([0-9.]+) seconds")


@dataclass(frozen=True)
class OliveRun:
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    log_path: Path


def olive_environment(offline: bool) -> dict[str, str]:
    """The field notes' environment: no telemetry (7 s instead of 27 s), offline for local models."""
    env = dict(os.environ)
    env.update(
        {
            "CI": "1",
            "OLIVE_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    # glibc: every allocation over 1 MiB is its own mapping, returned to the system when freed.
    # Without it glibc raises the threshold after the first big free and keeps the streaming
    # compile's freed tensors in its heap (0.5B shape: 890 -> 736 MiB after the embedding).
    # Other C libraries ignore the variable.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    return env


def olive_command(config_path: Path) -> list[str]:
    """``olive run --config``, through curator's entry point that first installs the model-builder
    compatibility shim for transformers 5 configs (curator.compile.builder_compat)."""
    return [
        sys.executable,
        "-m",
        "curator.compile.olive_child",
        "run",
        "--config",
        str(config_path),
    ]


def pass_name(token: str) -> str:
    return token.split(":", 1)[0]


class _LogWatcher:
    """Turns new log lines into progress messages."""

    def __init__(self, log_path: Path, progress: Progress | None, start: float) -> None:
        self.log_path = log_path
        self.progress = progress
        self.start = start
        self.offset = 0
        self.partial = ""
        self.current: str | None = None
        self.current_since = start
        self.last_message = start

    def _say(self, message: str) -> None:
        self.last_message = time.monotonic()
        if self.progress:
            self.progress(message)

    def poll(self) -> None:
        try:
            with self.log_path.open("r", encoding="utf-8", errors="replace") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
                self.offset = handle.tell()
        except OSError:
            chunk = ""
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()
        now = time.monotonic()
        for line in lines:
            if match := _FINISHED.search(line):
                name = pass_name(match.group(1))
                self._say(
                    f"pass {name} done in {float(match.group(2)):.1f} s "
                    f"(total {now - self.start:.1f} s)"
                )
                self.current = None
            elif match := _STARTED.search(line):
                self.current = pass_name(match.group(1))
                self.current_since = now
                self._say(f"pass {self.current} running")
        if now - self.last_message >= HEARTBEAT_SECONDS:
            what = f"pass {self.current}" if self.current else "olive"
            since = self.current_since if self.current else self.start
            self._say(f"{what} still running ({now - since:.0f} s, total {now - self.start:.0f} s)")


def run_olive(
    config_path: Path,
    log_path: Path,
    *,
    offline: bool,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> OliveRun:
    """Run Olive to completion (or until interrupted: then the whole child group is stopped)."""
    start = time.monotonic()
    peak = 0
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            olive_command(config_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=olive_environment(offline),
            cwd=str(config_path.parent),
            **own_group_kwargs(),
        )
    watcher = _LogWatcher(log_path, progress, start)
    try:
        if on_start:
            on_start(proc.pid)
        returncode: int | None = None
        tick = 0
        while returncode is None:
            if tick % SAMPLE_EVERY == 0:
                peak = max(peak, tree_rss_bytes(proc.pid))
                watcher.poll()
            tick += 1
            exited = poll_child(proc)
            if exited is not None:
                returncode = exited.returncode
                peak = max(peak, exited.peak_rss_bytes)
            else:
                time.sleep(WAIT_SECONDS)
        watcher.poll()
    except BaseException:
        stop_tree(proc)
        raise
    return OliveRun(returncode, time.monotonic() - start, peak, log_path)


def log_tail(log_path: Path, lines: int = 25) -> str:
    """The last lines of the log, progress-bar redraws collapsed."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no compile log)"
    cleaned = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    kept = [line for line in cleaned if line.strip()]
    return "\n".join(kept[-lines:])
