""".github/workflows/registry-review.yml: the base's curator judges the head's registry, and the
review is posted whatever happens (issue 12, items 2 and 15).

The workflow's own shell steps are run here, with the environment GitHub Actions would give them,
against a workspace holding base/ and head/ checkouts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from curator.resources import schema_path
from tests.conftest import REPO_ROOT
from tests.samples import make_document, make_entry

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "registry-review.yml"


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    result: list[dict[str, Any]] = workflow["jobs"]["review"]["steps"]
    return result


def step(name_starts: str) -> dict[str, Any]:
    (found,) = [s for s in steps() if s.get("name", "").startswith(name_starts)]
    return found


def test_the_workflow_is_a_valid_github_workflow() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_and_head_are_separate_checkouts_and_only_base_is_installed() -> None:
    checkouts = {
        s["with"]["path"]: s["with"]["ref"]
        for s in steps()
        if str(s.get("uses", "")).startswith("actions/checkout@")
    }
    assert checkouts == {
        "base": "${{ github.event.pull_request.base.sha }}",
        "head": "${{ github.event.pull_request.head.sha }}",
    }
    runs = [s["run"] for s in steps() if "run" in s]
    installs = [line for run in runs for line in run.splitlines() if "pip install" in line]
    assert installs == ["pip install -c base/constraints.txt ./base"]
    for run in runs:  # head/ is only ever named as data for the base's curator to read
        for line in run.splitlines():
            if "head/" in line:
                assert "$WORKSPACE/head/" in line and "python" not in line and "source" not in line
    assert step("Review")["working-directory"] == "${{ runner.temp }}"
    assert step("Post")["if"] == "always()"


def workspace(tmp_path: Path, base: Any, head: Any, head_schema: Any = None) -> Path:
    space = tmp_path / "workspace"
    for side, document in (("base", base), ("head", head)):
        registry = space / side / "registry" / "models.json"
        registry.parent.mkdir(parents=True)
        registry.write_text(document if isinstance(document, str) else json.dumps(document))
        (space / side / "schemas").mkdir()
        shutil.copy(schema_path("models"), space / side / "schemas" / "models.schema.json")
    if head_schema is not None:
        (space / "head" / "schemas" / "models.schema.json").write_text(json.dumps(head_schema))
    return space


def run_review(space: Path, labels: tuple[str, ...] = ()) -> tuple[int, str]:
    """The review step, then the post step (as `if: always()` runs it); exit code and summary."""
    temp = space.parent / "runner-temp"
    shutil.rmtree(temp, ignore_errors=True)  # a fresh runner for every run
    temp.mkdir()
    summary = space.parent / "summary.md"
    summary.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "WORKSPACE": str(space),
        "RUNNER_TEMP": str(temp),
        "GITHUB_STEP_SUMMARY": str(summary),
        "POLICY_LABEL": str("policy-change" in labels).lower(),
        "SCHEMA_LABEL": str("schema-change" in labels).lower(),
    }
    outcomes = []
    for name, cwd in (("Review", temp), ("Post", space)):
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step(name)["run"]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        outcomes.append(done.returncode)
    assert outcomes[1] == 0
    return outcomes[0], summary.read_text()


def test_a_clean_change_passes_with_its_review_posted(tmp_path: Path) -> None:
    space = workspace(
        tmp_path, make_document([make_entry(0)]), make_document([make_entry(0), make_entry(1)])
    )
    status, summary = run_review(space)
    assert status == 0
    assert "✅ passes policy" in summary and "1 added" in summary


def test_an_invalid_change_fails_and_still_gets_its_review(tmp_path: Path) -> None:
    head = make_document([make_entry(0, license="gpl-3.0", minRamGb=-1.0)])
    status, summary = run_review(workspace(tmp_path, make_document([]), head))
    assert status == 1
    assert "❌ policy violations" in summary
    assert "license-allowed" in summary and "exclusiveMinimum" in summary


def test_an_unreadable_head_fails_and_the_summary_says_why(tmp_path: Path) -> None:
    head = '{"schemaVersion": 1, "models": [], "models": []}'
    status, summary = run_review(workspace(tmp_path, make_document([]), head))
    assert status == 1
    assert "❌ cannot review" in summary and "duplicate key" in summary


def test_a_loosened_schema_in_the_pull_request_does_not_judge_it(tmp_path: Path) -> None:
    loosened = json.loads(schema_path("models").read_text())
    loosened["$defs"]["safeText"]["maxLength"] = 20_000_000
    head = make_document([make_entry(0, notes="n" * 3000)])
    space = workspace(tmp_path, make_document([]), head, head_schema=loosened)
    status, summary = run_review(space)
    assert status == 1
    assert "schema-changed" in summary and "longer than 2000 characters" in summary
    status, summary = run_review(space, labels=("schema-change",))
    assert status == 1 and "schema-changed" not in summary.split("### Policy violations")[1]
    assert "longer than 2000 characters" in summary  # still the base's schema


@pytest.mark.parametrize("target", ["../../base/registry/models.json", "/etc/hostname"])
def test_a_symlinked_registry_in_the_pull_request_is_refused(tmp_path: Path, target: str) -> None:
    space = workspace(tmp_path, make_document([]), make_document([]))
    registry = space / "head" / "registry" / "models.json"
    registry.unlink()
    registry.symlink_to(target)
    status, summary = run_review(space)
    assert status == 1
    assert "registry/models.json goes through a symbolic link in the pull request" in summary


@pytest.mark.parametrize("folder", ["registry", "schemas"])
def test_a_symlinked_folder_in_the_pull_request_is_refused(tmp_path: Path, folder: str) -> None:
    """The attack: the head replaces registry/ (or schemas/) by a link to the base's copy, so the
    review reads the base's file and says "no model changes" while the merge brings other files."""
    head = make_document([make_entry(0, license="gpl-3.0")])
    space = workspace(tmp_path, make_document([]), head)
    linked = space / "head" / folder
    shutil.rmtree(linked)
    linked.symlink_to(f"../base/{folder}")
    status, summary = run_review(space)
    assert status == 1
    assert "goes through a symbolic link in the pull request" in summary
    assert "No model changes" not in summary
