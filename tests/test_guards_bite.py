"""Guards: curator.bench.measure, curator.bench.stats, curator.cache, curator.cli.registry,
  curator.compile, curator.compile.source, curator.errors, curator.modeldir,
  curator.onboard.pipeline, curator.prompts, curator.registry.diff, curator.registry.rules,
  curator.registry.store, curator.schemas

Tests that bite (issue 17): each one is a small deliberate bug in the guarding code that the rest
of the suite let through, written as the bug it catches. All in process and fast, so that
`make mutation` can run them against every mutant of the registry rules, the review diff, the
locked store, the cache verification, the bench figures and the trust gates.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curator.bench.measure import (
    BURST_GAP_S,
    StreamChunk,
    TokenizerFileCounter,
    Usage,
    describe_error,
    measure_stream,
)
from curator.bench.stats import percentile, summarize
from curator.cache import VerifyResult, verify_cache, verify_dir
from curator.errors import NotFound, PreflightError, RegistryError, RegistryInvalid, UsageProblem
from curator.modeldir import MANIFEST_NAME, sha256_file
from curator.prompts import Message
from curator.registry import diff as regdiff
from curator.registry import store
from curator.registry.rules import distribution_mismatch, unsafe_path_reason, validate_document
from tests.samples import make_benchmark, make_document, make_entry

MIB = 2**20


def problems_of(document: dict[str, Any], policy: dict[str, Any] | None = None) -> list[str]:
    return [str(p) for p in validate_document(document, policy).problems]


def rules_of(document: dict[str, Any], policy: dict[str, Any] | None = None) -> list[str]:
    return [p.rule for p in validate_document(document, policy).problems]


def sized_entry(total_bytes: int, declared_mb: float, n: int = 0) -> dict[str, Any]:
    entry = make_entry(n)
    entry["build"]["artifacts"] = [
        {"path": "model.onnx", "sha256": "a" * 64, "bytes": total_bytes - 1000},
        {"path": "genai_config.json", "sha256": "b" * 64, "bytes": 1000},
    ]
    entry["fileSizeMb"] = declared_mb
    return entry


# --- registry/rules.py --------------------------------------------------------------------------


def test_the_sample_document_is_valid() -> None:
    report = validate_document(make_document([make_entry(0), make_entry(1)]))
    assert report.valid and report.problems == () and report.models == 2


@pytest.mark.parametrize("declared", [95.0, 105.0, 101.5])
def test_a_file_size_off_by_more_than_one_percent_is_refused(declared: float) -> None:
    """Bug: the size check without abs() lets an understated fileSizeMb (95 for 100) through."""
    problems = problems_of(make_document([sized_entry(100 * MIB, declared)]))
    assert problems == [
        f"models[0].fileSizeMb: fileSizeMb {declared} but the artifacts add up to 100.00 MiB "
        "[file-size-matches-artifacts]"
    ]


@pytest.mark.parametrize("declared", [99.0, 100.0, 101.0])
def test_a_file_size_within_one_percent_is_rounding(declared: float) -> None:
    """Bug: a tolerance compared with >= (or none at all) refuses an honest rounded size."""
    assert problems_of(make_document([sized_entry(100 * MIB, declared)])) == []


def test_tiny_models_get_a_size_floor_of_a_hundredth_of_a_mib() -> None:
    """Bug: min() instead of max() between 1% and 0.01 MiB refuses tiny models' rounding."""
    half = MIB // 2
    assert problems_of(make_document([sized_entry(half, 0.505)])) == []
    assert rules_of(make_document([sized_entry(half, 0.52)])) == ["file-size-matches-artifacts"]


def test_min_ram_equal_to_the_peak_is_enough_and_below_it_is_refused() -> None:
    """Bug: `<=` in the min-RAM rule refuses a minRamGb exactly at the benchmark's peak."""
    at_peak = make_entry(0, minRamGb=1.5, benchmarks=[make_benchmark(peak_mb=1536.0)])
    assert problems_of(make_document([at_peak])) == []
    below = make_entry(0, minRamGb=1.49, benchmarks=[make_benchmark(peak_mb=1536.0)])
    assert problems_of(make_document([below])) == [
        "models[0].minRamGb: minRamGb 1.49 is below the peak memory of the latest benchmark "
        "(1.50 GiB, benchmarks[0]) [min-ram-covers-benchmark]"
    ]


def test_min_ram_is_judged_by_the_newest_benchmark_not_the_last_listed() -> None:
    """Bug: "latest benchmark" taken as the last in the list: a hand-edited entry lists the newest
    (and largest) run first and hides it behind an older, smaller one."""
    newest = make_benchmark(date="2026-11-20T10:00:00Z", peak_mb=4096.0)
    older = make_benchmark(date="2026-10-01T10:00:00Z", peak_mb=512.0)
    entry = make_entry(0, minRamGb=1.0, benchmarks=[newest, older])
    assert problems_of(make_document([entry])) == [
        "models[0].minRamGb: minRamGb 1.0 is below the peak memory of the latest benchmark "
        "(4.00 GiB, benchmarks[0]) [min-ram-covers-benchmark]"
    ]
    entry["benchmarks"] = [older, newest]
    assert rules_of(make_document([entry])) == ["min-ram-covers-benchmark"]
    entry["minRamGb"] = 4.0
    entry["benchmarks"] = [newest, older]
    assert problems_of(make_document([entry])) == []


