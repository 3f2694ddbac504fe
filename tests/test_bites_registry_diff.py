"""Guards: curator.registry.diff

Tests that bite (issue 17), the review diff and the previous-version match: each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from curator.registry import diff as regdiff
from tests.bites import MIB, fidelity
from tests.samples import make_benchmark, make_document, make_entry


def with_fidelity(n: int, kl: float, top1: float, **extra: Any) -> dict[str, Any]:
    return make_entry(n, fidelity=fidelity(kl, top1), **extra)


def figures_by_name(changes: tuple[regdiff.FigureChange, ...]) -> dict[str, regdiff.FigureChange]:
    return {c.figure: c for c in changes}


def test_a_drop_in_top1_agreement_is_a_regression_not_an_improvement() -> None:
    """Bug: the review treats falling fidelity top-1 agreement (higher is better) as a gain."""
    base = make_document([with_fidelity(0, 0.05, 0.90)])
    head = make_document([with_fidelity(0, 0.05, 0.72)])
    change = figures_by_name(regdiff.diff_documents(base, head).figures)["fidelity top-1"]
    assert change.change_pct == pytest.approx(-20.0)
    assert change.regression
    better = regdiff.diff_documents(head, base).figures
    assert [(c.figure, c.regression) for c in better] == [("fidelity top-1", False)]


def test_a_rise_in_kl_is_a_regression() -> None:
    base = make_document([with_fidelity(0, 0.10, 0.9)])
    head = make_document([with_fidelity(0, 0.12, 0.9)])
    (change,) = regdiff.diff_documents(base, head).figures
    assert (change.figure, change.base, change.head) == ("fidelity KL mean", 0.10, 0.12)
    assert change.change_pct == pytest.approx(20.0) and change.regression
    (back,) = regdiff.diff_documents(head, base).figures
    assert not back.regression


def bench_doc(**bench: Any) -> dict[str, Any]:
    return make_document([make_entry(0, benchmarks=[make_benchmark(**bench)], minRamGb=8.0)])


def test_benchmark_figures_know_which_way_is_better() -> None:
    base = bench_doc(decode=100.0, ttft=100.0, peak_mb=1000.0)
    head = bench_doc(decode=80.0, ttft=125.0, peak_mb=1050.0)
    result = regdiff.diff_documents(base, head)
    figures = figures_by_name(result.figures)
    assert set(figures) == {
        "decode tok/s",
        "TTFT mean ms",
        "TTFT p95 ms",
        "latency mean ms",
        "peak memory MB",
    }
    assert figures["decode tok/s"].change_pct == pytest.approx(-20.0)
    assert figures["TTFT mean ms"].change_pct == pytest.approx(25.0)
    assert figures["TTFT p95 ms"].base == pytest.approx(150.0)
    assert figures["latency mean ms"].head == pytest.approx(1250.0)
    assert {f.figure for f in result.regressions} == {
        "decode tok/s",
        "TTFT mean ms",
        "TTFT p95 ms",
        "latency mean ms",
    }
    assert not figures["peak memory MB"].regression  # +5% is inside the 10% threshold
    improved = figures_by_name(regdiff.diff_documents(head, base).figures)
    assert not any(c.regression for c in improved.values())


def test_a_change_exactly_at_the_threshold_is_not_a_regression() -> None:
    base, head = bench_doc(decode=100.0), bench_doc(decode=90.0)
    change = figures_by_name(regdiff.diff_documents(base, head).figures)["decode tok/s"]
    assert change.change_pct == pytest.approx(-10.0) and not change.regression
    tighter = regdiff.diff_documents(base, head, threshold_pct=9.0)
    assert figures_by_name(tighter.figures)["decode tok/s"].regression
    assert tighter.threshold_pct == 9.0


def test_the_threshold_comes_from_the_policy_unless_malformed() -> None:
    base, head = bench_doc(decode=100.0), bench_doc(decode=96.0)
    for value, expected in ((3, 3.0), (2.5, 2.5), (True, 10.0), ("3", 10.0), (-3, 10.0), (0, 10.0)):
        for document in (base, head):
            document["policy"]["maxRegressionPct"] = value
        result = regdiff.diff_documents(base, head)
        assert result.threshold_pct == expected
        assert [c.regression for c in result.figures if c.figure == "decode tok/s"] == [
            expected < 4.0
        ]


def test_the_newest_benchmark_is_compared_not_the_last_listed() -> None:
    old = make_benchmark(date="2026-01-01T00:00:00Z", decode=10.0)
    new = make_benchmark(date="2026-06-01T00:00:00Z", decode=100.0)
    entry = make_entry(0, benchmarks=[new, old], minRamGb=8.0)
    assert regdiff.latest_benchmark(entry) == new
    assert regdiff.latest_benchmark(make_entry(0)) is None
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=[])) is None
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=["junk", new])) == new
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=["junk"])) is None
    undated = {k: v for k, v in old.items() if k != "date"}
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=[old, new])) == new
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=[undated, old])) == old
    assert regdiff.latest_benchmark(make_entry(0, benchmarks=[old, undated])) == old
    assert regdiff.latest_benchmark(make_entry(0, benchmarks={"date": "x"})) is None
    head = make_document([make_entry(0, benchmarks=[make_benchmark(decode=95.0)], minRamGb=8.0)])
    change = figures_by_name(regdiff.diff_documents(make_document([entry]), head).figures)
    assert change["decode tok/s"].base == 100.0


def test_figure_reads_numbers_only() -> None:
    record = {"a": {"b": 3}, "s": "7", "flag": None}
    assert regdiff.figure(record, ("a", "b")) == 3.0
    assert regdiff.figure(record, ("s",)) is None
    assert regdiff.figure(record, ("a", "missing")) is None
    assert regdiff.figure(None, ("a",)) is None
    assert regdiff.figure(record, ("flag", "x")) is None


def test_a_figure_from_zero_has_no_percentage_but_a_worse_one_is_a_regression() -> None:
    base, head = bench_doc(peak_mb=0.0), bench_doc(peak_mb=10.0)
    change = figures_by_name(regdiff.diff_documents(base, head).figures)["peak memory MB"]
    assert change.change_pct is None and change.regression
    back = figures_by_name(regdiff.diff_documents(head, base).figures)["peak memory MB"]
    assert back.change_pct == -100.0 and not back.regression


def test_failing_on_regression_follows_the_policy_or_the_option() -> None:
    base, head = bench_doc(decode=100.0), bench_doc(decode=50.0)
    assert [v.rule for v in regdiff.diff_documents(base, head).violations] == []
    for document in (base, head):
        document["policy"]["failOnRegression"] = True
    violations = regdiff.diff_documents(base, head).violations
    assert [str(v) for v in violations] == [
        "models[id=model0-generic-cpu:1]: decode tok/s -50.0% is past the 10% threshold "
        "[benchmark-regression]"
    ]
    assert regdiff.diff_documents(base, head, fail_on_regression=False).violations == ()
    for document in (base, head):
        document["policy"]["failOnRegression"] = "yes"  # only true itself turns it on
    assert [v.rule for v in regdiff.diff_documents(base, head).violations] == ["schema.type"]


def test_a_policy_edit_is_judged_by_the_base_until_accepted() -> None:
    """Bug: a pull request loosens the policy and is judged by its own, looser policy."""
    base = make_document([make_entry(0)])
    head = make_document([make_entry(0), make_entry(1, license="llama3")])
    head["policy"]["allowedLicenses"] = ["apache-2.0", "llama3", "mit"]
    judged = regdiff.diff_documents(base, head)
    assert [v.rule for v in judged.violations] == ["license-allowed", "policy-changed"]
    assert str(judged.violations[1]) == (
        "policy: the change edits the policy; models are judged by the base's policy until a "
        "maintainer accepts it (registry diff --accept-policy-change) [policy-changed]"
    )
    assert judged.policy_changes == (
        regdiff.FieldChange("allowedLicenses", "apache-2.0, mit", "apache-2.0, llama3, mit"),
    )
    accepted = regdiff.diff_documents(base, head, accept_policy_change=True)
    assert accepted.violations == ()
    new_file = regdiff.diff_documents({}, head, base_exists=False)
    assert new_file.violations == () and not new_file.base_exists
    assert [e["id"] for e in new_file.added] == ["model0-generic-cpu:1", "model1-generic-cpu:1"]


def test_a_tighter_threshold_in_an_unaccepted_policy_edit_does_not_apply() -> None:
    base, head = bench_doc(decode=100.0), bench_doc(decode=95.0)
    head["policy"]["maxRegressionPct"] = 1
    assert regdiff.diff_documents(base, head).threshold_pct == 10.0
    assert regdiff.diff_documents(base, head, accept_policy_change=True).threshold_pct == 1.0


def test_added_removed_and_changed_fields() -> None:
    one, two = make_entry(1), make_entry(2)
    changed = make_entry(0, minRamGb=2.0, capabilities=["chat", "tools"])
    changed["build"]["artifacts"][0]["bytes"] = 1_000_001
    changed["fileSizeMb"] = round(sum(a["bytes"] for a in changed["build"]["artifacts"]) / MIB, 2)
    base = make_document([make_entry(0), one])
    head = make_document([changed, two, {"no": "id"}])
    result = regdiff.diff_documents(base, head, "main", "pr")
    assert (result.base_label, result.head_label) == ("main", "pr")
    assert [e["id"] for e in result.added] == ["model2-generic-cpu:1"]
    assert [e["id"] for e in result.removed] == ["model1-generic-cpu:1"]
    ((model_id, fields),) = result.changed
    assert model_id == "model0-generic-cpu:1"
    sha = make_entry(0)["build"]["artifacts"][0]["sha256"][:12]
    assert [(f.field, f.base, f.head) for f in fields] == [
        ("build.artifacts[model.onnx]", f"{sha} 1000000 B", f"{sha} 1000001 B"),
        ("capabilities", "chat", "chat, tools"),
        ("minRamGb", 1.0, 2.0),
    ]


def test_defaults_of_a_review() -> None:
    result = regdiff.diff_documents(make_document([make_entry(0)]), make_document([make_entry(0)]))
    assert (result.base_label, result.head_label, result.base_exists) == ("base", "head", True)
    assert result.changed == () and result.figures == () and result.violations == ()
    assert result.policy_changes == () and result.threshold_pct == 10.0
    new_file = regdiff.diff_documents({}, make_document([]), base_exists=False)
    assert new_file.base_exists is False


def test_a_field_or_figure_on_one_side_only() -> None:
    """Bug: only fields both sides have are compared (an added fidelity record goes unseen), and a
    figure one side lacks is compared with nothing."""
    base = make_document([make_entry(0)])
    head = make_document(
        [make_entry(0, fidelity=fidelity(0.1, 0.9), benchmarks=[make_benchmark()], minRamGb=1.0)]
    )
    result = regdiff.diff_documents(base, head)
    ((_, fields),) = result.changed
    names = [f.field for f in fields]
    assert "fidelity.klMean" in names and "benchmarks" in names
    assert next(f for f in fields if f.field == "fidelity.klMean").base is None
    assert result.figures == ()
    back = regdiff.diff_documents(head, base)
    ((_, gone),) = back.changed
    assert next(f for f in gone if f.field == "fidelity.klMean").head is None


def test_benchmarks_and_list_fields_are_flattened_for_the_review() -> None:
    entry = make_entry(
        0, benchmarks=[make_benchmark(), make_benchmark()], tags=[{"k": 1}, {"k": 2}]
    )
    flat = regdiff._flatten(entry)
    assert flat["benchmarks"] == "2 run(s)"
    assert flat["tags[0].k"] == 1 and flat["tags[1].k"] == 2
    assert flat["capabilities"] == "chat"
    assert flat["runtime.deviceType"] == "CPU"
    assert not any(key.startswith("benchmarks.") for key in flat)
    odd = regdiff._flatten({"benchmarks": {"a": 1, "b": 2}})
    assert odd == {"benchmarks": {"a": 1, "b": 2}}  # not a list: shown as it is, not "2 run(s)"
    files = [{"path": "m.onnx", "sha256": "ab" * 32, "bytes": 5}, "junk"]
    published = regdiff._flatten({"distribution": {"files": files, "repo": "o/m"}})
    assert published == {
        "distribution.files[m.onnx]": f"{'ab' * 6} 5 B",
        "distribution.repo": "o/m",
    }
    unhashed = regdiff._flatten({"build": {"artifacts": [{"path": "n.bin", "bytes": 1}]}})
    assert unhashed == {"build.artifacts[n.bin]": " 1 B"}


def versioned(n: int, version: int, decode: float, **overrides: Any) -> dict[str, Any]:
    entry = make_entry(n, id=f"model{n}-generic-cpu:{version}", minRamGb=8.0, **overrides)
    entry["benchmarks"] = [make_benchmark(decode=decode)]
    return entry


def test_a_new_version_is_judged_against_the_newest_previous_one() -> None:
    """Bug: a slower :3 added beside :1 and :2 passes review because a new id has no 'before'."""
    base = make_document([versioned(0, 1, 100.0, alias="old"), versioned(0, 2, 200.0)])
    head = make_document([*base["models"], versioned(0, 3, 100.0, alias="new")])
    (change,) = [
        f for f in regdiff.diff_documents(base, head).figures if f.figure == "decode tok/s"
    ]
    assert (change.model_id, change.base_id) == ("model0-generic-cpu:3", "model0-generic-cpu:2")
    assert (change.base, change.head, change.change_pct, change.regression) == (
        200.0,
        100.0,
        -50.0,
        True,
    )


def test_a_renamed_model_is_found_by_its_alias_and_variant() -> None:
    base = make_document([versioned(0, 1, 100.0)])
    renamed = versioned(1, 1, 50.0, alias="model0")
    head = make_document([renamed])
    changes = regdiff.diff_documents(base, head).figures
    assert {(c.figure, c.base_id) for c in changes} >= {("decode tok/s", "model0-generic-cpu:1")}
    unrelated = make_document([versioned(1, 1, 50.0)])
    assert regdiff.diff_documents(base, unrelated).figures == ()


def test_ids_without_a_number_are_version_zero() -> None:
    base = make_document([versioned(0, 9, 100.0)])
    odd = versioned(0, 1, 60.0)
    odd["id"] = "model0-generic-cpu:x1"
    head = make_document([odd])
    (change,) = [
        f for f in regdiff.diff_documents(base, head).figures if f.figure == "decode tok/s"
    ]
    assert change.base_id == "model0-generic-cpu:9"
    assert regdiff._name_and_version("a:12") == ("a", 12)
    assert regdiff._name_and_version("a:x") == ("a:x", 0)
    assert regdiff._name_and_version(":3") == (":3", 0)


def test_a_repeated_id_shows_as_added_not_hidden() -> None:
    """Bug: a second entry with an existing id vanishes into the first, unreviewed."""
    base = make_document([make_entry(0)])
    head = make_document([make_entry(0), make_entry(0, minRamGb=2.0), make_entry(0, minRamGb=3.0)])
    head["models"][1]["alias"] = "again"
    head["models"][2]["alias"] = "third"
    result = regdiff.diff_documents(base, head)
    assert [e["minRamGb"] for e in result.added] == [2.0, 3.0]
    assert regdiff._by_id(head).keys() == {
        "model0-generic-cpu:1",
        "model0-generic-cpu:1 (2)",
        "model0-generic-cpu:1 (3)",
    }


def test_a_benchmark_run_edited_in_place_is_a_change() -> None:
    """Bug: a pull request rewrites a recorded run's figures under the same date, unseen."""
    run = make_benchmark(date="2026-11-01T10:00:00Z", decode=50.0)
    twin = make_benchmark(date="2026-11-01T10:00:00Z", decode=60.0)
    base = make_document([make_entry(0, benchmarks=[run, twin], minRamGb=8.0)])
    edited = make_benchmark(date="2026-11-01T10:00:00Z", decode=99.0)
    head = make_document([make_entry(0, benchmarks=[run, edited], minRamGb=8.0)])
    ((_, fields),) = regdiff.diff_documents(base, head).changed
    assert [(f.field, f.base, f.head) for f in fields] == [
        ("benchmarks[2026-11-01T10:00:00Z (2)].decodeTokensPerSec.mean", 60.0, 99.0),
        ("benchmarks[2026-11-01T10:00:00Z (2)].decodeTokensPerSec.p95", 54.0, 99.0 * 0.9),
    ]
    assert list(regdiff._runs_by_date(make_entry(0, benchmarks=[run, run, run, "junk"]))) == [
        "benchmarks[2026-11-01T10:00:00Z]",
        "benchmarks[2026-11-01T10:00:00Z (2)]",
        "benchmarks[2026-11-01T10:00:00Z (3)]",
        "benchmarks[None]",
    ]


