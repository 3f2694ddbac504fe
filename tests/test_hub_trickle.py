"""Guards: curator.cli.search, curator.hub, curator.hub.errors, curator.hub.transport,
  curator.share.pull

A Hub that answers the headers and then trickles the body (issue 23 item 1): search, info, the
compile download and pull end in one line and a hint within the deadline plus a few seconds; a
download that keeps moving is not cut off; sizes are checked before the bytes arrive.

The trickling Hub is a proxy in front of the fake Hub (tests/fakehub/misbehaving.py) that sends
the body of matching answers one byte every 2 s."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from curator.hub import download_for_compile, model_facts, search_models
from curator.hub.errors import HubStalled, HubTooLarge
from curator.share.publish import publish
from curator.share.pull import PullRefused, pull_model
from tests.conftest import TINY_MODEL_ID, run_curator
from tests.fakehub import TINY, FakeHub
from tests.fakehub.misbehaving import TricklingServer
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.test_publish import REPO, cache_dir, local_model, registry_file, writer
from tests.test_pull import published

__all__ = ["local_model", "published", "writer"]

DEADLINE = 3.0
# What "a few seconds" over the deadline may take: one trickle step (2 s) the transport cannot cut
# short would show; the CLI tests add a fresh interpreter's start (about 2 s here).
SLACK = 1.5
CLI_SLACK = 4.0


def online(url: str, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "", **extra}


def through(proxy: TricklingServer, monkeypatch: pytest.MonkeyPatch, deadline: float) -> None:
    monkeypatch.setenv("HF_ENDPOINT", proxy.url)
    monkeypatch.setenv("CURATOR_HUB_DEADLINE", str(deadline))


def test_search_against_a_trickling_hub_ends_at_the_deadline(hub: FakeHub) -> None:
    with TricklingServer(hub.url, match="/api/models") as trickling:
        start = time.monotonic()
        done = run_curator(
            "search", "tiny", env=online(trickling.url, CURATOR_HUB_DEADLINE=str(DEADLINE))
        )
        elapsed = time.monotonic() - start
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert f"did not finish answering within {DEADLINE:g} s (GET /api/models)" in lines[0]
    assert lines[1].startswith("hint: ") and "CURATOR_HUB_DEADLINE" in lines[1]
    assert "Traceback" not in done.stderr
    assert sum(trickling.sent.values()) >= 1  # the body did start to trickle
    assert elapsed < DEADLINE + CLI_SLACK, elapsed


def test_info_json_against_a_trickling_hub_is_a_json_error_at_the_deadline(hub: FakeHub) -> None:
    with TricklingServer(hub.url, match=f"/api/models/{TINY}") as trickling:
        start = time.monotonic()
        done = run_curator(
            "info", TINY, "--json", env=online(trickling.url, CURATOR_HUB_DEADLINE=str(DEADLINE))
        )
        elapsed = time.monotonic() - start
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["code"] == "hub_stalled" and error["hint"]
    assert f"finish answering within {DEADLINE:g} s" in error["error"]
    assert "\n" not in error["error"]
    assert elapsed < DEADLINE + CLI_SLACK, elapsed


def test_in_process_search_and_info_end_within_the_deadline(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured without an interpreter's start: the deadline itself holds to a fraction of a
    second, though a trickle step is 2 s long and each read may wait 8 s."""
    deadline = 2.5
    with TricklingServer(hub.url, match="/api/models") as trickling:
        through(trickling, monkeypatch, deadline)
        for call in (lambda: search_models("tiny"), lambda: model_facts(TINY)):
            start = time.monotonic()
            with pytest.raises(HubStalled):
                call()
            elapsed = time.monotonic() - start
            assert deadline - 0.1 < elapsed < deadline + 0.5, elapsed


