"""Guards: curator.cli.foundry, curator.smoke.run

Smoke on real weights (issue 25): SmolLM2-135M-Instruct's fp32 build passes the whole shipped
smoke set, degenerate-answer checks included (its int4-cpu build is caught on `color`:
tests/test_real_model.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SMOLLM2_MODEL_ID, TEST_MODELS_ROOT, run_curator

FP32_ID = SMOLLM2_MODEL_ID.replace("-generic-cpu:", "-fp32-generic-cpu:")


@pytest.mark.slow  # an fp32 compile of SmolLM2 (about 30 s once, then cached) and 8 answers
def test_the_fp32_reference_passes_the_shipped_smoke_set(
    smollm2_gguf: Path, smollm2_gguf_home: Path, install_compiled: Callable[..., Path]
) -> None:
    from curator.cache.modeldir import sha256_file
    from curator.devmodels.cache import cached_compile

    compiled = cached_compile(
        TEST_MODELS_ROOT,
        smollm2_gguf,
        "fp32-cpu",
        FP32_ID,
        home=smollm2_gguf_home,
        key={"gguf_sha256": sha256_file(smollm2_gguf)},
    )
    model_dir = install_compiled(model_id=FP32_ID, compiled=compiled)
    registered = run_curator("register", str(model_dir), "--license", "apache-2.0")
    assert registered.returncode == 0, registered.stderr
    result = run_curator("smoke", FP32_ID, "--json")
    report = json.loads(result.stdout)
    answers = {o["id"]: o["answer"] for o in report["outcomes"]}
    assert result.returncode == 0 and report["passed"] is True, answers
    assert "a: a: a:" not in answers["color"].lower()
