"""Guards: perf.pipeline

The pipeline-at-scale harness (issue 20, item 5): its KV-cache term is what the runtime really
allocates (Foundry Local sizes every request's KV buffer for the model's whole context_length: a
tiny model given a 1M-token context peaks higher by what the formula says), and register and
fidelity on a compiled model are measured against their bounds, the fidelity bound counting the
reference as the worker holds it."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from perf import pipeline
from perf.ladder import GIB


def _with_context(model_dir: Path, tokens: int) -> None:
    path = model_dir / "genai_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["model"]["context_length"] = tokens
    config["search"]["max_length"] = tokens
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def test_model_facts_read_the_compiled_model(install_compiled: Callable[..., Path]) -> None:
    model_dir = install_compiled()
    facts = pipeline.model_facts(model_dir)
    assert facts.model_id == "tiny-qwen2-generic-cpu:1"
    assert facts.onnx_bytes == sum(
        (model_dir / name).stat().st_size for name in ("model.onnx", "model.onnx.data")
    )
    # hidden 64, 4 heads (head 16), 2 KV heads, 2 layers, fp32 KV: keys and values per token
    assert (facts.layers, facts.kv_heads, facts.head_size, facts.kv_dtype_bytes) == (2, 2, 16, 4)
    assert facts.kv_bytes(1) == 2 * 2 * 2 * 16 * 4
    assert facts.kv_bytes(facts.context_length) == facts.context_length * 512


def test_the_kv_term_is_what_the_runtime_allocates(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    """register's load test on the same model with a 2,048- and a 1M-token context: the peak grows
    by the KV the formula gives for the difference (512 MiB), though the request is 8 tokens."""
    small = install_compiled()
    big_cache = tmp_path / "big-cache"
    big = big_cache / "local" / small.name
    shutil.copytree(small, big)
    _with_context(big, 2**20)
    runs = {}
    for name, model_dir in (("small", small), ("big", big)):
        (step,) = pipeline.run_pipeline(
            model_dir, tmp_path / name, steps=["register"], license_id="apache-2.0"
        )
        assert step.measured.returncode == 0, step.measured.log.read_text()
        assert step.ok, (step.measured.peak_bytes, step.bound_bytes)
        runs[name] = step
    grew = runs["big"].measured.peak_bytes - runs["small"].measured.peak_bytes
    expected = pipeline.model_facts(big).kv_bytes(2**20) - pipeline.model_facts(small).kv_bytes(
        2048
    )
    assert 0.9 * expected <= grew <= 1.1 * expected, (grew / 2**20, expected / 2**20)
    assert runs["big"].bound_bytes - runs["small"].bound_bytes == expected


def test_fidelity_is_measured_against_compiled_plus_the_held_reference(
    install_compiled: Callable[..., Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = install_compiled()
    (step,) = pipeline.run_pipeline(
        model_dir, tmp_path / "work", reference=tiny_model_dir, steps=["fidelity"]
    )
    assert step.measured.returncode in (0, 1), step.measured.log.read_text()
    assert "KL" in step.measured.log.read_text()
    held, held_bytes, largest = pipeline.reference_facts(tiny_model_dir)
    facts = pipeline.model_facts(model_dir)
    kv = facts.kv_bytes(pipeline.FIDELITY_TOKENS + 1)
    assert step.bound_bytes == facts.onnx_bytes + kv + held_bytes + largest
    assert f"({held})" in step.bound_text
    assert step.ok
    rows = pipeline.rows([step], facts.model_id)
    assert rows[0].ours == pytest.approx(step.measured.peak_bytes / GIB)
    assert rows[0].ok is True


def test_a_context_copy_is_the_model_as_compile_context_length_writes_it(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    model_dir = install_compiled()
    own = pipeline.model_facts(model_dir).context_length
    copy = pipeline.context_copy(model_dir, tmp_path / "ctx", 1024)
    assert copy == tmp_path / "ctx" / "foundry-cache" / "local" / model_dir.name
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in model_dir.iterdir())
    assert (copy / "model.onnx.data").resolve() == (model_dir / "model.onnx.data").resolve()
    genai = json.loads((copy / "genai_config.json").read_text())
    assert (genai["model"]["context_length"], genai["search"]["max_length"]) == (1024, 1024)
    facts = pipeline.model_facts(copy)
    assert facts.context_length == 1024 and facts.model_id == "tiny-qwen2-generic-cpu:1"
    manifest = json.loads((copy / "curator-manifest.json").read_text())
    assert manifest["contextLength"] == 1024 and manifest["modelContextLength"] == own
    assert manifest["kvCacheBytes"] == facts.kv_bytes(1024)
    original = json.loads((model_dir / "genai_config.json").read_text())
    assert original["model"]["context_length"] == own  # the compiled model is left as it was


def test_a_session_option_copy_keeps_the_context_and_adds_the_option(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    model_dir = install_compiled()
    own = pipeline.model_facts(model_dir).context_length
    texts = ("enable_cpu_mem_arena=false", "session.disable_prepacking=1", "inter_op_num_threads=2")
    options = [pipeline.session_option(t) for t in texts]
    # genai reads the first and last itself (a boolean, an integer); the middle key is an
    # onnxruntime config entry, whose value genai passes on only as a string
    assert options == [
        ("enable_cpu_mem_arena", False),
        ("session.disable_prepacking", "1"),
        ("inter_op_num_threads", 2),
    ]
    copy = pipeline.context_copy(model_dir, tmp_path / "opt", None, options)
    session = json.loads((copy / "genai_config.json").read_text())["model"]["decoder"]
    assert session["session_options"]["enable_cpu_mem_arena"] is False
    assert session["session_options"]["session.disable_prepacking"] == "1"
    assert session["session_options"]["intra_op_num_threads"] == 0  # what compile wrote stays
    assert pipeline.model_facts(copy).context_length == own
    for bad, why in (
        ("novalue", "is not KEY=VALUE"),
        ("enable_mem_pattern=0", "takes true or false"),
        ("intra_op_num_threads=all", "takes an integer"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            pipeline.session_option(bad)


@pytest.mark.parametrize(
    ("step", "returncode", "ok"),
    [
        ("register", 0, True),
        ("register", 1, False),  # the model did not load: its low peak measures nothing
        ("bench", 1, False),
        ("smoke", 1, True),  # a verdict on the answers, after running the model
        ("fidelity", 1, True),
        ("smoke", 2, False),
    ],
)
def test_a_step_that_did_not_run_the_model_is_not_met(
    step: str, returncode: int, ok: bool, tmp_path: Path
) -> None:
    measured = pipeline.Measured(1.0, GIB // 10, returncode, tmp_path / "log")
    assert pipeline.Step(step, measured, 5 * GIB, "bound", 0).ok is ok