def test_the_previous_version_is_the_highest_number_then_the_highest_id() -> None:
    base = make_document(
        [
            versioned(0, 9, 100.0, alias="a9"),
            versioned(0, 10, 200.0, alias="a10"),
            versioned(1, 10, 300.0, alias="shared"),
        ]
    )
    newer = versioned(0, 11, 100.0, alias="shared")  # by name: :9 and :10; by alias: model1:10
    newer["source"]["revision"] = "f" * 40  # another lineage: only the version rule applies
    newer["build"]["artifacts"][1]["sha256"] = "f" * 64
    head = make_document([*base["models"], newer])
    base["policy"]["failOnRegression"] = head["policy"]["failOnRegression"] = True
    result = regdiff.diff_documents(base, head)
    (change,) = [f for f in result.figures if f.figure == "decode tok/s"]
    assert change.base_id == "model1-generic-cpu:10"  # :10 beats :9; then model1 > model0
    assert [str(v) for v in result.violations if v.rule == "benchmark-regression"] == [
        "models[id=model0-generic-cpu:11]: decode tok/s -66.7% is past the 10% threshold "
        "(against model1-generic-cpu:10) [benchmark-regression]"
    ]


def test_a_figure_rising_from_zero_is_judged_by_its_direction() -> None:
    base, head = bench_doc(decode=0.0), bench_doc(decode=10.0)
    change = figures_by_name(regdiff.diff_documents(base, head).figures)["decode tok/s"]
    assert change.change_pct is None and not change.regression  # more tok/s is better
    back = figures_by_name(regdiff.diff_documents(head, base).figures)["decode tok/s"]
    assert back.change_pct == -100.0 and back.regression


