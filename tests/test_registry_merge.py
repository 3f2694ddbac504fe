"""Guards: curator.cli.registry, curator.cli.registry_merge, curator.errors, curator.jsonio,
  curator.registry, curator.registry.merge

curator registry merge: fragments from parallel compile jobs into the registry (deterministic,
conflicting edits of one id refused with nothing written, the registry's policy kept)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from curator.errors import InputFileError, RegistryInvalid
from curator.jsonio import write_json_atomic
from curator.registry import load_registry
from curator.registry.merge import cut_fragment, merge_fragments
from tests.conftest import run_curator
from tests.samples import make_benchmark, make_document, make_entry


def _write(path: Path, document: dict[str, Any]) -> Path:
    write_json_atomic(path, document, sort_keys=True)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A registry with one entry and a policy stricter than the default."""
    return _write(
        tmp_path / "models.json",
        make_document([make_entry(0)], allowedLicenses=["apache-2.0"], maxRegressionPct=5),
    )


def _fragment(base: Path, name: str, *entries: dict[str, Any]) -> Path:
    """What one job uploads: the entries it produced under the registry's policy, cut by
    `curator registry fragment` from its working copy of the registry."""
    work = load_registry(base)
    for entry in entries:
        work["models"] = [m for m in work["models"] if m["id"] != entry["id"]] + [entry]
    work_path = _write(base.parent / f"{name}-work.json", work)
    output = base.parent / f"{name}.json"
    cut_fragment(work_path, tuple(e["id"] for e in entries), output)
    return output


def test_fragments_of_two_jobs_merge_and_the_order_does_not_matter(base: Path) -> None:
    updated = make_entry(0, benchmarks=[make_benchmark()])
    one = _fragment(base, "job-one", make_entry(1))
    two = _fragment(base, "job-two", make_entry(2), updated)
    copy_path = base.parent / "copy.json"
    copy_path.write_bytes(base.read_bytes())

    result = merge_fragments(base, (one, two))
    assert result.added == ("model1-generic-cpu:1", "model2-generic-cpu:1")
    assert result.updated == ("model0-generic-cpu:1",)
    merge_fragments(copy_path, (two, one))
    assert base.read_bytes() == copy_path.read_bytes()

    document = load_registry(base)
    assert [m["id"] for m in document["models"]] == [
        "model0-generic-cpu:1",
        "model1-generic-cpu:1",
        "model2-generic-cpu:1",
    ]
    assert document["models"][0]["benchmarks"] == updated["benchmarks"]
    # Merging the same fragments again changes nothing.
    before = base.read_bytes()
    again = merge_fragments(base, (one, two))
    assert again.added == again.updated == () and base.read_bytes() == before


def test_conflicting_edits_of_one_id_are_refused_and_nothing_is_written(base: Path) -> None:
    one = _fragment(base, "job-one", make_entry(1), make_entry(3, minRamGb=2.0))
    two = _fragment(base, "job-two", make_entry(3, minRamGb=4.0))
    before = base.read_bytes()
    result = run_curator("registry", "merge", str(one), str(two), "--registry", str(base))
    assert result.returncode == 1
    assert "merge refused" in result.stderr
    assert f"model3-generic-cpu:1: {one} and {two} make different edits" in result.stderr
    assert base.read_bytes() == before  # model1 from job-one was not merged either


def test_the_same_edit_from_two_fragments_is_one_edit(base: Path) -> None:
    one = _fragment(base, "job-one", make_entry(4))
    two = _fragment(base, "job-two", make_entry(4))
    assert merge_fragments(base, (one, two)).added == ("model4-generic-cpu:1",)


def test_the_registry_policy_is_kept_and_judges_the_fragments(base: Path) -> None:
    loose = load_registry(base)
    loose["policy"]["allowedLicenses"] = ["apache-2.0", "llama3"]
    loose["models"].append(make_entry(5, license="llama3"))
    fragment = _write(base.parent / "loose.json", loose)
    before = base.read_bytes()
    with pytest.raises(RegistryInvalid) as refused:
        merge_fragments(base, (fragment,))
    assert any("license-allowed" in p for p in refused.value.problems)
    assert base.read_bytes() == before

    loose["models"][-1]["license"] = "apache-2.0"
    _write(fragment, loose)
    result = merge_fragments(base, (fragment,))
    assert result.added == ("model5-generic-cpu:1",) and result.policy_ignored == (fragment,)
    assert load_registry(base)["policy"] == {
        "allowedLicenses": ["apache-2.0"],
        "maxRegressionPct": 5,
    }


def test_a_merge_never_removes_an_entry(base: Path) -> None:
    empty = make_document([make_entry(6)], allowedLicenses=["apache-2.0"], maxRegressionPct=5)
    fragment = _write(base.parent / "only-six.json", empty)
    merge_fragments(base, (fragment,))
    assert {m["id"] for m in load_registry(base)["models"]} == {
        "model0-generic-cpu:1",
        "model6-generic-cpu:1",
    }


def test_fragment_errors_name_the_file(base: Path) -> None:
    with pytest.raises(InputFileError, match="fragment not found"):
        merge_fragments(base, (base.parent / "missing.json",))
    bad = base.parent / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputFileError, match=r"bad\.json: a fragment must be a registry document"):
        merge_fragments(base, (bad,))
    broken = copy.deepcopy(load_registry(base))
    broken["models"].append(make_entry(7, minRamGb=-1))
    with pytest.raises(RegistryInvalid, match="edit refused"):
        merge_fragments(base, (_write(base.parent / "broken.json", broken),))


def test_merge_json_output(base: Path) -> None:
    one = _fragment(base, "job-one", make_entry(8))
    result = run_curator("registry", "merge", str(one), "--registry", str(base), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == ["model8-generic-cpu:1"] and report["unchanged"] == 0


def test_a_fragment_holds_only_the_jobs_entries_and_the_policy(base: Path) -> None:
    one = _fragment(base, "job-one", make_entry(9))
    fragment = json.loads(one.read_text())
    assert [m["id"] for m in fragment["models"]] == ["model9-generic-cpu:1"]
    assert fragment["policy"] == load_registry(base)["policy"]
    missing = run_curator(
        "registry", "fragment", "nope-generic-cpu:1", "--registry", str(base), "--output",
        str(base.parent / "x.json"),
    )  # fmt: skip
    assert missing.returncode == 1 and "no model 'nope-generic-cpu:1'" in missing.stderr
    assert not (base.parent / "x.json").exists()
