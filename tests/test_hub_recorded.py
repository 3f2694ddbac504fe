"""Guards: curator.cli.search, curator.hub, curator.hub.files

``curator info`` against answers huggingface.co really served (tests/fakehub/recorded), replayed
by the fake Hub with no file endpoints: the facts come from the model info answer, a failed file
request loses only its own fact, unknown is never 0, and renames (307) are followed everywhere."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from curator.hub import download_for_compile, model_facts, search_models
from curator.hub.files import bytes_from_dtype_counts
from tests.conftest import run_curator
from tests.fakehub import OLD_TINY, TINY, FakeHub
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.replay import load_recordings

RECORDED = {r.repo_id: r.json() for r in load_recordings().values() if r.status == 200}
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
OLD_LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct"  # the Hub answered 307 to LLAMA


def test_the_recordings_are_the_ones_the_readme_names() -> None:
    readme = (Path(__file__).parent / "fakehub" / "recorded" / "README.md").read_text()
    recordings = load_recordings()
    assert len(recordings) == 10
    for recording in recordings.values():
        assert recording.source["repository"] == "huggingface/huggingface_hub"
        assert recording.source["license"] == "Apache-2.0"
        assert recording.source["commit"] in readme
        assert recording.source["path"] in readme


@pytest.mark.parametrize("repo_id", sorted(RECORDED))
def test_facts_equal_the_recorded_answer(hub: FakeHub, repo_id: str) -> None:
    body: dict[str, Any] = RECORDED[repo_id]
    facts = model_facts(repo_id)
    assert facts.repo_id == body["id"] and facts.sha == body["sha"]
    assert facts.renamed_from is None
    counts = (body.get("safetensors") or {}).get("parameters")
    if counts:
        assert facts.parameters == body["safetensors"]["total"]
        assert facts.parameters_by_dtype == counts
    else:  # stable-diffusion-2-1: no counts in the answer, and the replay serves no weight headers
        assert facts.parameters is None
        gap = next(g for g in facts.gaps if g.fact == "parameters")
        assert gap.state == "failed" and "404" in gap.reason
    architectures = body["config"].get("architectures")
    assert facts.architecture == (architectures[0] if architectures else None)
    assert facts.license == body["cardData"]["license"]
    assert facts.gated is bool(body["gated"])
    template = body["config"].get("tokenizer_config", {}).get("chat_template")
    assert facts.chat_template is bool(template)
    # The answer has no file sizes and the replay serves no file listing: the size is not known,
    # and says why, instead of being 0.
    assert facts.download_bytes is None
    assert all(f.size is None for f in facts.download_files)
    size_gaps = [g for g in facts.gaps if g.fact == "download size"]
    if facts.download_files:
        assert size_gaps and size_gaps[0].state == "failed" and "404" in size_gaps[0].reason
    # Nothing the answer already held was fetched again.
    assert not hub.seen(contains="config.json")
    assert not [r for r in hub.seen() if r.headers.get("range")]


def test_gated_llama_facts_need_no_access(hub: FakeHub) -> None:
    """The moment a user needs the facts most: a gated model whose license is not accepted yet."""
    done = run_curator("info", LLAMA, env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 0, done.stderr
    assert "8,030,261,248 (8,030,261,248 BF16)" in done.stdout
    assert "LlamaForCausalLM" in done.stdout
    assert "llama3.1" in done.stdout
    assert f"yes (manual); request access at {hub.url}/{LLAMA}" in done.stdout
    assert " 0 bytes" not in done.stdout and "(0 B)" not in done.stdout
    assert "failed: " in done.stdout  # the size row, with the reason
    assert "Traceback" not in done.stderr


def test_a_404_on_config_json_loses_only_the_architecture(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: an answer without ``config`` makes curator fetch config.json, and the
    replay answers 404. The parameter count, license and gate are still reported."""
    path = f"/api/models/{LLAMA}"
    body = dict(RECORDED[LLAMA])
    body.pop("config")
    recording = replace(hub.recordings[path], body=json.dumps(body).encode())
    monkeypatch.setitem(hub.recordings, path, recording)
    facts = model_facts(LLAMA)
    assert [r.path for r in hub.seen(contains="/config.json")] == [
        f"/{LLAMA}/resolve/{body['sha']}/config.json"
    ]
    assert facts.architecture is None
    gap = next(g for g in facts.gaps if g.fact == "architecture")
    assert gap.state == "failed"
    assert "config.json" in gap.reason and "404" in gap.reason
    assert "HF_HUB_OFFLINE" not in gap.reason and "not reachable" not in gap.reason
    assert facts.parameters == 8_030_261_248
    assert facts.license == "llama3.1" and facts.gate == "manual"
    assert all("no architecture" in (f.reason or "") for f in facts.recipes)

    done = run_curator("info", LLAMA, "--json", env={"HF_ENDPOINT": hub.url})
    # the monkeypatch lives in this process's fake Hub, which the subprocess talks to
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["architecture"] is None and data["parameters"] == 8_030_261_248
    assert {"fact": "architecture", "state": "failed", "reason": gap.reason} in data["gaps"]
    assert data["download_bytes"] is None


