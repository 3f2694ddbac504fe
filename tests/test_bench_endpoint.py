"""Guards: curator.bench.backends, curator.bench.compare, curator.bench.job, curator.bench.reports,
  curator.cli.bench, curator.cli.foundry, curator.registry

curator bench against a loopback OpenAI-compatible server whose timing the test controls.

The server streams ``max_tokens`` words per answer after a set delay, with a set gap between words,
so the figures bench reports can be checked against what really happened. Also covers the reports
(JSON against its schema, CSV, Markdown, PNG), concurrency, estimated token counts, compare, the
annotation round trip and --record.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_curator


@dataclass
class FakeModel:
    ttft_s: float = 0.05
    gap_s: float = 0.01
    usage: bool = True
    fail: bool = False
    ignore_stream: bool = False  # answer with one JSON completion, as some servers do


@dataclass
class FakeServer:
    models: dict[str, FakeModel]
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(server_state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                data = [{"id": i, "object": "model"} for i in server_state.models]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def _chunk(self, payload: str) -> None:
            data = payload.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server_state.requests.append(body)
            model = server_state.models.get(body.get("model"))
            if model is None:
                self._json(404, {"error": {"message": f"model {body.get('model')} not found"}})
                return
            if model.fail:
                self._json(500, {"error": {"message": "the model crashed"}})
                return
            if model.ignore_stream:
                n = int(body["max_tokens"])
                message = {"role": "assistant", "content": "".join(f"w{i} " for i in range(n))}
                self._json(
                    200,
                    {
                        "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": n},
                    },
                )
                return
            with server_state.lock:
                server_state.in_flight += 1
                server_state.max_in_flight = max(server_state.max_in_flight, server_state.in_flight)
            finished = False

            def finish() -> None:
                # Counted out before the client can see the end of the stream: once it reads
                # [DONE] it may send its next request before this thread runs again.
                nonlocal finished
                if not finished:
                    finished = True
                    with server_state.lock:
                        server_state.in_flight -= 1

            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                n = int(body["max_tokens"])
                time.sleep(model.ttft_s)
                for i in range(n):
                    if i:
                        time.sleep(model.gap_s)
                    delta = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
                    self._chunk(f"data: {json.dumps(delta)}\n\n")
                if model.usage:
                    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n}}
                    self._chunk(f"data: {json.dumps(usage)}\n\n")
                finish()
                self._chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            finally:
                finish()

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients closing kept-alive connections at exit are not errors here


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    state = FakeServer(models={"fast-generic-cpu:1": FakeModel()})
    httpd = QuietServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def write_prompts(path: Path, max_tokens: int = 20) -> Path:
    doc = {
        "prompts": [
            {"id": "one", "prompt": "Say w1.", "expected": ["w1", "absent-aspect"]},
            {"id": "two", "messages": [{"role": "user", "content": "Count."}]},
        ],
        "maxTokens": max_tokens,
    }
    path.write_text(json.dumps(doc))
    return path


def bench(server: FakeServer, tmp_path: Path, *args: str, out: str = "out") -> Any:
    prompts = write_prompts(tmp_path / "prompts.json")
    result = run_curator(
        "bench",
        *args,
        "--endpoint",
        server.url,
        "--prompts",
        str(prompts),
        "--out",
        str(tmp_path / out),
        "--json",
    )
    return result


def test_endpoint_figures_match_what_the_server_did(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    result = bench(
        fake_server,
        tmp_path,
        "fast-generic-cpu:1",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--max-tokens",
        "16",
        "--server-pid",
        str(os.getpid()),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    # 2 prompts x (1 warm-up + 2 measured rounds) requests reached the server.
    assert len(fake_server.requests) == 6
    assert all(r["stream"] and r["max_tokens"] == 16 for r in fake_server.requests)
    model = report["models"][0]
    assert model["status"] == "ok" and model["error"] is None
    assert len(model["requests"]) == 4 and {r["round"] for r in model["requests"]} == {0, 1}
    summary = model["summary"]
    assert summary["completionTokens"]["min"] == summary["completionTokens"]["max"] == 16
    assert not model["tokensEstimated"]
    assert model["burstyRequests"] == 0
    # The server waits 50 ms before the first word, then 10 ms between words.
    # Lower bounds are guaranteed by the server's sleeps; upper bounds leave room for a busy machine.
    assert 50 <= summary["ttftMs"]["min"] < 50 + 400
    assert summary["latencyMs"]["min"] >= 50 + 15 * 10
    # Decode speed and inter-token gap are measured between two client-side arrivals (first and
    # last word): the sleeps make the server send 15 gaps of >= 10 ms, but the first word's
    # delivery may lag its send more than the last's does (scheduling, buffering), so the
    # client may see the 15 gaps total a little under 150 ms (149.3 ms seen). delivery_lag_ms
    # bounds that lag; the bounds still catch a span divided by all 16 tokens (9.4 ms, 107 tok/s).
    delivery_lag_ms = 5.0
    shortest_span_ms = 15 * 10 - delivery_lag_ms
    decode = summary["decodeTokensPerSec"]
    assert 20 < decode["max"] <= 15 / (shortest_span_ms / 1000), decode
    assert shortest_span_ms / 15 <= summary["interTokenMs"]["min"] < 50
    assert model["peakMemoryMb"] > 10  # this test process, sampled as the "server"
    assert model["loadTimeMs"] is None
    assert any("peak memory is the whole server process's" in n for n in report["notes"])
    # Quality: prompt "one" expects w1 (present) and absent-aspect (absent).
    coverage = {p["id"]: p["aspectCoverage"] for p in model["prompts"]}
    assert coverage == {"one": 0.5, "two": None}
    assert model["quality"]["score"] == 0.5 and model["quality"]["source"] == "aspects"


def test_reports_are_written_and_valid(fake_server: FakeServer, tmp_path: Path) -> None:
    from curator.bench.reports import report_problems

    result = bench(
        fake_server,
        tmp_path,
        "fast-generic-cpu:1",
        "--rounds",
        "3",
        "--warmup",
        "0",
        "--max-tokens",
        "4",
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    report = json.loads(Path(files["json"]).read_text())
    assert report_problems(report) == []
    machine = report["machine"]
    assert machine["cores"] == os.cpu_count() and machine["ramGb"] > 0 and machine["cpu"]
    assert "foundry-local-sdk" in machine["packages"]
    import hashlib

    prompts_bytes = (tmp_path / "prompts.json").read_bytes()
    assert report["promptSet"]["sha256"] == hashlib.sha256(prompts_bytes).hexdigest()
    with open(files["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2
    assert {(r["prompt_id"], r["round"]) for r in rows} == {
        (p, str(i)) for p in ("one", "two") for i in range(3)
    }
    assert all(r["completion_tokens"] == "4" for r in rows)
    markdown = Path(files["markdown"]).read_text()
    assert "| `fast-generic-cpu:1` | ok |" in markdown
    assert "![TTFT and decode tokens/s per model](bench-chart.png)" in markdown
    png = Path(files["chart"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_unknown_and_failing_models_fail_while_others_run(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.models["crash-generic-cpu:1"] = FakeModel(fail=True)
    result = bench(
        fake_server,
        tmp_path,
        "missing-generic-cpu:1",
        "crash-generic-cpu:1",
        "fast-generic-cpu:1",
        "--rounds",
        "1",
        "--max-tokens",
        "3",
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)["report"]
    status = {m["id"]: (m["status"], m["error"]) for m in report["models"]}
    assert status["fast-generic-cpu:1"] == ("ok", None)
    assert status["missing-generic-cpu:1"][0] == "failed"
    assert "does not serve missing-generic-cpu:1" in status["missing-generic-cpu:1"][1]
    assert status["crash-generic-cpu:1"][0] == "failed"
    assert "the model crashed" in status["crash-generic-cpu:1"][1]
    from curator.bench.reports import report_problems

    assert report_problems(report) == []


def test_concurrency_reports_throughput(fake_server: FakeServer, tmp_path: Path) -> None:
    fake_server.models["fast-generic-cpu:1"] = FakeModel(ttft_s=0.1, gap_s=0.005)
    result = bench(
        fake_server,
        tmp_path,
        "fast-generic-cpu:1",
        "--rounds",
        "4",
        "--warmup",
        "0",
        "--max-tokens",
        "10",
        "--concurrency",
        "4",
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["report"]["models"][0]
    throughput = model["throughput"]
    assert throughput["concurrency"] == 4
    assert fake_server.max_in_flight == 4
    # Overlapping requests: the run's wall time is below the sum of its requests' latencies
    # (a relation that holds however busy the machine is, unlike a fixed time bound).
    latencies_s = sum(r["latencyMs"] for r in model["requests"]) / 1000
    assert len(model["requests"]) == 8
    assert throughput["wallS"] < latencies_s / 2
    assert throughput["requestsPerSec"] == pytest.approx(8 / throughput["wallS"], rel=1e-3)
    assert throughput["outputTokensPerSec"] == pytest.approx(80 / throughput["wallS"], rel=1e-3)


def test_concurrency_needs_an_endpoint(tmp_path: Path) -> None:
    result = run_curator(
        "bench",
        "x-generic-cpu:1",
        "--concurrency",
        "2",
        "--in-process",
        "--prompts",
        str(write_prompts(tmp_path / "p.json")),
    )
    assert result.returncode == 2
    assert "--concurrency above 1 needs an endpoint" in result.stderr


def _tokenizer_dir(cache: Path, model_id: str) -> Path:
    """A word-level tokenizer.json for the model, where bench looks in a Foundry cache."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(64)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = cache / "curator" / model_id.replace(":", "-")
    folder.mkdir(parents=True)
    (folder / "genai_config.json").write_text("{}")
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_missing_usage_is_estimated_with_the_tokenizer(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.models["nousage-generic-cpu:1"] = FakeModel(usage=False, ttft_s=0.01, gap_s=0.002)
    _tokenizer_dir(Path(os.environ["FOUNDRY_CACHE_DIR"]), "nousage-generic-cpu:1")
    result = bench(
        fake_server, tmp_path, "nousage-generic-cpu:1", "--rounds", "1", "--max-tokens", "9"
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["report"]["models"][0]
    assert model["tokensEstimated"] is True
    for request in model["requests"]:
        assert request["tokensEstimated"] is True
        assert request["completionTokens"] == 9  # w0 ... w8, one word-level token each
        assert request["decodeTokensPerSec"] is not None


def test_compare_flags_a_regression(fake_server: FakeServer, tmp_path: Path) -> None:
    args = ("fast-generic-cpu:1", "--rounds", "2", "--warmup", "0", "--max-tokens", "12")
    first = bench(fake_server, tmp_path, *args, out="old")
    assert first.returncode == 0, first.stderr
    fake_server.models["fast-generic-cpu:1"] = FakeModel(ttft_s=0.15, gap_s=0.03)
    second = bench(fake_server, tmp_path, *args, out="new")
    assert second.returncode == 0, second.stderr
    old, new = tmp_path / "old" / "bench-report.json", tmp_path / "new" / "bench-report.json"

    same = run_curator("bench", "compare", str(old), str(old), "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["regressedModels"] == []

    worse = run_curator("bench", "compare", str(old), str(new), "--threshold", "20", "--json")
    assert worse.returncode == 1
    payload = json.loads(worse.stdout)
    assert payload["regressedModels"] == ["fast-generic-cpu:1"]
    # Judged by relations that hold under load (a loaded runner adds delay to every chunk of
    # both runs, which shrinks the ratios but cannot reverse them): the deltas are the reports'
    # own figures, each verdict follows its delta and the threshold, and the tripled latency
    # (ratio ~3) is flagged.
    deltas = payload["models"][0]["deltas"]
    summaries = [json.loads(p.read_text())["models"][0]["summary"] for p in (old, new)]
    timing = [d for d in deltas if "." in d["figure"]]  # decode, TTFT and latency figures
    assert len(timing) == 5
    for delta in timing:
        section, stat = delta["figure"].split(".")
        before, after = (s[section][stat] for s in summaries)
        assert (delta["old"], delta["new"]) == (pytest.approx(before), pytest.approx(after))
        assert delta["deltaPct"] == pytest.approx((after - before) / before * 100, abs=0.006)
        worse = -delta["deltaPct"] if delta["higherIsBetter"] else delta["deltaPct"]
        assert delta["regression"] == (worse > 20), delta
    decode = next(d for d in deltas if d["figure"] == "decodeTokensPerSec.mean")
    assert decode["new"] < decode["old"]  # a tripled gap between words is slower under any load
    flagged = {d["figure"] for d in deltas if d["regression"]}
    assert "latencyMs.p50" in flagged

    better = run_curator("bench", "compare", str(new), str(old))
    assert better.returncode == 0, better.stderr
    assert "no regression past 10%" in better.stdout

    text = run_curator("bench", "compare", str(old), str(new))
    assert text.returncode == 1 and "REGRESSION" in text.stdout

    fake_server.models["fast-generic-cpu:1"] = FakeModel(fail=True)
    broken = bench(fake_server, tmp_path, *args, out="broken")
    assert broken.returncode == 1
    failed = run_curator(
        "bench", "compare", str(old), str(tmp_path / "broken" / "bench-report.json"), "--json"
    )
    assert failed.returncode == 1
    [model] = json.loads(failed.stdout)["models"]
    assert (model["oldStatus"], model["newStatus"], model["regression"]) == ("ok", "failed", True)
    assert "the model crashed" in model["note"]


def test_compare_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"models": []}')
    result = run_curator("bench", "compare", str(bogus), str(bogus))
    assert result.returncode == 1
    assert "is not a curator bench report" in result.stderr
    assert "Traceback" not in result.stderr


def write_scores(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def bench_once(server: FakeServer, tmp_path: Path, *extra: str) -> Any:
    """One short measured round of the fast model, no warm-up."""
    return bench(
        server,
        tmp_path,
        "fast-generic-cpu:1",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--max-tokens",
        "3",
        *extra,
    )


def test_annotation_template_round_trip(fake_server: FakeServer, tmp_path: Path) -> None:
    template = tmp_path / "scores.csv"
    first = bench_once(fake_server, tmp_path, "--annotate", str(template))
    assert first.returncode == 0, first.stderr
    with template.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["prompt_id"]) for r in rows] == [
        ("fast-generic-cpu:1", "one"),
        ("fast-generic-cpu:1", "two"),
    ]
    assert rows[0]["answer"] == "w0 w1 w2 " and rows[0]["correctness"] == ""
    rows[0].update(correctness="5", completeness="3", relevance="4", clarity="4")
    rows[1].update(correctness="1", completeness="1", relevance="2", clarity="")
    write_scores(template, rows)
    second = bench_once(fake_server, tmp_path, "--scores", str(template))
    assert second.returncode == 0, second.stderr
    quality = json.loads(second.stdout)["report"]["models"][0]["quality"]
    assert quality["manualRows"] == 2 and quality["staleManualRows"] == 0
    # Row means 4.0 and 4/3; their mean 8/3 on 1-5 maps to (8/3 - 1) / 4 on 0-1.
    assert quality["manualMean"] == pytest.approx(8 / 3, abs=1e-3)
    assert quality["score"] == pytest.approx((8 / 3 - 1) / 4, abs=1e-3)
    assert quality["source"] == "manual"
    assert quality["manualByCriterion"]["clarity"] == 4.0

    rows[1]["answer_sha256"] = "0" * 64  # scored against another answer than this run's
    write_scores(template, rows)
    stale = bench_once(fake_server, tmp_path, "--scores", str(template))
    assert json.loads(stale.stdout)["report"]["models"][0]["quality"]["staleManualRows"] == 1

    rows[0]["correctness"] = "7"
    write_scores(template, rows)
    bad = bench(fake_server, tmp_path, "fast-generic-cpu:1", "--scores", str(template))
    assert bad.returncode == 1
    assert "correctness must be a whole number from 1 to 5" in json.loads(bad.stdout)["error"]


def test_bench_models_env_and_endpoint_env(fake_server: FakeServer, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.json", max_tokens=2)
    result = run_curator(
        "bench",
        "--prompts",
        str(prompts),
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path / "out"),
        "--json",
        env={"BENCH_MODELS": "fast-generic-cpu:1, ", "FOUNDRY_LOCAL_ENDPOINT": fake_server.url},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    assert report["backend"] == "endpoint" and report["endpoint"] == fake_server.url + "/v1"
    assert [m["id"] for m in report["models"]] == ["fast-generic-cpu:1"]


def test_record_needs_peak_memory_and_a_registry_entry(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    from curator.registry import find_model, load_registry, upsert_model
    from tests.samples import make_entry

    registry = Path(os.environ["CURATOR_REGISTRY"])
    upsert_model(registry, make_entry(0, id="fast-generic-cpu:1", alias="fast"))
    args = ("fast-generic-cpu:1", "--rounds", "1", "--warmup", "0", "--max-tokens", "3", "--record")

    no_pid = bench(fake_server, tmp_path, *args)
    assert no_pid.returncode == 1
    [outcome] = json.loads(no_pid.stdout)["recorded"]
    assert outcome["outcome"] == "skipped" and "--server-pid" in outcome["detail"]
    assert "benchmarks" not in find_model(load_registry(registry), "fast-generic-cpu:1")

    with_pid = bench(fake_server, tmp_path, *args, "--server-pid", str(os.getpid()))
    assert with_pid.returncode == 0, with_pid.stderr
    assert json.loads(with_pid.stdout)["recorded"][0]["outcome"] == "recorded"
    [record] = find_model(load_registry(registry), "fast-generic-cpu:1")["benchmarks"]
    assert record["maxTokens"] == 3 and record["rounds"] == 1
    assert "loadTimeMs" not in record  # an endpoint has no load step to time

    fake_server.models["other-generic-cpu:1"] = FakeModel()
    unknown = bench(
        fake_server, tmp_path, "other-generic-cpu:1", *args[1:], "--server-pid", str(os.getpid())
    )
    assert unknown.returncode == 1
    [refused] = json.loads(unknown.stdout)["recorded"]
    assert refused["outcome"] == "refused" and "no model 'other-generic-cpu:1'" in refused["detail"]


def test_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_curator(
        "bench",
        "m-generic-cpu:1",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--prompts",
        str(write_prompts(tmp_path / "p.json")),
    )
    assert result.returncode == 1
    assert f"error: cannot reach http://127.0.0.1:{port}/v1" in result.stderr
    assert "hint: start the server (curator serve)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_that_ignores_stream_still_measures(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.models["whole-generic-cpu:1"] = FakeModel(ignore_stream=True)
    result = bench(
        fake_server, tmp_path, "whole-generic-cpu:1", "--rounds", "1", "--max-tokens", "5"
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["report"]["models"][0]
    assert model["status"] == "ok"
    for request in model["requests"]:
        assert request["text"] == "w0 w1 w2 w3 w4 "
        assert request["completionTokens"] == 5 and not request["tokensEstimated"]
        assert request["chunks"] == 1 and request["decodeTokensPerSec"] is None


def test_no_chart_when_no_model_produced_figures(fake_server: FakeServer, tmp_path: Path) -> None:
    result = bench(fake_server, tmp_path, "missing-generic-cpu:1", "--rounds", "1")
    assert result.returncode == 1
    files = json.loads(result.stdout)["files"]
    assert files["chart"] is None
    assert not (tmp_path / "out" / "bench-chart.png").exists()
    markdown = Path(files["markdown"]).read_text()
    assert "| `missing-generic-cpu:1` | **failed**" in markdown and "![" not in markdown
