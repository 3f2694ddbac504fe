"""Guards: curator.cli.registry, curator.errors, curator.jsonio, curator.registry.diff,
  curator.registry.review, curator.registry.rules, curator.registry.store, curator.schemas

Issue 12: the registry review attacked as a pull request would, and with corrupt files.

Each test is the attack or corruption that once got through, numbered as in the issue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curator.errors import InputFileError
from curator.jsonio import MAX_DEPTH, parse_json, read_json
from curator.registry.rules import validate_document
from tests.conftest import run_curator
from tests.samples import make_benchmark, make_document, make_entry


def write(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def rules_at(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p.path, p.rule) for p in validate_document(document).problems}


# 3. displayName accepted U+202E (right-to-left override), U+009B and DEL.
@pytest.mark.parametrize(
    "name", ["evil\u202egnp.exe", "csi\u009bx", "del\u007fx", "zw\u200bj", "bom\ufeff", "ls\u2028"]
)
def test_names_with_invisible_or_control_characters_are_refused(name: str) -> None:
    document = make_document([make_entry(0, displayName=name)])
    assert ("models[0].displayName", "schema.pattern") in rules_at(document)
    runs = make_entry(1, benchmarks=[make_benchmark()])
    runs["benchmarks"][0]["machine"]["cpu"] = name
    assert ("models[0].benchmarks[0].machine.cpu", "schema.pattern") in rules_at(
        make_document([runs])
    )


def test_ordinary_unicode_names_stay_valid() -> None:
    assert rules_at(make_document([make_entry(0, displayName="Qwen 2.5 · 中文 (é)")])) == set()


# 5. A sha256 of 64 hex digits plus "\n" passed (re.match with "$", no pattern in the schema).
def test_a_sha256_with_a_trailing_newline_is_refused() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["sha256"] += "\n"
    assert rules_at(make_document([entry])) == {
        ("models[0].build.artifacts[0].sha256", "schema.pattern")
    }


# 6. One schema problem under `policy` or at the top level switched off the license rules.
@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["policy"].update(maxRegressionPct="ten"),
        lambda d: d["policy"].update(surprise=True),
        lambda d: d.update(schemaVersion=2),
        lambda d: d.update(extra="top-level"),
    ],
)
def test_a_broken_policy_or_top_level_does_not_switch_off_the_license_rule(breakage: Any) -> None:
    document = make_document([make_entry(0, license="proprietary-unknown")])
    breakage(document)
    assert ("models[0].license", "license-allowed") in rules_at(document)


def test_rules_that_do_not_depend_on_the_broken_field_still_run() -> None:
    entry = make_entry(0, license="proprietary-unknown", minRamGb=0.1)
    entry["benchmarks"] = [make_benchmark(peak_mb=4096)]
    del entry["alias"]  # a schema problem in the same entry
    found = rules_at(make_document([entry]))
    assert {
        ("models[0]", "schema.required"),
        ("models[0].license", "license-allowed"),
        ("models[0].minRamGb", "min-ram-covers-benchmark"),
    } <= found


def test_a_malformed_policy_field_fails_closed() -> None:
    document = make_document([make_entry(0, license="mit")])
    document["policy"]["allowedLicenses"] = "mit"
    assert ("models[0].license", "license-allowed") in rules_at(document)
    fidelity = {
        "reference": "fp32",
        "tokens": 100,
        "klMean": 0.5,
        "klP99": 1.0,
        "top1Agreement": 0.5,
        "perplexity": 10.0,
        "referencePerplexity": 9.0,
    }
    document = make_document([make_entry(0, fidelity=fidelity)], minTop1Agreement="high")
    problems = {p.rule: p.message for p in validate_document(document).problems}
    assert (
        problems["fidelity-top1"]
        == "cannot be checked: policy.minTop1Agreement is not a finite number"
    )


def test_registry_add_refuses_an_unknown_license_in_a_registry_with_a_broken_policy(
    tmp_path: Path,
) -> None:
    document = make_document([make_entry(0)])
    document["policy"]["surprise"] = True
    registry = write(tmp_path / "models.json", document)
    entry = write(tmp_path / "entry.json", make_entry(1, license="proprietary-unknown"))
    result = run_curator("registry", "add", "--file", str(entry), "--registry", str(registry))
    assert result.returncode == 1, result.stdout
    assert "license-allowed" in result.stderr + result.stdout
    assert json.loads(registry.read_text()) == document


# 7. Duplicate JSON keys were accepted (last wins) and the next edit dropped the other value.
def test_duplicate_keys_are_an_error_naming_the_object(tmp_path: Path) -> None:
    text = json.dumps(make_document([make_entry(0)]), indent=2).replace(
        '"license": "apache-2.0",', '"license": "apache-2.0",\n      "license": "gpl-3.0",'
    )
    registry = tmp_path / "models.json"
    registry.write_text(text)
    entry_line = text.splitlines().index("    {") + 1
    with pytest.raises(InputFileError) as raised:
        read_json(registry, "registry")
    assert str(raised.value) == (
        f'{registry}:{entry_line}:5: invalid JSON in registry: duplicate key "license" in one object'
    )
    validate = run_curator("registry", "validate", "--registry", str(registry))
    assert validate.returncode == 1 and "duplicate key" in validate.stderr
    edit = run_curator(
        "registry", "update", "model0-generic-cpu:1", "--notes", "x", "--registry", str(registry)
    )
    assert edit.returncode == 1 and "duplicate key" in edit.stderr
    assert registry.read_text() == text  # nothing silently dropped


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a" : 1, "a"\n\t: 2}',  # whitespace before the colons
        '{"x": "quote\\": inside", "k": {"b": 1, "b": 1}}',  # an escaped quote and colon too
        '[{"a": [{"deep": {"z": 1, "z": 1}}]}]',
    ],
)
def test_every_duplicate_key_is_found(text: str) -> None:
    with pytest.raises(InputFileError, match="duplicate key"):
        parse_json(text, "x.json")


def test_a_string_holding_a_quote_and_colon_is_not_a_duplicate() -> None:
    assert parse_json('{"x": "a\\": b", "y": "\\"  :"}', "x.json") == {"x": 'a": b', "y": '"  :'}


def test_long_texts_are_shortened_in_the_middle() -> None:
    from curator.schemas import elide

    assert elide("short", 300) == "short"
    text = "v" * 5000 + " is longer than 2000 characters"
    shortened = elide(text, 300)
    assert len(shortened) <= 330 and shortened.endswith(" is longer than 2000 characters")
    assert shortened.startswith("v" * 100) and "characters elided" in shortened


def test_equal_keys_in_different_objects_are_fine() -> None:
    assert parse_json('[{"a": 1}, {"a": 2, "b": {"a": 3}}]', "x") == [
        {"a": 1},
        {"a": 2, "b": {"a": 3}},
    ]


# 8. Deep nesting gave a Python traceback in validate, list, show, add, update and diff.
def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 256, 100_000])
def test_deep_nesting_is_an_error_not_a_traceback(levels: int) -> None:
    with pytest.raises(InputFileError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_json(nested(levels), "x.json")
    assert parse_json(nested(MAX_DEPTH), "x.json") is not None


def test_every_registry_command_reports_deep_nesting_in_one_line(tmp_path: Path) -> None:
    text = json.dumps(make_document([make_entry(0, notes="PLACEHOLDER")]))
    deep = tmp_path / "deep.json"
    deep.write_text(text.replace('"PLACEHOLDER"', nested(256)))
    bottomless = tmp_path / "bottomless.json"
    bottomless.write_text("[" * 100_000)
    entry = write(tmp_path / "entry.json", make_entry(1))
    for registry in (deep, bottomless):
        before = registry.read_text()
        for args in (
            ("registry", "validate"),
            ("registry", "list"),
            ("registry", "show", "model0-generic-cpu:1"),
            ("registry", "add", "--file", str(entry)),
            ("registry", "update", "model0-generic-cpu:1", "--notes", "x"),
            ("registry", "diff", str(registry)),
        ):
            result = run_curator(*args, "--registry", str(registry))
            assert result.returncode == 1, (args, result.stderr)
            assert "Traceback" not in result.stderr
            assert result.stderr.startswith("error: ") and "nested deeper than" in result.stderr
        assert registry.read_text() == before


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 2048 + '"}')
    with pytest.raises(InputFileError, match="larger than"):
        read_json(big, "registry", max_bytes=1024)
    assert read_json(big, "registry", max_bytes=4096) == {"a": "x" * 2048}


# 4. Editing through a symlinked registry replaced the link with a regular file (and the real
# registry never got the edit); the lock was taken on the link's name.
def test_an_edit_through_a_symlink_goes_to_the_real_file_under_its_lock(tmp_path: Path) -> None:
    from curator.registry.store import edit_registry, lock_path

    real = write(tmp_path / "real" / "models.json", make_document([make_entry(0)]))
    link = tmp_path / "checkout" / "models.json"
    link.parent.mkdir()
    link.symlink_to(real)
    entry = write(tmp_path / "entry.json", make_entry(1))
    result = run_curator("registry", "add", "--file", str(entry), "--registry", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == real
    assert [m["id"] for m in json.loads(real.read_text())["models"]] == [
        "model0-generic-cpu:1",
        "model1-generic-cpu:1",
    ]
    held: list[bool] = []

    def mutate(document: dict[str, Any]) -> None:
        from filelock import FileLock, Timeout

        try:  # another process-style lock on the real file's lock must be refused now
            FileLock(
                str(lock_path(real)), timeout=0, thread_local=False, is_singleton=False
            ).acquire()
        except Timeout:
            held.append(True)

    edit_registry(link, mutate)
    assert held == [True]
    assert not (link.parent / f".{link.name}.lock").exists()


# 13. Killed writes left .models.json.*.tmp files that nothing removed.
def test_the_next_edit_removes_temp_files_of_killed_writers(tmp_path: Path) -> None:
    registry = write(tmp_path / "models.json", make_document([make_entry(0)]))
    stale = [tmp_path / f".models.json.{tag}.tmp" for tag in ("abc123", "x_y")]
    for path in stale:
        path.write_text('{"half": ')
    unrelated = tmp_path / ".other.json.abc.tmp"
    unrelated.write_text("keep")
    entry = write(tmp_path / "entry.json", make_entry(1))
    result = run_curator("registry", "add", "--file", str(entry), "--registry", str(registry))
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale)
    assert unrelated.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [unrelated.name]


# 1. `diff git:REV` failed open: any `git show` failure meant "the base has no registry", so the
# change was judged by its own policy (from a subdirectory, or through a symlinked checkout).
def git(repo: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def widening_repo(tmp_path: Path) -> Path:
    """A repository whose working tree widens the policy and adds a gpl-3.0 model."""
    repo = tmp_path / "repo"
    registry = repo / "registry" / "models.json"
    (repo / "docs").mkdir(parents=True)
    git(tmp_path, "init", "-q", str(repo))
    write(registry, make_document([make_entry(0)]))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    head = make_document([make_entry(0), make_entry(1, license="gpl-3.0")])
    head["policy"]["allowedLicenses"].append("gpl-3.0")
    write(registry, head)
    return repo


def test_the_base_is_read_wherever_the_review_runs_from(tmp_path: Path) -> None:
    repo = widening_repo(tmp_path)
    linked = tmp_path / "linked"
    linked.symlink_to(repo)
    for cwd, registry in (
        (repo, "registry/models.json"),
        (repo / "docs", "../registry/models.json"),
        (linked / "docs", "../registry/models.json"),
        (tmp_path, str(linked / "registry" / "models.json")),
    ):
        result = run_curator(
            "registry", "diff", "git:HEAD", "--registry", registry, "--json", cwd=cwd
        )
        assert result.returncode == 1, (cwd, registry, result.stderr)
        report = json.loads(result.stdout)
        assert report["base_exists"] is True
        assert {v["rule"] for v in report["violations"]} == {"license-allowed", "policy-changed"}


def test_a_base_git_cannot_read_is_an_error_not_an_empty_base(tmp_path: Path) -> None:
    repo = widening_repo(tmp_path)
    blob = git(repo, "rev-parse", "HEAD:registry/models.json").strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # a corrupt or shallow clone
    result = run_curator(
        "registry", "diff", "git:HEAD", "--registry", "registry/models.json", cwd=repo
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "added" not in result.stdout
    outside = run_curator(
        "registry", "diff", "git:HEAD", "--registry", str(tmp_path / "models.json"), cwd=repo
    )
    assert outside.returncode == 1 and "error: " in outside.stderr


def diff_cli(tmp_path: Path, base: Any, head: Any, *args: str) -> Any:
    return run_curator(
        "registry",
        "diff",
        str(write(tmp_path / "base.json", base)),
        str(write(tmp_path / "head.json", head)),
        *args,
    )


# 2. The pull request's own (loosened) schema judged it, and diff did not mention the edit.
def test_a_loosened_schema_in_the_change_is_named_and_does_not_judge_it(tmp_path: Path) -> None:
    from curator.schemas import load_schema

    loosened = json.loads(json.dumps(load_schema("models")))
    loosened["$defs"]["safeText"]["maxLength"] = 20_000_000
    loosened["$defs"]["model"]["properties"]["id"]["pattern"] = ".*"
    head_schema = write(tmp_path / "head-schema.json", loosened)
    base = make_document([make_entry(0)])
    head = make_document([make_entry(0), make_entry(1, id="model1-generic-cpu", notes="x" * 5000)])
    args = ("--head-schema", str(head_schema), "--json")
    report = json.loads(diff_cli(tmp_path, base, head, *args).stdout)
    rules = {v["rule"] for v in report["violations"]}
    assert {"schema.pattern", "schema.maxLength", "schema-changed"} <= rules
    assert {c["field"] for c in report["schema_changes"]} == {
        "$defs.safeText.maxLength",
        "$defs.model.properties.id.pattern",
    }
    accepted = diff_cli(tmp_path, base, head, *args, "--accept-schema-change")
    still = {v["rule"] for v in json.loads(accepted.stdout)["violations"]}
    assert "schema-changed" not in still and "schema.maxLength" in still  # still the base's schema
    markdown = json.loads(accepted.stdout)["markdown"]
    assert "### ⚠️ Schema changed" in markdown
    unchanged = write(tmp_path / "same.json", load_schema("models"))
    same = diff_cli(tmp_path, base, base, "--head-schema", str(unchanged), "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["schema_changes"] == []


# 3 (review side). U+202E went raw into the review Markdown.
def test_the_review_spells_out_invisible_characters() -> None:
    from curator.registry.diff import diff_documents
    from curator.registry.review import render_review

    head = make_document([make_entry(0, displayName="evil\u202egnp.exe", notes="a\u009bb\u200bc")])
    markdown = render_review(diff_documents(make_document([]), head))
    assert "\u202e" not in markdown and "\u009b" not in markdown and "\u200b" not in markdown
    assert "evil⟨U+202E⟩gnp.exe" in markdown


# 9. A 10 MB notes was echoed whole (10.5 MB validate line, 21 MB diff --json), and the review cut
# the message at 200 characters, removing the reason.
def test_oversized_values_are_shortened_and_keep_the_reason(tmp_path: Path) -> None:
    base = make_document([make_entry(0)])
    head = make_document([make_entry(0, notes="n" * 2_000_000)])
    registry = write(tmp_path / "models.json", head)
    validate = run_curator("registry", "validate", "--registry", str(registry))
    assert validate.returncode == 1
    assert len(validate.stdout) < 2_000
    assert validate.stdout.splitlines()[0].endswith(
        "is longer than 2000 characters [schema.maxLength]"
    )
    diffed = diff_cli(tmp_path, base, head, "--json", "--output", str(tmp_path / "review.md"))
    assert diffed.returncode == 1 and len(diffed.stdout) < 20_000
    (violation,) = json.loads(diffed.stdout)["violations"]
    assert violation["message"].endswith("is longer than 2000 characters")
    review = (tmp_path / "review.md").read_text()
    assert len(review) < 10_000 and "is longer than 2000 characters" in review


# 10. A duplicate id, or a benchmark run edited in place (speed x10), read "0 changed ... No model
# changes".
def test_a_duplicate_id_counts_as_added() -> None:
    from curator.registry.diff import diff_documents
    from curator.registry.review import render_review

    base = make_document([make_entry(0)])
    head = make_document([make_entry(0), make_entry(0, license="gpl-3.0", alias="other")])
    result = diff_documents(base, head)
    assert [e["license"] for e in result.added] == ["gpl-3.0"]
    assert "unique-id" in {v.rule for v in result.violations}
    markdown = render_review(result)
    assert "1 added" in markdown and "No model changes" not in markdown


def test_a_benchmark_run_edited_in_place_is_a_change() -> None:
    from curator.registry.diff import diff_documents
    from curator.registry.review import render_review

    old_run = make_benchmark(date="2026-01-01T00:00:00Z", decode=10.0)
    new_run = make_benchmark(date="2026-06-01T00:00:00Z", decode=12.0)
    base = make_document([make_entry(0, benchmarks=[old_run, new_run])])
    edited = copy_of(old_run)
    edited["decodeTokensPerSec"]["mean"] = 100.0  # an old run: no latest figure moves
    head = make_document([make_entry(0, benchmarks=[edited, new_run])])
    result = diff_documents(base, head)
    ((model_id, fields),) = result.changed
    assert (model_id, [(f.field, f.base, f.head) for f in fields]) == (
        "model0-generic-cpu:1",
        [("benchmarks[2026-01-01T00:00:00Z].decodeTokensPerSec.mean", 10.0, 100.0)],
    )
    assert result.rewritten_runs == (
        "models[id=model0-generic-cpu:1].benchmarks[2026-01-01T00:00:00Z]",
    )
    markdown = render_review(result)
    assert "1 changed" in markdown and "No model changes" not in markdown
    assert "edited in place" in markdown


def copy_of(value: Any) -> Any:
    return json.loads(json.dumps(value))


# 11. diff --json printed Infinity (base figure 0).
def test_a_change_from_zero_prints_valid_json(tmp_path: Path) -> None:
    base = make_document([make_entry(0, benchmarks=[make_benchmark(decode=0.0)])])
    head = make_document([make_entry(0, benchmarks=[make_benchmark(decode=5.0, ttft=100.0)])])
    result = diff_cli(tmp_path, base, head, "--json")
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout
    figures = {f["figure"]: f for f in json.loads(result.stdout)["figures"]}
    assert figures["decode tok/s"]["change_pct"] is None
    assert figures["decode tok/s"]["regression"] is False  # from 0 upwards is better
    assert "from 0" in json.loads(result.stdout)["markdown"]
    worse = make_document([make_entry(0, benchmarks=[make_benchmark(peak_mb=0.0)])])
    strict = diff_cli(tmp_path, worse, head, "--json", "--fail-on-regression")
    assert strict.returncode == 1 and "Infinity" not in strict.stdout
    messages = [v["message"] for v in json.loads(strict.stdout)["violations"]]
    assert "peak memory MB went from 0 to 600" in messages


# 14. A version bump (remove :1, add :2) hid a 50% regression even with --fail-on-regression.
def test_a_new_version_is_compared_with_the_previous_one(tmp_path: Path) -> None:
    v1 = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    v2 = make_entry(0, id="model0-generic-cpu:2", benchmarks=[make_benchmark(decode=50.0)])
    renamed = make_entry(7, alias="model0", benchmarks=[make_benchmark(decode=50.0)])
    for head_entries in ([v2], [v1, v2], [renamed]):
        head = make_document(head_entries)
        result = diff_cli(tmp_path, make_document([v1]), head, "--fail-on-regression", "--json")
        assert result.returncode == 1, head_entries
        report = json.loads(result.stdout)
        (regression,) = [r for r in report["regressions"] if r["figure"] == "decode tok/s"]
        assert regression["base_id"] == "model0-generic-cpu:1"
        assert regression["change_pct"] == -50.0
        assert "benchmark-regression" in {v["rule"] for v in report["violations"]}
    older = make_entry(0, id="model0-generic-cpu:3", benchmarks=[make_benchmark(decode=80.0)])
    newest = make_entry(0, id="model0-generic-cpu:4", benchmarks=[make_benchmark(decode=78.0)])
    base = make_document(
        [v1, make_entry(5, alias="x", id="model0-generic-cpu:3", benchmarks=older["benchmarks"])]
    )
    result = diff_cli(tmp_path, base, make_document([newest]), "--json")
    decode = {
        f["base_id"]: f["change_pct"]
        for f in json.loads(result.stdout)["figures"]
        if f["figure"] == "decode tok/s"
    }
    # the newest previous version (:3, another source), and v1: same source, recipe and weights
    assert decode == {"model0-generic-cpu:3": -2.5, "model0-generic-cpu:1": -22.0}


# 15. The review was not posted when the registry was invalid (the workflow's validate step
# failed first); it is written even when HEAD cannot be read at all.
def test_the_review_is_written_for_an_invalid_or_unreadable_head(tmp_path: Path) -> None:
    review = tmp_path / "review.md"
    head = make_document([make_entry(0, license="gpl-3.0", minRamGb=-1)])
    invalid = diff_cli(tmp_path, make_document([]), head, "--output", str(review))
    assert invalid.returncode == 1
    assert "❌ policy violations" in review.read_text() and "license-allowed" in review.read_text()
    review.unlink()
    broken = tmp_path / "broken.json"
    broken.write_text('{"models": [}')
    unreadable = run_curator(
        "registry",
        "diff",
        str(write(tmp_path / "b.json", make_document([]))),
        str(broken),
        "--output",
        str(review),
    )
    assert unreadable.returncode == 1 and unreadable.stderr.startswith("error: ")
    text = review.read_text()
    assert "❌ cannot review" in text and "invalid JSON" in text


# 16. A source subfolder of "../up" (or "a/./b") matched the subfolder pattern: a registry entry
# could point a reviewer, or a later `curator import`, outside the repository's folder.
@pytest.mark.parametrize("subfolder", ["../up", "cpu/../../etc", "a/./b", ".", "cpu\n"])
def test_a_subfolder_that_leaves_the_repository_is_refused(subfolder: str) -> None:
    entry = make_entry(0)
    entry["source"]["subfolder"] = subfolder
    assert ("models[0].source.subfolder", "schema.pattern") in rules_at(make_document([entry]))


@pytest.mark.parametrize("subfolder", ["cpu_and_mobile/cpu-int4-rtn", "v1.5/..hidden", ".cfg"])
def test_a_subfolder_inside_the_repository_stays_valid(subfolder: str) -> None:
    entry = make_entry(0)
    entry["source"]["subfolder"] = subfolder
    assert rules_at(make_document([entry])) == set()