def test_a_schema_edit_is_a_violation_until_accepted() -> None:
    """Bug: a pull request loosens the schema that judges it."""
    from curator.schemas import load_schema

    schema = load_schema("models")
    document = make_document([make_entry(0)])
    same = regdiff.diff_documents(document, document, head_schema=copy.deepcopy(schema))
    assert same.schema_changes == () and same.violations == ()
    loosened = copy.deepcopy(schema)
    loosened["$defs"]["policy"]["additionalProperties"] = True
    judged = regdiff.diff_documents(document, document, head_schema=loosened)
    assert judged.schema_changes == (
        regdiff.FieldChange("$defs.policy.additionalProperties", False, True),
    )
    assert [str(v) for v in judged.violations] == [
        "schema: the change edits the registry schema; the registry is validated against the "
        "base's schema until a maintainer accepts it (registry diff --accept-schema-change) "
        "[schema-changed]"
    ]
    accepted = regdiff.diff_documents(
        document, document, head_schema=loosened, accept_schema_change=True
    )
    assert accepted.violations == () and accepted.schema_changes == judged.schema_changes


def test_review_goes_on_past_junk_and_unchanged_entries() -> None:
    base = make_document([make_entry(0), make_entry(1)])
    head = make_document(["junk", make_entry(0), make_entry(1, minRamGb=2.0), make_entry(2)])
    result = regdiff.diff_documents(base, head)
    assert [model_id for model_id, _ in result.changed] == ["model1-generic-cpu:1"]
    assert [e["id"] for e in result.added] == ["model2-generic-cpu:1"]
    assert regdiff.figure({"a": float("inf")}, ("a",)) is None
    assert regdiff._name_and_version("a:b:3") == ("a:b", 3)


