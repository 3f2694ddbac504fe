"""Hub failure speed: how long ``curator search`` and ``curator info`` take to report that the
Hub is unreachable or switched off (issue 5 target: a one-line error within 2 s, where plain
huggingface_hub retries a refused connection for about 23 s). Whole command lines, measured
from process start, worst of three runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench._table import Ratio

TARGET_SECONDS = 2.0
RUNS = 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worst(args: list[str], env: dict[str, str], workdir: Path) -> float:
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
    for _ in range(RUNS):
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
    return rows
