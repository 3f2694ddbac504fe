"""Guards: curator.cli.fidelity, curator.devmodels.cache, curator.fidelity, curator.fidelity.api,
  curator.fidelity.measure, curator.fidelity.record, curator.fidelity.text, curator.registry

Fidelity on real compiles of the trained fixture: fp32 ≈ identical, int4 measurably not,
a corrupted model flagged (exit 1 under --max-kl or the registry policy)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.fidelity import FidelityResult, load_text, measure_fidelity, reference_from_dir
from curator.registry import find_model, load_registry, upsert_model
from tests.conftest import TEST_MODELS_ROOT, run_curator
from tests.samples import make_entry

TRAINED_INT4_ID = "trained-qwen2-generic-cpu:1"
TRAINED_FP32_ID = "trained-qwen2-fp32-generic-cpu:1"
# Enough tokens for stable figures, few enough to keep each run to a few seconds.
MAX_TOKENS = 2048


@pytest.fixture(scope="module")
def trained_int4(trained_model_dir: Path) -> Path:
    from curator.devmodels.cache import cached_compile

    return cached_compile(TEST_MODELS_ROOT, trained_model_dir, "int4-cpu", TRAINED_INT4_ID)


@pytest.fixture(scope="module")
def trained_fp32(trained_model_dir: Path) -> Path:
    from curator.devmodels.cache import cached_compile

    return cached_compile(TEST_MODELS_ROOT, trained_model_dir, "fp32-cpu", TRAINED_FP32_ID)


@pytest.fixture(scope="module")
def measure(trained_model_dir: Path) -> Callable[[Path], FidelityResult]:
    results: dict[Path, FidelityResult] = {}

    def _measure(model: Path) -> FidelityResult:
        if model not in results:
            results[model] = measure_fidelity(
                model, reference_from_dir(trained_model_dir), load_text(), max_tokens=MAX_TOKENS
            )
        return results[model]

    return _measure


def test_trained_fixture_learned_something(trained_model_dir: Path) -> None:
    record = json.loads((trained_model_dir / "training.json").read_text(encoding="utf-8"))
    assert record["lossLast"] < record["lossFirst"] - 1.5  # from ~6.9 (uniform) to ~4.5


def test_fp32_compile_matches_its_checkpoint(
    trained_fp32: Path, measure: Callable[[Path], FidelityResult]
) -> None:
    result = measure(trained_fp32)
    assert result.tokens == MAX_TOKENS - result.windows  # every position but each window's last
    assert result.kl_mean < 1e-6 and result.kl_p99 < 1e-5
    assert result.top1_agreement >= 0.999
    assert result.perplexity == pytest.approx(result.reference_perplexity, rel=1e-4)


def test_int4_compile_drifts_measurably(
    trained_int4: Path, trained_fp32: Path, measure: Callable[[Path], FidelityResult]
) -> None:
    fp32, int4 = measure(trained_fp32), measure(trained_int4)
    assert int4.reference_perplexity == pytest.approx(fp32.reference_perplexity, rel=1e-9)
    assert int4.kl_mean > 1e-4 and int4.kl_mean > 1e4 * max(fp32.kl_mean, 1e-12)
    assert int4.kl_p99 > int4.kl_mean
    assert 0.5 < int4.top1_agreement < 0.995
    assert int4.perplexity != pytest.approx(fp32.perplexity, rel=1e-4)


def test_fp32_compile_as_reference_agrees_with_transformers(
    trained_int4: Path, trained_fp32: Path, measure: Callable[[Path], FidelityResult]
) -> None:
    against_onnx = measure_fidelity(
        trained_int4, reference_from_dir(trained_fp32), load_text(), max_tokens=MAX_TOKENS
    )
    against_hf = measure(trained_int4)
    assert against_onnx.reference.startswith("onnx:")
    assert against_onnx.kl_mean == pytest.approx(against_hf.kl_mean, rel=1e-3)
    assert against_onnx.top1_agreement == pytest.approx(against_hf.top1_agreement, abs=2e-3)


def _install(compiled: Path, cache: Path, model_id: str) -> Path:
    from curator.devmodels.cache import install_compiled

    return install_compiled(compiled, cache, model_id)


def test_cli_records_in_manifest_and_registry(
    trained_int4: Path, trained_model_dir: Path, isolated_env: Path
) -> None:
    model_id = "trained-generic-cpu:1"
    target = _install(trained_int4, isolated_env / "foundry-cache", model_id)
    registry = isolated_env / "registry" / "models.json"
    upsert_model(registry, make_entry(0, id=model_id))
    proc = run_curator(
        "fidelity",
        model_id,
        "--reference",
        str(trained_model_dir),
        "--record",
        "--json",
        "--max-tokens",
        "600",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["violations"] == []
    record = report["record"]
    # Windows of 512: 600 tokens give 2 windows, each scoring all positions but its last.
    assert record["tokens"] == 598 and record["klMean"] > 0
    manifest = json.loads((target / "curator-manifest.json").read_text(encoding="utf-8"))
    assert manifest["fidelity"] == record
    entry = find_model(load_registry(registry), model_id)
    assert entry is not None and entry["fidelity"] == record


def test_cli_without_record_writes_nothing_and_shows_progress(
    trained_int4: Path, trained_model_dir: Path, isolated_env: Path
) -> None:
    """Issue 25: `fidelity` ran 28 s silent and overwrote the manifest's figure without --record."""
    model_id = "trained-generic-cpu:1"
    target = _install(trained_int4, isolated_env / "foundry-cache", model_id)
    before = (target / "curator-manifest.json").read_bytes()
    proc = run_curator(
        "fidelity", "trained", "--reference", str(trained_model_dir), "--max-tokens", "300"
    )  # the alias: the id without its variant
    assert proc.returncode == 0, proc.stderr
    assert (target / "curator-manifest.json").read_bytes() == before
    assert "not recorded: --record writes it" in proc.stdout
    assert "reference weights held in float32)" in proc.stdout  # an fp32 checkpoint, 0.2M params
    # the reference ran alone and was stored (curator.fidelity.refcache), then the compiled model
    assert re.search(
        r"peak memory \d+\.\d\d GiB \(one model at a time: the reference \d+\.\d\d GiB",
        proc.stdout,
    ), proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0] == "fidelity of trained ..."
    assert any(line.startswith("fidelity: scoring trained-generic-cpu:1 against") for line in lines)
    assert lines[-1].startswith("fidelity of trained done (")
    again = run_curator(
        "fidelity", "trained", "--reference", str(trained_model_dir), "--max-tokens", "300"
    )
    assert again.returncode == 0, again.stderr
    assert "the reference read from its cache, reference weights held in float32)" in again.stdout


