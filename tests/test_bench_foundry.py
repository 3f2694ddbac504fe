"""Guards: curator.bench.backends, curator.bench.job, curator.bench.machine, curator.bench.record,
  curator.bench.reports, curator.cli.bench, curator.cli.foundry, curator.registry

curator bench on the small compiled model: in process through Foundry Local, and through
``curator serve``; the token counts it reports against a plain onnxruntime-genai loop run in
another process; a broken model beside a good one.

Models are registered with Foundry Local in a subprocess (this test process never initialises the
SDK); the plain onnxruntime-genai loop runs in its own subprocess too (bench/bench_harness.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, TINY_MODEL_ID, run_curator
from tests.samples import make_entry
from tests.serve_helpers import register_models, running_server

BROKEN_ID = "tiny-broken-generic-cpu:1"
EOS_ID = "tiny-eos-generic-cpu:1"


def write_prompts(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "prompts": [
                    {"id": "reverse", "prompt": "Write a Python function that reverses a string."},
                    {
                        "id": "chat",
                        "messages": [
                            {"role": "system", "content": "You are concise."},
                            {"role": "user", "content": "What is the capital of France?"},
                        ],
                        "expected": ["paris"],
                    },
                ]
            }
        )
    )
    return path


@pytest.fixture
def good_model(install_compiled: Callable[..., Path]) -> Path:
    model_dir = install_compiled()
    register_models([(model_dir, TINY_MODEL_ID)])
    return model_dir


def plain_loop(model_dir: Path, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "perf.bench_harness",
            "plain",
            str(model_dir),
            json.dumps(messages),
            str(max_tokens),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_in_process_bench_records_into_the_registry(good_model: Path, tmp_path: Path) -> None:
    from curator.registry import find_model, load_registry, upsert_model, validate_document

    registry = Path(os.environ["CURATOR_REGISTRY"])
    upsert_model(registry, make_entry(0, id=TINY_MODEL_ID, alias="tiny-qwen2"))
    prompts = write_prompts(tmp_path / "prompts.json")
    result = run_curator(
        "bench",
        TINY_MODEL_ID,
        "--in-process",
        "--prompts",
        str(prompts),
        "--rounds",
        "2",
        "--max-tokens",
        "24",
        "--out",
        str(tmp_path / "out"),
        "--record",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    model = payload["report"]["models"][0]
    assert model["status"] == "ok", model["error"]
    assert payload["report"]["backend"] == "in-process"
    assert model["loadTimeMs"] > 0 and model["peakMemoryMb"] > 50
    assert not model["tokensEstimated"]
    assert len(model["requests"]) == 4
    assert all(r["completionTokens"] == 24 for r in model["requests"])
    summary = model["summary"]
    assert summary["ttftMs"]["p50"] > 0 and summary["decodeTokensPerSec"]["mean"] > 0
    # Greedy rounds are the same work: the same answer every round.
    answers = {(r["promptId"], r["text"]) for r in model["requests"]}
    assert len(answers) == 2

    assert payload["recorded"] == [
        {"id": TINY_MODEL_ID, "outcome": "recorded", "detail": str(registry)}
    ]
    document = load_registry(registry)
    assert validate_document(document).problems == ()
    entry = find_model(document, TINY_MODEL_ID)
    assert entry is not None
    [record] = entry["benchmarks"]
    assert record["rounds"] == 2 and record["maxTokens"] == 24
    assert record["decodeTokensPerSec"]["mean"] == pytest.approx(
        summary["decodeTokensPerSec"]["mean"], rel=1e-3
    )
    assert record["ttftMs"]["p95"] == pytest.approx(summary["ttftMs"]["p95"], rel=1e-3)
    assert record["peakMemoryMb"] == pytest.approx(model["peakMemoryMb"], abs=0.1)
    assert record["machine"]["fingerprint"] == payload["report"]["machine"]["fingerprint"]
    assert record["promptSetSha256"] == payload["report"]["promptSet"]["sha256"]
    assert record["qualityScore"] == model["quality"]["score"]


def test_broken_model_fails_while_the_good_one_runs(
    good_model: Path, install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    broken = install_compiled(model_id=BROKEN_ID)
    onnx = broken / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:200])
    register_models([(broken, BROKEN_ID)])
    prompts = write_prompts(tmp_path / "prompts.json")
    result = run_curator(
        "bench",
        BROKEN_ID,
        TINY_MODEL_ID,
        "--in-process",
        "--prompts",
        str(prompts),
        "--rounds",
        "1",
        "--max-tokens",
        "8",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)["report"]
    by_id = {m["id"]: m for m in report["models"]}
    assert by_id[BROKEN_ID]["status"] == "failed"
    assert by_id[BROKEN_ID]["error"] and "load" in by_id[BROKEN_ID]["error"]
    assert by_id[BROKEN_ID]["requests"] == []
    assert by_id[TINY_MODEL_ID]["status"] == "ok"
    assert len(by_id[TINY_MODEL_ID]["requests"]) == 2
    markdown = (tmp_path / "out" / "bench-report.md").read_text()
    assert f"| `{BROKEN_ID}` | **failed**" in markdown

    from curator.bench.reports import report_problems

    assert report_problems(report) == []


def test_completion_tokens_equal_the_tokens_a_plain_genai_loop_generates(
    good_model: Path, install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    # A copy whose end-of-sequence id is a token this random model emits early under greedy
    # decoding, so one answer stops before max tokens (the other model runs to the cap).
    eos = install_compiled(model_id=EOS_ID)
    config = json.loads((eos / "genai_config.json").read_text())
    reference = plain_loop(
        eos, [{"role": "user", "content": "Write a Python function that reverses a string."}], 24
    )
    config["model"]["eos_token_id"] = reference["ids"][4]
    (eos / "genai_config.json").write_text(json.dumps(config))
    register_models([(eos, EOS_ID)])
    prompts_path = write_prompts(tmp_path / "prompts.json")
    max_tokens = 24
    result = run_curator(
        "bench",
        TINY_MODEL_ID,
        EOS_ID,
        "--in-process",
        "--prompts",
        str(prompts_path),
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--max-tokens",
        str(max_tokens),
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    prompts = {p["id"]: p for p in json.loads(prompts_path.read_text())["prompts"]}
    stopped_early = 0
    for model in report["models"]:
        model_dir = good_model if model["id"] == TINY_MODEL_ID else eos
        for request in model["requests"]:
            prompt = prompts[request["promptId"]]
            messages = prompt.get("messages") or [{"role": "user", "content": prompt["prompt"]}]
            plain = plain_loop(model_dir, messages, max_tokens)
            # The runtime's usage leaves out the end-of-sequence token it stopped on (its text,
            # if any, is streamed: the plain loop's text has every generated token's).
            visible = plain["ids"][:-1] if plain["stoppedOnEos"] else plain["ids"]
            assert request["completionTokens"] == len(visible), (model["id"], request, plain)
            assert request["promptTokens"] == plain["promptTokens"]
            assert request["text"] == plain["text"]
            assert not request["tokensEstimated"]
            stopped_early += plain["stoppedOnEos"]
    assert stopped_early >= 1


@pytest.fixture
def served(good_model: Path) -> Iterator[tuple[str, int]]:
    with running_server(dict(os.environ)) as url_pid:
        yield url_pid


def test_bench_through_curator_serve(served: tuple[str, int], tmp_path: Path) -> None:
    url, pid = served
    prompts = write_prompts(tmp_path / "prompts.json")
    result = run_curator(
        "bench",
        TINY_MODEL_ID,
        "--endpoint",
        url,
        "--server-pid",
        str(pid),
        "--prompts",
        str(prompts),
        "--rounds",
        "2",
        "--max-tokens",
        "16",
        "--concurrency",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    assert report["backend"] == "endpoint" and report["settings"]["concurrency"] == 2
    model = report["models"][0]
    assert model["status"] == "ok", model["error"]
    assert not model["tokensEstimated"]  # curator serve sends usage when asked
    assert all(r["completionTokens"] == 16 for r in model["requests"])
    assert model["peakMemoryMb"] > 50  # the server process, by --server-pid
    assert model["throughput"]["requestsPerSec"] > 0
    assert model["throughput"]["outputTokensPerSec"] == pytest.approx(
        4 * 16 / model["throughput"]["wallS"], rel=1e-2
    )
