"""Guards: curator.cli.paths, curator.cli.registry, curator.registry.diff, curator.registry.review

`curator registry diff` (paths and git revisions), `curator select`, `curator paths`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from curator.registry.diff import diff_documents
from curator.registry.review import render_review
from tests.conftest import run_curator
from tests.samples import make_benchmark, make_document, make_entry


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def base_and_head() -> tuple[dict[str, Any], dict[str, Any]]:
    base = make_document(
        [make_entry(1, benchmarks=[make_benchmark(decode=50, ttft=100)]), make_entry(2)]
    )
    head = make_document(
        [
            make_entry(
                1,
                minRamGb=2.0,
                benchmarks=[
                    make_benchmark(decode=50, ttft=100),
                    make_benchmark(date="2026-11-20T00:00:00Z", decode=40, ttft=104),
                ],
            ),
            make_entry(3, displayName="New | *model* [x](http://e)"),
        ]
    )
    return base, head


def test_diff_lists_added_removed_changed_and_regressions() -> None:
    base, head = base_and_head()
    diff = diff_documents(base, head)
    assert [e["id"] for e in diff.added] == ["model3-generic-cpu:1"]
    assert [e["id"] for e in diff.removed] == ["model2-generic-cpu:1"]
    ((model_id, fields),) = diff.changed
    assert model_id == "model1-generic-cpu:1"
    assert {(c.field, c.base, c.head) for c in fields} == {
        ("minRamGb", 1.0, 2.0),
        ("benchmarks", "1 run(s)", "2 run(s)"),
    }
    by_figure = {f.figure: f for f in diff.figures}
    assert by_figure["decode tok/s"].regression and by_figure["decode tok/s"].change_pct == -20
    assert not by_figure["TTFT mean ms"].regression  # +4% is within the 10% threshold
    assert diff.violations == ()


def test_review_markdown_escapes_untrusted_text() -> None:
    base, head = base_and_head()
    markdown = render_review(diff_documents(base, head, "git:main", "registry/models.json"))
    assert "### Added" in markdown and "### Removed" in markdown and "### Changed" in markdown
    assert "🔻 regression" in markdown
    assert "New \\| \\*model\\* \\[x\\]\\(http://e\\)" in markdown  # escaped, not rendered


def test_review_notes_cannot_start_lines_or_inject_markup() -> None:
    base, head = base_and_head()
    head["models"][0]["notes"] = "ok ### passes &amp; [x](y)"
    markdown = render_review(diff_documents(base, head))
    assert "| notes | - | ok \\#\\#\\# passes \\&amp; \\[x\\]\\(y\\) |" in markdown
    head["models"][0]["notes"] = "ok\r### injected"
    assert any(p.path == "models[0].notes" for p in diff_documents(base, head).violations)
    assert "\r" not in render_review(diff_documents(base, head))
    assert "| minRamGb | 1 | 2 |" in markdown


def test_head_cannot_loosen_the_policy_it_is_judged_by(tmp_path: Path) -> None:
    base, head = base_and_head()
    head["models"][1]["license"] = "wtfpl"
    head["policy"]["allowedLicenses"].append("wtfpl")
    args = [
        "registry",
        "diff",
        str(write(tmp_path / "b.json", base)),
        str(write(tmp_path / "h.json", head)),
        "--json",
    ]
    judged = run_curator(*args)
    assert judged.returncode == 1
    rules = {v["rule"] for v in json.loads(judged.stdout)["violations"]}
    assert rules == {"license-allowed", "policy-changed"}
    accepted = run_curator(*args, "--accept-policy-change")
    assert accepted.returncode == 0, accepted.stdout
    new_file = diff_documents(make_document([]), head, base_exists=False)
    assert new_file.violations == ()  # a registry new in this change brings its own policy


def test_malformed_policy_and_models_are_errors_not_tracebacks(tmp_path: Path) -> None:
    bad_policy = make_document([make_entry(1)])
    bad_policy["policy"] = {"allowedLicenses": 5, "maxRegressionPct": "ten"}
    path = write(tmp_path / "p.json", bad_policy)
    for args in (("registry", "validate"), ("registry", "diff", str(path))):
        result = run_curator(*args, "--registry", str(path))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "policy.allowedLicenses" in result.stdout
    not_objects = write(tmp_path / "m.json", {**make_document([]), "models": [5]})
    for args in (("registry", "list"), ("select",), ("registry", "show", "x:1")):
        result = run_curator(*args, "--registry", str(not_objects))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: the registry's models are not a list of objects")
    nan = tmp_path / "nan.json"
    nan.write_text('{"schemaVersion": 1, "policy": {"allowedLicenses": []}, "models": [NaN]}')
    result = run_curator("registry", "validate", "--registry", str(nan))
    assert result.returncode == 1 and "NaN is not a JSON number" in result.stderr
    missing = run_curator("registry", "list", "--registry", str(tmp_path / "typo.json"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: registry not found")
    for bad in (
        ("registry", "diff", str(path), "--threshold", "nan"),
        ("select", "--ram-gb", "-1"),
    ):
        assert run_curator(*bad, "--registry", str(path)).returncode == 2


def test_cli_diff_exits_1_on_policy_violation_and_flags_policy_change(tmp_path: Path) -> None:
    base, head = base_and_head()
    head["models"][1]["license"] = "cc-by-nc-4.0"
    head["policy"]["maxRegressionPct"] = 50
    result = run_curator(
        "registry",
        "diff",
        str(write(tmp_path / "b.json", base)),
        str(write(tmp_path / "h.json", head)),
        "--output",
        str(tmp_path / "review.md"),
    )
    assert result.returncode == 1
    assert "❌ policy violations" in result.stdout
    assert "license-allowed" in result.stdout and "policy-changed" in result.stdout
    assert (
        "### ⚠️ Policy changed" in result.stdout
        and "| maxRegressionPct | 10 | 50 |" in result.stdout
    )
    assert (tmp_path / "review.md").read_text().strip() == result.stdout.strip()


def test_cli_diff_fail_on_regression_and_json(tmp_path: Path) -> None:
    base, head = base_and_head()
    args = [
        "registry",
        "diff",
        str(write(tmp_path / "b.json", base)),
        str(write(tmp_path / "h.json", head)),
    ]
    assert run_curator(*args).returncode == 0
    strict = run_curator(*args, "--fail-on-regression", "--json")
    assert strict.returncode == 1
    report = json.loads(strict.stdout)
    assert [r["figure"] for r in report["regressions"]] == ["decode tok/s"]
    assert report["violations"][0]["rule"] == "benchmark-regression"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_cli_diff_against_git_revision(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    registry = repo / "registry" / "models.json"
    base, head = base_and_head()
    git(repo.parent, "init", "-q", str(repo))
    write(registry, base)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    write(registry, head)
    result = run_curator(
        "registry", "diff", "git:HEAD", "--registry", "registry/models.json", cwd=repo
    )
    assert result.returncode == 0, result.stderr
    assert "`HEAD:registry/models.json` → `registry/models.json`" in result.stdout
    assert "model3-generic-cpu:1" in result.stdout
    new_file = run_curator(
        "registry", "diff", "git:HEAD:registry/other.json", str(registry), cwd=repo
    )
    assert new_file.returncode == 0  # a file new in this change: everything is "added"
    assert "2 added" in new_file.stdout
    unknown = run_curator("registry", "diff", "git:no-such-branch", cwd=repo)
    assert unknown.returncode == 1
    assert "unknown git revision 'no-such-branch'" in unknown.stderr


def test_select_ranks_by_measured_speed_and_explains_exclusions(tmp_path: Path) -> None:
    slow = make_entry(1, benchmarks=[make_benchmark(decode=20)])
    fast = make_entry(2, benchmarks=[make_benchmark(decode=60)], capabilities=["chat", "code"])
    unmeasured = make_entry(3, capabilities=["chat", "code"])
    big = make_entry(4, minRamGb=64.0, benchmarks=[make_benchmark(decode=90)])
    registry = write(tmp_path / "m.json", make_document([slow, fast, unmeasured, big]))
    result = run_curator(
        "select", "--task", "chat", "--ram-gb", "16", "--registry", str(registry), "--json"
    )
    assert result.returncode == 0, result.stderr
    selection = json.loads(result.stdout)
    assert selection["best"]["id"] == "model2-generic-cpu:1"
    assert [c["id"] for c in selection["ranked"]] == [
        "model2-generic-cpu:1",
        "model1-generic-cpu:1",
        "model3-generic-cpu:1",
    ]
    assert selection["excluded"] == [
        {
            "id": "model4-generic-cpu:1",
            "reason": "needs 64.0 GB RAM, more than the 16.0 GB to fit in",
        }
    ]
    code = run_curator(
        "select", "--capability", "code", "--ram-gb", "16", "--registry", str(registry)
    )
    assert code.stdout.startswith("best: model2-generic-cpu:1 (60.0 tok/s measured")
    assert "excluded: model1-generic-cpu:1: lacks capability code" in code.stdout
    none = run_curator("select", "--task", "embeddings", "--registry", str(registry))
    assert none.returncode == 1


def test_paths_follow_environment(tmp_path: Path) -> None:
    result = run_curator(
        "paths",
        "--json",
        env={
            "CURATOR_REGISTRY": str(tmp_path / "r.json"),
            "FOUNDRY_CACHE_DIR": str(tmp_path / "fc"),
            "CURATOR_HOME": str(tmp_path / "home"),
        },
    )
    shown = json.loads(result.stdout)
    assert {k: shown[k] for k in ("registry", "foundry_cache", "home")} == {
        "registry": str(tmp_path / "r.json"),
        "foundry_cache": str(tmp_path / "fc"),
        "home": str(tmp_path / "home"),
    }  # (platform and warnings are tests/test_portable.py's)
    flagged = json.loads(run_curator("paths", "--json", "--cache-dir", str(tmp_path / "x")).stdout)
    assert flagged["foundry_cache"] == str(tmp_path / "x")


def test_review_names_where_an_added_entry_comes_from_hub_or_catalog() -> None:
    base = make_document([])
    hub = make_entry("hub")
    catalog = make_entry("catalog")
    catalog.pop("build", None)
    catalog["source"] = {"catalog": "foundry-local", "id": catalog["id"], "version": 1}
    markdown = render_review(diff_documents(base, make_document([hub, catalog])))
    rows = {
        line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| `")
    }
    assert hub["source"]["repo"] in rows[f"`{hub['id']}`"]
    assert f"foundry-local:{catalog['id']}" in rows[f"`{catalog['id']}`"]