def test_an_artifact_listed_twice_is_refused() -> None:
    """Bug: the artifact-path-unique rule dropped (the same file counted twice in the size)."""
    entry = make_entry(0)
    twice = copy.deepcopy(entry["build"]["artifacts"][0])
    entry["build"]["artifacts"].append(twice)
    entry["fileSizeMb"] = round(sum(a["bytes"] for a in entry["build"]["artifacts"]) / MIB, 2)
    assert problems_of(make_document([entry])) == [
        "models[0].build.artifacts[3].path: 'model.onnx' listed twice [artifact-path-unique]"
    ]


def test_duplicate_ids_and_aliases_name_the_first_holder() -> None:
    first, again = make_entry(0), make_entry(0)
    again["alias"] = "other"
    same_alias = make_entry(2, alias="model0")
    problems = problems_of(make_document([first, make_entry(1), again, same_alias]))
    assert problems == [
        "models[2].id: id 'model0-generic-cpu:1' is also models[0] [unique-id]",
        "models[3].alias: alias 'model0' with variant 'generic-cpu' is also models[0] "
        "[unique-alias-per-variant]",
    ]


def test_the_same_alias_in_another_variant_is_fine() -> None:
    gpu = make_entry(
        1,
        alias="model0",
        id="model1-generic-gpu:1",
        variant="generic-gpu",
        runtime={"deviceType": "GPU", "executionProvider": "CUDAExecutionProvider"},
    )
    assert problems_of(make_document([make_entry(0), gpu])) == []


def test_id_and_device_must_match_the_variant() -> None:
    entry = make_entry(0, id="model0-generic-gpu:1")
    entry["runtime"]["deviceType"] = "GPU"
    assert problems_of(make_document([entry])) == [
        "models[0].id: id 'model0-generic-gpu:1' must be <name>-generic-cpu:<version> "
        "[id-names-variant]",
        "models[0].runtime.deviceType: deviceType GPU but variant 'generic-cpu' is for CPU "
        "[runtime-matches-variant]",
    ]


def test_artifact_paths_are_checked() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["path"] = "../model.onnx"
    assert problems_of(make_document([entry])) == [
        "models[0].build.artifacts[0].path: '../model.onnx': must not contain '..' "
        "[artifact-path-safe]",
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("model.onnx", None),
        ("sub/model.onnx", None),
        ("a\x00b", "contains control characters"),
        ("a\x7fb", "contains control characters"),
        ("a\nb", "contains control characters"),
        ("sub\\model.onnx", "use '/' as the separator"),
        ("/etc/passwd", "must be relative to the model directory"),
        ("C:model.onnx", "must be relative to the model directory"),
        ("z:/model.onnx", "must be relative to the model directory"),
        ("sub/../../x", "must not contain '..'"),
        ("..", "must not contain '..'"),
        ("sub//x", "has an empty or '.' segment"),
        ("./x", "has an empty or '.' segment"),
        ("x/", "has an empty or '.' segment"),
        ("...", "segment '...' ends in a dot or space, which Windows drops"),
        ("1:x", "contains ':', which Windows does not allow in a file name"),
        ("x.y", None),
    ],
)
def test_unsafe_artifact_paths(path: str, reason: str | None) -> None:
    assert unsafe_path_reason(path) == reason


def test_license_outside_the_policy_is_refused() -> None:
    entry = make_entry(0, license="llama3")
    assert problems_of(make_document([entry])) == [
        "models[0].license: license 'llama3' is not in policy.allowedLicenses (apache-2.0, mit) "
        "[license-allowed]"
    ]
    assert problems_of(make_document([entry]), {}) == [
        "models[0].license: license 'llama3' is not in policy.allowedLicenses (empty) "
        "[license-allowed]"
    ]


def fidelity(kl: float, top1: float) -> dict[str, Any]:
    return {
        "reference": "org/model0",
        "tokens": 1000,
        "klMean": kl,
        "klP99": kl * 5,
        "top1Agreement": top1,
        "perplexity": 12.0,
        "referencePerplexity": 11.0,
    }


def test_fidelity_limits_hold_at_the_limit_and_refuse_past_it() -> None:
    policy = {"minTop1Agreement": 0.8, "maxKlDivergence": 0.1}
    at_limits = make_entry(0, fidelity=fidelity(0.1, 0.8))
    assert problems_of(make_document([at_limits], **policy)) == []
    past = make_entry(0, fidelity=fidelity(0.1001, 0.799))
    assert problems_of(make_document([past], **policy)) == [
        "models[0].fidelity.top1Agreement: top-1 agreement 0.799 is below the policy's "
        "minTop1Agreement 0.8 [fidelity-top1]",
        "models[0].fidelity.klMean: mean KL 0.1001 is above the policy's maxKlDivergence 0.1 "
        "[fidelity-kl]",
    ]
    assert problems_of(make_document([past])) == []  # no limits in the policy: nothing to hold


