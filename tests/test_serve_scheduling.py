"""Guards: curator.cli.foundry

How curator serve schedules work on one model, with the official openai client against a real
server and a real Foundry Local model slow enough to matter (hidden 512, 8 layers, 8192-token
context: a long answer takes many seconds):

- a client that goes away (killed, streamed or not) stops its generation within one token: the
  next request in line starts within 1 s, not after the abandoned answer;
- streams get their headers as soon as they are admitted, a full queue answers 429 with
  Retry-After, and places are given back when clients leave;
- with --parallel N, N streams generate side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.serve_helpers import (
    SLOW_MODEL_ID,
    client,
    env_for,
    install_and_register,
    running_server,
    slow_model,
)

PROMPT = [{"role": "user", "content": "Write a long story about rivers."}]
LONG = 8000  # tokens: many seconds of work for the slow model (context 8192)


@pytest.fixture(scope="module")
def slow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = env_for(tmp_path_factory.mktemp("serve-slow"))
    install_and_register(env, [(slow_model(), SLOW_MODEL_ID)])
    return env


@pytest.fixture(scope="module")
def one_slot(slow_env: dict[str, str]) -> Iterator[str]:
    """One generation at a time on the model, one request waiting, more refused."""
    with running_server(slow_env, "--parallel", "1", "--queue", "1") as (url, _):
        yield url


def first_content(stream: openai.Stream) -> float:  # type: ignore[type-arg]
    """Reads ``stream`` until its first content token; the monotonic time it arrived."""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            return time.monotonic()
    raise AssertionError("the stream ended without content")


ABANDONED_CLIENT = """
import sys, openai
c = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=600)
print("sending", flush=True)
stream = sys.argv[3] == "stream"
answer = c.chat.completions.create(
    model=sys.argv[2], messages=[{"role": "user", "content": "Write a long story about rivers."}],
    max_tokens=int(sys.argv[4]), stream=stream,
)
if stream:
    for _ in answer:
        pass
"""


@pytest.mark.parametrize("mode", ["plain", "stream"])
def test_a_killed_client_frees_the_model_for_the_next_request_within_a_second(
    one_slot: str, mode: str
) -> None:
    url = one_slot
    # How long the abandoned answer would take: the model's pace on this machine now.
    start = time.monotonic()
    sample = client(url).chat.completions.create(
        model=SLOW_MODEL_ID,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=200,
    )
    assert sample.usage is not None and sample.usage.completion_tokens == 200
    whole_answer = (time.monotonic() - start) * LONG / 200  # at least: attention grows
    assert whole_answer > 6, "the model answers too fast for this test to mean anything"

    abandoned = subprocess.Popen(
        [sys.executable, "-c", ABANDONED_CLIENT, url, SLOW_MODEL_ID, mode, str(LONG)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert abandoned.stdout is not None
        assert abandoned.stdout.readline().strip() == "sending"
        time.sleep(1.0)  # its request is in and generating
        arrived: list[float] = []
        waiting = client(url).chat.completions.create(
            model=SLOW_MODEL_ID,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=4,
            stream=True,
        )
        reader = threading.Thread(target=lambda: arrived.append(first_content(waiting)))
        reader.start()
        reader.join(timeout=1.5)
        assert not arrived, "the next request started while the first one should hold the model"
        killed_at = time.monotonic()
        abandoned.send_signal(signal.SIGKILL)
        reader.join(timeout=whole_answer + 60)
        assert arrived, "the next request never started"
        assert arrived[0] - killed_at < 1.0
        assert arrived[0] - killed_at < whole_answer / 4
    finally:
        abandoned.kill()
        abandoned.wait()


def test_streams_get_headers_at_once_and_a_full_queue_answers_429(one_slot: str) -> None:
    url = one_slot
    api = client(url)
    running = api.chat.completions.create(
        model=SLOW_MODEL_ID,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=LONG,
        stream=True,
    )
    try:
        first_content(running)  # it holds the one slot now
        # The second is admitted to the queue: its headers (200, event stream) come at once,
        # although it cannot generate until the first ends.
        with httpx.stream(
            "POST",
            f"{url}/chat/completions",
            json={"model": SLOW_MODEL_ID, "messages": PROMPT, "max_tokens": 4, "stream": True},
            timeout=httpx.Timeout(60, read=5),
        ) as queued:
            assert queued.status_code == 200
            assert queued.headers["content-type"].startswith("text/event-stream")
            # A third finds the queue full.
            with pytest.raises(openai.RateLimitError) as refused:
                api.chat.completions.create(
                    model=SLOW_MODEL_ID,
                    messages=PROMPT,  # type: ignore[arg-type]
                    max_tokens=4,
                )
            retry_after = refused.value.response.headers.get("retry-after")
            assert retry_after is not None and int(retry_after) >= 1
            assert refused.value.code == "queue_full"
    finally:
        running.close()
    # Both left (one running, one waiting): both places come back (shortly: the running one
    # stops at its next token), so two requests at once are admitted again, not refused.
    deadline = time.monotonic() + 20
    while True:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: post_short(url), range(2)))
        if answers == [200, 200] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answers == [200, 200]


def post_short(url: str) -> int:
    body = {"model": SLOW_MODEL_ID, "messages": PROMPT, "max_tokens": 2}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=60).status_code


def test_parallel_streams_generate_side_by_side(slow_env: dict[str, str]) -> None:
    """--parallel 3: three streams all get tokens before any of them has finished (one at a time,
    the third would wait for two whole answers)."""
    with running_server(slow_env, "--parallel", "3") as (url, _):
        api = client(url)
        api.chat.completions.create(model=SLOW_MODEL_ID, messages=PROMPT, max_tokens=1)  # type: ignore[arg-type]
        firsts: list[float] = []
        ends: list[float] = []
        lock = threading.Lock()

        def one() -> None:
            stream = api.chat.completions.create(
                model=SLOW_MODEL_ID,
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=400,
                stream=True,
            )
            first = first_content(stream)
            for _ in stream:
                pass
            with lock:
                firsts.append(first)
                ends.append(time.monotonic())

        threads = [threading.Thread(target=one) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(ends) == 3
        assert max(firsts) < min(ends)
