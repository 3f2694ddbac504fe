"""Guards: curator.cli.foundry, curator.serve.app, curator.serve.limits, curator.serve.openai_types

Fuzzing the serve request parser (the body of POST /v1/chat/completions and /v1/completions as
curator serve reads it: curator.serve.openai_types.parse_request_json, then parse_chat_request or
app.parse_completion_request): random bytes, random JSON, requests with every field sometimes
wrong. A refusal is an ApiError with a 4xx status and a one-line message of a few KB at most whose
body is strict JSON; an accepted request is one the runtime can take (finite sampling values,
32-bit token counts, a user message, UTF-8 text).

`make fuzz` runs 10,000 cases per property; the default run a few hundred."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from curator.serve.app import parse_completion_request
from curator.serve.limits import ServeLimits
from curator.serve.openai_types import (
    INT32_MAX,
    ApiError,
    ChatRequest,
    parse_chat_request,
    parse_request_json,
)
from tests.fuzzing import assert_one_line, bounded

pytestmark = pytest.mark.fuzz

LIMITS = ServeLimits(max_messages=16, max_prompt_chars=10_000)


def check(raw: bytes, completions: bool = False) -> ChatRequest | None:
    with bounded():
        try:
            body = parse_request_json(raw)
            parse = parse_completion_request if completions else parse_chat_request
            request = parse(body, LIMITS)
        except ApiError as error:
            assert 400 <= error.status < 500, error.status
            assert_one_line(error.message)
            assert error.param is None or len(error.param) <= 200
            json.dumps(error.body(), allow_nan=False)  # what the server sends is strict JSON
            return None
    assert request.model and len(request.model) <= 256
    assert request.messages and any(role == "user" for role, _ in request.messages)
    for _, content in request.messages:
        content.encode("utf-8")
    assert request.max_tokens is None or 1 <= request.max_tokens <= INT32_MAX
    sampling = request.sampling
    assert math.isfinite(sampling.temperature) and 0 <= sampling.temperature <= 2
    assert sampling.top_p is None or 0 < sampling.top_p <= 1
    assert sampling.top_k is None or 0 <= sampling.top_k <= INT32_MAX
    assert sampling.seed is None or -INT32_MAX <= sampling.seed <= INT32_MAX
    if sampling.json_schema is not None:
        json.loads(sampling.json_schema, parse_constant=lambda name: pytest.fail(name))
    assert all(isinstance(s, str) and s and "\0" not in s for s in sampling.stop)
    return request


@given(st.binary(max_size=1024), st.booleans())
@example(b"", False)
@example(b"[" * 100_000, False)  # RecursionError in the parser: was a 500
@example(
    b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', False
)
@example(
    b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
    b'"response_format": {"type": "json_schema", "json_schema": {"schema": {"a": NaN}}}}',
    False,
)  # NaN passed through to the runtime as a JSON schema
@example(b'{"model": "m", "prompt": "x", "max_tokens": 1' + b"0" * 400 + b"}", True)
@example(b"\xff\xfe", False)
def test_random_bytes(raw: bytes, completions: bool) -> None:
    check(raw, completions)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "n",
    "stream", "stop", "frequency_penalty", "presence_penalty", "response_format", "tools",
    "tool_choice", "logprobs", "logit_bias", "stream_options", "user", "metadata",
]  # fmt: skip
GOOD = {
    "max_tokens": st.integers(1, 4096),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0.01, 1),
    "top_k": st.integers(0, 100),
    "seed": st.integers(-(2**70), 2**70),
    "stream": st.booleans(),
    "stop": st.one_of(
        st.text(min_size=1, max_size=4), st.lists(st.text(min_size=1, max_size=4), max_size=4)
    ),
    "response_format": st.sampled_from(
        [
            {"type": "text"},
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
        ]
    ),
}
TEXTS = st.one_of(st.text(max_size=20), st.sampled_from(["\ud800", "a\nb", "x" * 20_000]))


@st.composite
def requests(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["m", "phi:1"])) if draw(st.integers(0, 9)) else draw(JSON)
    }
    messages: list[Any] = []
    for _ in range(draw(st.integers(0, 3))):
        role = (
            draw(st.sampled_from(["system", "user", "assistant", "developer"]))
            if draw(st.integers(0, 9))
            else draw(JSON)
        )
        content: Any = draw(TEXTS)
        if draw(st.integers(0, 9)) == 0:
            content = draw(
                st.one_of(
                    JSON,
                    st.lists(
                        st.fixed_dictionaries({"type": st.just("text"), "text": TEXTS}), max_size=2
                    ),
                )
            )
        messages.append(
            {"role": role, "content": content} if draw(st.integers(0, 19)) else draw(JSON)
        )
    if draw(st.integers(0, 4)):
        messages.append({"role": "user", "content": "hello"})
    body["messages"] = messages if draw(st.integers(0, 19)) else draw(JSON)
    for field in FIELDS:
        if draw(st.integers(0, 9)) == 0:
            good = GOOD.get(field)
            body[field] = draw(good) if good is not None and draw(st.integers(0, 5)) else draw(JSON)
    if draw(st.integers(0, 19)) == 0:
        body[draw(st.text(max_size=300))] = draw(JSON)
    return body if draw(st.integers(0, 29)) else draw(JSON)


@given(requests())
@example({"model": "m", "messages": [{"role": "user", "content": "x"}], "a\nb" * 5000: 1})  # echoed
@example({"model": "m" * 100_000, "messages": [{"role": "user", "content": "x"}]})
@example({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2**70})
@example({"model": "m", "messages": [{"role": {"a": 1}, "content": "x"}]})
def test_structured_chat_requests(body: Any) -> None:
    raw = json.dumps(body).encode()
    accepted = check(raw)
    event("accepted" if accepted is not None else "refused")


@given(requests(), st.one_of(TEXTS, st.lists(TEXTS, max_size=2), JSON))
@example(
    {"model": "m", '0"' + "\x1f" * 11 + "\x07\x07" + "\U00010000" * 10: None}, "0"
)  # 201 chars
def test_structured_completion_requests(body: Any, prompt: Any) -> None:
    if isinstance(body, dict):
        body.pop("messages", None)
        body["prompt"] = prompt
    check(json.dumps(body).encode(), completions=True)
