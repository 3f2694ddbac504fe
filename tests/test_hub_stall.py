"""Guards: curator.cli.search, curator.hub, curator.hub.errors, curator.hub.transport

A Hub that stalls or fails: bounded time, one error line, no retries and none of the library's
retry chatter; a stalled file request inside ``info`` loses only its facts."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from curator.hub import model_facts, search_models
from curator.hub.errors import HubStalled, HubUnavailable
from tests.conftest import run_curator
from tests.fakehub import TINY, FakeHub, FakeRepo, server
from tests.fakehub.misbehaving import BareStatusServer, StallingServer
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.server import Reply, Request

ISSUE_BOUND_SECONDS = 15.0  # issue 13: a stalled Hub ends in a one-line error within 15 s
CHATTER = ("Retrying", "Retry ", "thrown while requesting", "Traceback")


def online(url: str, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "", **extra}


def test_stalled_hub_search_ends_in_one_line_within_the_bound() -> None:
    """Default limits, whole command line from process start: the old client waited 5 x 30 s."""
    with StallingServer() as stalling:
        start = time.monotonic()
        done = run_curator("search", "qwen", env=online(stalling.url), timeout=120)
        elapsed = time.monotonic() - start
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"error: the Hugging Face Hub at {stalling.url} accepted the ")
    assert "stalled" in lines[0] and lines[1].startswith("hint: ")
    assert "CURATOR_HUB_TIMEOUT" in lines[1]
    assert not any(word in done.stderr for word in CHATTER)
    assert stalling.connections == 1  # not retried
    assert elapsed < ISSUE_BOUND_SECONDS


def test_stalled_hub_info_json_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with StallingServer() as stalling:
        done = run_curator(
            "info", "org/name", "--json", env=online(stalling.url, CURATOR_HUB_TIMEOUT="1")
        )
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["code"] == "hub_stalled" and error["exit_code"] == 1
    assert "within 1 s" in error["error"] and error["hint"]
    assert not any(word in done.stderr for word in CHATTER)


def test_stalled_hub_in_process_is_a_hub_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_HUB_TIMEOUT", "1")
    with StallingServer() as stalling:
        monkeypatch.setenv("HF_ENDPOINT", stalling.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(HubStalled):
            search_models("qwen")
        with pytest.raises(HubStalled):
            model_facts(TINY)
    assert stalling.connections == 2


@pytest.fixture
def stalled_files(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The fake Hub's model info for TINY lacks config and counts (so curator fetches files), and
    every file request stalls until the test ends."""
    release = threading.Event()
    answer = server.model_info

    def thin_answer(repo: FakeRepo, revision: str, request: Request) -> Reply:
        reply = answer(repo, revision, request)
        body = json.loads(reply.body)
        for field in ("config", "safetensors"):
            body.pop(field, None)
        return Reply(200, body)

    def stall(*args: object) -> Reply:
        release.wait(60)
        return Reply(503, b"")

    monkeypatch.setattr(server, "model_info", thin_answer)
    monkeypatch.setattr(server, "resolve", stall)
    yield release
    release.set()


def test_a_stalled_file_request_loses_only_its_facts(
    hub: FakeHub, stalled_files: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_timeout, deadline = 2.0, 2.5
    monkeypatch.setenv("CURATOR_HUB_TIMEOUT", str(read_timeout))
    monkeypatch.setenv("CURATOR_HUB_DEADLINE", str(deadline))
    start = time.monotonic()
    facts = model_facts(TINY)
    elapsed = time.monotonic() - start
    assert facts.sha == hub.repos[TINY].sha and facts.license == "apache-2.0"
    assert facts.chat_template is True  # chat_template.jinja is listed: no request needed
    files = hub.repos[TINY].files
    assert facts.download_bytes == sum(len(files[f.path]) for f in facts.download_files)
    failed = {g.fact: g.reason for g in facts.gaps if g.state == "failed"}
    assert set(failed) == {"architecture", "parameters"}
    assert all("stalled" in reason for reason in failed.values())
    assert "config.json" in str(hub.seen(contains="/resolve/"))
    # Two file requests stalled. Each alone may wait its read timeout; the deadline bounds both
    # together, so the second was cut short (and says so).
    assert elapsed < 2 * read_timeout
    assert f"finish answering within {deadline:g} s" in failed["parameters"]


def test_server_errors_inside_the_deadline_are_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with BareStatusServer(503, b"Service Unavailable") as failing:
        monkeypatch.setenv("HF_ENDPOINT", failing.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(HubUnavailable) as caught:
            search_models("qwen")
        assert len(failing.paths) == 1  # huggingface_hub alone retries a 503 five times
        done = run_curator("info", "org/name", env=online(failing.url))
    assert "answered 503: it is overloaded or down" in caught.value.message
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 2, done.stderr
    assert not any(word in done.stderr for word in CHATTER)
