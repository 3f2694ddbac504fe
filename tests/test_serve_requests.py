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
from curator.serve.openai_types import ApiError, parse_chat_request
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
