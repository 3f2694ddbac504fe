"""Guards: curator.cli.compile, curator.compile.stream.builder_patch, perf.ladder

A compile's memory does not grow with the model (issue 20): a Qwen2.5-1.5B-shape checkpoint
(random bf16 weights, real vocabulary, perf.ladder) compiles with int4-cpu within 1.0 byte per
parameter + 1.5 GiB, measured as the peak resident memory of the whole compile process tree.

Slow (minutes, a 3 GB checkpoint written once under .cache/ladder); run it alone on a shared
machine: ``flock /tmp/curator-heavy.lock .venv/bin/pytest -m slow tests/test_compile_scale.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perf.ladder import (
    BOUND_FIXED,
    BOUND_PER_PARAM,
    GIB,
    PREFLIGHT_TOLERANCE,
    RUNGS,
    checkpoint,
    compile_measured,
    compiled_dir,
    preflight,
)

RUNG = "1.5b"


@pytest.mark.slow
def test_a_1p5b_shape_compiles_int4_within_one_byte_per_parameter(tmp_path: Path) -> None:
    ckpt = checkpoint(RUNG)
    parameters = RUNGS[RUNG].parameters
    assert 1.5e9 < parameters < 1.6e9
    bound = BOUND_PER_PARAM * parameters + BOUND_FIXED  # 2.94 GiB
    plan = preflight(ckpt, RUNG, tmp_path)
    assert plan.refused is None, plan.refused
    assert plan.predicted_bytes is not None
    # Preflight is meant to be within 15% of the truth: a prediction far above the bound means the
    # path that would run does not stream, and running it would take ~16 GB of a shared machine.
    assert plan.predicted_bytes <= bound * (1 + PREFLIGHT_TOLERANCE), (
        f"preflight predicts {plan.predicted_bytes / GIB:.2f} GiB, bound {bound / GIB:.2f} GiB"
    )
    measured = compile_measured(ckpt, RUNG, tmp_path)
    log_tail = measured.log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert measured.returncode == 0, log_tail
    model = compiled_dir(RUNG, tmp_path)
    assert (model / "genai_config.json").is_file() and (model / "model.onnx").is_file()
    assert measured.peak_bytes <= bound, (
        f"peak {measured.peak_bytes / GIB:.2f} GiB over the bound {bound / GIB:.2f} GiB"
    )
    error = plan.predicted_bytes / measured.peak_bytes - 1
    assert abs(error) <= PREFLIGHT_TOLERANCE, f"preflight off by {error:+.0%}"