def _scale_weights(model_dir: Path, factor: float) -> None:
    """Multiply every MLP down-projection weight of an fp32 ONNX model by ``factor``."""
    import onnx
    from onnx import numpy_helper

    path = model_dir / "model.onnx"
    model = onnx.load(str(path))
    scaled = 0
    for tensor in model.graph.initializer:
        if "down_proj" in tensor.name and tensor.data_type == onnx.TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor) * factor
            tensor.CopyFrom(numpy_helper.from_array(array.astype("float32"), tensor.name))
            scaled += 1
    assert scaled > 0
    (model_dir / "model.onnx.data").unlink()
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        location="model.onnx.data",
        all_tensors_to_one_file=True,
    )


def test_corrupted_model_is_flagged(
    trained_fp32: Path, trained_model_dir: Path, isolated_env: Path
) -> None:
    cache = isolated_env / "foundry-cache"
    _install(trained_fp32, cache, "good-generic-cpu:1")
    bad = _install(trained_fp32, cache, "bad-generic-cpu:1")
    _scale_weights(bad, 3.0)
    common = ("--reference", str(trained_model_dir), "--max-tokens", "400", "--max-kl", "0.01")
    ok = run_curator("fidelity", "good-generic-cpu:1", *common)
    assert ok.returncode == 0, ok.stderr
    assert "within limits" in ok.stdout
    flagged = run_curator("fidelity", "bad-generic-cpu:1", *common, "--json")
    assert flagged.returncode == 1, flagged.stderr
    report = json.loads(flagged.stdout)
    assert report["ok"] is False and report["result"]["kl_mean"] > 0.01
    assert "exceeds the limit" in report["violations"][0]
    # No options: the registry's team policy is the limit.
    registry = isolated_env / "registry" / "models.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(
        json.dumps(
            {
                "$schema": "../schemas/models.schema.json",
                "schemaVersion": 1,
                "policy": {
                    "allowedLicenses": ["apache-2.0"],
                    "maxKlDivergence": 0.01,
                    "minTop1Agreement": 0.9,
                },
                "models": [],
            }
        ),
        encoding="utf-8",
    )
    by_policy = run_curator(
        "fidelity",
        "bad-generic-cpu:1",
        "--reference",
        str(trained_model_dir),
        "--max-tokens",
        "400",
    )
    assert by_policy.returncode == 1
    assert "exceeds the limit 0.01 (policy of" in by_policy.stderr


def test_window_is_capped_at_the_context_length(trained_int4: Path, trained_fp32: Path) -> None:
    context = json.loads((trained_int4 / "genai_config.json").read_text())["model"]
    result = measure_fidelity(
        trained_int4, reference_from_dir(trained_fp32), load_text(), window=10**6, max_tokens=300
    )
    assert result.window == context["context_length"] == 2048
    assert (result.windows, result.tokens) == (1, 299)