def test_recorded_rename_is_followed_and_shown(hub: FakeHub) -> None:
    facts = model_facts(OLD_LLAMA)
    assert facts.repo_id == LLAMA and facts.renamed_from == OLD_LLAMA
    assert facts.url == f"{hub.url}/{LLAMA}"
    assert facts.license_link is None or LLAMA in facts.license_link

    text = run_curator("info", OLD_LLAMA, env={"HF_ENDPOINT": hub.url})
    assert text.returncode == 0, text.stderr
    assert f"{OLD_LLAMA} was renamed to {LLAMA}; using the new id" in text.stderr
    assert f"{hub.url}/{LLAMA}" in text.stdout and OLD_LLAMA in text.stdout  # "renamed from" row
    as_json = run_curator("info", OLD_LLAMA, "--json", env={"HF_ENDPOINT": hub.url})
    data = json.loads(as_json.stdout)
    assert data["repo_id"] == LLAMA and data["url"].endswith(f"/{LLAMA}")
    assert data["renamed_from"] == OLD_LLAMA


def test_renamed_repo_downloads_and_caches_under_the_new_id(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    folder, sha = download_for_compile(OLD_TINY, None, cache)
    assert sha == hub.repos[TINY].sha
    assert folder == cache / f"models--{TINY.replace('/', '--')}" / "snapshots" / sha
    assert (folder / "config.json").is_file()
    assert not (cache / f"models--{OLD_TINY.replace('/', '--')}").exists()
    file_requests = [r.path for r in hub.seen("GET", "/resolve/")]
    assert file_requests and all(p.startswith(f"/{TINY}/") for p in file_requests)


def test_search_values_equal_the_recorded_answers(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing built from the real answers: each summary value is the answer's, unknown stays
    None (stable-diffusion-2-1 states no parameter count)."""
    monkeypatch.setattr(hub, "list_recorded", True)
    results = search_models(None, limit=50)
    by_downloads = sorted(RECORDED.values(), key=lambda b: (b["downloads"], b["id"]), reverse=True)
    assert [r.repo_id for r in results] == [b["id"] for b in by_downloads]
    for summary in results:
        body = RECORDED[summary.repo_id]
        counts = (body.get("safetensors") or {}).get("parameters")
        assert summary.parameters == (body["safetensors"]["total"] if counts else None)
        assert summary.download_bytes == (bytes_from_dtype_counts(counts) if counts else None)
        assert summary.gated is bool(body["gated"])
        assert summary.downloads == body["downloads"] and summary.likes == body["likes"]
        license_tags = [t.split(":", 1)[1] for t in body["tags"] if t.startswith("license:")]
        assert summary.license == (license_tags[0] if license_tags else None)
        architectures = body["config"].get("architectures")
        assert summary.architecture == (architectures[0] if architectures else None)
    llama = next(r for r in results if r.repo_id == LLAMA)
    assert llama.download_bytes == 2 * 8_030_261_248  # BF16


def test_compilable_explains_the_recorded_models_it_leaves_out(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "list_recorded", True)
    done = run_curator(
        "search", "--compilable", "--explain", "--json", "--limit", "50",
        env={"HF_ENDPOINT": hub.url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["scanned"] == len(RECORDED) == len(data["models"]) + len(data["left_out"])
    reasons = {entry["repo_id"]: entry for entry in data["left_out"]}
    bert = reasons["google-bert/bert-base-uncased"]
    assert bert["kind"] == "unsupported architecture" and "BertForMaskedLM" in bert["reason"]
    if "meta-llama/Meta-Llama-3-70B-Instruct" in reasons:  # a 70B compile fits no laptop here
        assert reasons["meta-llama/Meta-Llama-3-70B-Instruct"]["kind"] == "not enough RAM"
