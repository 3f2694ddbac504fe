"""Guards: curator.cli.bench

The in-process bench's figures are consistent with each other and with the requests they come
from (issue 17: they were only checked to be above zero). Every relation here holds under any load:
a slow machine stretches all times alike, it cannot make a first token arrive after the answer
ended or a mean fall outside its sample."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_MODEL_ID, run_curator
from tests.serve_helpers import register_models
from tests.test_bench_foundry import write_prompts

MAX_TOKENS = 24


@pytest.fixture
def report(install_compiled: Callable[..., Path], tmp_path: Path) -> dict[str, Any]:
    model_dir = install_compiled()
    register_models([(model_dir, TINY_MODEL_ID)])
    prompts = write_prompts(tmp_path / "prompts.json")
    started = time.monotonic()
    done = run_curator(
        "bench",
        TINY_MODEL_ID,
        "--in-process",
        "--prompts",
        str(prompts),
        "--rounds",
        "3",
        "--warmup",
        "1",
        "--max-tokens",
        str(MAX_TOKENS),
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    wall_ms = (time.monotonic() - started) * 1000
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)["report"]["models"][0]
    assert model["status"] == "ok", model["error"]
    model["_wall_ms"] = wall_ms
    model["_weights_mb"] = sum(p.stat().st_size for p in model_dir.glob("model.onnx*")) / 2**20
    return model


def close(value: float, expected: float) -> bool:
    """Equal up to the report's rounding (3 decimals)."""
    return value == pytest.approx(expected, rel=1e-3, abs=2e-3)


def test_in_process_figures_are_consistent(report: dict[str, Any]) -> None:
    """One bench run (about 15 s), three groups of relations."""
    check_requests(report)
    check_summary(report)
    check_load_and_memory(report)


def check_requests(report: dict[str, Any]) -> None:
    requests = report["requests"]
    assert len(requests) == 2 * 3  # warm-up rounds are not reported
    for r in requests:
        assert r["status"] == "ok" and r["completionTokens"] == MAX_TOKENS, r
        assert 0 < r["ttftMs"] <= r["latencyMs"] < report["_wall_ms"]
        # Decode time is from the first text to the last, inside latency - ttft: so the rate
        # cannot be below the tokens after the first over that span.
        floor = (r["completionTokens"] - 1) / ((r["latencyMs"] - r["ttftMs"]) / 1000)
        assert r["decodeTokensPerSec"] >= floor * (1 - 1e-3), r
        inverse = 1000.0 / r["decodeTokensPerSec"]
        assert r["interTokenMs"] == pytest.approx(inverse, rel=1e-3, abs=6e-4)  # 3 decimals
        assert r["chunks"] >= 2 and r["text"]


def check_summary(report: dict[str, Any]) -> None:
    requests, summary = report["requests"], report["summary"]
    for name in ("ttftMs", "latencyMs"):
        values = sorted(r[name] for r in requests)
        stat = summary[name]
        assert stat["n"] == len(values)
        assert close(stat["mean"], statistics.fmean(values))
        assert close(stat["p50"], statistics.median(values))
        assert close(stat["min"], values[0]) and close(stat["max"], values[-1])
        assert stat["min"] <= stat["p50"] <= stat["p95"] <= stat["max"]
    steady = [r for r in requests if not r["bursty"]] or requests
    decode = summary["decodeTokensPerSec"]
    assert decode["n"] == len(steady)
    assert close(decode["mean"], statistics.fmean(r["decodeTokensPerSec"] for r in steady))
    assert summary["completionTokens"]["mean"] == MAX_TOKENS


def check_load_and_memory(report: dict[str, Any]) -> None:
    assert 0 < report["loadTimeMs"] < report["_wall_ms"]
    assert report["peakMemoryMb"] >= report["_weights_mb"]  # the weights were in memory
