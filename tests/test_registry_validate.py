"""Guards: curator.cli.registry, curator.registry

Schema and semantic rules of registry validation, through the core and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curator.registry import validate_document
from tests.conftest import REPO_ROOT, run_curator
from tests.samples import make_benchmark, make_document, make_entry


def problems_of(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.path, p.rule) for p in validate_document(document).problems]


def test_shipped_registry_is_valid() -> None:
    document = json.loads((REPO_ROOT / "registry" / "models.json").read_text())
    assert validate_document(document).valid


def test_well_formed_entries_are_valid() -> None:
    document = make_document([make_entry(0), make_entry(1, benchmarks=[make_benchmark()])])
    assert problems_of(document) == []


def test_schema_problem_names_json_path() -> None:
    document = make_document([make_entry(0), make_entry(1, minRamGb=-2)])
    assert ("models[1].minRamGb", "schema.exclusiveMinimum") in problems_of(document)


def test_missing_required_field_and_unknown_field() -> None:
    entry = make_entry(0, surprise=True)
    del entry["license"]
    rules = {rule for _, rule in problems_of(make_document([entry]))}
    assert {"schema.required", "schema.additionalProperties"} <= rules


def test_duplicate_ids() -> None:
    document = make_document([make_entry(0), make_entry(0, alias="other")])
    assert ("models[1].id", "unique-id") in problems_of(document)


def test_alias_unique_per_variant() -> None:
    same = make_entry(1, alias="model0")
    gpu = make_entry(
        2,
        alias="model0",
        id="model0-cuda-gpu:1",
        variant="cuda-gpu",
        runtime={"deviceType": "GPU", "executionProvider": "CUDAExecutionProvider"},
    )
    found = problems_of(make_document([make_entry(0), same, gpu]))
    assert ("models[1].alias", "unique-alias-per-variant") in found
    assert not [p for p in found if p[0].startswith("models[2]")]


def test_id_must_name_its_variant_and_runtime_must_match() -> None:
    entry = make_entry(0, id="model0-cuda-gpu:1")
    entry["runtime"]["deviceType"] = "GPU"
    found = problems_of(make_document([entry]))
    assert ("models[0].id", "id-names-variant") in found
    assert ("models[0].runtime.deviceType", "runtime-matches-variant") in found


def test_min_ram_must_cover_latest_benchmark_peak() -> None:
    old = make_benchmark(date="2026-01-01T00:00:00Z", peak_mb=4000)
    latest = make_benchmark(date="2026-06-01T00:00:00Z", peak_mb=1500)
    ok = make_entry(0, minRamGb=1.5, benchmarks=[old, latest])
    low = make_entry(1, minRamGb=1.0, benchmarks=[latest, old])
    found = problems_of(make_document([ok, low]))
    assert found == [("models[1].minRamGb", "min-ram-covers-benchmark")]


def test_license_must_be_allowed_by_policy() -> None:
    document = make_document([make_entry(0, license="llama3.2")])
    assert problems_of(document) == [("models[0].license", "license-allowed")]
    document["policy"]["allowedLicenses"].append("llama3.2")
    assert problems_of(document) == []


@pytest.mark.parametrize(
    "path",
    ["../secrets", "/etc/passwd", "a/../../b", "C:/x", "a\\b", "a//b", "./model.onnx", "bad\nname"],
)
def test_artifact_paths_must_be_relative_and_inside(path: str) -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["path"] = path
    assert ("models[0].build.artifacts[0].path", "artifact-path-safe") in problems_of(
        make_document([entry])
    )


def test_artifact_sha256_and_size_consistency() -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][1]["sha256"] = "ABC"
    entry["fileSizeMb"] = 500
    found = problems_of(make_document([entry]))
    assert ("models[0].build.artifacts[1].sha256", "schema.pattern") in found
    assert ("models[0].fileSizeMb", "file-size-matches-artifacts") in found


def test_fidelity_thresholds_from_policy() -> None:
    fidelity = {
        "reference": "local:x",
        "tokens": 100,
        "klMean": 0.3,
        "klP99": 1.0,
        "top1Agreement": 0.7,
        "perplexity": 20.0,
        "referencePerplexity": 18.0,
    }
    document = make_document(
        [make_entry(0, fidelity=fidelity)], minTop1Agreement=0.9, maxKlDivergence=0.1
    )
    assert problems_of(document) == [
        ("models[0].fidelity.top1Agreement", "fidelity-top1"),
        ("models[0].fidelity.klMean", "fidelity-kl"),
    ]


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def test_cli_validate_exit_codes_and_one_line_problems(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", make_document([make_entry(0)]))
    bad = write(tmp_path / "bad.json", make_document([make_entry(0), make_entry(1, minRamGb=0)]))
    ok = run_curator("registry", "validate", "--registry", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "1 model(s), valid" in ok.stdout
    failed = run_curator("registry", "validate", "--registry", str(bad))
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[0].startswith("models[1].minRamGb: ")
    as_json = json.loads(
        run_curator("registry", "validate", "--registry", str(bad), "--json").stdout
    )
    assert as_json["valid"] is False
    assert as_json["problems"][0]["path"] == "models[1].minRamGb"


def test_cli_validate_reports_malformed_json_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "schemaVersion": 1,\n  "models": [\n    {"id": }\n  ]\n}\n')
    result = run_curator("registry", "validate", "--registry", str(broken))
    assert result.returncode == 1
    assert f"{broken}:4:12: invalid JSON" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_validate_missing_file(tmp_path: Path) -> None:
    result = run_curator("registry", "validate", "--registry", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: registry not found")
