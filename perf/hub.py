"""Hub failure speed: how long ``curator search`` and ``curator info`` take to report that the
Hub is unreachable or switched off (issue 5 target: a one-line error within 2 s, where plain
huggingface_hub retries a refused connection for about 23 s), and that it stalls: accepts the
connection and never answers (issue 13 target: within 15 s, where the library waited 5 x 30 s).
Whole command lines, measured from process start, worst of three runs (one for a stall)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from perf._table import Ratio

TARGET_SECONDS = 2.0
STALL_TARGET_SECONDS = 15.0
RUNS = 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _stalling_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[socket.socket] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        worker = threading.Thread(target=accept, daemon=True)
        worker.start()
        try:
            yield int(listener.getsockname()[1])
        finally:
            stop.set()
            worker.join()
            for conn in held:
                conn.close()


def _worst(args: list[str], env: dict[str, str], workdir: Path, runs: int = RUNS) -> float:
    """Seconds until ``curator ARGS`` exits (worst of RUNS); it must fail with one error line."""
    full_env = {
        **os.environ,
        "HF_HOME": str(workdir / "hf-home"),
        "CURATOR_HOME": str(workdir / "home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **env,
    }
    full_env = {k: v for k, v in full_env.items() if v != ""}
    worst = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "curator", *args],
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 1 or not done.stderr.startswith("error: "):
            raise RuntimeError(f"curator {' '.join(args)} did not fail as expected: {done.stderr}")
        worst = max(worst, elapsed)
    return worst


def measure(workdir: Path) -> list[Ratio]:
    workdir.mkdir(parents=True, exist_ok=True)
    refused = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HUB_OFFLINE": ""}
    cases = [
        ("search, Hub port refused", ["search", "qwen"], refused),
        ("info, Hub port refused", ["info", "Qwen/Qwen2.5-0.5B-Instruct"], refused),
        (
            "search, Hub host unresolvable",
            ["search", "qwen"],
            {"HF_ENDPOINT": "https://hub.invalid", "HF_HUB_OFFLINE": ""},
        ),
        ("search, HF_HUB_OFFLINE=1", ["search", "qwen"], {"HF_HUB_OFFLINE": "1"}),
    ]
    rows = []
    for name, args, env in cases:
        seconds = _worst(args, env, workdir)
        rows.append(
            Ratio(
                f"hub error time: {name} (vs 2 s target)",
                seconds,
                TARGET_SECONDS,
                "s",
                target="<= 1.0",
                ok=seconds <= TARGET_SECONDS,
            )
        )
    with _stalling_port() as port:
        stalled = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": ""}
        for name, args in (
            ("search, Hub stalls", ["search", "qwen"]),
            ("info, Hub stalls", ["info", "Qwen/Qwen2.5-0.5B-Instruct"]),
        ):
            seconds = _worst(args, stalled, workdir, runs=1)
            rows.append(
                Ratio(
                    f"hub error time: {name} (vs 15 s target)",
                    seconds,
                    STALL_TARGET_SECONDS,
                    "s",
                    target="<= 1.0",
                    ok=seconds <= STALL_TARGET_SECONDS,
                )
            )
    return rows
