"""Guards: perf.peers

perf.peers pieces that decide its verdicts: the grid-breaking step and the target checks."""

from __future__ import annotations

import numpy as np

from perf.peers import Row, closing_note, ratios
from perf.peers_model import BLOCK, degrid


def _on_a_4bit_grid(rows: int = 64, cols: int = 128) -> np.ndarray:
    """Weights as a Q4_1 GGUF dequantizes them: 16 levels per block of 32 (scale, minimum)."""
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 16, size=(rows, cols // BLOCK, BLOCK)).astype(np.float32)
    levels[..., 0], levels[..., 1] = 0, 15  # every block spans its whole range
    scale = rng.uniform(0.001, 0.01, size=(rows, cols // BLOCK, 1)).astype(np.float32)
    low = rng.uniform(-0.05, 0.0, size=(rows, cols // BLOCK, 1)).astype(np.float32)
    return (levels * scale + low).reshape(rows, cols)


def _asym_4bit_roundtrip(w: np.ndarray) -> np.ndarray:
    blocks = w.reshape(w.shape[0], -1, BLOCK)
    low, high = blocks.min(-1, keepdims=True), blocks.max(-1, keepdims=True)
    step = (high - low) / 15
    return (np.round((blocks - low) / step) * step + low).reshape(w.shape)


def test_degridding_defeats_a_quantizer_that_matches_the_grid() -> None:
    gridded = _on_a_4bit_grid()
    # the trap: an asymmetric block-32 4-bit quantizer recovers gridded weights almost exactly
    assert np.abs(_asym_4bit_roundtrip(gridded) - gridded).max() < 1e-6
    noisy = np.asarray(degrid({"w": gridded})["w"])
    error = np.abs(_asym_4bit_roundtrip(noisy) - noisy)
    step = (np.ptp(gridded.reshape(64, -1, BLOCK), axis=-1) / 15).mean()
    assert error.mean() > 0.1 * step  # now it pays a real rounding error


def test_degridding_is_bounded_seeded_and_leaves_other_tensors_alone() -> None:
    gridded = _on_a_4bit_grid()
    norm = np.ones(128, dtype=np.float32)
    first = degrid({"w": gridded, "norm": norm})
    again = degrid({"w": gridded, "norm": norm})
    np.testing.assert_array_equal(first["w"], again["w"])  # reproducible
    assert not np.array_equal(degrid({"w": gridded}, seed=7)["w"], first["w"])
    blocks = gridded.reshape(64, -1, BLOCK)
    half_step = (blocks.max(-1, keepdims=True) - blocks.min(-1, keepdims=True)) / 30
    moved = np.abs(np.asarray(first["w"]).reshape(blocks.shape) - blocks)
    assert (moved <= half_step + 1e-7).all()  # at most half a step of its own block
    np.testing.assert_array_equal(first["norm"], norm)  # 1-D tensors are not touched


def _row(name: str, size: int, kl: float, top1: float, decode: float) -> Row:
    return Row(name, size, kl, top1, 30.0, 30.0, {1: decode, 2: decode}, {1: 1.0, 2: 1.0})


def test_targets_are_checked_against_q4_k_m_only() -> None:
    rows = [
        _row("int4-cpu", 110, 0.09, 0.81, 150.0),
        _row("Q4_0", 88, 0.5, 0.57, 90.0),
        _row("Q4_K_M", 101, 0.098, 0.80, 100.0),
    ]
    table = ratios(rows)
    checked = [r for r in table if r.ok is not None]
    assert checked and all("Q4_K_M" in r.name for r in checked)
    assert all(r.ok for r in checked)  # every target met here: KL, top-1, 1.09x file, 1.5x decode
    assert "NOT met" not in closing_note(table)


def test_a_miss_on_any_target_is_reported() -> None:
    rows = [
        _row("int4-cpu", 112, 0.099, 0.80, 149.0),  # each just past its target
        _row("Q4_0", 88, 0.5, 0.57, 90.0),
        _row("Q4_K_M", 101, 0.098, 0.80, 100.0),
    ]
    table = ratios(rows)
    verdicts = {r.name.split(": ", 1)[1]: r.ok for r in table if r.ok is not None}
    assert verdicts == {
        "KL mean (nats)": False,
        "top-1 agreement": True,
        "file size": False,
        "decode (1 thread)": False,
        "decode (2 threads)": False,
    }
    assert closing_note(table).count("NOT met") == 4
