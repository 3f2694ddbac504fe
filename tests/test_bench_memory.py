"""Guards: curator.bench.isolated, curator.bench.memory, curator.cli.bench

Peak memory per model (issue 25): in process, each model is benched in its own fresh process,
so a model benched after another measures what it measures alone (within 5%), and
``bench compare`` of the two reports flags no memory regression."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LIVENESS_PROMPTS, TINY_FP32_MODEL_ID, TINY_MODEL_ID, run_curator
from tests.serve_helpers import register_models


def _bench(out: Path, *ids: str) -> dict[str, float]:
    done = run_curator(
        "bench", *ids, "--rounds", "1", "--warmup", "0", "--max-tokens", "8",
        "--prompts", str(LIVENESS_PROMPTS), "--out", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "bench-report.json").read_text())
    assert any("its own fresh process" in note for note in report["notes"])
    return {m["id"]: m["peakMemoryMb"] for m in report["models"]}


@pytest.mark.slow  # about 30-60 s: two benches of two compiled models, each model in its own process
def test_a_model_after_another_measures_its_own_peak(
    install_compiled: Callable[..., Path], compiled_tiny_fp32: Path, tmp_path: Path
) -> None:
    small = install_compiled()
    big = install_compiled(model_id=TINY_FP32_MODEL_ID, compiled=compiled_tiny_fp32)
    register_models([(small, TINY_MODEL_ID), (big, TINY_FP32_MODEL_ID)])
    alone = _bench(tmp_path / "alone", TINY_MODEL_ID)
    after = _bench(tmp_path / "after", TINY_FP32_MODEL_ID, TINY_MODEL_ID)
    assert abs(after[TINY_MODEL_ID] - alone[TINY_MODEL_ID]) <= 0.05 * alone[TINY_MODEL_ID], (
        alone,
        after,
    )
    done = run_curator(
        "bench", "compare", str(tmp_path / "alone" / "bench-report.json"),
        str(tmp_path / "after" / "bench-report.json"), "--json",
    )  # fmt: skip
    compared = json.loads(done.stdout)
    (mine,) = [m for m in compared["models"] if m["id"] == TINY_MODEL_ID]
    (memory,) = [d for d in mine["deltas"] if d["figure"] == "peakMemoryMb"]
    assert memory["regression"] is False, memory


def _report(notes: list[str], peak: float) -> dict[str, object]:
    return {
        "machine": {"fingerprint": "m"},
        "promptSet": {"sha256": "p"},
        "backend": "in-process",
        "settings": {"maxTokens": 8, "temperature": 0.0, "concurrency": 1},
        "notes": notes,
        "models": [{"id": TINY_MODEL_ID, "status": "ok", "peakMemoryMb": peak}],
    }


def test_compare_says_when_memory_was_measured_differently() -> None:
    from curator.bench.compare import compare_reports
    from curator.bench.isolated import ALLOCATOR_NOTE

    shared, own = _report([], 1454.1), _report([ALLOCATOR_NOTE], 644.9)
    (note,) = compare_reports(shared, own).notes
    assert note.startswith("peak memory was measured differently: OLD ran its models in one")
    assert compare_reports(own, own).notes == ()
