"""Guards: curator.cli.registry, curator.jsonio, curator.registry, curator.registry.candidates,
  curator.registry.document

The compile-matrix workflow's logic, run locally: the matrix rendered from a candidates file by
the plan job's own script, two compile jobs' own step scripts as parallel processes (each in its own
checkout, publishing to the loopback Hub) into separate fragments, the merge job's script, and a
conflicting pair refused. The step scripts are read from .github/workflows/compile-matrix.yml, so a
change there is what these tests run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from curator.jsonio import write_json_atomic
from curator.registry import add_model, load_registry, validate_document
from curator.registry.document import empty_document
from tests.conftest import REPO_ROOT, TINY_MODEL_ID, run_curator
from tests.fakehub import TINY
from tests.fakehub.plugin import fake_hub_server, hub
from tests.fakehub.server import FakeHub
from tests.fakehub.upload import UploadedRepo
from tests.test_publish import WRITE_TOKEN, entry_for, writer

__all__ = ["fake_hub_server", "hub", "writer"]

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "compile-matrix.yml"
CANDIDATES = REPO_ROOT / "registry" / "candidates.json"
BIN = Path(sys.executable).parent


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def step(job: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in workflow()["jobs"][job]["steps"] if s.get("name") == name]
    return found


def job_env(matrix_entry: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The compile job's ``env`` with ``${{ matrix.X }}`` and ``${{ secrets.X }}`` filled in."""

    def fill(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            kind, name = match.group(1), match.group(2)
            source = matrix_entry if kind == "matrix" else secrets
            return str(source[name])

        return re.sub(r"\$\{\{\s*(matrix|secrets)\.([A-Za-z_-]+)\s*\}\}", one, value)

    return {k: fill(str(v)) for k, v in workflow()["jobs"]["compile"]["env"].items()}


def run_step(job: str, name: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start one step's ``run`` script with bash -e (GitHub's default shell), curator on PATH."""
    script = step(job, name)["run"]
    full = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=900)
    return process.returncode, out, err


def checkout(root: Path, name: str, registry: dict[str, Any]) -> Path:
    """A job's fresh checkout: registry/models.json (and nothing else the steps read)."""
    path = root / name
    write_json_atomic(path / "registry" / "models.json", registry, sort_keys=True)
    return path


def candidates_file(path: Path, prompts: str | None = None) -> Path:
    document: dict[str, Any] = {
        "schemaVersion": 1,
        "publishTo": "team",
        "candidates": [
            {"source": TINY, "recipe": "int4-cpu", "revision": "main", "license": "apache-2.0"},
            {
                "source": TINY,
                "recipe": "fp32-cpu",
                "revision": "main",
                "license": "apache-2.0",
                "id": "tiny-qwen2-fp32-generic-cpu:1",  # int4-cpu makes generic-cpu too
            },
        ],
    }
    if prompts:
        for candidate in document["candidates"]:
            candidate["prompts"] = prompts
    write_json_atomic(path, document)
    return path


# The random-weight test model cannot meet the shipped smoke set's expected words.
PLAIN_PROMPTS = {
    "schemaVersion": 1,
    "name": "plain",
    "maxTokens": 8,
    "prompts": [{"id": "hello", "prompt": "Say hello."}],
}


def render_matrix(tmp_path: Path, candidates: Path) -> list[dict[str, Any]]:
    """The plan job's "Render the matrix" script; the matrix it writes to $GITHUB_OUTPUT."""
    output = tmp_path / "github-output"
    output.write_text("")
    code, out, err = finish(
        run_step(
            "plan",
            "Render the matrix",
            REPO_ROOT,
            {"CANDIDATES": str(candidates), "GITHUB_OUTPUT": str(output)},
        )
    )
    assert code == 0, err
    (line,) = output.read_text().splitlines()
    name, _, value = line.partition("=")
    assert name == "matrix" and "publishes to" in out.lower()
    include: list[dict[str, Any]] = json.loads(value)["include"]
    return include


# --- the workflow files ---------------------------------------------------------------------------


def test_workflow_files_lint_clean() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
        + [str(p) for p in sorted(WORKFLOW.parent.glob("*.yml"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_matrix_values_reach_scripts_only_through_the_environment() -> None:
    """A source name is not trusted shell text: no ${{ }} inside a run script."""
    for job in workflow()["jobs"].values():
        for each in job["steps"]:
            assert "${{" not in each.get("run", ""), each.get("name")


def test_the_workflow_reads_only_keys_the_matrix_has() -> None:
    used = set(re.findall(r"(?<![.\w])matrix\.([A-Za-z_-]+)", WORKFLOW.read_text()))
    (job, *_) = run_matrix_json(CANDIDATES)
    assert used <= set(job), used - set(job)


def run_matrix_json(path: Path) -> list[dict[str, Any]]:
    result = run_curator("registry", "matrix", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # one line for $GITHUB_OUTPUT
    include: list[dict[str, Any]] = json.loads(result.stdout)["include"]
    return include


# --- the matrix -----------------------------------------------------------------------------------


def test_the_shipped_candidates_render_one_job_per_model_and_recipe() -> None:
    jobs = {j["key"]: j for j in run_matrix_json(CANDIDATES)}
    candidates = json.loads(CANDIDATES.read_text())["candidates"]
    assert len(jobs) == len(candidates)
    cuda = jobs["qwen2.5-0.5b-instruct--int4-cuda"]
    assert "gpu" in cuda["runs-on"] and "self-hosted" in cuda["runs-on"]
    cpu = jobs["qwen2.5-0.5b-instruct--int4-cpu"]
    assert cpu["runs-on"] == ["ubuntu-latest"]
    # One repository per model, one branch per recipe: parallel jobs never share a branch.
    assert cuda["repo"] == cpu["repo"] == "curator-team/qwen2.5-0.5b-instruct"
    assert len({(j["repo"], j["branch"]) for j in jobs.values()}) == len(jobs)


def test_runner_labels_candidate_then_recipe_then_device(tmp_path: Path) -> None:
    document = {
        "schemaVersion": 1,
        "publishTo": "team",
        "runners": {"int4-cuda": ["big-gpu"], "gpu": ["small-gpu"], "cpu": ["cpu-box"]},
        "candidates": [
            {"source": "a/one", "recipe": "int4-cuda", "revision": "main"},
            {"source": "a/two", "recipe": "fp16-cuda", "revision": "main"},
            {"source": "a/three", "recipe": "int4-cpu", "revision": "main", "runsOn": ["mine"]},
            {"source": "a/four", "recipe": "int4-cpu", "revision": "0" * 40},
        ],
    }
    path = tmp_path / "c.json"
    write_json_atomic(path, document)
    labels = [j["runs-on"] for j in run_matrix_json(path)]
    assert labels == [["big-gpu"], ["small-gpu"], ["mine"], ["cpu-box"]]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"recipe": "int5-cpu"}, "unknown recipe 'int5-cpu'"),
        ({"source": "not a repo"}, "not a valid candidates file"),
        ({"revision": "main; rm -rf /"}, "not a valid candidates file"),
        ({"duplicate": True}, "repeats candidates[0]"),
        ({"second": {"recipe": "fp32-cpu"}}, "would get the same model id as candidates[0]"),
        ({"second": {"recipe": "fp32-cpu", "id": "m-fp32-cuda-gpu:1"}}, "must end in -generic-cpu"),
        (
            {"id": "m-generic-cpu:1", "second": {"recipe": "fp32-cpu", "id": "m-generic-cpu:1"}},
            "is also candidates[0]",
        ),
    ],
)
def test_a_bad_candidates_file_is_refused(
    tmp_path: Path, change: dict[str, Any], words: str
) -> None:
    candidate = {"source": "org/model", "recipe": "int4-cpu", "revision": "main"}
    candidates = [candidate, dict(candidate)] if change.pop("duplicate", False) else [candidate]
    if "second" in change:
        candidates.append({**candidate, **change.pop("second")})
    candidate.update(change)
    path = tmp_path / "c.json"
    write_json_atomic(path, {"schemaVersion": 1, "publishTo": "team", "candidates": candidates})
    result = run_curator("registry", "matrix", str(path))
    assert result.returncode == 1 and words in result.stderr, result.stderr


# --- two jobs in parallel, then the merge ---------------------------------------------------------


def onboarded(job_dir: Path, model_dir: Path, key: str) -> None:
    """What the Onboard step leaves in a job's checkout: the entry in the working registry and the
    onboard report naming the id (the model itself is in the Foundry cache)."""
    (job_dir / "work").mkdir(exist_ok=True)
    entry = entry_for(model_dir)
    add_model(job_dir / "work" / "models.json", entry)
    report = job_dir / "onboard-out" / key / "onboard.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"model_id": entry["id"]}))


def test_two_jobs_publish_in_parallel_and_one_merge_takes_both(
    writer: FakeHub, install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    base = empty_document()
    jobs = render_matrix(tmp_path, candidates_file(tmp_path / "candidates.json"))
    assert [j["key"] for j in jobs] == ["tiny-qwen2--int4-cpu", "tiny-qwen2--fp32-cpu"]
    ids = [TINY_MODEL_ID, "tiny-qwen2-fp32-generic-cpu:1"]
    secrets = {"HF_TOKEN": WRITE_TOKEN}
    dirs = []
    for job, model_id in zip(jobs, ids, strict=True):
        job_dir = checkout(tmp_path, job["key"], base)
        code, _, err = finish(
            run_step("compile", "Prepare the working registry", job_dir, job_env(job, secrets))
        )
        assert code == 0, err
        onboarded(job_dir, install_compiled(model_id=model_id), job["key"])
        dirs.append(job_dir)

    running = [
        run_step("compile", "Publish and cut the fragment", d, job_env(j, secrets))
        for d, j in zip(dirs, jobs, strict=True)
    ]
    for code, _, err in map(finish, running):
        assert code == 0, err

    merge_dir = checkout(tmp_path, "merge", base)
    (merge_dir / "fragments").mkdir()
    for job_dir, job in zip(dirs, jobs, strict=True):  # download-artifact, merge-multiple
        fragment = job_dir / job_env(job, secrets)["FRAGMENT"]
        assert [m["id"] for m in json.loads(fragment.read_text())["models"]] == [
            ids[jobs.index(job)]
        ]
        shutil.copy(fragment, merge_dir / "fragments")
    code, out, err = finish(run_step("merge", "Merge", merge_dir, {}))
    assert code == 0, err
    assert "2 added" in out

    merged = load_registry(merge_dir / "registry" / "models.json")
    assert validate_document(merged).valid, validate_document(merged).problems
    repo = writer.repos["team/tiny-qwen2"]
    assert isinstance(repo, UploadedRepo)
    by_id = {m["id"]: m for m in merged["models"]}
    assert set(by_id) == set(ids)
    for job, model_id in zip(jobs, ids, strict=True):
        distribution = by_id[model_id]["distribution"]
        assert distribution["repo"] == "team/tiny-qwen2"
        assert distribution["branch"] == job["branch"]
        assert distribution["commit"] == repo.heads[job["branch"]]

    # A conflicting pair: another run's fragment edits the int4 entry differently.
    conflict_dir = checkout(tmp_path, "merge-conflict", base)
    (conflict_dir / "fragments").mkdir()
    first = merge_dir / "fragments" / f"{jobs[0]['key']}.json"
    shutil.copy(first, conflict_dir / "fragments")
    other = json.loads(first.read_text())
    other["models"][0]["minRamGb"] = 3.5
    write_json_atomic(conflict_dir / "fragments" / "other-run.json", other)
    before = (conflict_dir / "registry" / "models.json").read_bytes()
    code, _, err = finish(run_step("merge", "Merge", conflict_dir, {}))
    assert code == 1 and "merge refused" in err and TINY_MODEL_ID in err
    assert (conflict_dir / "registry" / "models.json").read_bytes() == before


@pytest.mark.slow
def test_two_full_jobs_onboard_publish_and_merge(writer: FakeHub, tmp_path: Path) -> None:
    """Every compile step for real (compile, register, smoke, bench, fidelity from the fake Hub),
    two jobs at once, each with its own Foundry cache as on separate runners."""
    base = empty_document()
    jobs = render_matrix(tmp_path, candidates_file(tmp_path / "candidates.json", "plain.json"))
    assert {j["prompts"] for j in jobs} == {"plain.json"}
    secrets = {"HF_TOKEN": WRITE_TOKEN}
    dirs, envs = [], []
    for job in jobs:
        job_dir = checkout(tmp_path, job["key"], base)
        write_json_atomic(job_dir / "plain.json", PLAIN_PROMPTS)
        env = {
            **job_env(job, secrets),
            "FOUNDRY_CACHE_DIR": str(job_dir / "foundry-cache"),
            "CURATOR_HOME": str(job_dir / "curator-home"),
        }
        (job_dir / "foundry-cache").mkdir()
        dirs.append(job_dir)
        envs.append(env)
        code, _, err = finish(run_step("compile", "Prepare the working registry", job_dir, env))
        assert code == 0, err
    onboarding = [run_step("compile", "Onboard", d, e) for d, e in zip(dirs, envs, strict=True)]
    for code, out, err in map(finish, onboarding):
        assert code == 0, (out[-2000:], err[-3000:])
    publishing = [
        run_step("compile", "Publish and cut the fragment", d, e)
        for d, e in zip(dirs, envs, strict=True)
    ]
    for code, _, err in map(finish, publishing):
        assert code == 0, err[-3000:]
    merge_dir = checkout(tmp_path, "merge", base)
    (merge_dir / "fragments").mkdir()
    for job_dir, env in zip(dirs, envs, strict=True):
        shutil.copy(job_dir / env["FRAGMENT"], merge_dir / "fragments")
    code, _, err = finish(run_step("merge", "Merge", merge_dir, {}))
    assert code == 0, err
    merged = load_registry(merge_dir / "registry" / "models.json")
    assert len(merged["models"]) == 2 and validate_document(merged).valid
    assert all(m["distribution"]["repo"] == "team/tiny-qwen2" for m in merged["models"])
