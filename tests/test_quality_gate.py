"""Guards: curator.cli.fidelity, curator.cli.onboard, curator.registry

A gate that sees quality (issue 11): `curator onboard` writes nothing into the registry when smoke
finds an answer without its expected words or when fidelity breaks the registry's policy; the
shipped policy refuses the old int4-cpu settings on SmolLM2-135M-Instruct.

Measured with `curator fidelity` (Ecclesiastes text, 3736 tokens, windows of 512) against the
checkpoint dequantized from the SmolLM2 Q4_1 GGUF: the old int4-cpu (block 128 RTN, int4 embedding)
KL 0.702, top-1 51.0%, answering "Le Grand Jestam" for the capital of France; int4-cpu-accurate
(block 32 RTN) passes the shipped smoke set (recipes/README.md has the other recipes' figures).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.registry import validate_document
from tests.conftest import LIVENESS_PROMPTS, REPO_ROOT, TINY_MODEL_ID, run_curator
from tests.samples import make_document, make_entry

OLD_INT4 = REPO_ROOT / "tests" / "data" / "recipes" / "int4-cpu-old.json"
# curator fidelity's figures for the old int4-cpu on SmolLM2 (see the module docstring)
OLD_INT4_FIDELITY = {"klMean": 0.702, "top1Agreement": 0.510}


def fidelity_record(kl: float, top1: float) -> dict[str, object]:
    return {
        "reference": "transformers-fp32:local:smollm2-135m-instruct",
        "tokens": 3736,
        "klMean": kl,
        "klP99": 2.75,
        "top1Agreement": top1,
        "perplexity": 37.45,
        "referencePerplexity": 22.40,
    }


def shipped_policy() -> dict[str, object]:
    policy = json.loads((REPO_ROOT / "registry" / "models.json").read_text())["policy"]
    assert isinstance(policy, dict)
    return policy


def test_the_shipped_policy_refuses_the_old_int4_figures_on_smollm2() -> None:
    """Bug (issue 11): onboard wrote SmolLM2 at KL 0.70 / top-1 51% into the registry."""
    policy = shipped_policy()
    old = make_entry(1, fidelity=fidelity_record(**_figures(OLD_INT4_FIDELITY)))
    problems = validate_document(make_document([old], **policy)).problems
    assert {p.rule for p in problems} == {"fidelity-kl", "fidelity-top1"}
    # a build as close to fp32 as int8 (KL 0.0077, top-1 95% in the issue) is far inside it
    good = make_entry(2, fidelity=fidelity_record(0.0077, 0.95))
    assert validate_document(make_document([good], **policy)).valid


def _figures(record: dict[str, float]) -> dict[str, float]:
    return {"kl": record["klMean"], "top1": record["top1Agreement"]}


def test_onboard_writes_nothing_when_fidelity_breaks_the_policy(
    install_compiled: Callable[..., Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    install_compiled()  # the compile step finds this build and skips
    registry = tmp_path / "registry" / "models.json"
    registry.parent.mkdir(parents=True)
    # a policy no int4 build meets: the tiny model's fidelity must be refused
    registry.write_text(json.dumps(make_document([make_entry(1)], maxKlDivergence=1e-9), indent=2))
    before = registry.read_bytes()
    result = run_curator(
        "onboard", str(tiny_model_dir), "--id", TINY_MODEL_ID, "--license", "mit",
        "--prompts", str(LIVENESS_PROMPTS), "--rounds", "1", "--max-tokens", "8",
        "--out", str(tmp_path / "out"), "--registry", str(registry),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "error: fidelity failed: edit refused" in result.stderr
    assert "is above the policy's maxKlDivergence 1e-09" in result.stderr
    assert registry.read_bytes() == before
    assert not (tmp_path / "out" / "SUMMARY.md").exists()


@pytest.mark.slow
def test_onboard_of_the_old_int4_settings_on_smollm2_is_refused(
    smollm2_gguf: Path, use_dequantized_smollm2: Path, tmp_path: Path
) -> None:
    """The issue's check: the old int4-cpu settings on SmolLM2 never reach the registry, first
    because smoke sees the garbled answers, and with smoke's expectations waived, because the
    shipped policy refuses its fidelity."""
    registry = tmp_path / "registry" / "models.json"
    registry.parent.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "registry" / "models.json", registry)
    before = registry.read_bytes()
    common = (
        "onboard", str(smollm2_gguf), "--recipe", str(OLD_INT4), "--license", "apache-2.0",
        "--rounds", "1", "--max-tokens", "16", "--registry", str(registry),
    )  # fmt: skip

    smoke = run_curator(*common, "--out", str(tmp_path / "smoke-out"), timeout=1800)
    assert smoke.returncode == 1, smoke.stderr
    assert "error: smoke failed: smoke prompts failed: " in smoke.stderr
    assert "capital: the answer lacks the expected 'paris'" in smoke.stderr
    assert registry.read_bytes() == before

    waived = ("--prompts", str(LIVENESS_PROMPTS), "--out", str(tmp_path / "fidelity-out"))
    fidelity = run_curator(*common, *waived, timeout=3600)
    assert fidelity.returncode == 1, fidelity.stderr
    assert "error: fidelity failed: edit refused" in fidelity.stderr
    assert "maxKlDivergence" in fidelity.stderr and "minTop1Agreement" in fidelity.stderr
    assert registry.read_bytes() == before
