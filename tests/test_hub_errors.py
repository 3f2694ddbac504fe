"""Guards: curator.cli.search, curator.errors, curator.hub, curator.hub.errors

Offline, unreachable, gated, missing and bad-token cases: each a one-line HubError with a hint,
in process and through ``curator``; the Hub unreachable fails at once (no retries)."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from curator.errors import HubError, UsageProblem
from curator.hub import download_for_compile, model_facts, search_models
from curator.hub.errors import (
    HubAuthError,
    HubFileNotFound,
    HubGated,
    HubOffline,
    HubRepoNotFound,
    HubRevisionNotFound,
    HubWrongEndpoint,
)
from tests.conftest import run_curator
from tests.fakehub import GATED, GRANTED_TOKEN, PLAIN_TOKEN, TINY, FakeHub, FakeRepo, server
from tests.fakehub.fixtures import write_safetensors
from tests.fakehub.misbehaving import BareStatusServer
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.server import Reply, Request


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_offline_switch_fails_without_a_request(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubOffline) as caught:
        search_models("qwen")
    assert "HF_HUB_OFFLINE" in caught.value.message
    assert "--local" in (caught.value.hint or "")
    with pytest.raises(HubOffline):
        model_facts(TINY)
    assert hub.requests == []


def test_unreachable_hub_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(HubOffline) as caught:
        search_models("qwen")  # list_models would retry connection errors five times
    assert f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port}" in caught.value.message
    assert "refused" in caught.value.message.lower()
    with pytest.raises(HubOffline):
        model_facts(TINY)


def test_cli_offline_and_unreachable_are_one_line_errors() -> None:
    offline = run_curator("search", "qwen")  # the test environment sets HF_HUB_OFFLINE=1
    assert offline.returncode == 1
    lines = offline.stderr.strip().splitlines()
    assert lines[0] == "error: the Hugging Face Hub is switched off: HF_HUB_OFFLINE is set"
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert "Traceback" not in offline.stderr

    port = closed_port()
    refused = run_curator(
        "info", TINY, env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": ""}
    )
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith(
        f"error: cannot reach the Hugging Face Hub at http://127.0.0.1:{port}"
    )
    assert len(lines) == 2 and "Traceback" not in refused.stderr


def test_gated_repo_without_access(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The facts come from the model info answer, which a gated repository gives to anyone; the
    download is what the gate refuses."""
    facts = model_facts(GATED)
    assert facts.gated is True and facts.gate == "manual"
    assert facts.parameters == hub.repos[GATED].safetensors()["total"]  # type: ignore[index]
    assert facts.gaps == ()
    with pytest.raises(HubGated) as anonymous:
        download_for_compile(GATED, None, tmp_path / "hf-cache")
    assert "not logged in" in anonymous.value.message
    assert "hf auth login" in (anonymous.value.hint or "")
    assert f"{hub.url}/{GATED}" in (anonymous.value.hint or "")
    assert f"`curator info {GATED}` shows its facts meanwhile" in (anonymous.value.hint or "")
    monkeypatch.setenv("HF_TOKEN", PLAIN_TOKEN)
    with pytest.raises(HubGated) as refused:
        download_for_compile(GATED, None, tmp_path / "hf-cache")
    assert "this token has not been granted access" in refused.value.message


