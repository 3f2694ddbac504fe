"""``curator compile`` wall time against running the same Olive workflow directly
(``olive run --config`` on the config curator renders, same model, same environment).

Target: at most 1.10 (curator's preflight, subprocess supervision, output check, hashing and
placement cost at most 10 % on top of Olive itself).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from curator.compile.olive_run import olive_command, olive_environment
from curator.devmodels.cache import cached_tiny_model
from perf._table import Ratio

ROUNDS = 3
MODELS_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "bench-models"
TARGET = 1.10
# Big enough that the compile is dominated by real work, small enough for a quick bench.
MODEL = {"architecture": "qwen2", "hidden_size": 512, "num_layers": 8, "vocab_size": 4096}


def _time(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    """Wall time of ``command``, its output to a file (as curator does with Olive's)."""
    with log.open("wb") as handle:
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:5]} failed; see {log}")
    return elapsed


def _curator_compile(model: Path, *options: str) -> list[str]:
    """The ``curator compile MODEL --recipe int4-cpu`` command line, with ``options``."""
    return [
        sys.executable,
        "-m",
        "curator",
        "compile",
        str(model),
        "--recipe",
        "int4-cpu",
        *options,
    ]


def _direct_config(model: Path, env: dict[str, str], run_dir: Path) -> dict[str, Any]:
    """The config curator would run (from ``--dry-run --json``), pointed at ``run_dir``."""
    plan = subprocess.run(
        _curator_compile(model, "--dry-run", "--json"),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(plan.stdout)["olive_config"]
    config["output_dir"] = str(run_dir / "olive-output")
    config["cache_dir"] = str(run_dir / "olive-cache")
    return config


def measure(workdir: Path) -> list[Ratio]:
    workdir.mkdir(parents=True, exist_ok=True)
    model = cached_tiny_model(MODELS_ROOT, **MODEL)
    env = {
        **os.environ,
        "FOUNDRY_CACHE_DIR": str(workdir / "cache"),
        "CURATOR_HOME": str(workdir / "home"),
    }
    ours: list[float] = []
    direct: list[float] = []
    for round_ in range(ROUNDS):
        run_dir = workdir / f"direct-{round_}"
        run_dir.mkdir()
        config_path = run_dir / "olive-config.json"
        config_path.write_text(json.dumps(_direct_config(model, env, run_dir)))
        direct_env = {
            **olive_environment(offline=True),
            **{k: env[k] for k in ("FOUNDRY_CACHE_DIR", "CURATOR_HOME")},
        }
        # Alternate the order so neither side always runs on a warmer page cache.
        pair = [
            ("direct", olive_command(config_path), direct_env),
            ("ours", _curator_compile(model, "--id", f"bench-{round_}-generic-cpu:1"), env),
        ]
        if round_ % 2:
            pair.reverse()
        for name, command, command_env in pair:
            elapsed = _time(command, command_env, run_dir, workdir / f"{name}-{round_}.log")
            (ours if name == "ours" else direct).append(elapsed)
        shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    print(f"compile bench: ours {ours}, direct {direct}", file=sys.stderr)
    ratio = statistics.median(ours) / statistics.median(direct)
    return [
        Ratio(
            f"curator compile int4-cpu vs olive run, same workflow ({ROUNDS} rounds, median)",
            statistics.median(ours),
            statistics.median(direct),
            "s",
            f"<= {TARGET:.2f}",
            ratio <= TARGET,
        )
    ]