def test_the_newest_version_by_number_not_by_text() -> None:
    base = make_document([versioned(0, 9, 100.0, alias="a9"), versioned(0, 10, 200.0)])
    head = make_document([*base["models"], versioned(0, 11, 100.0, alias="a11")])
    (change,) = [
        f for f in regdiff.diff_documents(base, head).figures if f.figure == "decode tok/s"
    ]
    assert change.base_id == "model0-generic-cpu:10"  # "…:9" > "…:10" as text


def test_edits_to_files_that_judge_the_review_are_a_violation_until_accepted() -> None:
    document = make_document([make_entry(0)])
    paths = (
        "registry/models.json",
        "README.md",
        "recipes/int4-cpu.json",
        ".github/workflows/registry.yml",
        "schemas/models.schema.json",
        "",
        "README.md",
    )
    result = regdiff.diff_documents(document, document, changed_paths=paths)
    assert result.outside_changes == (
        ".github/workflows/registry.yml",
        "README.md",
        "recipes/int4-cpu.json",
        "schemas/models.schema.json",
    )
    assert result.sensitive_changes == (
        ".github/workflows/registry.yml",
        "recipes/int4-cpu.json",
        "schemas/models.schema.json",
    )
    (problem,) = [p for p in result.violations if p.rule == "sensitive-change"]
    assert problem.path == "change"
    # (a problem's message is elided in the middle past its length limit)
    assert problem.message.startswith(
        "the change also edits 3 file(s) that judge registry changes (workflows, recipes, "
        "schemas): .github/workflows/registry.ym"
    )
    assert problem.message.endswith(
        "ls.schema.json; this review ran the base's copies. A maintainer accepts "
        "them with the sensitive-change label (registry diff --accept-sensitive-change)"
    )
    accepted = regdiff.diff_documents(
        document, document, changed_paths=paths, accept_sensitive_change=True
    )
    assert not any(p.rule == "sensitive-change" for p in accepted.violations)
    assert accepted.sensitive_changes == result.sensitive_changes  # still listed
    relaxed = copy.deepcopy(document)
    relaxed["policy"] = {**relaxed.get("policy", {}), "failOnSensitiveChange": False}
    calm = regdiff.diff_documents(relaxed, relaxed, changed_paths=paths)
    assert not any(p.rule == "sensitive-change" for p in calm.violations)
    many = tuple(f"recipes/r{i}.json" for i in range(7))
    (listed,) = [
        p
        for p in regdiff.diff_documents(document, document, changed_paths=many).violations
        if p.rule == "sensitive-change"
    ]
    assert listed.message.startswith("the change also edits 7 file(s) that judge")
    assert "r4.json …; this review" in listed.message  # five are named, then an ellipsis
    five = tuple(f"recipes/r{i}.json" for i in range(5))
    (named,) = [
        p
        for p in regdiff.diff_documents(document, document, changed_paths=five).violations
        if p.rule == "sensitive-change"
    ]
    assert "r4.json; this review" in named.message
    only_registry = regdiff.diff_documents(
        document, document, changed_paths=("registry/models.json",)
    )
    assert only_registry.outside_changes == () and only_registry.sensitive_changes == ()
    assert not any(p.rule == "sensitive-change" for p in only_registry.violations)