def test_cli_info_on_a_gated_repo_shows_the_facts_and_the_gate(hub: FakeHub) -> None:
    done = run_curator("info", GATED, env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 0, done.stderr
    assert f"yes (manual); request access at {hub.url}/{GATED}" in done.stdout
    total = hub.repos[GATED].safetensors()["total"]  # type: ignore[index]
    assert f"{total:,}" in done.stdout


def test_gated_repo_with_a_granted_token(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", GRANTED_TOKEN)
    facts = model_facts(GATED)
    assert facts.gated is True and facts.gate == "manual"
    assert facts.parameters == hub.repos[GATED].safetensors()["total"]  # type: ignore[index]
    sent = {r.headers.get("authorization") for r in hub.seen("GET")}
    assert sent == {f"Bearer {GRANTED_TOKEN}"}


def test_token_saved_by_hf_auth_login_is_used(hub: FakeHub, isolated_env: Path) -> None:
    """``hf auth login`` writes $HF_HOME/token; a fresh ``curator`` process reads it."""
    (isolated_env / "hf-home" / "token").write_text(GRANTED_TOKEN)
    done = run_curator("info", GATED, "--json", env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 0, done.stderr
    assert f"Bearer {GRANTED_TOKEN}" in {r.headers.get("authorization") for r in hub.seen("GET")}


def test_missing_repository_and_revision(hub: FakeHub) -> None:
    with pytest.raises(HubRepoNotFound) as repo:
        model_facts("fixture/does-not-exist")
    assert "fixture/does-not-exist" in repo.value.message
    assert "curator search" in (repo.value.hint or "")
    with pytest.raises(HubRevisionNotFound) as revision:
        model_facts(TINY, "no-such-branch")
    assert "no-such-branch" in revision.value.message


def test_bad_token(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(HubAuthError) as caught:
        search_models("qwen")
    assert "refused the Hugging Face token" in caught.value.message
    assert "HF_TOKEN" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("args", "env", "first_line"),
    [
        (("info", "fixture/nope"), {}, "error: no model repository fixture/nope on "),
        (("info", TINY, "--revision", "v9"), {}, f"error: {TINY} has no revision 'v9'"),
        (("search", "x"), {"HF_TOKEN": "hf_bad"}, "error: the Hub refused the Hugging Face token"),
    ],
)
def test_cli_errors_are_one_line_with_a_hint(
    hub: FakeHub, args: tuple[str, ...], env: dict[str, str], first_line: str
) -> None:
    done = run_curator(*args, env={"HF_ENDPOINT": hub.url, **env})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(first_line), done.stderr
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_malformed_repo_id_is_a_usage_error() -> None:
    with pytest.raises(UsageProblem):
        model_facts("not a repo!!/x")  # refused before any network use (the Hub is offline here)
    done = run_curator("info", "not a repo!!/x")
    assert done.returncode == 2
    assert "is not a Hugging Face repository id" in done.stderr
    assert "hint: write it as ORG/NAME" in done.stderr


def test_every_hub_error_is_a_hub_error() -> None:
    for kind in (HubOffline, HubGated, HubRepoNotFound, HubRevisionNotFound, HubAuthError):
        assert issubclass(kind, HubError)


def test_a_mirrors_plain_404_says_not_found_not_try_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mirror or proxy answers 404 without the Hub's X-Error-Code headers."""
    with BareStatusServer(404) as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(HubRepoNotFound) as repo:
            model_facts("org/missing")
        with pytest.raises(HubRepoNotFound) as revision:
            model_facts("org/missing", "v2")
        with pytest.raises(HubWrongEndpoint) as listing:
            search_models("qwen")  # HF_ENDPOINT that is not a Hub at all
    assert repo.value.message == f"{mirror.url} has no model repository org/missing (404)"
    assert "try again" not in (repo.value.hint or "") and "mirror" in (repo.value.hint or "")
    assert "at revision 'v2'" in revision.value.message
    assert "revision" in (revision.value.hint or "")
    assert "404" in listing.value.message and "model listing" in listing.value.message
    assert f"check HF_ENDPOINT (now {mirror.url})" in (listing.value.hint or "")


def test_a_missing_file_is_named_not_blamed_on_the_network(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The compile download asks for config.json, which the repository lacks (the listing says it
    has it): the error names the file, and says nothing about HF_HUB_OFFLINE."""
    weights = write_safetensors({"w": ("F32", [2], b"\0" * 8)})
    repo = FakeRepo("fixture/lost-config", {"config.json": b"{}", "model.safetensors": weights})
    monkeypatch.setitem(hub.repos, repo.repo_id, repo)
    answer = server.resolve

    def without_config(repo: FakeRepo, revision: str, path: str, *rest: object) -> Reply:
        if path == "config.json":
            return server.error(404, "EntryNotFound", "Entry not found")
        return answer(repo, revision, path, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(server, "resolve", without_config)
    with pytest.raises(HubFileNotFound) as caught:
        download_for_compile(repo.repo_id, None, tmp_path / "hf-cache")
    assert "config.json" in caught.value.message
    assert "HF_HUB_OFFLINE" not in f"{caught.value.message} {caught.value.hint}"


@pytest.mark.parametrize(
    ("weights", "why"),
    [("adapter_model.safetensors", "adapter"), ("consolidated.safetensors", "consolidated")],
)
def test_repos_without_model_safetensors_are_a_fact_gap_not_a_traceback(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, weights: str, why: str
) -> None:
    """huggingface_hub raises NotASafetensorsRepoError for these (no model.safetensors, no index)."""
    repo = FakeRepo(
        f"fixture/only-{why}",
        {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}).encode(),
            weights: write_safetensors({"w": ("F32", [2], b"\0" * 8)}),
        },
    )
    monkeypatch.setitem(hub.repos, repo.repo_id, repo)
    answer = server.model_info

    def without_counts(repo: FakeRepo, revision: str, request: Request) -> Reply:
        body = json.loads(answer(repo, revision, request).body)
        body.pop("safetensors", None)
        return Reply(200, body)

    monkeypatch.setattr(server, "model_info", without_counts)
    facts = model_facts(repo.repo_id)
    assert facts.parameters is None and facts.architecture == "LlamaForCausalLM"
    gap = next(g for g in facts.gaps if g.fact == "parameters")
    assert gap.state == "failed" and "no readable safetensors weights" in gap.reason
    done = run_curator("info", repo.repo_id, env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "failed: " in done.stdout


def test_a_web_page_instead_of_the_hub_is_a_wrong_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_ENDPOINT at a web server that answers every path with a page (status 200, HTML)."""
    with BareStatusServer(200, b"<html><body>Welcome</body></html>") as page:
        done = run_curator(
            "search", "qwen", "--json", env={"HF_ENDPOINT": page.url, "HF_HUB_OFFLINE": ""}
        )
        info = run_curator("info", "org/name", env={"HF_ENDPOINT": page.url, "HF_HUB_OFFLINE": ""})
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["code"] == "hub_wrong_endpoint"
    assert f"check HF_ENDPOINT (now {page.url})" in error["hint"]
    assert info.returncode == 1 and "did not answer with the Hub's JSON" in info.stderr
    assert "internal error" not in info.stderr
