"""Guards: curator.cli.registry, curator.onboard.pipeline, curator.onboard.summary

The onboard summary (issue 25): its review steps run as written from the repository's top
against the team registry, it holds no absolute path, its figures are the bench report's medians,
fidelity is judged against the registry's policy, and it links the Markdown bench report."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from curator.onboard.pipeline import OnboardRequest, StepOutcome
from curator.onboard.summary import locate, render_summary
from tests.conftest import run_curator
from tests.samples import make_benchmark, make_document, make_entry

FIDELITY = {
    "reference": "",  # set per test: an absolute path, as the measurement records it
    "tokens": 1024,
    "klMean": 0.25,
    "klP99": 1.9,
    "top1Agreement": 0.71,
    "perplexity": 9.5,
    "referencePerplexity": 8.75,
}


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _repo(tmp_path: Path) -> Path:
    """A checkout whose committed team registry has the shipped policy and no models."""
    root = tmp_path / "checkout"
    (root / "registry").mkdir(parents=True)
    team = make_document([], maxKlDivergence=0.55, minTop1Agreement=0.56)
    (root / "registry" / "models.json").write_text(json.dumps(team, indent=2) + "\n")
    (root / ".gitignore").write_text("demo-out/\nonboard-out/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    return root


def _entry(tmp_path: Path, kl: float = 0.25) -> dict[str, object]:
    bench = make_benchmark(ttft=100.0)
    bench["ttftMs"] = {"mean": 140.0, "p50": 101.5, "p95": 150.0}
    fidelity = {**FIDELITY, "klMean": kl, "reference": str(tmp_path / "gguf" / "fp32")}
    return make_entry(1, benchmarks=[bench], fidelity=fidelity)


def _render(root: Path, registry: Path, entry: dict[str, object], out: Path) -> str:
    doc = json.loads((root / "registry" / "models.json").read_text())
    doc["models"] = [entry]
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(json.dumps(doc, indent=2) + "\n")
    bench_dir = out / "bench"
    bench_dir.mkdir(parents=True)
    for name in ("bench-report.json", "bench-report.md"):
        (bench_dir / name).write_text("{}")
    request = OnboardRequest(
        source=str(root / "models" / "m.gguf"), registry=registry, out_dir=out, fidelity=True
    )
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "m.gguf").write_bytes(b"GGUF")
    steps = (StepOutcome("compile", "skipped", 0.1, "skipped: the Foundry cache holds this build"),)
    return render_summary(entry, steps, request, bench_dir / "bench-report.json")


def _commands(summary: str) -> list[str]:
    return [c for c in re.findall(r"`(curator [^`]+)`", summary.split("## Next steps")[1])]


def test_demo_copy_summary_reviews_against_the_team_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repo(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.delenv("CURATOR_REGISTRY")
    registry = root / "demo-out" / "registry" / "models.json"
    entry = _entry(tmp_path)
    summary = _render(root, registry, entry, root / "demo-out" / "report")

    assert str(tmp_path) not in summary and "/checkout" not in summary  # relative paths only
    assert "`models/m.gguf`" in summary
    assert "| time to first token, ms | 101.5 | 150.0 | 140.0 |" in summary  # the report's p50
    assert (
        "**Passes** the policy of `demo-out/registry/models.json`: mean KL 0.2500 ≤ 0.55; top-1 71.0% ≥ 56%."
        in summary
    )
    assert "[bench-report.md](bench/bench-report.md)" in summary
    assert "Full report" not in summary and "bench-report.json" not in summary
    assert "is ignored by git" in summary  # no advice to commit the ignored copy
    assert "Commit `demo-out" not in summary

    diff, fragment, merge = _commands(summary)
    assert diff == (
        "curator registry diff git:main:registry/models.json demo-out/registry/models.json"
    )
    done = run_curator(*shlex.split(diff)[1:], "--json", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    review = json.loads(done.stdout)
    assert [m["id"] for m in review["added"]] == [entry["id"]]
    assert not review.get("policyChanges")
    for command in (fragment, merge):
        done = run_curator(*shlex.split(command)[1:], cwd=root)
        assert done.returncode == 0, done.stderr
    team = json.loads((root / "registry" / "models.json").read_text())
    assert [m["id"] for m in team["models"]] == [entry["id"]]


def test_team_registry_summary_and_policy_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repo(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.delenv("CURATOR_REGISTRY")
    summary = _render(
        root, root / "registry" / "models.json", _entry(tmp_path, kl=0.7), root / "onboard-out"
    )
    assert "**Fails** the policy of `registry/models.json`: not mean KL 0.7000 ≤ 0.55." in summary
    (diff,) = _commands(summary)
    assert diff == "curator registry diff git:main"
    assert "Commit `registry/models.json` on a branch" in summary
    done = run_curator(*shlex.split(diff)[1:], "--json", cwd=root)
    review = json.loads(done.stdout)
    assert [m["id"] for m in review["added"]] == ["model1-generic-cpu:1"]


def test_outside_git_paths_stay_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    place = locate(tmp_path / "out")
    assert not place.in_git and place.base is None
    assert place.rel(tmp_path / "out" / "x.md") == "out/x.md"
