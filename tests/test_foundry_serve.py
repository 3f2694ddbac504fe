"""Guards: curator.cli.foundry, curator.serve.openai_types

curator serve, driven by the official openai client over loopback (ephemeral port)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from curator.serve.openai_types import parse_chat_request
from tests.conftest import TINY_MODEL_ID, run_curator
from tests.serve_helpers import client as make_client
from tests.serve_helpers import running_server

PROMPT = [{"role": "user", "content": "Write one sentence about rivers."}]


@pytest.fixture
def server(install_compiled: Callable[..., Path]) -> Iterator[str]:
    """``curator serve --port 0`` with the tiny model registered; yields the base URL."""
    registered = run_curator("register", str(install_compiled()), "--license", "mit")
    assert registered.returncode == 0, registered.stderr
    with running_server(dict(os.environ)) as (url, _):
        yield url


def _client(url: str) -> openai.OpenAI:
    return make_client(url, timeout=60)


def test_openai_client_lists_completes_and_streams(server: str) -> None:
    client = _client(server)
    # Ids, then aliases (as Foundry Local resolves them); an alias names the id it stands for.
    listed = client.models.list().data
    assert [m.id for m in listed] == [TINY_MODEL_ID, "tiny-qwen2"]
    assert (listed[1].model_extra or {}).get("root") == TINY_MODEL_ID

    completion = client.chat.completions.create(
        model=TINY_MODEL_ID,
        messages=PROMPT,
        max_tokens=10,  # type: ignore[arg-type]
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 10
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == 10 + completion.usage.prompt_tokens

    stream = client.chat.completions.create(
        model=TINY_MODEL_ID,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert text == choice.message.content  # greedy: the same answer streamed
    assert finish == ["length"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10
    assert len({c.id for c in chunks}) == 1

    # Without include_usage the stream carries no usage chunk.
    plain = list(
        client.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,
            max_tokens=4,
            stream=True,  # type: ignore[arg-type]
        )
    )
    assert all(c.usage is None for c in plain)


def test_errors_use_the_openai_format(server: str) -> None:
    client = _client(server)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="nothing-generic-cpu:1",
            messages=PROMPT,
            max_tokens=4,  # type: ignore[arg-type]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TINY_MODEL_ID, messages=[], max_tokens=4)
    with pytest.raises(openai.BadRequestError) as bad_tokens:
        client.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,
            max_tokens=0,  # type: ignore[arg-type]
        )
    assert bad_tokens.value.param == "max_tokens"
    json_type = {"content-type": "application/json"}
    raw = httpx.post(
        f"{server}/chat/completions", content=b"{not json", headers=json_type, timeout=30
    )
    assert raw.status_code == 400
    assert set(raw.json()["error"]) >= {"message", "type"}
    # What a web page could send to loopback without a CORS preflight is refused.
    page = httpx.post(
        f"{server}/chat/completions",
        timeout=30,
        content=json.dumps({"model": TINY_MODEL_ID, "messages": PROMPT}),
        headers={"content-type": "text/plain"},
    )
    assert page.status_code == 415 and "application/json" in page.json()["error"]["message"]
    # A page whose own name was rebound to 127.0.0.1 sends its name as Host: refused.
    rebound = httpx.get(f"{server}/models", headers={"host": "attacker.example"}, timeout=30)
    assert rebound.status_code == 400
    assert httpx.get(f"{server}/models", timeout=30).status_code == 200


def test_a_model_that_fails_to_answer_is_a_server_error(
    server: str, install_compiled: Callable[..., Path]
) -> None:
    """Registered while the server runs, then broken: both streaming and not, a 500 in
    OpenAI's format naming the cause; the healthy model keeps answering."""
    broken_id = "broken-generic-cpu:1"
    broken = install_compiled(model_id=broken_id)
    registered = run_curator("register", str(broken), "--license", "mit")
    assert registered.returncode == 0, registered.stderr
    (broken / "chat_template.jinja").unlink()

    client = _client(server)
    assert {broken_id, TINY_MODEL_ID} <= {m.id for m in client.models.list()}
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(
                model=broken_id,
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=4,
                stream=stream,
            )
        assert "chat template" in failed.value.message.lower()
    healthy = client.chat.completions.create(
        model=TINY_MODEL_ID,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert healthy.usage is not None and healthy.usage.completion_tokens == 4


def test_eight_concurrent_clients_each_get_a_complete_answer(server: str) -> None:
    reference = _client(server).chat.completions.create(
        model=TINY_MODEL_ID,
        messages=PROMPT,
        max_tokens=24,  # type: ignore[arg-type]
    )
    expected = reference.choices[0].message.content

    def ask(index: int) -> tuple[str, int, str | None]:
        client = _client(server)
        if index % 2:
            chunks = list(
                client.chat.completions.create(
                    model=TINY_MODEL_ID,
                    messages=PROMPT,  # type: ignore[arg-type]
                    max_tokens=24,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
            reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
            return text, usage.completion_tokens if usage else -1, reasons[-1]
        done = client.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,
            max_tokens=24,  # type: ignore[arg-type]
        )
        assert done.usage is not None
        return (
            done.choices[0].message.content or "",
            done.usage.completion_tokens,
            done.choices[0].finish_reason,
        )

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert time.monotonic() - start < 60
    assert answers == [(expected, 24, "length")] * 8


def test_request_parsing() -> None:
    parsed = parse_chat_request(
        {
            "model": "m:1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_completion_tokens": 7,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert parsed.message_dicts() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]
    assert (parsed.max_tokens, parsed.stream, parsed.include_usage) == (7, True, True)
    assert parsed.sampling.temperature == 0.0


def test_serve_on_a_busy_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_curator("serve", "--port", str(port), timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "hint: pick another --port" in result.stderr