def test_a_given_policy_overrides_the_documents_own() -> None:
    """Bug: a review judges HEAD by HEAD's (loosened) policy instead of the base's."""
    document = make_document([make_entry(0, license="llama3")], allowedLicenses=["llama3"])
    assert problems_of(document) == []
    assert rules_of(document, {"allowedLicenses": ["mit"]}) == ["license-allowed"]


def test_a_malformed_allowed_licenses_allows_nothing() -> None:
    """Bug: a broken policy switches the licence rule off (fail open)."""
    document = make_document([make_entry(0)])
    document["policy"]["allowedLicenses"] = "apache-2.0"
    license_problems = [
        str(p) for p in validate_document(document).problems if p.rule == "license-allowed"
    ]
    assert license_problems == [
        "models[0].license: license 'apache-2.0' cannot be allowed: policy.allowedLicenses is "
        "not a list [license-allowed]"
    ]


def test_a_broken_field_does_not_switch_off_the_other_rules() -> None:
    broken = make_entry(0, license="llama3")
    del broken["alias"]
    document = make_document([broken, make_entry(1, license="llama3")])
    problems = validate_document(document).problems
    assert [p.path for p in problems if p.rule == "license-allowed"] == [
        "models[0].license",
        "models[1].license",
    ]
    assert any(p.path.startswith("models[0]") and p.rule.startswith("schema") for p in problems)


def test_a_document_that_is_not_an_object_is_invalid_with_no_models() -> None:
    report = validate_document([make_entry(0)])
    assert not report.valid and report.models == 0


# --- registry/diff.py ---------------------------------------------------------------------------


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


# --- registry/store.py --------------------------------------------------------------------------


def registry_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "nested" / "dir" / "models.json"
    store.upsert_model(path, entries[0]) if entries else None
    for entry in entries[1:]:
        store.add_model(path, entry)
    return path


def test_edits_are_written_canonically_and_create_the_directory(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(2), make_entry(1))
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert [m["id"] for m in data["models"]] == ["model1-generic-cpu:1", "model2-generic-cpu:1"]
    assert text.endswith("}\n") and '\n  "models": [' in text
    assert list(data["models"][0]) == sorted(data["models"][0])  # keys sorted


def test_an_edit_runs_under_the_registry_lock(tmp_path: Path) -> None:
    """Bug: registry edits without the file lock (two writers lose each other's entries)."""
    from filelock import FileLock, Timeout

    path = registry_file(tmp_path, make_entry(0))
    assert store.lock_path(path) == path.parent / ".models.json.lock"

    def mutate(document: dict[str, Any]) -> str:
        with pytest.raises(Timeout):
            FileLock(str(store.lock_path(path)), timeout=0).acquire()
        document["models"][0]["minRamGb"] = 3.0
        return "done"

    assert store.edit_registry(path, mutate) == "done"
    assert json.loads(path.read_text())["models"][0]["minRamGb"] == 3.0


def test_an_edit_that_breaks_a_rule_is_refused_and_leaves_the_file(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0))
    before = path.read_bytes()

    def shrink(entry: dict[str, Any]) -> None:
        entry["fileSizeMb"] = 1.0

    with pytest.raises(RegistryInvalid) as raised:
        store.update_model(path, "model0-generic-cpu:1", shrink)
    assert path.read_bytes() == before
    assert raised.value.message == f"edit refused: it would leave {path} invalid (1 problem(s))"
    assert raised.value.problems == (
        "models[id=model0-generic-cpu:1].fileSizeMb: fileSizeMb 1.0 but the artifacts add up to "
        "95.37 MiB [file-size-matches-artifacts]",
    )
    assert "curator registry validate" in (raised.value.hint or "")


def test_a_broken_registry_can_be_repaired_edit_by_edit(tmp_path: Path) -> None:
    """Problems the file already had do not block an unrelated edit, even after re-sorting."""
    path = tmp_path / "models.json"
    broken = make_entry(5, license="llama3")
    duplicate = make_entry(6, alias="model5")
    path.write_text(json.dumps(make_document([broken, duplicate])))
    store.add_model(path, make_entry(0))  # sorts first: indices of the old problems shift
    ids = [m["id"] for m in json.loads(path.read_text())["models"]]
    assert ids == ["model0-generic-cpu:1", "model5-generic-cpu:1", "model6-generic-cpu:1"]
    with pytest.raises(RegistryInvalid) as raised:
        store.add_model(path, make_entry(7, alias="model0"))
    assert raised.value.problems == (
        "models[id=model7-generic-cpu:1].alias: alias 'model0' with variant 'generic-cpu' is also "
        "models[…] [unique-alias-per-variant]",
    )


