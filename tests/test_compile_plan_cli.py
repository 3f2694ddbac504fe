"""Guards: curator.cli.compile, curator.compile.api

`curator compile` for a new user (issue 25): int4-cpu without --recipe (as onboard), a dry run
shows the plan even when the target exists, and every "-" in a plan says why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import TINY_MODEL_ID, run_curator


def test_default_recipe_and_dry_run_over_an_existing_target(
    tiny_model_dir: Path, install_compiled: Callable[..., Path]
) -> None:
    target = install_compiled()  # the same id the dry run plans
    done = run_curator("compile", str(tiny_model_dir), "--id", TINY_MODEL_ID, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "--recipe int4-cpu ->" in done.stdout.splitlines()[0]
    assert f"note:         {target} already exists: a real run stops there" in done.stdout
    real = run_curator("compile", str(tiny_model_dir), "--id", TINY_MODEL_ID)
    assert real.returncode != 0 and "already exists" in real.stderr


def test_an_offline_hub_plan_says_why_its_figures_are_missing() -> None:
    done = run_curator("compile", "Qwen/Qwen2.5-0.5B-Instruct", "--dry-run")  # HF_HUB_OFFLINE=1
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    bare = [line for line in lines[:5] if " - " in line and "(" not in line]
    assert bare == [], lines
    assert "parameters: - (Hub unreachable: " in done.stdout
    assert "peak RAM:     - predicted (no parameter count)" in done.stdout
