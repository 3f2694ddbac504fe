"""Guards: curator.serve.app

curator serve's request handling in process: the FastAPI app answering HTTP requests over a
runtime given to it (a scripted stand-in for Foundry Local that answers word by word), so that
routing, status codes, bodies, streaming, the completion/chat split and the token budget are
checked without a model. The subprocess tests (test_foundry_serve.py) stay the end-to-end layer.
"""

from __future__ import annotations

import _thread
import dataclasses
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from curator.errors import CuratorError, FoundryError, NotFound, UsageProblem
from curator.foundry import ChatChunk, RegisteredModel
from curator.foundry.model import ContextBudget
from curator.foundry.types import Usage
from curator.serve.app import (
    LOOPBACK_HOSTS,
    allowed_hosts_for,
    bind_socket,
    create_app,
    parse_completion_request,
    serve,
)
from curator.serve.limits import ServeLimits
from curator.serve.memory import LARGE_BODY_BYTES
from curator.serve.openai_types import ApiError

CHAT_ID = "tiny-chat-cpu:2"
BASE_ID = "tiny-base-cpu:1"
USER = [{"role": "user", "content": "hi"}]


def registered(model_id: str, alias: str, path: Path | None = None) -> RegisteredModel:
    return RegisteredModel(
        id=model_id,
        alias=alias,
        display_name=None,
        path=path,
        task="chat-completion",
        publisher="me",
        license=None,
        file_size_mb=None,
        context_length=64,
        device_type="CPU",
        execution_provider="CPUExecutionProvider",
        loaded=False,
    )


class FakeLoaded:
    """A loaded model that answers with its words, one per chunk, then the usage."""

    def __init__(
        self,
        words: list[str],
        prompt_tokens: int = 5,
        context_length: int = 64,
        fail_with: Exception | None = None,
        budget_error: Exception | None = None,
    ) -> None:
        self.words = words
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        self.fail_with = fail_with
        self.budget_error = budget_error
        self.unloaded = False
        self.says_why = True  # False: the final chunk carries no finish_reason
        self.asked: list[dict[str, Any]] = []

    def context_budget(self, messages: list[dict[str, str]]) -> ContextBudget:
        if self.budget_error is not None:
            raise self.budget_error
        return ContextBudget(self.prompt_tokens, self.context_length)

    def chat_stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        sampling: Any,
        cancel: threading.Event,
    ) -> Iterator[ChatChunk]:
        self.asked.append({"messages": messages, "max_tokens": max_tokens, "sampling": sampling})
        words = self.words[:max_tokens]
        for index, word in enumerate(words):
            if self.fail_with is not None and index == 1:
                raise self.fail_with
            yield ChatChunk(word)
        reason = "length" if len(self.words) > max_tokens else "stop"
        yield ChatChunk(
            "", Usage(self.prompt_tokens, len(words)), reason if self.says_why else None
        )


class FakeRuntime:
    def __init__(self, models: dict[str, FakeLoaded], listed: list[RegisteredModel]) -> None:
        self.models = models
        self.listed = listed
        self.loads: list[str] = []
        self.closed = False
        self.load_error: Exception | None = None
        self.list_error: Exception | None = None

    def list_registered(self) -> list[RegisteredModel]:
        if self.list_error is not None:
            raise self.list_error
        return list(self.listed)

    def get(self, model_id: str) -> RegisteredModel | None:
        if self.list_error is not None:
            raise self.list_error
        return next((m for m in self.listed if m.id == model_id), None)

    def load(self, model_id: str) -> FakeLoaded:
        self.loads.append(model_id)
        if self.load_error is not None:
            raise self.load_error
        return self.models[model_id]

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def base_dir(tmp_path: Path) -> Path:
    """A compiled completion-only build: its manifest says so."""
    (tmp_path / "curator-manifest.json").write_text(json.dumps({"completionOnly": True}))
    return tmp_path


@pytest.fixture()
def rt(base_dir: Path) -> FakeRuntime:
    chat = FakeLoaded(["Hello", " there", "!"])
    base = FakeLoaded(["Once", " upon"])
    listed = [registered(CHAT_ID, "tiny-chat"), registered(BASE_ID, "tiny-base", base_dir)]
    return FakeRuntime({CHAT_ID: chat, BASE_ID: base}, listed)


