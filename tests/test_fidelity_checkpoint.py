"""Guards: curator.devmodels.cache, curator.fidelity

Fidelity of an fp32 Hugging Face checkpoint as the candidate (how perf.peers scores a GGUF:
dequantized, then compared with the same method, windows and tokens as a compiled model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curator.fidelity import load_text, measure_fidelity, reference_from_dir
from tests.conftest import TEST_MODELS_ROOT

MAX_TOKENS = 1024


@pytest.fixture(scope="module")
def trained_fp32(trained_model_dir: Path) -> Path:
    from curator.devmodels.cache import cached_compile

    return cached_compile(
        TEST_MODELS_ROOT, trained_model_dir, "fp32-cpu", "trained-qwen2-fp32-generic-cpu:1"
    )


def test_a_checkpoint_scored_against_itself_agrees_everywhere(
    trained_model_dir: Path, trained_fp32: Path
) -> None:
    result = measure_fidelity(
        trained_model_dir,
        reference_from_dir(trained_model_dir),
        load_text(),
        max_tokens=MAX_TOKENS,
        model_kind="transformers",
        tokens_from=trained_fp32,
    )
    assert result.kl_mean < 1e-9
    assert result.top1_agreement == 1.0
    # the same tokens as a compiled model's measurement: every position but each window's last
    assert result.tokens == MAX_TOKENS - result.windows


def test_a_perturbed_checkpoint_is_seen_to_drift(
    trained_model_dir: Path, trained_fp32: Path, tmp_path: Path
) -> None:
    """The candidate really is the checkpoint given (not the tokenizing compile, not the reference)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    noisy = tmp_path / "noisy"
    shutil.copytree(trained_model_dir, noisy)
    weights = noisy / "model.safetensors"
    tensors = load_file(str(weights))
    rng = np.random.default_rng(0)
    for name, value in tensors.items():
        if value.ndim == 2:
            tensors[name] = value + rng.normal(0, 0.5 * float(value.std()), value.shape).astype(
                value.dtype
            )
    save_file(tensors, str(weights), metadata={"format": "pt"})

    drifted = measure_fidelity(
        noisy,
        reference_from_dir(trained_model_dir),
        load_text(),
        max_tokens=MAX_TOKENS,
        model_kind="transformers",
        tokens_from=trained_fp32,
    )
    assert drifted.kl_mean > 0.01
    assert drifted.top1_agreement < 0.95
    assert drifted.tokens == MAX_TOKENS - drifted.windows
