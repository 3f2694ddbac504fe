"""Offline, unreachable, gated, missing and bad-token cases: each a one-line HubError with a hint,
in process and through ``curator``; the Hub unreachable fails at once (no retries)."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from curator.errors import HubError, UsageProblem
from curator.hub import download_for_compile, model_facts, search_models
from curator.hub.errors import (
    HubAuthError,
    HubGated,
    HubOffline,
    HubRepoNotFound,
    HubRevisionNotFound,
)
from tests.conftest import run_curator
from tests.fakehub import GATED, GRANTED_TOKEN, PLAIN_TOKEN, TINY, FakeHub
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401


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
