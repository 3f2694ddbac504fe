"""Guards: curator.registry.rules

Tests that bite (issue 17), the registry rules (curator registry validate): each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from curator.cache.inventory import verify_cache
from curator.cache.modeldir import MANIFEST_NAME
from curator.registry.rules import (
    describe_character,
    distribution_mismatch,
    hidden_character,
    path_identity,
    ram_floor_gb,
    unsafe_path_reason,
    validate_document,
)
from tests.bites import MIB, compiled_dir, fidelity
from tests.samples import make_benchmark, make_document, make_entry


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


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x07", "U+0007 (control character)"),
        ("\u200b", "U+200B (invisible formatting character)"),
        ("\ue000", "U+E000 (private-use character)"),
        ("\ud800", "U+D800 (surrogate character)"),
        ("\U000e0080", "U+E0080 (unassigned character)"),
        ("\u2028", "U+2028 (line-separator character)"),
        ("\u2029", "U+2029 (line-separator character)"),
    ],
)
def test_each_hidden_character_is_named_by_code_point_and_kind(char: str, shown: str) -> None:
    assert describe_character(char) == shown
    assert hidden_character(f"ab{char}c") == char
    assert hidden_character(f"ab{char}c", allowed=char) is None


def test_hidden_characters_in_text_and_paths() -> None:
    assert hidden_character("plain text, with spaces") is None
    assert hidden_character("tab\there\nnewline", allowed="\t\n") is None
    assert hidden_character("tab\there\x00", allowed="\t\n") == "\x00"
    assert hidden_character("\u00a0no-break space is visible") is None
    assert unsafe_path_reason("weights/a\u200bb.onnx") == (
        "contains U+200B (invisible formatting character)"
    )
    assert unsafe_path_reason("weights/a\x1bb.onnx") == "contains control characters"
    assert unsafe_path_reason("weights/a\u2028.onnx") == (
        "contains U+2028 (line-separator character)"
    )


def test_path_identity_is_what_windows_and_macos_see() -> None:
    assert path_identity("Model.ONNX") == path_identity("model.onnx") == "model.onnx"
    assert path_identity("cafe\u0301.json") == path_identity("caf\u00e9.json") == "caf\u00e9.json"
    assert path_identity("STRASSE") == path_identity("stra\u00dfe") == "strasse"
    assert path_identity("a/B") != path_identity("a/c")


@pytest.mark.parametrize(
    ("peak_mb", "floor_gb"),
    [(0.0, 0.0), (1.0, 0.1), (1024.0, 1.0), (1024.1, 1.1), (1126.4, 1.1), (5000.0, 4.9)],
)
def test_the_ram_floor_is_the_peak_in_gib_rounded_up_to_a_tenth(
    peak_mb: float, floor_gb: float
) -> None:
    assert ram_floor_gb(peak_mb) == floor_gb


def test_an_integer_field_written_with_a_fraction_part_is_named_where_it_is() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][1]["bytes"] = float(entry["build"]["artifacts"][1]["bytes"])
    entry["contextLength"] = 4096.0
    document = make_document([make_entry(1), entry])
    document["schemaVersion"] = 1.0
    found = {
        (p.path, p.message)
        for p in validate_document(document).problems
        if p.rule == "integer-literal"
    }
    size = entry["build"]["artifacts"][1]["bytes"]
    reason = "readers differ on whether a number with a fraction part is an integer"
    assert found == {
        (
            "models[1].build.artifacts[1].bytes",
            f"{size!r} must be written as an integer ({int(size)}): {reason}",
        ),
        ("models[1].contextLength", f"4096.0 must be written as an integer (4096): {reason}"),
        ("schemaVersion", f"1.0 must be written as an integer (1): {reason}"),
    }


def test_a_huge_integral_float_is_shown_as_written() -> None:
    entry = make_entry(0)
    entry["contextLength"] = 1e20
    messages = [
        p.message
        for p in validate_document(make_document([entry])).problems
        if p.rule == "integer-literal"
    ]
    assert messages == [
        "1e+20 must be written as an integer (1e+20): readers differ on whether a number with "
        "a fraction part is an integer"
    ]


def test_values_at_a_schema_path_are_named_through_lists_and_maps() -> None:
    """The walker behind integer-literal: ``*`` stands for any list item or any map key (no
    models-schema integer sits under a map today; the walker does not depend on that)."""
    from curator.registry import rules

    document = {"a": [{"m": {"x": 1, "y": 2}}, {"m": {"z": 3}}, "junk"], "b": 4}
    assert list(rules._at_path(document, ("a", "*", "m", "*"), "")) == [
        ("a[0].m.x", 1),
        ("a[0].m.y", 2),
        ("a[1].m.z", 3),
    ]
    assert list(rules._at_path(document, ("b",), "")) == [("b", 4)]
    assert list(rules._at_path({"x": {"k": 5}}, ("*", "k"), "")) == [("x.k", 5)]
    assert list(rules._at_path(document, ("missing",), "")) == []
    assert list(rules._at_path([7, 8], ("*",), "root")) == [("root[0]", 7), ("root[1]", 8)]
