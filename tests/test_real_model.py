"""Guards: curator.cli.foundry, curator.errors, curator.fidelity.locate, curator.cache.modeldir,
  curator.prompts

The real model (issue 11): SmolLM2-135M-Instruct from its Q4_1 GGUF, compiled with the DEFAULT
recipe, keeps the answers its fp32 weights give, under Foundry Local.

Toy models mislead: the old int4 default scored KL 0.004 on the trained toy and answered gibberish
on SmolLM2. The expected words of the shipped smoke set are ones SmolLM2 in fp32 gets right
(greedy): "What is the capital of France?" -> "The capital of France is Paris.", Japan -> Tokyo,
water -> H2O, a string-reversing function with def/return, Germany -> Berlin in a follow-up turn.
Facts fp32 only hedges were left out ("A week is approximately 7 days": the k-quant default
answers "approximately 31 days in a calendar calendar ...", int4-cpu-accurate "7 days, plus a day
and a light"); the registry's fidelity policy judges the degrees of loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.cache.modeldir import sha256_file
from curator.errors import UsageProblem
from curator.fidelity.locate import default_reference
from curator.prompts import load_prompt_set
from tests.conftest import SMOLLM2_MODEL_ID, run_curator


def test_default_recipe_keeps_smollm2s_answers(
    compiled_smollm2: Path, install_compiled: Callable[..., Path]
) -> None:
    """Bug (issue 11): the int4-cpu default answered "Le Grand Jestam, l'Étoisdjestam." to the
    capital of France, and smoke still passed.

    Known (issue 25): it answers "Name a color." with "A: A: A: A: ..." (the fp32 build names a
    colour, tests/test_smoke_real.py), and smoke now fails it as degenerate. When a recipe fixes
    that, this test fails on the `color` assertion: then assert that the whole set passes."""
    model_dir = install_compiled(compiled=compiled_smollm2)
    registered = run_curator("register", str(model_dir), "--license", "apache-2.0")
    assert registered.returncode == 0, registered.stderr

    result = run_curator("smoke", SMOLLM2_MODEL_ID, "--json")
    report = json.loads(result.stdout)
    answers = {o["id"]: o["answer"] for o in report["outcomes"]}
    errors = {o["id"]: o["error"] for o in report["outcomes"] if not o["ok"]}
    assert list(errors) == ["color"], (result.stderr, answers)
    assert errors["color"].startswith("degenerate answer: 'a :' repeated"), errors
    assert result.returncode == 1 and report["passed"] is False
    assert "paris" in answers["capital"].lower()
    assert "tokyo" in answers["capital-japan"].lower()
    assert "h2o" in answers["water-symbol"].lower()
    assert "berlin" in answers["follow-up"].lower()
    shipped = load_prompt_set()
    assert [o["id"] for o in report["outcomes"]] == [p.id for p in shipped.prompts]


def test_the_manifest_names_the_gguf_and_the_build_uses_all_cores(
    compiled_smollm2: Path, smollm2_gguf: Path
) -> None:
    manifest = json.loads((compiled_smollm2 / "curator-manifest.json").read_text())
    assert manifest["id"] == SMOLLM2_MODEL_ID
    assert manifest["source"]["repo"] == "local:smollm2-135m-instruct"
    assert manifest["source"]["architecture"] == "LlamaForCausalLM"
    assert 130e6 < manifest["source"]["parameters"] < 140e6
    gguf = manifest["gguf"]
    assert gguf["file"] == smollm2_gguf.name
    assert gguf["sha256"] == sha256_file(smollm2_gguf)
    assert "Q4_1" in gguf["quantizationTypes"]
    # the fp32 the compile started from: the dequantized checkpoint, under curator's work area
    source_dir = Path(manifest["sourceDir"])
    assert source_dir.name == gguf["sha256"] and (source_dir / "config.json").is_file()
    config = json.loads((compiled_smollm2 / "genai_config.json").read_text())
    assert config["model"]["decoder"]["session_options"]["intra_op_num_threads"] == 0


def test_fidelity_defaults_to_the_dequantized_checkpoint(
    compiled_smollm2: Path, install_compiled: Callable[..., Path]
) -> None:
    model_dir = install_compiled(compiled=compiled_smollm2)
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    reference = default_reference(model_dir)
    assert reference.kind == "transformers"
    assert reference.path == Path(manifest["sourceDir"])
    assert reference.describe() == (
        "transformers-fp32:local:smollm2-135m-instruct "
        "(dequantized SmolLM2-135M-Instruct.Q4_1.gguf)"
    )


def test_a_lost_checkpoint_is_rebuilt_from_the_gguf_the_manifest_names(
    compiled_smollm2: Path,
    install_compiled: Callable[..., Path],
    use_dequantized_smollm2: Path,
    tmp_path: Path,
) -> None:
    """The recorded sourceDir is gone (another machine, a cleaned work area): the reference is
    the GGUF's dequantized checkpoint again, found by the file's sha256, never the Hub repo."""
    model_dir = install_compiled(compiled=compiled_smollm2)
    manifest_path = model_dir / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sourceDir"] = str(tmp_path / "gone")
    manifest_path.write_text(json.dumps(manifest))
    reference = default_reference(model_dir)
    assert reference.path.name == manifest["gguf"]["sha256"]
    assert use_dequantized_smollm2 in reference.path.parents
    assert "(dequantized SmolLM2-135M-Instruct.Q4_1.gguf)" in reference.describe()

    manifest["gguf"]["sha256"] = "0" * 64  # the file at that path is no longer the one compiled
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UsageProblem, match="no fp32 reference found"):
        default_reference(model_dir)
