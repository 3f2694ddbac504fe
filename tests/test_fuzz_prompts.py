"""Guards: curator.cli.bench, curator.cli.foundry, curator.errors, curator.prompts

Fuzzing the prompt-set reader (curator.prompts.load_prompt_set, what `curator smoke --prompts`
and `curator bench --prompts` read): random bytes, random JSON, prompt sets with every field
sometimes wrong (numbers too large for a float, NaN, lone surrogates, control characters, duplicate
ids, empty conversations). A refusal is an InputFileError of one line; a set the reader accepts is
one smoke and bench can run (finite positive limits, a user message in every prompt).

`make fuzz` runs 10,000 cases per property; the default run a few hundred."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from curator.errors import InputFileError
from curator.prompts import PromptSet, load_prompt_set
from tests.fuzzing import assert_one_line, bounded

pytestmark = pytest.mark.fuzz


def check(path: Path, content: bytes) -> PromptSet | None:
    path.write_bytes(content)
    with bounded():
        try:
            loaded = load_prompt_set(path)
        except InputFileError as exc:
            assert_one_line(exc.message, exc.hint)
            assert str(path) in exc.message
            return None
    assert loaded.prompts and len({p.id for p in loaded.prompts}) == len(loaded.prompts)
    for prompt in loaded.prompts:
        assert prompt.messages and any(m.role == "user" for m in prompt.messages)
        assert all(m.content for m in prompt.messages)
        assert isinstance(prompt.max_tokens, int) and prompt.max_tokens >= 1
        assert math.isfinite(prompt.time_limit_sec) and prompt.time_limit_sec > 0
        prompt.chat_messages()
        prompt.coverage("an answer")
    return loaded


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "prompts.json"


@given(st.binary(max_size=1024))
@example(b"")
@example(b"\xff\xfe{}")
@example(b"[" * 50_000)
@example(b'{"prompts": [{"id": "a", "prompt": "x"}], "timeLimitSec": 1e400}')
@example(b'{"prompts": [{"id": "a", "prompt": "x"}], "timeLimitSec": NaN}')
@example(b'{"prompts": [{"id": "a", "prompt": "x", "timeLimitSec": 1' + b"0" * 400 + b"}]}")
@example(b'{"prompts": [{"id": "a", "prompt": "\\ud800"}]}')
@example(b'{"prompts": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]}')
def test_random_bytes(target: Path, content: bytes) -> None:
    check(target, content)


GOOD_NUMBERS = st.integers(1, 600)
BAD_NUMBERS = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from(["1e400", "-1e400", "1" + "0" * 400, "NaN", "Infinity", "1e-400", "5e-324"]),
)
GOOD_SLUGS = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True)
BAD_SLUGS = st.text(max_size=12)
GOOD_TEXTS = st.text(min_size=1, max_size=30)
BAD_TEXTS = st.sampled_from(["", "\ud800", "a\nb", "\u202e", "x" * 100_001])
GOOD_ROLES = st.sampled_from(["system", "developer", "user", "assistant"])
BAD_ROLES = st.text(max_size=6)


def pick(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """Mostly a good value, one time in ten a bad one."""
    return draw(bad) if draw(st.integers(0, 9)) == 0 else draw(good)


def maybe(
    draw: st.DrawFn,
    good: st.SearchStrategy[Any],
    bad: st.SearchStrategy[Any],
    key: str,
    into: dict[str, Any],
) -> None:
    if draw(st.integers(0, 2)) == 0:
        into[key] = pick(draw, good, bad)


@st.composite
def prompt_sets(draw: st.DrawFn) -> Any:
    """A prompt set as a JSON-able value, mostly well-formed, any field sometimes wrong."""
    document: dict[str, Any] = {}
    maybe(draw, GOOD_SLUGS, BAD_SLUGS, "name", document)
    maybe(draw, GOOD_NUMBERS, BAD_NUMBERS, "maxTokens", document)
    maybe(draw, GOOD_NUMBERS, BAD_NUMBERS, "timeLimitSec", document)
    maybe(draw, st.just(1), st.sampled_from([2, "1", None]), "schemaVersion", document)
    prompts: list[Any] = []
    for _ in range(pick(draw, st.integers(1, 4), st.just(0))):
        item: dict[str, Any] = {"id": pick(draw, GOOD_SLUGS, BAD_SLUGS)}
        if draw(st.booleans()):
            item["prompt"] = pick(draw, GOOD_TEXTS, BAD_TEXTS)
        else:
            item["messages"] = [
                {
                    "role": pick(draw, GOOD_ROLES, BAD_ROLES),
                    "content": pick(draw, GOOD_TEXTS, BAD_TEXTS),
                }
                for _ in range(draw(st.integers(0, 3)))
            ] + ([] if draw(st.integers(0, 9)) == 0 else [{"role": "user", "content": "q"}])
        maybe(
            draw,
            st.lists(GOOD_TEXTS, max_size=3, unique=True),
            st.lists(BAD_TEXTS),
            "expected",
            item,
        )
        maybe(draw, GOOD_NUMBERS, BAD_NUMBERS, "maxTokens", item)
        maybe(draw, GOOD_NUMBERS, BAD_NUMBERS, "timeLimitSec", item)
        maybe(draw, GOOD_SLUGS, BAD_SLUGS, "category", item)
        if draw(st.integers(0, 29)) == 0:
            item[draw(st.text(max_size=5))] = draw(GOOD_TEXTS)
        prompts.append(item if draw(st.integers(0, 29)) else draw(BAD_TEXTS))
    if draw(st.integers(0, 29)):
        document["prompts"] = prompts
    return document if draw(st.integers(0, 29)) else prompts


def as_json(document: Any) -> str:
    """JSON text; the number strings in NUMBERS go in as literals (1e400, 400 digits, NaN)."""
    literal = {s: s for s in ("1e400", "-1e400", "NaN", "Infinity", "1e-400", "5e-324")}
    literal["1" + "0" * 400] = "1" + "0" * 400
    text = json.dumps(document, allow_nan=True)
    for raw in literal:
        text = text.replace(json.dumps(raw), raw)
    return text


@given(prompt_sets())
@example({"prompts": [{"id": "a", "prompt": "x", "timeLimitSec": "1" + "0" * 400}]})
@example({"prompts": [{"id": "a", "messages": [{"role": "assistant", "content": "x"}]}]})
@example({"prompts": [{"id": "a\nb", "prompt": "x"}], "name": "\u202e\n"})
@example({"prompts": [{"id": "a", "prompt": "x", "ba\nd": 1}]})
def test_structured_prompt_sets(target: Path, document: Any) -> None:
    loaded = check(target, as_json(document).encode("utf-8", errors="surrogatepass"))
    event("accepted" if loaded is not None else "refused")