def test_a_trickled_compile_download_ends_one_deadline_after_its_last_progress(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with TricklingServer(hub.url, match="/resolve/") as trickling:
        through(trickling, monkeypatch, DEADLINE)
        start = time.monotonic()
        with pytest.raises(HubStalled) as stalled:
            download_for_compile(TINY, None, cache_dir=tmp_path / "hf")
        elapsed = time.monotonic() - start
    assert "not in the local Hugging Face cache" in stalled.value.message
    assert f"did not move 64 KiB within {DEADLINE:g} s" in stalled.value.message
    assert "/resolve/" in stalled.value.message and stalled.value.hint
    assert elapsed < DEADLINE + SLACK, elapsed


def test_a_steady_download_longer_than_the_deadline_is_not_cut_off(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """64 KiB every 0.25 s: slow, but each step is progress, so a 1 s deadline keeps moving."""
    weights = len(hub.repos[TINY].files["model.safetensors"])
    deadline = 1.0
    with TricklingServer(hub.url, match="/resolve/", every=0.25, chunk=64 * 1024) as steady:
        through(steady, monkeypatch, deadline)
        start = time.monotonic()
        folder, sha = download_for_compile(TINY, None, cache_dir=tmp_path / "hf")
        elapsed = time.monotonic() - start
    assert sha == hub.repos[TINY].sha
    assert (folder / "model.safetensors").read_bytes() == hub.repos[TINY].files["model.safetensors"]
    assert weights > 4 * 64 * 1024  # at least a second of steps for this file alone
    assert elapsed > 2 * deadline, elapsed


def test_a_trickled_pull_ends_at_the_deadline_and_places_nothing(
    published: Path, writer: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TricklingServer(writer.url, match="/resolve/") as trickling:
        through(trickling, monkeypatch, DEADLINE)
        start = time.monotonic()
        with pytest.raises(HubStalled) as stalled:
            pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
        elapsed = time.monotonic() - start
    assert f"did not move 64 KiB within {DEADLINE:g} s" in stalled.value.message
    assert elapsed < DEADLINE + SLACK, elapsed
    assert [p for p in published.rglob("*") if p.is_file()] == []


def test_pull_checks_each_size_before_downloading_the_file(
    published: Path, writer: FakeHub
) -> None:
    """The Hub's file metadata says the file grew: refused before one byte of it is fetched."""
    files = writer.repos[REPO].files
    files["model.onnx.data"] += b"\0" * 1000
    writer.requests.clear()
    with pytest.raises(PullRefused, match=r"model\.onnx\.data: the Hub holds \d+ bytes") as refused:
        pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    assert "nothing was placed" in refused.value.message
    assert writer.seen("GET", contains="model.onnx.data") == []
    assert writer.seen("HEAD", contains="model.onnx.data")


def test_a_download_larger_than_announced_is_refused_before_its_body(
    published: Path, writer: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata (HEAD) gives the listed size, the GET announces more and trickles: refused
    on the announced length, at once, not after the body."""
    with TricklingServer(writer.url, match="model.onnx.data", pad=10) as lying:
        through(lying, monkeypatch, 30.0)
        start = time.monotonic()
        with pytest.raises(HubTooLarge) as refused:
            pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
        elapsed = time.monotonic() - start
    assert "announced" in refused.value.message and "model.onnx.data" in refused.value.message
    assert refused.value.hint
    assert elapsed < 5.0, elapsed
    assert sum(lying.sent.values()) <= 1
    assert cache_dir() != published


def test_a_download_is_asked_for_as_is_and_a_compressed_answer_refused(
    published: Path, writer: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded, a small compressed body could grow without bound past the size limit."""
    with TricklingServer(
        writer.url, match="model.onnx.data", every=0.01, chunk=2**20, gzip=True
    ) as zipped:
        through(zipped, monkeypatch, 30.0)
        with pytest.raises(HubTooLarge, match=r"model\.onnx\.data gzip-encoded"):
            pull_model(TINY_MODEL_ID, registry=registry_file(), cache_dir=published)
    (get,) = writer.seen("GET", contains="model.onnx.data")
    assert get.headers["accept-encoding"] == "identity"
    assert [p for p in published.rglob("*") if p.is_file()] == []


def test_a_publish_whose_commit_answer_trickles_ends_at_the_deadline(
    writer: FakeHub, local_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uploads go through; the Hub's answer to the commit trickles: one error at the
    deadline (CURATOR_HUB_DEADLINE set: publish's own default is 60 s), no distribution recorded."""
    with TricklingServer(writer.url, match="/commit/") as trickling:
        through(trickling, monkeypatch, DEADLINE)
        start = time.monotonic()
        with pytest.raises(HubStalled) as stalled:
            publish(TINY_MODEL_ID, repo=REPO, cache_dir=cache_dir(), registry=registry_file())
        elapsed = time.monotonic() - start
    assert f"did not move 64 KiB within {DEADLINE:g} s (POST /api/models/{REPO}/commit/main)" in (
        stalled.value.message
    )
    assert elapsed < DEADLINE + SLACK + 2, elapsed  # the uploads before the commit move it on
    assert "distribution" not in json.loads(registry_file().read_text())["models"][0]
