"""Guards: curator.cli.foundry, curator.foundry, curator.serve.aliases, curator.serve.limits,
  curator.serve.memory, curator.serve.openai_types, curator.serve.scheduler

The request rules of curator serve without a server: what is honoured, what is refused with a
400 that says so (never silently ignored), how names resolve, and when the queue says 429."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from curator.foundry import RegisteredModel
from curator.serve import aliases
from curator.serve.limits import ServeLimits
from curator.serve.openai_types import (
    ApiError,
    context_length_exceeded,
    parse_chat_request,
    parse_request_json,
)
from curator.serve.scheduler import ModelSlots

USER = [{"role": "user", "content": "hi"}]


def parse(**fields: Any) -> Any:
    return parse_chat_request({"model": "m:1", "messages": USER, **fields})


def refused(**fields: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(**fields)
    assert caught.value.status == 400
    return caught.value


def test_sampling_and_stopping_are_carried_to_the_runtime() -> None:
    request = parse(temperature=0.7, top_p=0.9, top_k=40, seed=5, stop="END")
    sampling = request.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed) == (
        0.7,
        0.9,
        40,
        5,
    )
    assert sampling.stop == ("END",)
    assert parse(stop=["a", "b"]).sampling.stop == ("a", "b")
    assert parse(stop=None).sampling.stop == ()
    assert parse().max_tokens is None  # "what fits": decided against the model's context
    assert parse(frequency_penalty=0, presence_penalty=0.0).sampling.temperature == 0.0


def test_numbers_beyond_the_runtimes_32_bits_are_brought_into_range() -> None:
    """The runtime failed a 64-bit seed or a huge top_k with a bare "stoi" (a 500)."""
    big = parse(seed=2**70, top_k=10**12).sampling
    assert big.top_k == 2**31 - 1
    assert big.seed is not None and 0 <= big.seed < 2**31
    assert parse(seed=2**70).sampling.seed == big.seed  # the same seed, the same answer
    assert parse(seed=-5).sampling.seed == -5


def test_json_modes_become_a_schema_for_guided_decoding() -> None:
    assert parse(response_format={"type": "text"}).sampling.json_schema is None
    assert json.loads(parse(response_format={"type": "json_object"}).sampling.json_schema) == {
        "type": "object"
    }
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert json.loads(parse(response_format=spec).sampling.json_schema) == schema
    assert refused(response_format={"type": "json_schema"}).param == "response_format"
    assert refused(response_format={"type": "yaml"}).param == "response_format"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"n": 2}, "n"),
        ({"best_of": 2}, "best_of"),
    ],
)
def test_what_the_runtime_cannot_do_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    error = refused(**fields)
    assert error.param == param
    assert error.code == "unsupported_parameter"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": ""}],  # the runtime: "nothing to generate from"
        [{"role": "user", "content": "\ud800"}],
        [{"role": "user", "content": [{"type": "text", "text": "a\udfff"}]}],
    ],
)
def test_messages_the_runtime_cannot_take_are_400s(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"model": "m:1", "messages": messages})
    assert caught.value.status == 400


def test_a_tool_message_is_refused() -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"model": "m:1", "messages": [*USER, {"role": "tool", "content": "42"}]})
    assert "tool calling is not supported" in caught.value.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"temperature": 3}, "temperature"),
        ({"seed": "7"}, "seed"),
        ({"stop": ""}, "stop"),
        ({"stop": ["a", 1]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": "a\x00"}, "stop"),  # the runtime refuses NUL in stop strings
        ({"stop": "\ud800"}, "stop"),  # JSON can carry a lone surrogate; UTF-8 cannot
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
    ],
)
def test_bad_values_are_400s_naming_the_field(fields: dict[str, Any], param: str) -> None:
    assert refused(**fields).param == param


def test_message_count_and_prompt_length_are_capped() -> None:
    limits = ServeLimits(max_messages=3, max_prompt_chars=10)
    with pytest.raises(ApiError) as many:
        parse_chat_request({"model": "m:1", "messages": USER * 4}, limits)
    assert "at most 3" in many.value.message
    with pytest.raises(ApiError) as long:
        parse_chat_request(
            {"model": "m:1", "messages": [{"role": "user", "content": "x" * 11}]}, limits
        )
    assert long.value.code == "context_length_exceeded"
    parse_chat_request({"model": "m:1", "messages": USER * 3}, limits)


def registered(model_id: str, alias: str, device: str = "CPU") -> RegisteredModel:
    return RegisteredModel(
        id=model_id,
        alias=alias,
        display_name=None,
        path=Path("/x"),
        task="chat-completion",
        publisher="local",
        license=None,
        file_size_mb=None,
        context_length=2048,
        device_type=device,
        execution_provider=None,
        loaded=False,
    )


def test_names_resolve_like_foundry_local() -> None:
    models = [
        registered("phi-generic-cpu:1", "phi"),
        registered("phi-generic-cpu:2", "phi"),
        registered("phi-cuda-gpu:3", "phi", device="GPU"),
        registered("qwen-generic-cpu:1", "qwen"),
    ]

    def name(text: str) -> str | None:
        found = aliases.resolve(text, models)
        return None if found is None else found.id

    assert name("phi-generic-cpu:1") == "phi-generic-cpu:1"  # an exact id wins
    assert name("phi-generic-cpu") == "phi-generic-cpu:2"  # no version: the newest
    assert name("phi") == "phi-generic-cpu:2"  # an alias: the newest CPU variant here
    assert name("qwen") == "qwen-generic-cpu:1"
    assert name("ph") is None
    assert name("phi-generic-cpu:3") is None
    assert {a: m.id for a, m in aliases.aliases(models).items()} == {
        "phi": "phi-generic-cpu:2",
        "qwen": "qwen-generic-cpu:1",
    }


def test_a_full_queue_is_a_429_with_retry_after_and_places_come_back() -> None:
    async def scenario() -> None:
        slots = ModelSlots("m:1", parallel=2, queue=1)
        places = [slots.admit() for _ in range(3)]
        with pytest.raises(ApiError) as full:
            slots.admit()
        assert full.value.status == 429
        assert int(full.value.headers["Retry-After"]) >= 1
        places[0].close()
        places[0].close()  # twice is once
        assert slots.taken == 2
        extra = slots.admit()
        order: list[int] = []

        async def run(index: int, place: Any) -> None:
            async with place.run_slot():
                order.append(index)
                await asyncio.sleep(0.01)
            place.close()

        await asyncio.gather(*(run(i, p) for i, p in enumerate([*places[1:], extra])))
        assert sorted(order) == [0, 1, 2]
        assert slots.taken == 0

    asyncio.run(scenario())


def test_retry_after_grows_with_the_work_ahead() -> None:
    """The estimate follows how long requests took, times the waves of work ahead."""

    async def scenario() -> None:
        slots = ModelSlots("m:1", parallel=1, queue=10)
        place = slots.admit()
        async with place.run_slot():
            await asyncio.sleep(0.3)
        place.close()
        held = [slots.admit()]
        alone = slots.retry_after()
        held += [slots.admit() for _ in range(10)]
        assert slots.retry_after() > alone
        for place in held:
            place.close()

    asyncio.run(scenario())


def test_content_as_text_parts_is_joined_and_other_parts_are_refused() -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    request = parse_chat_request({"model": "m:1", "messages": [{"role": "user", "content": parts}]})
    assert request.message_dicts() == [{"role": "user", "content": "Hello, world"}]
    for content, says in [
        ([{"type": "image_url", "image_url": {"url": "x"}}], "only text content parts"),
        (["plain"], "only text content parts"),
        ([{"type": "text"}], "needs a 'text' string"),
        ([{"type": "text", "text": 5}], "needs a 'text' string"),
        (5, "must be a string or an array of text parts"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_chat_request({"model": "m:1", "messages": [{"role": "user", "content": content}]})
        assert caught.value.status == 400
        assert says in caught.value.message
        assert caught.value.message.startswith("messages[0]")


def test_retry_after_is_the_mean_run_time_times_the_waves_ahead() -> None:
    now = [100.0]

    async def scenario() -> None:
        slots = ModelSlots("m:1", parallel=2, queue=4, clock=lambda: now[0])
        assert slots.retry_after() == 5  # nothing measured yet: 5 s a request, one wave
        places = [slots.admit() for _ in range(6)]
        assert slots.taken == 6
        assert slots.retry_after() == 15  # (6 - 2) / 2 + 1 = 3 waves of 5 s
        with pytest.raises(ApiError) as full:
            slots.admit()
        assert full.value.message == (
            "m:1 is busy: 2 requests running and 4 waiting; retry in about 15 s"
        )
        assert (full.value.type, full.value.code) == ("rate_limit_error", "queue_full")
        assert full.value.headers == {"Retry-After": "15"}
        async with places[0].run_slot():
            now[0] += 10.0
        places[0].close()  # ran 10 s: the mean is 10
        places[1].close()  # never ran: no time to learn from
        assert slots.taken == 4
        assert slots.retry_after() == 20  # (4 - 2) / 2 + 1 = 2 waves of 10 s
        async with places[2].run_slot():
            now[0] += 20.0
        places[2].close()  # 0.8 * 10 + 0.2 * 20 = 12
        assert slots.retry_after() == 18  # 3 left: (3 - 2) / 2 + 1 = 1.5 waves of 12 s
        async with places[3].run_slot():
            now[0] += 0.1
        places[3].close()  # 0.8 * 12 + 0.2 * 0.1 = 9.62
        assert slots.retry_after() == 10  # ceil(9.62 * 1): one wave at the least
        places[4].close()
        places[5].close()
        assert slots.retry_after() == 10
        slow = slots.admit()
        async with slow.run_slot():
            now[0] += 10_000.0
        slow.close()
        assert slots.retry_after() == 300  # at most five minutes
        quick = ModelSlots("q:1", parallel=1, queue=0, clock=lambda: now[0])
        place = quick.admit()
        async with place.run_slot():
            now[0] += 0.001
        place.close()
        assert quick.retry_after() == 1  # at least a second

    asyncio.run(scenario())


U = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("body", "status", "param", "code", "message"),
    [
        ([U], 400, None, None, "the request body must be a JSON object"),
        ({"messages": [U]}, 400, "model", None, "'model' is required and must be a string"),
        (
            {"model": "", "messages": [U]},
            400,
            "model",
            None,
            "'model' is required and must be a string",
        ),
        (
            {"model": "m" * 257, "messages": [U]},
            400,
            "model",
            None,
            "'model' is longer than 256 characters",
        ),
        (
            {"model": "m:1", "messages": [U], "zz": 1, "best": 2},
            400,
            "best",
            "unsupported_parameter",
            "unrecognized request argument: best",
        ),
        (
            {"model": "m:1", "messages": [U], "tools": [{}]},
            400,
            "tools",
            "unsupported_parameter",
            "tool calling is not supported by curator serve; send the request without 'tools'",
        ),
        (
            {"model": "m:1", "messages": [U], "functions": [{}]},
            400,
            "functions",
            "unsupported_parameter",
            "tool calling is not supported by curator serve; send the request without 'functions'",
        ),
        (
            {"model": "m:1", "messages": [U], "tool_choice": "required"},
            400,
            "tool_choice",
            "unsupported_parameter",
            "'tool_choice' needs tools, which are not supported",
        ),
        (
            {"model": "m:1", "messages": [U], "function_call": {"name": "f"}},
            400,
            "function_call",
            "unsupported_parameter",
            "'function_call' needs tools, which are not supported",
        ),
        (
            {"model": "m:1", "messages": [U], "top_logprobs": 2},
            400,
            "logprobs",
            "unsupported_parameter",
            "'logprobs' is not supported by curator serve",
        ),
        (
            {"model": "m:1", "messages": [U], "logit_bias": {"1": 2}},
            400,
            "logit_bias",
            "unsupported_parameter",
            "'logit_bias' is not supported by curator serve",
        ),
        (
            {"model": "m:1", "messages": []},
            400,
            "messages",
            None,
            "'messages' must be a non-empty array",
        ),
        (
            {"model": "m:1", "messages": [U, 5]},
            400,
            "messages[1]",
            None,
            "messages[1] must be an object",
        ),
        (
            {"model": "m:1", "messages": [U, {"role": "function", "content": "x"}]},
            400,
            "messages[1].role",
            "unsupported_parameter",
            "tool calling is not supported by curator serve",
        ),
        (
            {"model": "m:1", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role",
            None,
            "messages[0].role must be one of system, developer, user, assistant",
        ),
        (
            {"model": "m:1", "messages": [{"role": "system", "content": "x"}]},
            400,
            "messages",
            None,
            "'messages' must contain a user message",
        ),
        (
            {"model": "m:1", "messages": [{"role": "user", "content": ""}]},
            400,
            "messages",
            None,
            "the messages have no text to answer",
        ),
        (
            {"model": "m:1", "messages": [{"role": "user", "content": "\ud800"}]},
            400,
            "messages[0].content",
            None,
            "messages[0].content is not valid Unicode (a lone surrogate)",
        ),
        (
            {"model": "m:1", "messages": [U], "max_tokens": 0},
            400,
            "max_tokens",
            None,
            "'max_tokens' must be a positive integer (at most 2147483647)",
        ),
        (
            {"model": "m:1", "messages": [U], "max_completion_tokens": True},
            400,
            "max_tokens",
            None,
            "'max_tokens' must be a positive integer (at most 2147483647)",
        ),
        (
            {"model": "m:1", "messages": [U], "max_tokens": 2**31},
            400,
            "max_tokens",
            None,
            "'max_tokens' must be a positive integer (at most 2147483647)",
        ),
        (
            {"model": "m:1", "messages": [U], "n": 2},
            400,
            "n",
            "unsupported_parameter",
            "only n=1 is supported",
        ),
        (
            {"model": "m:1", "messages": [U], "stream": "yes"},
            400,
            "stream",
            None,
            "'stream' must be a boolean",
        ),
        (
            {"model": "m:1", "messages": [U], "stream_options": []},
            400,
            "stream_options",
            None,
            "'stream_options' must be an object",
        ),
        (
            {"model": "m:1", "messages": [U], "temperature": "hot"},
            400,
            "temperature",
            None,
            "'temperature' must be a number",
        ),
        (
            {"model": "m:1", "messages": [U], "temperature": True},
            400,
            "temperature",
            None,
            "'temperature' must be a number",
        ),
        (
            {"model": "m:1", "messages": [U], "temperature": 2.5},
            400,
            "temperature",
            None,
            "'temperature' must be between 0 and 2",
        ),
        (
            {"model": "m:1", "messages": [U], "temperature": -0.1},
            400,
            "temperature",
            None,
            "'temperature' must be between 0 and 2",
        ),
        (
            {"model": "m:1", "messages": [U], "top_p": 1.5},
            400,
            "top_p",
            None,
            "'top_p' must be between 0 and 1",
        ),
        (
            {"model": "m:1", "messages": [U], "top_p": 0},
            400,
            "top_p",
            None,
            "'top_p' must be greater than 0",
        ),
        (
            {"model": "m:1", "messages": [U], "top_k": -1},
            400,
            "top_k",
            None,
            "'top_k' must be a non-negative integer",
        ),
        (
            {"model": "m:1", "messages": [U], "top_k": 1.0},
            400,
            "top_k",
            None,
            "'top_k' must be a non-negative integer",
        ),
        (
            {"model": "m:1", "messages": [U], "top_k": False},
            400,
            "top_k",
            None,
            "'top_k' must be a non-negative integer",
        ),
        (
            {"model": "m:1", "messages": [U], "seed": 1.5},
            400,
            "seed",
            None,
            "'seed' must be an integer",
        ),
        (
            {"model": "m:1", "messages": [U], "seed": True},
            400,
            "seed",
            None,
            "'seed' must be an integer",
        ),
        (
            {"model": "m:1", "messages": [U], "presence_penalty": 0.5},
            400,
            "presence_penalty",
            "unsupported_parameter",
            "'presence_penalty' is not supported: Foundry Local's runtime has only a repetition penalty, with different semantics; send 0 or leave it out",
        ),
        (
            {"model": "m:1", "messages": [U], "frequency_penalty": -3},
            400,
            "frequency_penalty",
            None,
            "'frequency_penalty' must be between -2 and 2",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": ""},
            400,
            "stop",
            None,
            "'stop' must be a non-empty string or an array of them",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": ["a", 1]},
            400,
            "stop",
            None,
            "'stop' must be a non-empty string or an array of them",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": {"a": 1}},
            400,
            "stop",
            None,
            "'stop' must be a non-empty string or an array of them",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": ["a"] * 5},
            400,
            "stop",
            None,
            "'stop' takes at most 4 strings",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": "a\x00"},
            400,
            "stop",
            None,
            "'stop' strings must not contain NUL characters",
        ),
        (
            {"model": "m:1", "messages": [U], "stop": "\udc00"},
            400,
            "stop",
            None,
            "stop is not valid Unicode (a lone surrogate)",
        ),
        (
            {"model": "m:1", "messages": [U], "response_format": {"type": "xml"}},
            400,
            "response_format",
            None,
            "response_format.type must be 'text', 'json_object' or 'json_schema'",
        ),
        (
            {"model": "m:1", "messages": [U], "response_format": "json"},
            400,
            "response_format",
            None,
            "response_format.type must be 'text', 'json_object' or 'json_schema'",
        ),
        (
            {
                "model": "m:1",
                "messages": [U],
                "response_format": {"type": "json_schema", "json_schema": {"schema": []}},
            },
            400,
            "response_format",
            None,
            "response_format.json_schema.schema must be a JSON Schema object",
        ),
        (
            {"model": "m:1", "messages": [U], "response_format": {"type": "json_schema"}},
            400,
            "response_format",
            None,
            "response_format.json_schema.schema must be a JSON Schema object",
        ),
    ],
)
def test_each_refusal_names_its_field_in_words(
    body: Any, status: int, param: str | None, code: str | None, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body)
    error = caught.value
    assert (error.status, error.param, error.code, error.message) == (status, param, code, message)
    assert error.body() == {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def test_what_is_accepted_and_how_it_is_read() -> None:
    plain = parse_chat_request({"model": "m:1", "messages": [U]})
    assert (plain.model, plain.max_tokens, plain.stream, plain.include_usage) == (
        "m:1",
        None,
        False,
        False,
    )
    assert plain.sampling.temperature == 0.0 and plain.sampling.top_p is None
    assert (plain.sampling.top_k, plain.sampling.seed, plain.sampling.json_schema) == (
        None,
        None,
        None,
    )
    fields = {
        "model": "m" * 256,
        "messages": [{"role": "system", "content": ""}, U],
        "max_completion_tokens": 2**31 - 1,
        "max_tokens": 5,
        "n": None,
        "stream": None,
        "stream_options": {"include_usage": True},
        "temperature": 2,
        "top_p": 1,
        "top_k": 0,
        "seed": -(2**31) + 1,
        "tool_choice": "auto",
        "function_call": "none",
        "frequency_penalty": 0,
        "response_format": {"type": "json_object"},
        "stop": ["a", "b", "c", "d"],
        "logprobs": False,
        "logit_bias": {},
    }
    read = parse_chat_request(fields)
    assert read.max_tokens == 2**31 - 1  # max_completion_tokens wins
    assert (read.stream, read.include_usage) == (False, True)
    assert (read.sampling.temperature, read.sampling.top_p, read.sampling.top_k) == (2.0, 1.0, 0)
    assert read.sampling.seed == -(2**31) + 1
    assert read.sampling.stop == ("a", "b", "c", "d")
    assert read.sampling.json_schema == '{"type": "object"}'
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    typed = parse_chat_request(
        {
            "model": "m:1",
            "messages": [U],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
        }
    )
    assert typed.sampling.json_schema == json.dumps(schema)
    assert (
        parse_chat_request(
            {"model": "m:1", "messages": [U], "response_format": {"type": "text"}}
        ).sampling.json_schema
        is None
    )
    assert parse_chat_request({"model": "m:1", "messages": [U], "seed": 2**31}).sampling.seed == 1
    assert (
        parse_chat_request({"model": "m:1", "messages": [U], "top_k": 2**31}).sampling.top_k
        == 2**31 - 1
    )


def test_limits_on_messages_and_prompt_characters_say_the_numbers() -> None:
    limits = ServeLimits(max_messages=2, max_prompt_chars=4)
    with pytest.raises(ApiError) as many:
        parse_chat_request({"model": "m:1", "messages": [U, U, U]}, limits)
    assert many.value.message == "'messages' has 3 entries; this server takes at most 2"
    with pytest.raises(ApiError) as long:
        parse_chat_request(
            {"model": "m:1", "messages": [U, {"role": "user", "content": "abc"}]}, limits
        )
    assert long.value.message == "the messages hold 5 characters; this server takes at most 4"
    assert (long.value.param, long.value.code) == ("messages", "context_length_exceeded")
    exact = parse_chat_request(
        {"model": "m:1", "messages": [U, {"role": "user", "content": "ab"}]}, limits
    )
    assert len(exact.messages) == 2


def test_context_length_exceeded_says_the_numbers() -> None:
    asked = context_length_exceeded(100, 50, 120)
    assert asked.message == (
        "This model's maximum context length is 120 tokens. However, you requested 150 tokens "
        "(100 in the messages, 50 in the completion). Please reduce the length of the messages "
        "or completion."
    )
    full = context_length_exceeded(130, 0, 120)
    assert full.message == (
        "This model's maximum context length is 120 tokens. However, your messages resulted in "
        "130 tokens, which leaves no room for an answer. Please reduce the length of the messages."
    )
    assert (full.status, full.param, full.code) == (400, "messages", "context_length_exceeded")


def test_long_or_odd_field_names_are_shown_escaped_and_cut() -> None:
    with pytest.raises(ApiError) as odd:
        parse_chat_request({"model": "m:1", "messages": [U], "a\nb": 1})
    assert odd.value.message == "unrecognized request argument: a\\nb"
    with pytest.raises(ApiError) as long:
        parse_chat_request({"model": "m:1", "messages": [U], "x" * 100: 1})
    assert long.value.message == "unrecognized request argument: " + "x" * 80 + "..."
    with pytest.raises(ApiError) as just:
        parse_chat_request({"model": "m:1", "messages": [U], "y" * 80: 1})
    assert just.value.message == "unrecognized request argument: " + "y" * 80


@pytest.mark.parametrize("raw", [b"{", b"\xff", b'{"a": NaN}', b'{"a": -Infinity}', b"[" * 100_000])
def test_a_body_that_is_not_json_is_one_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_request_json(raw)
    assert (caught.value.status, caught.value.message) == (
        400,
        "the request body is not valid JSON",
    )


def test_numbers_at_their_edges() -> None:
    def sampling(**fields: Any) -> Any:
        return parse_chat_request({"model": "m:1", "messages": [U], **fields}).sampling

    assert sampling(temperature=0).temperature == 0.0  # the lower edge is allowed
    assert sampling(temperature=0.5, top_p=0.25).top_p == 0.25
    assert sampling(seed=2**31 - 1).seed == 2**31 - 1  # the edges of 32 bits are kept
    assert sampling(seed=-(2**31) + 1).seed == -(2**31) + 1
    assert sampling(seed=-(2**31)).seed == 2**31 - 2  # one past: folded into the range
    assert sampling(top_k=2**31 - 1).top_k == 2**31 - 1
    assert sampling(frequency_penalty=0.0, presence_penalty=None).temperature == 0.0