def test_add_update_upsert_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    assert store.upsert_model(path, make_entry(0)) == "added"
    assert store.upsert_model(path, make_entry(0, minRamGb=2.0)) == "updated"
    with pytest.raises(RegistryError) as taken:
        store.add_model(path, make_entry(0))
    assert taken.value.message == f"'model0-generic-cpu:1' is already in {path}"
    assert taken.value.hint == "use `curator registry update model0-generic-cpu:1`"
    store.add_model(path, make_entry(1))
    updated = store.update_model(path, "model1-generic-cpu:1", lambda e: e.update(minRamGb=4.0))
    assert updated["minRamGb"] == 4.0
    assert store.remove_model(path, "model0-generic-cpu:1")["minRamGb"] == 2.0
    models = json.loads(path.read_text())["models"]
    assert [(m["id"], m["minRamGb"]) for m in models] == [("model1-generic-cpu:1", 4.0)]
    for edit in (
        lambda: store.remove_model(path, "model0-generic-cpu:1"),
        lambda: store.update_model(path, "model0-generic-cpu:1", lambda e: None),
    ):
        with pytest.raises(NotFound) as missing:
            edit()
        assert missing.value.message == f"no model 'model0-generic-cpu:1' in {path}"
        assert missing.value.hint == f"`curator registry list --registry {path}` shows the ids"


def test_upsert_replaces_in_place_among_other_entries(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0), make_entry(1), make_entry(2))
    assert store.upsert_model(path, make_entry(1, minRamGb=6.0)) == "updated"
    models = json.loads(path.read_text())["models"]
    assert [m["minRamGb"] for m in models] == [1.0, 6.0, 1.0]


# --- bench/stats.py and bench/measure.py ----------------------------------------------------------


def test_percentile_bounds_and_interpolation() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 10) == pytest.approx(13.0)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match=r"^percentile of an empty sample$"):
        percentile([], 50)
    for q in (-0.001, 100.001):
        with pytest.raises(ValueError, match=rf"^percentile {q} outside \[0, 100\]$"):
            percentile(values, q)


def test_summary_spread_of_two_values() -> None:
    stat = summarize([1.0, 3.0])
    assert stat is not None
    assert (stat.n, stat.mean, stat.stdev, stat.p95) == (2, 2.0, pytest.approx(2**0.5), 2.9)


class Clock:
    def __init__(self, start: float = 50.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def run_script(
    steps: list[tuple[float, StreamChunk]], counter: Any = None, start: float = 50.0
) -> Any:  # RequestMeasurement
    clock = Clock(start)

    def stream() -> Iterator[StreamChunk]:
        for gap, chunk in steps:
            clock.now += gap
            yield chunk

    return measure_stream("m", "p", 2, (Message("user", "hi there"),), stream, counter, clock)


def test_decode_speed_leaves_out_the_first_token() -> None:
    """Bug: decode tok/s counting the first token (prompt processing counted as decoding)."""
    steps = [(0.5, StreamChunk("a")), (0.1, StreamChunk("b")), (0.1, StreamChunk("c"))]
    steps.append((0.0, StreamChunk("", Usage(4, 3))))
    result = run_script(steps)
    assert (result.model_id, result.prompt_id, result.round) == ("m", "p", 2)
    assert result.decode_tokens_per_sec == pytest.approx(2 / 0.2)
    assert result.inter_token_ms == pytest.approx(100.0)
    assert result.ttft_ms == pytest.approx(500.0) and result.latency_ms == pytest.approx(700.0)
    assert result.started_at == 50.0 and result.chunks == 4


def test_two_tokens_give_a_decode_speed() -> None:
    result = run_script([(0.2, StreamChunk("a")), (0.05, StreamChunk("b", Usage(3, 2)))])
    assert result.decode_tokens_per_sec == pytest.approx(1 / 0.05)


@pytest.mark.parametrize("tokens", [None, 0, 1])
def test_no_decode_speed_from_fewer_than_two_tokens(tokens: int | None) -> None:
    usage = Usage(3, tokens) if tokens is not None else None
    steps = [(0.2, StreamChunk("a")), (0.1, StreamChunk("b", usage))]
    result = run_script(steps)
    assert result.decode_tokens_per_sec is None and result.inter_token_ms is None


def test_no_decode_speed_when_all_text_came_at_once() -> None:
    result = run_script([(0.2, StreamChunk("abc", Usage(3, 3)))])
    assert result.decode_tokens_per_sec is None and result.ttft_ms == pytest.approx(200.0)


def test_no_text_means_no_first_token() -> None:
    result = run_script([(0.2, StreamChunk("", Usage(3, 0)))])
    assert result.ttft_ms is None and result.text == "" and result.status == "ok"


def test_the_last_usage_reported_wins() -> None:
    steps = [(0.1, StreamChunk("a", Usage(1, 1))), (0.1, StreamChunk("b", Usage(7, 9)))]
    result = run_script(steps)
    assert (result.prompt_tokens, result.completion_tokens) == (7, 9)


def test_a_burst_is_marked_only_when_most_gaps_are_tiny() -> None:
    tiny = BURST_GAP_S / 2
    # A gap of exactly BURST_GAP_S is no burst: 1e-4 -> 2e-4 is an exact difference in binary.
    at_gap = [(BURST_GAP_S, StreamChunk(t)) for t in "abc"]
    assert not run_script(at_gap, start=0.0).bursty
    one_of_three = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))]
    one_of_three += [(0.01, StreamChunk("c")), (0.01, StreamChunk("d"))]
    assert not run_script(one_of_three).bursty  # one tiny gap of three: not half
    half = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b")), (0.01, StreamChunk("c"))]
    assert run_script(half).bursty  # one tiny gap of two: half the gaps
    two = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))]
    assert not run_script(two).bursty  # fewer than three text chunks are never a burst
    mostly_slow = [(0.1, StreamChunk("a")), (tiny, StreamChunk("b"))] + [
        (0.01, StreamChunk("c")) for _ in range(3)
    ]
    assert not run_script(mostly_slow).bursty