def client_for(rt: FakeRuntime, **kwargs: Any) -> TestClient:
    return TestClient(create_app(rt=rt, **kwargs), raise_server_exceptions=False)


def post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def chat(client: TestClient, **fields: Any) -> Any:
    return post(client, "/v1/chat/completions", {"model": CHAT_ID, "messages": USER, **fields})


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_health_and_models_list_ids_then_aliases(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        assert client.get("/health").json() == {"status": "ok"}
        listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    ids = [(m["id"], m.get("root", m["id"])) for m in listed["data"]]
    assert ids == [
        (CHAT_ID, CHAT_ID),
        (BASE_ID, BASE_ID),
        ("tiny-base", BASE_ID),
        ("tiny-chat", CHAT_ID),
    ]
    assert rt.closed  # the server closes its runtime when it stops


def test_one_model_by_id_alias_or_unknown(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        by_id = client.get(f"/v1/models/{CHAT_ID}").json()
        by_alias = client.get("/v1/models/tiny-chat").json()
        missing = client.get("/v1/models/nope")
    assert by_id["id"] == CHAT_ID and "root" not in by_id
    assert (by_alias["id"], by_alias["root"]) == ("tiny-chat", CHAT_ID)
    assert missing.status_code == 404
    assert error_of(missing) == {
        "message": "The model 'nope' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_chat_answer_joins_the_words_with_the_runtimes_usage(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        answer = chat(client, model="tiny-chat")
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == CHAT_ID  # the alias resolved to the id that answered
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there!"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert rt.models[CHAT_ID].asked[0]["messages"] == USER
    assert rt.loads == [CHAT_ID]


def test_the_model_is_loaded_once_and_again_after_an_unload(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        chat(client)
        chat(client)
        assert rt.loads == [CHAT_ID]
        rt.models[CHAT_ID].unloaded = True
        assert chat(client).status_code == 200
    assert rt.loads == [CHAT_ID, CHAT_ID]


def test_token_budget_what_fits_or_as_asked(rt: FakeRuntime) -> None:
    loaded = rt.models[CHAT_ID]
    with client_for(rt, limits=ServeLimits(default_max_tokens=40)) as client:
        chat(client)  # unset: what the prompt leaves (59), at most the server's default
        chat(client, max_tokens=59)  # exactly filling the context is allowed
        short = chat(client, max_tokens=2).json()
        loaded.prompt_tokens = 30
        chat(client)  # 34 left: less than the default
    assert [a["max_tokens"] for a in loaded.asked] == [40, 59, 2, 34]
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["choices"][0]["message"]["content"] == "Hello there"


def test_a_prompt_that_leaves_no_room_or_too_little_is_context_length_exceeded(
    rt: FakeRuntime,
) -> None:
    loaded = rt.models[CHAT_ID]
    with client_for(rt) as client:
        too_many = chat(client, max_tokens=60)
        loaded.prompt_tokens = 64
        full = chat(client)
    for answer in (too_many, full):
        assert answer.status_code == 400
        assert error_of(answer)["code"] == "context_length_exceeded"
    assert "60" in error_of(too_many)["message"]
    assert loaded.asked == []  # nothing was generated


def test_budget_errors_are_the_clients_400_or_the_servers_500(rt: FakeRuntime) -> None:
    loaded = rt.models[CHAT_ID]
    with client_for(rt) as client:
        loaded.budget_error = UsageProblem("the template refuses this", hint="x")
        theirs = chat(client)
        loaded.budget_error = FoundryError("tokenizer broke", hint="x")
        ours = chat(client)
    assert (theirs.status_code, error_of(theirs)["param"]) == (400, "messages")
    assert error_of(theirs)["message"] == "the template refuses this"
    assert (ours.status_code, error_of(ours)["type"]) == (500, "server_error")
    assert error_of(ours)["message"] == "tokenizer broke"


def test_only_json_bodies_within_the_limit_are_read(rt: FakeRuntime) -> None:
    body = json.dumps({"model": CHAT_ID, "messages": USER})
    with client_for(rt, limits=ServeLimits(max_body_bytes=len(body))) as client:
        plain = client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "text/plain"}
        )
        charset = client.post(
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "Application/JSON; charset=utf-8"},
        )
        big = client.post(
            "/v1/chat/completions",
            content=body + " ",
            headers={"content-type": "application/json"},
        )
        bad_length = client.post(
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", "content-length": "many"},
        )
        completion_plain = client.post("/v1/completions", content=body)
    assert plain.status_code == 415
    assert error_of(plain)["message"] == "send the request as Content-Type: application/json"
    assert completion_plain.status_code == 415
    assert charset.status_code == 200
    assert big.status_code == 413
    assert error_of(big)["code"] == "request_too_large"
    assert error_of(big)["message"] == (
        f"the request body is larger than this server's limit of {len(body)} bytes"
    )
    assert bad_length.status_code == 400
    assert error_of(bad_length)["message"] == "bad Content-Length header"


def test_a_streamed_body_over_the_limit_is_refused_while_read(rt: FakeRuntime) -> None:
    body = json.dumps({"model": CHAT_ID, "messages": USER}).encode()

    def pieces() -> Iterator[bytes]:  # no Content-Length: chunked
        yield body[:10]
        yield body[10:]

    with client_for(rt, limits=ServeLimits(max_body_bytes=len(body) - 1)) as client:
        over = client.post(
            "/v1/chat/completions", content=pieces(), headers={"content-type": "application/json"}
        )
    with client_for(rt, limits=ServeLimits(max_body_bytes=len(body))) as client:
        fits = client.post(
            "/v1/chat/completions", content=pieces(), headers={"content-type": "application/json"}
        )
    assert over.status_code == 413
    assert fits.status_code == 200


def test_bad_json_and_unknown_models_are_client_errors(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        nan = client.post(
            "/v1/chat/completions",
            content=b'{"model": "x", "messages": [], "temperature": NaN}',
            headers={"content-type": "application/json"},
        )
        unknown = chat(client, model="missing-cpu:1")
    assert nan.status_code == 400
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "model_not_found"
    assert rt.loads == []


def test_runtime_failures_to_find_or_load_a_model(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        rt.load_error = NotFound("gone from the cache", hint="x")
        gone = chat(client)
        rt.load_error = FoundryError("the runtime crashed", hint="x")
        crashed = chat(client)
        rt.load_error = None
        rt.list_error = FoundryError("catalog unreadable", hint="x")
        unlisted = chat(client)
    assert (gone.status_code, error_of(gone)["code"]) == (404, "model_not_found")
    assert (crashed.status_code, error_of(crashed)["type"]) == (500, "server_error")
    assert error_of(crashed)["message"] == "the runtime crashed"
    assert (unlisted.status_code, error_of(unlisted)["message"]) == (500, "catalog unreadable")


def test_generation_failures(rt: FakeRuntime) -> None:
    loaded = rt.models[CHAT_ID]
    with client_for(rt) as client:
        loaded.fail_with = UsageProblem("a stop sequence the runtime refuses", hint="x")
        theirs = chat(client)
        loaded.fail_with = FoundryError("decoder died", hint="x")
        ours = chat(client)
        loaded.fail_with = RuntimeError("boom")
        other = chat(client)
    assert (theirs.status_code, error_of(theirs)["message"]) == (
        400,
        "a stop sequence the runtime refuses",
    )
    assert (ours.status_code, error_of(ours)["message"]) == (500, "decoder died")
    assert (other.status_code, error_of(other)["message"]) == (500, "generation failed: boom")
    assert error_of(other)["type"] == "server_error"


def test_no_usage_from_the_runtime_is_a_500(rt: FakeRuntime) -> None:
    rt.models[CHAT_ID].words = []

    class Silent(FakeLoaded):
        def chat_stream(self, messages: Any, **_: Any) -> Iterator[ChatChunk]:
            yield ChatChunk("text without an end")

    rt.models[CHAT_ID] = Silent([])
    rt.models[BASE_ID] = Silent([])
    with client_for(rt) as client:
        answer = chat(client)
        completion = post(client, "/v1/completions", {"model": BASE_ID, "prompt": "Once"})
    for response in (answer, completion):
        assert response.status_code == 500
        assert error_of(response)["message"] == "the runtime reported no usage"


def events_of(text: str) -> list[Any]:
    assert text.endswith("data: [DONE]\n\n")
    lines = [line for line in text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_stream_role_words_finish_then_usage_and_done(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        with_usage = chat(client, stream=True, stream_options={"include_usage": True})
        without = chat(client, stream=True, max_tokens=1)
    assert with_usage.status_code == 200
    assert with_usage.headers["content-type"].startswith("text/event-stream")
    assert with_usage.headers["cache-control"] == "no-cache"
    assert with_usage.headers["x-accel-buffering"] == "no"  # no proxy buffers the words
    events = events_of(with_usage.text)
    assert {e["id"] for e in events} == {events[0]["id"]}
    assert len({e["created"] for e in events}) == 1
    assert isinstance(events[0]["created"], int) and events[0]["created"] > 1_600_000_000
    assert events[0]["id"].startswith("chatcmpl-")
    assert all(e["model"] == CHAT_ID for e in events)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " there"},
        {"content": "!"},
        {},
    ]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    short = events_of(without.text)
    assert [e["choices"][0]["delta"] for e in short] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {},
    ]
    assert short[-1]["choices"][0]["finish_reason"] == "length"


def test_a_stream_that_fails_ends_with_the_error_then_done(rt: FakeRuntime) -> None:
    rt.models[CHAT_ID].fail_with = FoundryError("decoder died", hint="x")
    with client_for(rt) as client:
        answer = chat(client, stream=True)
    assert answer.status_code == 200  # the headers went out before the failure
    events = events_of(answer.text)
    assert events[1]["choices"][0]["delta"] == {"content": "Hello"}
    assert events[-1] == {
        "error": {
            "message": "decoder died",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def test_a_full_queue_is_429_with_retry_after(rt: FakeRuntime) -> None:
    release = threading.Event()
    started = threading.Event()

    class Held(FakeLoaded):
        def chat_stream(self, messages: Any, **kwargs: Any) -> Iterator[ChatChunk]:
            started.set()
            release.wait(10)
            yield from super().chat_stream(messages, **kwargs)

    rt.models[CHAT_ID] = Held(["ok"])
    with client_for(rt, limits=ServeLimits(parallel=1, queue=0)) as client:
        first: list[Any] = []
        holder = threading.Thread(target=lambda: first.append(chat(client)))
        holder.start()
        assert started.wait(10)
        busy = chat(client)
        release.set()
        holder.join(10)
        after = chat(client)
    assert busy.status_code == 429
    assert error_of(busy)["code"] == "queue_full"
    assert int(busy.headers["retry-after"]) >= 1
    assert first[0].status_code == 200
    assert after.status_code == 200  # the place was given back


def test_chat_and_completion_models_each_have_their_endpoint(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        chat_to_base = chat(client, model=BASE_ID)
        completion = post(client, "/v1/completions", {"model": "tiny-base", "prompt": ["Once"]})
        completion_to_chat = post(client, "/v1/completions", {"model": CHAT_ID, "prompt": "Hi"})
    assert chat_to_base.status_code == 400
    assert error_of(chat_to_base)["message"] == (
        f"{BASE_ID} is a completion-only model (a base model without a chat format): "
        "send its text to POST /v1/completions"
    )
    assert error_of(chat_to_base)["param"] == "model"
    assert completion_to_chat.status_code == 400
    assert error_of(completion_to_chat)["message"] == (
        f"{CHAT_ID} is a chat model: send messages to POST /v1/chat/completions "
        "(/v1/completions serves completion-only models)"
    )
    assert completion.status_code == 200
    body = completion.json()
    assert body["id"].startswith("cmpl-") and "chatcmpl" not in body["id"]
    assert body["object"] == "text_completion"
    assert body["model"] == BASE_ID
    assert body["choices"] == [
        {"index": 0, "text": "Once upon", "finish_reason": "stop", "logprobs": None}
    ]
    assert body["usage"]["completion_tokens"] == 2
    assert rt.models[BASE_ID].asked[0]["messages"] == [{"role": "user", "content": "Once"}]


def test_completion_budget_is_checked_too(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        over = post(client, "/v1/completions", {"model": BASE_ID, "prompt": "x", "max_tokens": 99})
        short = post(client, "/v1/completions", {"model": BASE_ID, "prompt": "x", "max_tokens": 1})
    assert error_of(over)["code"] == "context_length_exceeded"
    assert short.json()["choices"][0]["finish_reason"] == "length"
    assert short.json()["choices"][0]["text"] == "Once"


def test_completion_request_rules() -> None:
    limits = ServeLimits()
    request = parse_completion_request({"model": "m:1", "prompt": "Go", "temperature": 0.5}, limits)
    assert request.message_dicts() == [{"role": "user", "content": "Go"}]
    assert request.sampling.temperature == 0.5
    defaults = {"echo": False, "suffix": None, "best_of": 1, "logprobs": None, "stream": False}
    assert parse_completion_request({"model": "m:1", "prompt": "Go", **defaults}, limits).model
    for body, param in [
        ({"model": "m:1", "prompt": "Go", "echo": True}, "echo"),
        ({"model": "m:1", "prompt": "Go", "suffix": "!"}, "suffix"),
        ({"model": "m:1", "prompt": "Go", "best_of": 2}, "best_of"),
        ({"model": "m:1", "prompt": "Go", "logprobs": 3}, "logprobs"),
        ({"model": "m:1", "prompt": "Go", "stream": True}, "stream"),
        ({"model": "m:1", "prompt": ""}, "prompt"),
        ({"model": "m:1", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m:1"}, "prompt"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_completion_request(body, limits)
        assert (caught.value.status, caught.value.param) == (400, param)
        if param == "prompt":
            assert caught.value.message == "'prompt' is required and must be one non-empty string"
        elif param == "stream":
            assert caught.value.message == "stream is not supported on /v1/completions"
        else:
            assert caught.value.message == f"{param} is not supported"
        if param != "prompt":
            assert caught.value.code == "unsupported_parameter"
    with pytest.raises(ApiError) as caught:
        parse_completion_request(["not", "an", "object"], limits)
    assert caught.value.message == "the request body must be a JSON object"


def test_framework_errors_use_openais_format(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        missing = client.get("/v1/nothing")
        wrong_method = client.get("/v1/chat/completions")
    assert missing.status_code == 404
    assert error_of(missing) == {
        "message": "Not Found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["type"] == "invalid_request_error"
    assert error_of(wrong_method)["message"] == "Method Not Allowed"


def test_loopback_servers_accept_only_loopback_host_names(rt: FakeRuntime) -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert allowed_hosts_for(host) == LOOPBACK_HOSTS
    for host in ("0.0.0.0", "192.168.1.5", "myhost"):
        assert allowed_hosts_for(host) == ("*",)
    with client_for(rt, allowed_hosts=allowed_hosts_for("127.0.0.1")) as client:
        rebound = client.get("/health", headers={"host": "evil.example"})
        local = client.get("/health", headers={"host": "localhost:8000"})
    assert rebound.status_code == 400
    assert local.status_code == 200


def test_access_log_one_line_per_request(rt: FakeRuntime) -> None:
    lines: list[str] = []
    with client_for(rt, log=lines.append) as client:
        client.get("/v1/models")
        chat(client, stream=True)
        client.get("/v1/models/nope")
    assert [line.rsplit(" ", 2)[0] for line in lines] == [
        "GET /v1/models 200",
        "POST /v1/chat/completions 200",
        "GET /v1/models/nope 404",
    ]
    assert all(line.endswith(" ms") and line.rsplit(" ", 2)[1].isdigit() for line in lines)


def test_bind_socket_free_port_or_a_one_line_error() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        assert sock.get_inheritable()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # it listens
        with pytest.raises(CuratorError) as caught:
            bind_socket("127.0.0.1", port)
    finally:
        sock.close()
    assert caught.value.message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    if sys.platform == "linux":  # the OS's words, without the errno prefix
        assert caught.value.message == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert caught.value.hint == "pick another --port (0 picks a free one)"
    six = bind_socket("::1", 0)
    try:
        assert six.family == socket.AF_INET6
    finally:
        six.close()


def test_a_large_prompt_is_answered_whole(rt: FakeRuntime) -> None:
    """Bodies past LARGE_BODY_BYTES take the path that gives their memory back afterwards."""
    text = "x" * LARGE_BODY_BYTES
    with client_for(rt) as client:
        answer = post(
            client,
            "/v1/chat/completions",
            {"model": CHAT_ID, "messages": [{"role": "user", "content": text}]},
        )
        refused = post(client, "/v1/chat/completions", {"model": "nope", "messages": USER})
    assert answer.status_code == 200
    assert rt.models[CHAT_ID].asked[0]["messages"] == [{"role": "user", "content": text}]
    assert refused.status_code == 404


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_serve_listens_answers_and_stops_cleanly_on_ctrl_c(
    rt: FakeRuntime, host: str, capfd: pytest.CaptureFixture[str]
) -> None:
    urls: list[str] = []
    seen: dict[str, Any] = {}
    lines: list[str] = []

    def use_then_interrupt() -> None:
        try:
            for _ in range(500):
                if urls:
                    break
                threading.Event().wait(0.01)
            root = urls[0].removesuffix("/v1")
            seen["health"] = httpx.get(f"{root}/health", timeout=10).json()
            seen["models"] = httpx.get(f"{urls[0]}/models", timeout=10).json()
        finally:
            _thread.interrupt_main()  # what Ctrl-C does

    helper = threading.Thread(target=use_then_interrupt, daemon=True)
    helper.start()
    serve(host, 0, on_ready=urls.append, log=lines.append, rt=rt)
    helper.join(10)
    shown = f"[{host}]" if ":" in host else host
    assert urls[0].startswith(f"http://{shown}:") and urls[0].endswith("/v1")
    assert int(urls[0].rsplit(":", 1)[1].removesuffix("/v1")) > 0
    assert seen["health"] == {"status": "ok"}
    assert [m["id"] for m in seen["models"]["data"]][:2] == [CHAT_ID, BASE_ID]
    assert [line.rsplit(" ", 2)[0] for line in lines] == ["GET /health 200", "GET /v1/models 200"]
    assert rt.closed  # stopped: the runtime was closed with the server
    assert "Uvicorn" not in capfd.readouterr().err  # the server's own chatter stays quiet


def test_serve_without_its_packages_says_what_to_install(
    rt: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # not installed
    with pytest.raises(UsageProblem) as caught:
        serve("127.0.0.1", 0, rt=rt)
    assert caught.value.message.startswith("the server's packages are not installed (")
    assert "uvicorn" in caught.value.message
    assert caught.value.hint == "pip install 'curator[serve]' (or '.[serve]' in a checkout)"


class Endless(FakeLoaded):
    """Generates until told to stop (the cancel event the server sets), word after word; once
    ``endless`` is False, answers as FakeLoaded does."""

    def __init__(self) -> None:
        super().__init__(["back"])
        self.endless = True
        self.started = threading.Event()
        self.stopped = threading.Event()

    def chat_stream(
        self, messages: Any, *, max_tokens: int, sampling: Any, cancel: threading.Event
    ) -> Iterator[ChatChunk]:
        if not self.endless:
            yield from super().chat_stream(
                messages, max_tokens=max_tokens, sampling=sampling, cancel=cancel
            )
            return
        self.started.set()
        try:
            while not cancel.wait(0.01):
                yield ChatChunk("la ")
        finally:
            self.stopped.set()


def call_then_go_away(client: TestClient, endless: Endless, **fields: Any) -> list[Any]:
    """One POST made straight to the app whose client disconnects once generation started;
    the ASGI messages the app sent back."""
    body = json.dumps({"model": CHAT_ID, "messages": USER, **fields}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Any] = []

    async def run() -> None:
        import asyncio

        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.to_thread(endless.started.wait, 10)
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(run)
    return sent


def test_a_client_that_goes_away_stops_its_generation(rt: FakeRuntime) -> None:
    endless = Endless()
    rt.models[CHAT_ID] = endless
    with client_for(rt, limits=ServeLimits(parallel=1, queue=0)) as client:
        sent = call_then_go_away(client, endless)
        assert endless.stopped.wait(10)  # within a token of the disconnect
        endless.endless = False  # answer normally from here on
        after = chat(client)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    assert after.status_code == 200  # the place was given back


def test_a_stream_whose_client_goes_away_stops_its_generation(rt: FakeRuntime) -> None:
    endless = Endless()
    rt.models[CHAT_ID] = endless
    with client_for(rt, limits=ServeLimits(parallel=1, queue=0)) as client:
        sent = call_then_go_away(client, endless, stream=True)
        assert endless.stopped.wait(10)
        endless.endless = False
        after = chat(client)
    assert sent[0]["status"] == 200  # headers went out when the request was admitted
    assert after.status_code == 200


def test_health_says_starting_until_the_runtime_is_up(rt: FakeRuntime) -> None:
    client = client_for(rt)  # no lifespan: the app has not started its runtime
    assert client.get("/health").json() == {"status": "starting"}
    with client:
        assert client.get("/health").json() == {"status": "ok"}


def test_an_end_without_a_reason_is_a_stop(rt: FakeRuntime) -> None:
    rt.models[CHAT_ID].says_why = False
    rt.models[BASE_ID].says_why = False
    with client_for(rt) as client:
        answer = chat(client, max_tokens=1)
        streamed = chat(client, stream=True, max_tokens=1)
        completion = post(
            client, "/v1/completions", {"model": BASE_ID, "prompt": "x", "max_tokens": 1}
        )
    assert answer.json()["choices"][0]["finish_reason"] == "stop"
    assert events_of(streamed.text)[-1]["choices"][0]["finish_reason"] == "stop"
    assert completion.json()["choices"][0]["finish_reason"] == "stop"


def test_one_token_of_room_is_enough(rt: FakeRuntime) -> None:
    loaded = rt.models[CHAT_ID]
    loaded.prompt_tokens = 63
    with client_for(rt) as client:
        answer = chat(client)
    assert answer.status_code == 200
    assert loaded.asked[0]["max_tokens"] == 1


def test_streamed_text_is_sent_as_written_not_escaped(rt: FakeRuntime) -> None:
    rt.models[CHAT_ID].words = ["Grüße", " 日本"]
    with client_for(rt) as client:
        streamed = chat(client, stream=True)
    assert '"content": "Grüße"' in streamed.text and '"content": " 日本"' in streamed.text


def test_the_servers_limits_apply_to_both_endpoints(rt: FakeRuntime) -> None:
    limits = ServeLimits(max_messages=1, max_prompt_chars=3)
    with client_for(rt, limits=limits) as client:
        many = chat(client, messages=[*USER, *USER])
        long = post(client, "/v1/completions", {"model": BASE_ID, "prompt": "four"})
        fits = post(client, "/v1/completions", {"model": BASE_ID, "prompt": "abc"})
    assert error_of(many)["message"] == "'messages' has 2 entries; this server takes at most 1"
    assert error_of(long)["message"] == (
        "the messages hold 4 characters; this server takes at most 3"
    )
    assert fits.status_code == 200


def test_only_the_api_is_served(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404


def test_response_objects_have_openais_shape(rt: FakeRuntime) -> None:
    with client_for(rt) as client:
        models = client.get("/v1/models").json()["data"]
        alias = client.get("/v1/models/tiny-chat").json()
        answer = chat(client).json()
        streamed = events_of(chat(client, stream=True, stream_options={"include_usage": True}).text)
    assert models[0] == {
        "id": CHAT_ID,
        "object": "model",
        "created": models[0]["created"],
        "owned_by": "me",
    }
    assert isinstance(models[0]["created"], int) and models[0]["created"] > 1_600_000_000
    assert set(alias) == {"id", "object", "created", "owned_by", "root"}
    assert set(answer) == {"id", "object", "created", "model", "choices", "usage"}
    assert isinstance(answer["created"], int) and answer["created"] > 1_600_000_000
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert streamed[1]["object"] == "chat.completion.chunk"
    assert streamed[1]["choices"] == [
        {"index": 0, "delta": {"content": "Hello"}, "finish_reason": None, "logprobs": None}
    ]
    assert set(streamed[-1]) == {"id", "object", "created", "model", "choices", "usage"}
    assert streamed[-1]["object"] == "chat.completion.chunk"


def test_a_model_without_a_publisher_is_owned_locally(rt: FakeRuntime) -> None:
    rt.listed = [dataclasses.replace(registered(CHAT_ID, "tiny-chat"), publisher=None)]
    with client_for(rt) as client:
        listed = client.get("/v1/models").json()["data"]
    assert {m["owned_by"] for m in listed} == {"local"}
