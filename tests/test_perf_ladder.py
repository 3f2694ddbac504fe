"""Guards: perf.ladder

The size ladder's own parts: checkpoints written tensor by tensor are ordinary Hugging Face
checkpoints of the shape they claim (transformers loads them, every tensor where a Qwen2 model has
it), header-only ones take no disk, and the process-tree peak sees memory held by a grandchild."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from perf import ladder

SMALL = ladder.Shape("small Qwen2", 64, 160, 2, 4, 2, 2048, tied=False)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ladder._tokenizer(tmp_path_factory.mktemp("ladder-root"))


def test_a_written_checkpoint_loads_as_the_qwen2_model_of_its_shape(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "ckpt"
    ladder.write_checkpoint(SMALL, out, tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.bfloat16)
    state = model.state_dict()
    assert sorted(state) == sorted(name for name, _ in SMALL.tensors())
    for name, dims in SMALL.tensors():
        assert tuple(state[name].shape) == dims, name
    assert sum(t.numel() for t in state.values()) == SMALL.parameters
    weight = state["model.layers.1.mlp.down_proj.weight"].float()
    assert weight.dtype == torch.float32 and 0.007 < float(weight.abs().min()) < 0.008
    assert float(weight.abs().max()) < 0.032 and float(weight.std()) > 0.01  # random, not constant
    assert torch.equal(state["model.norm.weight"].float(), torch.ones(SMALL.hidden))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 2 * SMALL.parameters
    config = json.loads((out / "config.json").read_text())
    assert config["torch_dtype"] == "bfloat16" and config["vocab_size"] == SMALL.vocab


def test_the_real_shapes_have_their_models_parameter_counts() -> None:
    # Qwen2.5's published sizes: 0.49B, 1.54B, 3.09B, 7.62B
    assert round(ladder.RUNGS["0.5b"].parameters / 1e9, 2) == 0.49
    assert round(ladder.RUNGS["1.5b"].parameters / 1e9, 2) == 1.54
    assert round(ladder.RUNGS["3b"].parameters / 1e9, 2) == 3.09
    assert round(ladder.RUNGS["7b"].parameters / 1e9, 2) == 7.62


def test_shards_split_at_the_shard_size_and_a_header_only_checkpoint_takes_no_disk(
    tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ladder, "SHARD_BYTES", 200_000)
    sparse = ladder.Shape(**{**SMALL.__dict__, "sparse": True})
    out = tmp_path / "sparse"
    ladder.write_checkpoint(sparse, out, tokenizer_dir)
    shards = sorted(out.glob("*.safetensors"))
    assert len(shards) > 1
    logical = sum(p.stat().st_size for p in shards)
    assert logical > 2 * SMALL.parameters
    assert sum(p.stat().st_blocks * 512 for p in shards) < logical / 4  # sparse
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}


def test_the_peak_counts_a_grandchilds_memory(tmp_path: Path) -> None:
    hold = 300 * 2**20
    grandchild = f"b = bytearray({hold}); import time; time.sleep(1.5)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    measured = ladder.run_measured([sys.executable, "-c", child], tmp_path / "run.log")
    assert measured.returncode == 0
    assert measured.peak_bytes > hold
    assert measured.peak_anon_bytes > hold
    assert 1.5 <= measured.seconds < 30


def test_rows_and_verdicts_judge_the_bound_and_the_prediction(tmp_path: Path) -> None:
    shape = ladder.RUNGS["1.5b"]
    bound = shape.parameters + 1.5 * 2**30
    log = tmp_path / "x.log"
    under = ladder.Measured(100.0, int(bound * 0.9), 0, log)
    over = ladder.Measured(100.0, int(bound * 1.1), 0, log)
    good = ladder.RungResult(
        "1.5b", shape, shape.parameters, ladder.Preflight(int(bound), None), under
    )
    bad = ladder.RungResult("3b", shape, shape.parameters, ladder.Preflight(None, "no"), None)
    worse = ladder.RungResult(
        "1.5b", shape, shape.parameters, ladder.Preflight(int(bound * 2), None), over
    )
    peak_row = next(r for r in ladder._rows(good) if "peak RSS" in r.name)
    assert peak_row.ok is True and math.isnan(peak_row.baseline)  # no anchor in this run
    assert next(r for r in ladder._rows(worse) if "peak RSS" in r.name).ok is False
    assert next(r for r in ladder._rows(worse) if "preflight" in r.name).ok is False
    assert next(r for r in ladder._rows(good) if "preflight" in r.name).ok is True
    lines = ladder.verdicts([good, bad])
    assert "3B shape compiles on this machine: NOT met (preflight refuses)" in lines
    assert any(line.startswith("peak <=") and ": met" in line for line in lines)
    assert any("NOT met" in line for line in ladder.verdicts([worse]))


def test_the_fastest_successful_pinned_compile_is_the_one_compared(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    slow, fast = ladder.Measured(60.0, 1, 0, log), ladder.Measured(50.0, 1, 0, log)
    failed_fast = ladder.Measured(10.0, 1, 1, log)
    assert ladder._faster(fast, slow) and not ladder._faster(slow, fast)
    assert not ladder._faster(failed_fast, slow)  # a failed compile is never the figure
    assert ladder._faster(slow, failed_fast)  # and is replaced by any that succeeded