def test_describe_error_uses_a_curator_errors_own_message() -> None:
    assert describe_error(UsageProblem("bad thing", hint="do x")) == "bad thing"
    assert describe_error(ValueError("")) == "ValueError:"
    assert describe_error(KeyError("k")) == "KeyError: 'k'"


def test_counts_are_estimated_with_the_tokenizer_when_the_runtime_gives_none(
    tmp_path: Path,
) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hi": 1, "there": 2, "one": 3, "two": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    counter = TokenizerFileCounter(tmp_path / "tokenizer.json")
    result = run_script([(0.1, StreamChunk("one ")), (0.1, StreamChunk("two x"))], counter)
    assert result.tokens_estimated
    assert (result.prompt_tokens, result.completion_tokens) == (2, 3)
    no_counter = run_script([(0.1, StreamChunk("one"))])
    assert no_counter.tokens_estimated and no_counter.prompt_tokens is None


# --- cache.py: verify ---------------------------------------------------------------------------


def compiled_dir(root: Path, name: str = "tiny-generic-cpu-1") -> Path:
    model = root / "curator-test" / name
    model.mkdir(parents=True)
    (model / "genai_config.json").write_text("{}")
    (model / "model.onnx").write_bytes(b"weights" * 100)
    listed = [
        {"path": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(model.iterdir())
    ]
    manifest = {"id": name[:-2] + ":1", "build": {"artifacts": listed}}
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    return model


def test_verify_accepts_an_untouched_model(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    result = verify_dir(model)
    assert result == VerifyResult("tiny-generic-cpu:1", model, 2, (), (), None) and result.ok
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["id"] = "renamed-generic-cpu:7"  # the manifest's id wins over the directory name
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).id == "renamed-generic-cpu:7"


def test_verify_sees_a_same_size_change_by_its_hash(tmp_path: Path) -> None:
    """Bug: `cache verify` checks sizes only (a swapped file of the same size passes)."""
    model = compiled_dir(tmp_path)
    (model / "model.onnx").write_bytes(b"WEIGHTS" * 100)
    result = verify_dir(model)
    assert not result.ok and result.changed == ("model.onnx",) and result.missing == ()


def test_verify_sees_a_size_change_and_a_missing_file(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["build"]["artifacts"][1]["sha256"] = sha256_file(model / "model.onnx")
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    with (model / "model.onnx").open("ab") as handle:
        handle.write(b"")  # same content: passes
    assert verify_dir(model).ok
    manifest["build"]["artifacts"][1]["bytes"] += 1
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).changed == ("model.onnx",)
    del manifest["build"]["artifacts"][1]["bytes"]  # no size listed: the hash alone decides
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_dir(model).ok
    (model / "genai_config.json").unlink()
    (model / "model.onnx").unlink()
    result = verify_dir(model, "given:1")
    assert result == VerifyResult(
        "given:1", model, 2, ("genai_config.json", "model.onnx"), (), None
    )
    assert not result.ok


def test_verify_never_reads_outside_the_model_directory(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    (tmp_path / "secret").write_text("x")
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    manifest["build"]["artifacts"].append({"path": "../../secret", "sha256": "0" * 64, "bytes": 1})
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = verify_dir(model)
    assert result == VerifyResult(
        "tiny-generic-cpu:1",
        model,
        3,
        (),
        (),
        "manifest path '../../secret': must not contain '..'",
    )
    assert not result.ok


def test_verify_without_a_usable_manifest_is_a_problem_not_a_pass(tmp_path: Path) -> None:
    model = compiled_dir(tmp_path)
    (model / MANIFEST_NAME).write_text(json.dumps({"id": "x:1", "build": {"artifacts": []}}))
    empty = verify_dir(model)
    assert empty == VerifyResult(
        "x:1", model, 0, (), (), "cannot verify: the manifest lists no artifacts"
    )
    assert not empty.ok
    (model / MANIFEST_NAME).unlink()
    none = verify_dir(model)
    expected = VerifyResult(
        "tiny-generic-cpu:1", model, 0, (), (), f"cannot verify: no {MANIFEST_NAME}"
    )
    assert none == expected and not none.ok
    (model / MANIFEST_NAME).write_text("[1]")
    broken = verify_dir(model)
    assert (broken.id, broken.path, broken.checked, broken.missing, broken.changed) == (
        "tiny-generic-cpu:1",
        model,
        0,
        (),
        (),
    )
    assert not broken.ok and broken.problem is not None
    assert broken.problem.startswith("cannot verify: ") and "not a JSON object" in broken.problem
    assert verify_dir(model, "given:2").id == "given:2"


def test_a_catalog_download_has_nothing_to_check_and_says_so(tmp_path: Path) -> None:
    model = tmp_path / "Microsoft" / "phi-4-generic-cpu-1"
    model.mkdir(parents=True)
    (model / "genai_config.json").write_text("{}")
    (model / "inference_model.json").write_text(json.dumps({"Name": "phi-4-generic-cpu:1"}))
    result = verify_dir(model)
    assert result == VerifyResult(
        "phi-4-generic-cpu:1",
        model,
        0,
        (),
        (),
        None,
        "a Foundry catalog download: no compile manifest to check it against",
    )
    assert result.ok
    (model / "download.tmp").write_text("")  # unfinished: not vouched for
    unfinished = verify_dir(model)
    assert unfinished.problem == f"cannot verify: no {MANIFEST_NAME}" and unfinished.note is None
    assert not unfinished.ok


def test_two_directories_claiming_one_id_both_fail(tmp_path: Path) -> None:
    """Bug: verify passes a model whose id another directory also claims (which one Foundry
    loads is then a matter of luck)."""
    cache = tmp_path / "cache"
    first = compiled_dir(cache, "dup-generic-cpu-1")
    second = compiled_dir(cache, "copy-generic-cpu-1")
    manifest = json.loads((second / MANIFEST_NAME).read_text())
    manifest["id"] = "dup-generic-cpu:1"
    (second / MANIFEST_NAME).write_text(json.dumps(manifest))
    alone = compiled_dir(cache, "alone-generic-cpu-1")
    expected = {
        first: f"id dup-generic-cpu:1 is also held by {second}",
        second: f"id dup-generic-cpu:1 is also held by {first}",
    }
    by_id = verify_cache(cache, "dup-generic-cpu:1")
    assert {r.path: r.problem for r in by_id} == expected
    assert all(not r.ok and r.checked == 2 and r.id == "dup-generic-cpu:1" for r in by_id)
    everything = {r.path: r.problem for r in verify_cache(cache)}
    assert everything == {**expected, alone: None}
    (second / "model.onnx").unlink()  # its own problem comes first
    assert {r.path: r.missing for r in verify_cache(cache, "dup-generic-cpu:1")}[second] == (
        "model.onnx",
    )


def test_verify_cache_checks_every_model_or_the_one_asked_for(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = compiled_dir(cache, "good-generic-cpu-1")
    bad = compiled_dir(cache, "bad-generic-cpu-1")
    (bad / "model.onnx").write_bytes(b"x")
    results = verify_cache(cache)
    assert [(r.path, r.ok) for r in results] == [(bad, False), (good, True)]
    (only,) = verify_cache(cache, "good-generic-cpu:1")
    assert only.path == good and only.ok and only.id == "good-generic-cpu:1"


# --- trust gates: compile and onboard -----------------------------------------------------------


def custom_code_model(root: Path) -> Path:
    """A Qwen2 config that ships its own code, with a safetensors header claiming 10^13
    parameters: past the trust gate, the disk check refuses it before anything runs."""
    model = root / "custom"
    model.mkdir()
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "auto_map": {"AutoModelForCausalLM": "modeling_custom.Custom", "AutoConfig": "c.C"},
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_custom.py").write_text("raise SystemExit('must not run')\n")
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**13], "data_offsets": [0, 0]}})
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    return model