def test_numbers_past_a_float_are_no_figure() -> None:
    assert regdiff.finite(10**400) is None
    assert regdiff.finite(True) is None
    assert regdiff.finite("1") is None
    assert regdiff.finite(float("nan")) is None and regdiff.finite(float("inf")) is None
    assert regdiff.finite(3) == 3.0 and regdiff.finite(-0.5) == -0.5


def test_a_figure_from_almost_zero_reads_as_from_zero() -> None:
    """A base of 5e-324 would make the percentage overflow to Infinity, which JSON cannot hold."""
    base = make_document([with_fidelity(0, 5e-324, 0.9)])
    head = make_document([with_fidelity(0, 0.2, 0.9)])
    (change,) = regdiff.diff_documents(base, head).figures
    assert (change.figure, change.base, change.head) == ("fidelity KL mean", 5e-324, 0.2)
    assert change.change_pct is None and change.regression


def test_an_added_entry_under_a_new_name_is_compared_with_its_lineage() -> None:
    old = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    same_build = {
        **copy.deepcopy(old),
        "id": "fresh-generic-cpu:1",
        "alias": "fresh",
        "benchmarks": [make_benchmark(date="2026-12-01T00:00:00Z", decode=50.0)],
    }
    result = regdiff.diff_documents(make_document([old]), make_document([same_build]))
    revision = old["source"]["revision"]
    assert result.lineage == (
        (
            "fresh-generic-cpu:1",
            "model0-generic-cpu:1",
            f"same source org/model0@{revision[:12]} and recipe int4-cpu",
        ),
    )
    (decode,) = [f for f in result.figures if f.figure == "decode tok/s"]
    assert (decode.base_id, decode.base, decode.head) == ("model0-generic-cpu:1", 100.0, 50.0)
    weights_only = copy.deepcopy(same_build)
    weights_only["source"]["repo"] = "someone/else"
    largest = max(old["build"]["artifacts"], key=lambda a: a["bytes"])["sha256"]
    assert regdiff.diff_documents(make_document([old]), make_document([weights_only])).lineage == (
        ("fresh-generic-cpu:1", "model0-generic-cpu:1", f"same weights (sha256 {largest[:12]})"),
    )
    unrelated = copy.deepcopy(weights_only)
    for artifact in unrelated["build"]["artifacts"]:
        artifact["sha256"] = "f" * 64
    assert regdiff.diff_documents(make_document([old]), make_document([unrelated])).lineage == ()
