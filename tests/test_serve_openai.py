"""Guards: curator.cli.foundry

curator serve answers what clients send, driven by the official openai client against a real
server and a real Foundry Local model (the tiny compiled Qwen2): context limits as 400s with the
numbers, stop strings never emitted, sampling options honoured or refused, JSON mode, tools
refused, aliases, body and message limits, memory after large requests.

One server for the module (start-up costs seconds); each test uses it read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TINY_MODEL_ID
from tests.serve_helpers import client, env_for, install_and_register, rss_kib, running_server

ALIAS = "tiny-qwen2"
PROMPT = [{"role": "user", "content": "Write one sentence about rivers."}]
CONTEXT = 2048  # the tiny model's context_length (genai_config.json)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, compiled_tiny_int4: Path
) -> Iterator[tuple[str, int]]:
    env = env_for(tmp_path_factory.mktemp("serve"))
    install_and_register(env, [(compiled_tiny_int4, TINY_MODEL_ID)])
    options = ("--max-body-kb", "1024", "--max-messages", "8", "--default-max-tokens", "1000")
    with running_server(env, *options) as url_pid:
        yield url_pid


@pytest.fixture
def api(served: tuple[str, int]) -> openai.OpenAI:
    return client(served[0])


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json=body, timeout=60)


def test_a_prompt_longer_than_the_context_is_a_400_with_the_numbers(api: openai.OpenAI) -> None:
    long_prompt = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(openai.BadRequestError) as too_long:
        api.chat.completions.create(model=TINY_MODEL_ID, messages=long_prompt)  # type: ignore[arg-type]
    assert too_long.value.code == "context_length_exceeded"
    assert f"maximum context length is {CONTEXT} tokens" in too_long.value.message
    # A prompt that fits, with a max_tokens that does not: 400 naming both parts, not a 500.
    with pytest.raises(openai.BadRequestError) as too_many:
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=100000,
        )
    assert too_many.value.code == "context_length_exceeded"
    assert "100000 in the completion" in too_many.value.message


def test_max_tokens_defaults_to_what_fits_in_the_context(api: openai.OpenAI) -> None:
    """No max_tokens: the answer may use every token the prompt leaves (the old default of 256
    cut answers short, and made long prompts fail); the random model never stops by itself."""
    prompt = [{"role": "user", "content": "word " * 800}]  # about 1600 tokens
    done = api.chat.completions.create(model=TINY_MODEL_ID, messages=prompt)  # type: ignore[arg-type]
    assert done.usage is not None
    assert done.usage.total_tokens == CONTEXT
    assert done.choices[0].finish_reason == "length"
    assert done.model == TINY_MODEL_ID
    # A short prompt leaves more room than --default-max-tokens 1000: that caps it.
    short = api.chat.completions.create(model=TINY_MODEL_ID, messages=PROMPT)  # type: ignore[arg-type]
    assert short.usage is not None and short.usage.completion_tokens == 1000


def test_stop_strings_end_the_answer_and_are_never_emitted(api: openai.OpenAI) -> None:
    free = api.chat.completions.create(model=TINY_MODEL_ID, messages=PROMPT, max_tokens=24)  # type: ignore[arg-type]
    text = free.choices[0].message.content or ""
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), text
    expected = text[: text.index(stop)]
    for stops in (stop, [stop, "never-appears"]):
        done = api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=24,
            stop=stops,
        )
        assert done.choices[0].message.content == expected
        assert done.choices[0].finish_reason == "stop"
        streamed = list(
            api.chat.completions.create(
                model=TINY_MODEL_ID,
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=24,
                stop=stops,
                stream=True,
            )
        )
        pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
        assert "".join(pieces) == expected
        assert all(stop not in piece for piece in pieces)
    with pytest.raises(openai.BadRequestError) as too_many:
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            stop=["a", "b", "c", "d", "e"],
        )
    assert too_many.value.param == "stop"


def test_sampling_options_change_the_answer_and_seed_repeats_it(api: openai.OpenAI) -> None:
    def ask(**options: object) -> str:
        done = api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=16,
            **options,  # type: ignore[arg-type]
        )
        return done.choices[0].message.content or ""

    greedy = ask()
    sampled = ask(temperature=1.0, seed=7, extra_body={"top_k": 20})
    assert sampled == ask(temperature=1.0, seed=7, extra_body={"top_k": 20})
    assert sampled != greedy
    assert ask(temperature=1.0, seed=7, extra_body={"top_k": 1}) == greedy  # top_k 1 is greedy
    assert ask(temperature=1.0, top_p=1e-6, seed=3) == greedy  # so is a tiny nucleus
    assert {ask(temperature=1.5, seed=s) for s in (1, 2, 3)} != {greedy}


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_penalties_the_runtime_lacks_are_refused_not_ignored(
    api: openai.OpenAI, penalty: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=4,
            **{penalty: 0.5},  # type: ignore[arg-type]
        )
    assert refused.value.param == penalty
    assert "not supported" in refused.value.message
    zero = api.chat.completions.create(
        model=TINY_MODEL_ID,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=4,
        **{penalty: 0},  # type: ignore[arg-type]
    )
    assert zero.usage is not None and zero.usage.completion_tokens == 4


def test_json_mode_constrains_the_answer_to_json(api: openai.OpenAI) -> None:
    """The random model answers gibberish; with json_object it must still produce JSON."""
    free = api.chat.completions.create(model=TINY_MODEL_ID, messages=PROMPT, max_tokens=40)  # type: ignore[arg-type]
    assert not (free.choices[0].message.content or "").lstrip().startswith("{")
    for response_format in (
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}},
    ):
        done = api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=400,
            response_format=response_format,  # type: ignore[arg-type]
        )
        text = done.choices[0].message.content or ""
        if done.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(text), dict)
        else:  # cut at max_tokens: still a JSON object's beginning
            assert text.lstrip().startswith("{")
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            response_format={"type": "xml"},  # type: ignore[typeddict-item]
        )
    # A schema the runtime cannot compile is the client's mistake: a 400 naming the cause.
    nonsense = {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError) as bad_schema:
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=4,
            response_format=nonsense,  # type: ignore[arg-type]
        )
    assert "nonsense" in bad_schema.value.message


def test_tools_are_refused_with_a_400_that_says_so(api: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
    }
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(
            model=TINY_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            tools=[tool],  # type: ignore[list-item]
        )
    assert refused.value.param == "tools"
    assert "tool calling is not supported" in refused.value.message


def test_unknown_parameters_are_refused(served: tuple[str, int]) -> None:
    answer = post(served[0], {"model": TINY_MODEL_ID, "messages": PROMPT, "best_of": 3})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "best_of"


def test_aliases_resolve_like_foundry_local(api: openai.OpenAI) -> None:
    for name in (ALIAS, "tiny-qwen2-generic-cpu"):  # an alias; an id without its version
        done = api.chat.completions.create(model=name, messages=PROMPT, max_tokens=3)  # type: ignore[arg-type]
        assert done.model == TINY_MODEL_ID
        assert done.usage is not None and done.usage.completion_tokens == 3
    assert api.models.retrieve(ALIAS).id == ALIAS
    for unknown in ("tiny", "x:y", "tiny-qwen2-generic-cpu:9", ":", "../../etc/passwd"):
        with pytest.raises(openai.NotFoundError):
            api.chat.completions.create(model=unknown, messages=PROMPT, max_tokens=3)  # type: ignore[arg-type]


def test_request_size_limits(served: tuple[str, int]) -> None:
    url = served[0]
    # Over --max-body-kb 1024, declared: refused before the body is read.
    big = json.dumps(
        {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    )
    answer = httpx.post(
        f"{url}/chat/completions",
        content=big,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"

    # Undeclared (chunked): counted while reading, refused at the limit.
    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b" " * 4096
        yield big.encode()

    chunked = httpx.post(
        f"{url}/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert chunked.status_code == 413
    # --max-messages 8
    many = [{"role": "user", "content": "hi"}] * 9
    answer = post(url, {"model": TINY_MODEL_ID, "messages": many})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "messages"
    assert "at most 8" in answer.json()["error"]["message"]


def test_memory_returns_near_its_idle_level_after_large_requests(served: tuple[str, int]) -> None:
    """Prompts near the body limit (parsed, tokenized, refused for the context) leave the
    server near its idle memory (the old server kept +144 MiB after one 50 MB body; without
    giving freed memory back, ten 900 KB prompts kept about +47 MiB here)."""
    url, pid = served
    answer = post(url, {"model": TINY_MODEL_ID, "messages": PROMPT, "max_tokens": 2})
    assert answer.status_code == 200
    idle = rss_kib(pid)
    near_limit = [{"role": "user", "content": "word " * 180_000}]  # 900 KB
    for _ in range(10):
        answer = post(url, {"model": TINY_MODEL_ID, "messages": near_limit})
        assert answer.json()["error"]["code"] == "context_length_exceeded"
    assert rss_kib(pid) - idle < 32 * 1024
    huge = post(
        url, {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "x" * (50 << 20)}]}
    )
    assert huge.status_code == 413
    assert rss_kib(pid) - idle < 32 * 1024  # a 50 MB body is never held


ODD_BODIES: list[object] = [
    [],
    "text",
    {"model": 5, "messages": PROMPT},
    {"model": TINY_MODEL_ID},
    {"model": TINY_MODEL_ID, "messages": {"role": "user"}},
    {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": None}]},
    {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": ""}]},
    {"model": TINY_MODEL_ID, "messages": [{"role": "system", "content": "only"}]},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "max_tokens": 1.5},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "max_tokens": 10**30},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "temperature": "hot"},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "seed": 2**70, "temperature": 1, "max_tokens": 2},
    {
        "model": TINY_MODEL_ID,
        "messages": PROMPT,
        "top_k": 10**12,
        "temperature": 1,
        "max_tokens": 2,
    },
    {"model": TINY_MODEL_ID, "messages": PROMPT, "stop": ["\u0000"]},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "stream_options": "yes"},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "response_format": "json"},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "tool_choice": {"type": "function"}},
    {"model": TINY_MODEL_ID, "messages": PROMPT, "stream": "please"},
    {"model": "../../../etc/passwd", "messages": PROMPT},
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_nothing_a_client_sends_is_a_500(served: tuple[str, int], body: object) -> None:
    answer = post(served[0], body)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        assert set(answer.json()["error"]) >= {"message", "type", "param", "code"}