def test_compile_refuses_repository_code_unless_trusted(tmp_path: Path) -> None:
    from curator.compile import CompileRequest, compile_model

    model = custom_code_model(tmp_path)
    request = CompileRequest(source=str(model), recipe="int4-cpu", dry_run=True)
    with pytest.raises(PreflightError) as refused:
        compile_model(request)
    assert refused.value.message == (
        "the model ships its own code (auto_map AutoConfig, auto_map AutoModelForCausalLM, "
        "modeling_custom.py); it would run during the compile"
    )
    assert refused.value.hint == "read that code, then add --trust-remote-code"
    trusted = CompileRequest(
        source=str(model), recipe="int4-cpu", dry_run=True, trust_remote_code=True
    )
    with pytest.raises(PreflightError, match="not enough disk"):
        compile_model(trusted)


def test_a_malformed_auto_map_is_still_repository_code(tmp_path: Path) -> None:
    from curator.compile.source import custom_code_files

    assert custom_code_files(tmp_path, {"auto_map": "modeling.X"}) == ["auto_map (malformed)"]
    assert custom_code_files(tmp_path, {"auto_map": {}}) == []
    (tmp_path / "b.py").write_text("")
    (tmp_path / "a.py").write_text("")
    assert custom_code_files(tmp_path, {}) == ["a.py", "b.py"]


