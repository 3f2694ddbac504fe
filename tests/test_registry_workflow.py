"""Guards: curator.registry.select, curator.resources

.github/workflows/registry-review.yml: the base's curator judges the head's registry, and the
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


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, Any], message: str) -> str:
    """Write ``files`` (path -> JSON document, text, or None to delete) and commit them."""
    for name, content in files.items():
        target = repo / name
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    git("add", "-A", ".", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def workspace(
    tmp_path: Path,
    base: Any,
    head: Any,
    head_schema: Any = None,
    head_files: dict[str, Any] | None = None,
) -> Path:
    """A repository with a base commit (this curator's workflow and schema, the base registry)
    and a pull request's head commit on top, checked out as the workflow's two checkouts do:
    base/ at the base commit, head/ at the head commit with its history."""
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    base_sha = commit(
        repo,
        {
            "registry/models.json": base,
            "schemas/models.schema.json": schema_path("models").read_text(),
            ".github/workflows/registry-review.yml": WORKFLOW.read_text(),
        },
        "base",
    )
    changes: dict[str, Any] = {"registry/models.json": head, **(head_files or {})}
    if head_schema is not None:
        changes["schemas/models.schema.json"] = head_schema
    git("checkout", "-q", "-b", "pull-request", cwd=repo)
    head_sha = commit(repo, changes, "the pull request")
    space = tmp_path / "workspace"
    for side, sha in (("base", base_sha), ("head", head_sha)):
        git("clone", "-q", str(repo), str(space / side), cwd=tmp_path)
        git("checkout", "-q", sha, cwd=space / side)
    (space / "shas.json").write_text(json.dumps({"base": base_sha, "head": head_sha}))
    return space


def run_review(
    space: Path, labels: tuple[str, ...] = (), workflow: Path = WORKFLOW
) -> tuple[int, str]:
    """The review step, then the post step (as `if: always()` runs it) of ``workflow`` (this
    curator's, i.e. the base's); exit code and summary."""
    shas = json.loads((space / "shas.json").read_text())
    workflow_steps = {
        s["name"].split()[0]: s["run"]
        for s in yaml.safe_load(workflow.read_text())["jobs"]["review"]["steps"]
        if "name" in s and "run" in s
    }
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
        "SENSITIVE_LABEL": str("sensitive-change" in labels).lower(),
        **{f"{side.upper()}_SHA": sha for side, sha in shas.items()},
    }
    outcomes = []
    for name, cwd in (("Review", temp), ("Post", space)):
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", workflow_steps[name]],
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


def test_the_review_runs_the_base_branch_copy_with_least_privilege() -> None:
    """pull_request_target: GitHub runs the workflow file of the base branch, whatever the pull
    request changes; a `pull_request` trigger would run the pull request's own copy."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"pull_request_target"}
    assert "paths" not in triggers["pull_request_target"]  # a workflow-only change is reviewed
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["review"]["permissions"] == {"contents": "read"}
    for s in steps():
        if str(s.get("uses", "")).startswith("actions/checkout@"):
            assert s["with"]["persist-credentials"] is False
        # nothing the pull request controls is pasted into a script: ${{ }} only in with/env
        assert "${{" not in s.get("run", ""), s.get("name")
    for line in WORKFLOW.read_text().splitlines():
        if "${{" in line and not line.lstrip().startswith("#"):
            key = line.strip().lstrip("- ").split(":")[0]
            assert key in ("ref", "working-directory", "group") or key.isupper(), line


HOSTILE_WORKFLOW = """name: registry-review
on: pull_request
permissions: write-all
jobs:
  review:
    runs-on: ubuntu-latest
    steps:
      - name: Review
        run: touch "$WORKSPACE/pwned"; echo "## ✅ all good" > "$RUNNER_TEMP/review.md"
      - name: Post
        run: cat "$RUNNER_TEMP/review.md" >> "$GITHUB_STEP_SUMMARY"
"""


def test_a_pull_request_editing_the_workflow_the_schema_and_the_registry_at_once(
    tmp_path: Path,
) -> None:
    """One pull request rewrites the review workflow (to pass itself), loosens the schema (to
    allow a 3,000-character note) and adds an entry relying on both. The review runs as
    pull_request_target runs it: the base commit's workflow, this curator (the base's code),
    the head's files as data. Nothing of the head's is used, and its edits are flagged."""
    loosened = json.loads(schema_path("models").read_text())
    loosened["$defs"]["safeText"]["maxLength"] = 20_000_000
    head = make_document([make_entry(0, notes="n" * 3000)])
    space = workspace(
        tmp_path,
        make_document([]),
        head,
        head_schema=loosened,
        head_files={".github/workflows/registry-review.yml": HOSTILE_WORKFLOW},
    )
    base_workflow = space / "base" / ".github" / "workflows" / "registry-review.yml"
    head_workflow = space / "head" / ".github" / "workflows" / "registry-review.yml"
    assert base_workflow.read_text() == WORKFLOW.read_text()
    assert head_workflow.read_text() == HOSTILE_WORKFLOW
    status, summary = run_review(space, workflow=base_workflow)
    assert status == 1
    assert not (space / "pwned").exists()  # the head's workflow never ran
    assert "## ✅ all good" not in summary
    assert "**❌ policy violations**" in summary
    assert "longer than 2000 characters" in summary  # the base's schema judged the entry
    assert (
        "changes outside the registry: `.github/workflows/registry-review.yml` ⚠️, "
        "`schemas/models.schema.json` ⚠️" in summary
    )
    violations = summary.split("### Policy violations")[1]
    assert "(`sensitive-change`)" in violations and "(`schema-changed`)" in violations
    # A maintainer's labels accept the edits, not the entry: the base's schema still refuses it.
    status, summary = run_review(
        space, labels=("sensitive-change", "schema-change"), workflow=base_workflow
    )
    assert status == 1 and "longer than 2000 characters" in summary
    violations = summary.split("### Policy violations")[1]
    assert "sensitive-change" not in violations and "schema-changed" not in violations
    assert "changes outside the registry: " in summary  # still listed


def test_other_files_outside_the_registry_are_listed_without_failing(tmp_path: Path) -> None:
    space = workspace(
        tmp_path,
        make_document([make_entry(0)]),
        make_document([make_entry(0), make_entry(1)]),
        head_files={"README.md": "# notes\n", "recipes/int4-cpu.json": "{}"},
    )
    status, summary = run_review(space)
    assert status == 1
    assert "changes outside the registry: `README.md`, `recipes/int4-cpu.json` ⚠️" in summary
    assert "(`sensitive-change`)" in summary
    # The base's policy may make sensitive edits a warning: then only the list remains.
    relaxed = make_document([make_entry(0)], failOnSensitiveChange=False)
    space = workspace(
        tmp_path / "relaxed",
        relaxed,
        make_document([make_entry(0), make_entry(1)], failOnSensitiveChange=False),
        head_files={"recipes/int4-cpu.json": "{}"},
    )
    status, summary = run_review(space)
    assert status == 0, summary
    assert "✅ passes policy" in summary and "`recipes/int4-cpu.json` ⚠️" in summary
