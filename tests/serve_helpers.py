"""Helpers for the curator serve tests and benchmarks (tests/, bench/): a real ``curator serve``
process on an ephemeral loopback port, over a Foundry cache with compiled models registered in a
fresh process (the calling process never initialises the Foundry SDK)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import openai

from tests.conftest import TEST_MODELS_ROOT

SLOW_MODEL_ID = "slow-qwen2-generic-cpu:1"
SLOW_MODEL_CONTEXT = 8192


def compiled_qwen2(model_id: str, hidden_size: int, num_layers: int, **params: int) -> Path:
    """A random-init Qwen2 of this size (``params``: more builder arguments) compiled int4-cpu
    under ``model_id``, built once and then cached under TEST_MODELS_ROOT (read-only: install a
    copy)."""
    from curator.devmodels.cache import cached_compile, cached_tiny_model

    source = cached_tiny_model(
        TEST_MODELS_ROOT,
        architecture="qwen2",
        hidden_size=hidden_size,
        num_layers=num_layers,
        **params,
    )
    return cached_compile(TEST_MODELS_ROOT, source, "int4-cpu", model_id)


def slow_model() -> Path:
    """A random-init Qwen2 (hidden 512, 8 layers, 8192-token context) compiled int4-cpu: 200-500
    tok/s on 2 cores, so a whole answer (up to 8000 tokens) takes many seconds even on a faster
    machine (built once, ~12 s of CPU, then cached)."""
    return compiled_qwen2(SLOW_MODEL_ID, 512, 8, max_positions=SLOW_MODEL_CONTEXT)


def env_for(root: Path) -> dict[str, str]:
    """A process environment whose curator home, Foundry cache and registry live under root."""
    env = dict(os.environ)
    for name, sub in (("CURATOR_HOME", "home"), ("FOUNDRY_CACHE_DIR", "foundry-cache")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / sub)
    env["CURATOR_REGISTRY"] = str(root / "registry" / "models.json")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("CURATOR_DEBUG", None)
    return env


def register_models(
    models: Sequence[tuple[Path, str]], env: dict[str, str] | None = None, timeout: float = 300
) -> None:
    """Register model directories already in the Foundry cache under the given ids, in a fresh
    process (the caller never initialises the Foundry SDK itself); ``env`` defaults to this
    process's environment."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from curator import foundry\n"
        "rt = foundry.runtime()\n"
        "for path, model_id in json.loads(sys.argv[1]):\n"
        "    rt.register_model_dir(Path(path), model_id, foundry.ModelMetadata(license='mit'))\n"
    )
    pairs = json.dumps([[str(path), model_id] for path, model_id in models])
    done = subprocess.run(
        [sys.executable, "-c", code, pairs],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"registering {pairs} failed: {done.stderr[-2000:]}")


def install_and_register(env: dict[str, str], models: Sequence[tuple[Path, str]]) -> list[Path]:
    """Copy compiled directories into env's Foundry cache and register them (a fresh process);
    returns the installed directories."""
    from curator.devmodels.cache import install_compiled

    cache = Path(env["FOUNDRY_CACHE_DIR"])
    installed = [
        (install_compiled(compiled, cache, model_id), model_id) for compiled, model_id in models
    ]
    register_models(installed, env)
    return [path for path, _ in installed]


@contextmanager
def running_server(
    env: dict[str, str], *options: str, cwd: Path | None = None, start_timeout: float = 60
) -> Iterator[tuple[str, int]]:
    """``curator serve --port 0 OPTIONS`` in a child process; yields (base URL, server pid) once
    it listens, and stops it (Ctrl-C, then kill) after. Its stderr is read all the while (a full
    pipe would stall the server); ``start_timeout`` bounds the wait for each line before it
    listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "curator", "serve", "--host", "127.0.0.1", "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for text in proc.stderr:
            lines.put(text)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    try:
        seen = []
        while True:
            line = lines.get(timeout=start_timeout)
            seen.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                break
            if not line:
                raise RuntimeError("curator serve exited before listening:\n" + "".join(seen))
        yield match.group(1), proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(url: str, timeout: float = 120) -> openai.OpenAI:
    """The official client as a script would make it, without retries (a test sees each answer)."""
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=timeout)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