def test_the_trusted_olive_workflow_is_told_to_trust_and_the_untrusted_is_not(
    tmp_path: Path,
) -> None:
    from curator.compile import CompileRequest, compile_model

    model = tmp_path / "plain"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    )
    for trust in (False, True):
        request = CompileRequest(
            source=str(model), recipe="int4-cpu", dry_run=True, trust_remote_code=trust
        )
        plan = compile_model(request).plan
        assert plan is not None
        loaded = plan.olive_config["input_model"].get("load_kwargs", {})
        assert loaded.get("trust_remote_code", False) is trust
        assert plan.olive_config["input_model"]["model_path"] == str(model.resolve())


def test_onboard_refuses_repository_code_unless_trusted(tmp_path: Path) -> None:
    """Bug: `onboard` always trusts repository code (--trust-remote-code forced on): only compile
    had a test for the gate. Nothing is written to the registry either way."""
    from curator.onboard.pipeline import OnboardRequest, OnboardStepFailed, onboard

    model = custom_code_model(tmp_path)
    registry = tmp_path / "registry" / "models.json"
    common: dict[str, Any] = {
        "source": str(model),
        "registry": registry,
        "cache_dir": tmp_path / "cache",
        "out_dir": tmp_path / "out",
    }
    with pytest.raises(OnboardStepFailed) as refused:
        onboard(OnboardRequest(**common))
    assert refused.value.message.startswith("compile failed: the model ships its own code")
    assert refused.value.hint == "read that code, then add --trust-remote-code"
    with pytest.raises(OnboardStepFailed) as trusted:
        onboard(OnboardRequest(**common, trust_remote_code=True))
    assert trusted.value.message.startswith("compile failed: not enough disk")
    assert not registry.exists()


# --- registry/diff.py: a new version is compared with the previous one --------------------------


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


# --- registry/rules.py: catalog entries, published files, malformed records ----------------------


def catalog_entry(source_id: str) -> dict[str, Any]:
    entry = make_entry(0)
    entry["source"] = {
        "catalog": "foundry-local",
        "id": source_id,
        "version": 1,
        "publisher": "Microsoft",
        "license": "mit",
    }
    return entry


def test_a_catalog_entry_is_registered_under_its_catalog_id() -> None:
    """Bug: an entry claims a catalog model's id but points at another catalog model."""
    assert "catalog-id-is-entry-id" not in rules_of(
        make_document([catalog_entry("model0-generic-cpu:1")])
    )
    problems = [
        str(p)
        for p in validate_document(make_document([catalog_entry("phi-4-generic-cpu:1")])).problems
        if p.rule == "catalog-id-is-entry-id"
    ]
    assert problems == [
        "models[0].source.id: catalog id 'phi-4-generic-cpu:1' but the entry's id is "
        "'model0-generic-cpu:1' [catalog-id-is-entry-id]"
    ]
    hub = make_entry(0)
    hub["source"]["id"] = "something-else:1"  # only a catalog source is held to it
    assert "catalog-id-is-entry-id" not in rules_of(make_document([hub]))


def test_published_files_must_be_the_entrys_artifacts() -> None:
    """Bug: a pull request publishes other files than the ones that were built and reviewed."""
    entry = make_entry(0)
    files = [dict(a) for a in entry["build"]["artifacts"]]
    entry["distribution"] = {"repo": "org/model0", "commit": "a" * 40, "files": files}
    assert problems_of(make_document([entry])) == []
    files[0]["sha256"] = "c" * 64
    files.append({"path": "extra.bin", "sha256": "d" * 64, "bytes": 1})
    assert problems_of(make_document([entry])) == [
        "models[0].distribution.files: the published files differ from build.artifacts: not "
        "built: extra.bin; changed: model.onnx [distribution-matches-build]"
    ]
    entry["distribution"]["files"] = [{"path": "x"}]  # malformed: the schema's to report
    assert "distribution-matches-build" not in rules_of(make_document([entry]))


def test_a_malformed_artifact_list_still_gets_its_path_checks() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"].append("junk")
    entry["build"]["artifacts"].append({"path": "../x", "sha256": "e" * 64, "bytes": "many"})
    entry["fileSizeMb"] = 1.0  # cannot be summed: no size problem claimed
    rules = rules_of(make_document([entry]))
    assert "artifact-path-safe" in rules and "file-size-matches-artifacts" not in rules


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


@pytest.mark.parametrize("missing", ["path", "sha256", "bytes"])
def test_malformed_file_records_are_left_to_the_schema(missing: str) -> None:
    entry = make_entry(0)
    files = [dict(a) for a in entry["build"]["artifacts"]]
    entry["distribution"] = {"repo": "org/model0", "commit": "a" * 40, "files": files}
    del files[0][missing]
    assert "distribution-matches-build" not in rules_of(make_document([entry]))
    entry["distribution"]["files"] = [dict(a) for a in entry["build"]["artifacts"]]
    del entry["build"]["artifacts"][0][missing]
    assert "distribution-matches-build" not in rules_of(make_document([entry]))


