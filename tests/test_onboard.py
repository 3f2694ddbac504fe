"""Guards: curator.cli.onboard, curator.onboard.summary, curator.registry

`curator onboard` end to end on the small local model: the steps run, a rerun skips compile and
registration, and a failing step leaves the team registry as it was."""

from __future__ import annotations

import json
from pathlib import Path

from curator.registry import load_registry, validate_document
from tests.conftest import LIVENESS_PROMPTS, run_curator
from tests.samples import make_document, make_entry


def onboard(source: Path, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_curator(
        "onboard",
        str(source),
        "--recipe",
        "int4-cpu",
        "--license",
        "mit",
        "--rounds",
        "1",
        "--max-tokens",
        "16",
        "--no-fidelity",
        "--out",
        str(tmp_path / "out"),
        *extra,
    )
    return result.returncode, result.stdout, result.stderr


def test_onboard_then_rerun_skips_done_steps(tiny_model_dir: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry" / "models.json"
    liveness = ("--prompts", str(LIVENESS_PROMPTS))  # the random tiny model cannot answer facts
    code, out, err = onboard(tiny_model_dir, tmp_path, "--json", *liveness)
    assert code == 0, err
    result = json.loads(out)
    assert [s["name"] for s in result["steps"]] == ["info", "compile", "register", "smoke", "bench"]
    assert all(s["status"] == "done" for s in result["steps"])
    assert result["registry_action"] == "added"
    document = load_registry(registry)
    assert validate_document(document).valid
    (entry,) = document["models"]
    assert entry["id"] == result["model_id"]
    (bench,) = entry["benchmarks"]
    assert bench["decodeTokensPerSec"]["mean"] > 0 and bench["peakMemoryMb"] > 0
    assert entry["minRamGb"] >= bench["peakMemoryMb"] / 1024  # the entry claims what was measured
    report = json.loads(Path(result["bench_report"]).read_text())
    cores = report["machine"]["cores"]
    threads = (
        f"{entry['id']}: intra_op_num_threads 0 (all {cores} cores) from its genai_config.json"
    )
    assert threads in report["notes"]  # the thread setting the bench ran with (issue 11)
    summary = Path(result["summary_path"]).read_text()
    assert f"# Onboard `{entry['id']}`" in summary and "## Benchmark" in summary
    assert f"{bench['decodeTokensPerSec']['mean']:,.1f}" in summary  # as the summary writes it
    leftovers = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("."))
    assert leftovers == [] and not (tmp_path / "out" / "staged-registry.json").exists()

    code, out, err = onboard(tiny_model_dir, tmp_path, "--json", *liveness)
    assert code == 0, err
    statuses = {s["name"]: s["status"] for s in json.loads(out)["steps"]}
    assert statuses["compile"] == "skipped" and statuses["register"] == "skipped"
    assert statuses["bench"] == "skipped"
    assert json.loads(out)["registry_action"] == "unchanged"
    assert load_registry(registry) == document


def test_failing_step_leaves_registry_untouched(tiny_model_dir: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry" / "models.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(json.dumps(make_document([make_entry(1)]), indent=2))
    before = registry.read_bytes()
    impossible = tmp_path / "prompts.json"
    impossible.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "name": "impossible",
                "timeLimitSec": 0.000001,
                "prompts": [{"id": "too-slow", "prompt": "Say hello.", "maxTokens": 8}],
            }
        )
    )
    code, _, err = onboard(tiny_model_dir, tmp_path, "--prompts", str(impossible))
    assert code == 1
    assert err.splitlines()[-2].startswith("error: smoke failed: smoke prompts failed: too-slow")
    assert registry.read_bytes() == before


def test_summary_answers_cannot_break_the_table() -> None:
    """A model's answer is untrusted text in a pull-request summary: pipes, backticks and markup
    stay inside their cell."""
    import re

    from curator.onboard.summary import _answer_lines

    answer = "```python\ndef f(a|b):\n    return a<b```  <img src=x>" + "x" * 300
    rows = [line for line in _answer_lines([("code", answer)]) if line.startswith("| code")]
    (row,) = rows
    assert len(re.findall(r"(?<!\\)\|", row)) == 3  # | code | answer |
    assert "<" not in row and "\\`\\`\\`python" in row
    assert row.endswith("… |") and len(row) < 260