@pytest.mark.parametrize("distribution", ["o/m", [], {}])
def test_a_malformed_distribution_or_build_does_not_crash_validation(distribution: Any) -> None:
    entry = make_entry(0, distribution=distribution)
    assert "distribution-matches-build" not in rules_of(make_document([entry]))
    published = make_entry(0, build=[1])
    published["distribution"] = {"repo": "o/m", "commit": "a" * 40, "files": []}
    assert "distribution-matches-build" not in rules_of(make_document([published]))


def test_an_edit_names_document_level_and_nested_problems(tmp_path: Path) -> None:
    path = registry_file(tmp_path, make_entry(0))
    with pytest.raises(RegistryInvalid) as top:
        store.edit_registry(path, lambda d: d["policy"].update(maxRegressionPct="x"))
    assert len(top.value.problems) == 1
    assert top.value.problems[0].startswith("policy.maxRegressionPct: ")
    assert top.value.hint == "fix the entry and retry; `curator registry validate` shows the rules"

    def unsafe(document: dict[str, Any]) -> None:
        document["models"][0]["build"]["artifacts"][1]["path"] = "../x"

    with pytest.raises(RegistryInvalid) as nested:
        store.edit_registry(path, unsafe)
    assert nested.value.problems == (
        "models[id=model0-generic-cpu:1].build.artifacts[0].path: '../x': must not contain '..' "
        "[artifact-path-safe]",
    )


# --- defensive branches: one malformed field never crashes validation or hides other entries -----


def test_min_ram_is_compared_in_gib_of_1024_mib() -> None:
    entry = make_entry(0, minRamGb=1.4995, benchmarks=[make_benchmark(peak_mb=1536.0)])
    assert rules_of(make_document([entry])) == ["min-ram-covers-benchmark"]


def test_malformed_fields_do_not_crash_and_do_not_hide_later_entries() -> None:
    undated = make_benchmark()
    del undated["date"]
    no_id = make_entry(5)
    del no_id["id"]
    odd_id = make_entry(6, id=6)
    no_alias = [make_entry(7), make_entry(8)]
    for entry in no_alias:
        del entry["alias"]
    later = make_entry(9, license="llama3")
    models = [42, make_entry(4, benchmarks=[undated]), no_id, odd_id, *no_alias, later]
    problems = validate_document(make_document(models)).problems
    rules = [p.rule for p in problems]
    assert "unique-alias-per-variant" not in rules  # a missing alias is nobody's duplicate
    assert [p.path for p in problems if p.rule == "license-allowed"] == ["models[6].license"]
    assert validate_document({**make_document([later]), "policy": []}).problems  # no crash


def test_an_id_with_two_colons_does_not_name_its_variant() -> None:
    entry = make_entry(0, id="model0-generic-cpu:x:1")
    assert "id-names-variant" in rules_of(make_document([entry]))


def test_artifact_checks_go_on_past_malformed_records() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"] = [
        "junk",
        {"path": 7, "sha256": "a" * 64, "bytes": 1},
        {"path": "../x", "sha256": "b" * 64, "bytes": 1},
        {"path": "ok.bin", "sha256": "c" * 64, "bytes": 1},
    ]
    problems = validate_document(make_document([entry])).problems
    assert [p.path for p in problems if p.rule == "artifact-path-safe"] == [
        "models[0].build.artifacts[2].path"
    ]
    assert "file-size-matches-artifacts" not in [p.rule for p in problems]
    infinite = make_entry(0, fileSizeMb=float("inf"))
    assert "file-size-matches-artifacts" not in rules_of(make_document([infinite]))


def test_several_paths_are_listed_with_commas() -> None:
    built = [record_of("a"), record_of("b")]
    assert distribution_mismatch([], built) == "not published: a, b"


def record_of(path: str) -> dict[str, Any]:
    return {"path": path, "sha256": "d" * 64, "bytes": 1}


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


def test_a_registry_without_models_takes_its_first(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"schemaVersion": 1, "policy": {"allowedLicenses": ["apache-2.0"]}}))
    store.add_model(path, make_entry(0))
    other = tmp_path / "other.json"
    other.write_text(path.read_text().replace('"models"', '"unused"'))
    assert store.upsert_model(other, make_entry(1)) == "added"


def test_three_holders_of_one_id_are_listed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dirs = [compiled_dir(cache, f"{name}-generic-cpu-1") for name in ("a", "b", "c")]
    for model in dirs:
        manifest = json.loads((model / MANIFEST_NAME).read_text())
        manifest["id"] = "same-generic-cpu:1"
        (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    first = next(r for r in verify_cache(cache) if r.path == dirs[0])
    assert first.problem == f"id same-generic-cpu:1 is also held by {dirs[1]}, {dirs[2]}"


def test_a_kl_ceiling_alone_is_still_checked() -> None:
    """Bug: with no top-1 floor in the policy the KL check is skipped too."""
    entry = make_entry(0, fidelity=fidelity(0.2, 0.5))
    assert rules_of(make_document([entry], maxKlDivergence=0.1)) == ["fidelity-kl"]
    missing_top1 = make_entry(0, fidelity={**fidelity(0.2, 0.5), "top1Agreement": None})
    assert "fidelity-kl" in rules_of(make_document([missing_top1], maxKlDivergence=0.1))
