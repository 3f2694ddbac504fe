"""Guards: curator.prompts, curator.smoke.run, curator.smoke.degeneracy

`curator smoke`'s core in process (tests/test_foundry_smoke.py and tests/test_smoke_real.py are
the end-to-end layers): the prompt-set reader, run_smoke over a fake Foundry runtime whose loaded
model streams scripted answers (the same protocol as curator.foundry's FoundryRuntime and
LoadedModel), and one prompt's verdict."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curator.errors import FoundryError, InputFileError, NotFound
from curator.foundry.types import ChatChunk, RegisteredModel, Usage
from curator.prompts import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TIME_LIMIT_SEC,
    Message,
    Prompt,
    default_prompt_set_path,
    load_prompt_set,
    parse_prompt_set,
)
from curator.smoke.run import SmokeReport, _run_prompt, run_smoke

# --- the prompt-set reader ------------------------------------------------------------------------


def write_set(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_the_shipped_sets_live_in_the_package() -> None:
    assert default_prompt_set_path() == default_prompt_set_path("smoke")
    assert default_prompt_set_path().parts[-4:] == ("curator", "data", "prompts", "smoke.json")
    assert default_prompt_set_path("completion").name == "completion.json"
    shipped = load_prompt_set()
    assert shipped.path == default_prompt_set_path() and shipped.name == "smoke"
    assert shipped.sha256 == hashlib.sha256(default_prompt_set_path().read_bytes()).hexdigest()
    greeting = shipped.prompts[0]
    assert (greeting.id, greeting.expected, greeting.max_tokens) == ("greeting", ("hello",), 16)
    assert greeting.messages == (Message("user", "Say hello."),)
    assert greeting.category == "chat"


def test_defaults_fall_back_to_the_set_then_to_the_house(tmp_path: Path) -> None:
    doc = {
        "schemaVersion": 1,
        "maxTokens": 12,
        "timeLimitSec": 7,
        "prompts": [
            {"id": "a", "prompt": "Say hi."},
            {"id": "b", "prompt": "Say bye.", "maxTokens": 3, "timeLimitSec": 2.5},
        ],
    }
    loaded = load_prompt_set(write_set(tmp_path / "mine.json", doc))
    a, b = loaded.prompts
    assert (a.max_tokens, a.time_limit_sec, b.max_tokens, b.time_limit_sec) == (12, 7.0, 3, 2.5)
    assert isinstance(a.max_tokens, int) and isinstance(a.time_limit_sec, float)
    assert a.expected == () and a.category is None
    assert loaded.name == "mine"  # no name: the file's stem
    bare = parse_prompt_set(
        {"schemaVersion": 1, "prompts": [{"id": "x", "prompt": "Hi."}]}, Path("s.json"), "ab"
    )
    (x,) = bare.prompts
    assert (x.max_tokens, x.time_limit_sec) == (DEFAULT_MAX_TOKENS, DEFAULT_TIME_LIMIT_SEC)
    assert (DEFAULT_MAX_TOKENS, DEFAULT_TIME_LIMIT_SEC) == (64, 120.0)
    assert bare.sha256 == "ab" and bare.path == Path("s.json")


def test_a_conversation_keeps_its_roles_in_order(tmp_path: Path) -> None:
    doc = {
        "schemaVersion": 1,
        "name": "talk",
        "prompts": [
            {
                "id": "c",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Name a color."},
                ],
                "expected": ["red", "Blue"],
            }
        ],
    }
    (c,) = load_prompt_set(write_set(tmp_path / "t.json", doc)).prompts
    assert c.chat_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a color."},
    ]
    assert c.expected == ("red", "Blue")
    assert load_prompt_set(tmp_path / "t.json").name == "talk"  # its own name over the stem
    assert c.missing("BLUE and Red") == () and c.missing("green") == ("red", "Blue")
    assert c.coverage("blue") == 0.5


def test_a_missing_or_unreadable_file_is_a_one_line_refusal(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as missing:
        load_prompt_set(tmp_path / "nope.json")
    assert missing.value.message == f"prompt set not found: {tmp_path / 'nope.json'}"
    assert missing.value.hint == "check the path given to --prompts"
    with pytest.raises(InputFileError) as unreadable:
        load_prompt_set(tmp_path)  # a directory
    assert unreadable.value.message.startswith(f"cannot read prompt set {tmp_path}: ")
    assert unreadable.value.hint == "check the file"


def test_schema_problems_are_listed_on_one_line(tmp_path: Path) -> None:
    bad = {
        "schemaVersion": 1,
        "prompts": [{"id": f"p{i}", "prompt": "x", "maxTokens": 0} for i in range(7)],
    }
    path = write_set(tmp_path / "bad.json", bad)
    with pytest.raises(InputFileError) as refused:
        load_prompt_set(path)
    message = refused.value.message
    assert message.startswith(f"{path}: not a valid prompt set: ")
    assert message.count("; ") == 4  # the first five problems
    two = {"schemaVersion": 1, "prompts": [{"id": i, "prompt": "x", "maxTokens": 0} for i in "ab"]}
    with pytest.raises(InputFileError) as both:
        parse_prompt_set(two, Path("s.json"), "0")
    assert both.value.message == (
        "s.json: not a valid prompt set: "
        "prompts[0].maxTokens: 0 is less than the minimum of 1 [schema.minimum]; "
        "prompts[1].maxTokens: 0 is less than the minimum of 1 [schema.minimum]"
    )
    assert refused.value.hint == "see schemas/prompts.schema.json for the format"
    line_break = {"schemaVersion": 1, "prompts": [{"id": "a", "prompt": "x", "bad\nkey": 1}]}
    with pytest.raises(InputFileError) as broken:
        load_prompt_set(write_set(tmp_path / "lb.json", line_break))
    assert "\n" not in broken.value.message


def test_invalid_json_names_the_file_and_the_place(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputFileError) as refused:
        load_prompt_set(path)
    assert refused.value.message.startswith(f"{path}:1:2: invalid JSON in prompt set: ")
    assert refused.value.hint == "fix the JSON at line 1, column 2"


def test_a_prompt_id_used_twice_is_refused(tmp_path: Path) -> None:
    doc = {"schemaVersion": 1, "prompts": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]}
    path = write_set(tmp_path / "dup.json", doc)
    with pytest.raises(InputFileError) as refused:
        load_prompt_set(path)
    assert refused.value.message == f"{path}: prompt id 'a' appears twice"
    assert refused.value.hint == "give each prompt its own id"


def test_invalid_utf8_is_read_with_replacement_and_hashed_as_bytes(tmp_path: Path) -> None:
    raw = b'{"schemaVersion": 1, "prompts": [{"id": "a", "prompt": "caf\xe9?"}]}'
    path = tmp_path / "latin1.json"
    path.write_bytes(raw)
    loaded = load_prompt_set(path)
    assert loaded.prompts[0].messages[0].content == "caf\ufffd?"
    assert loaded.sha256 == hashlib.sha256(raw).hexdigest()


# --- run_smoke over a fake Foundry runtime --------------------------------------------------------


class FakeLoaded:
    """A loaded model (the LoadedModel protocol) answering each prompt from a script."""

    def __init__(self, answers: dict[str, str], fail_on: str | None = None) -> None:
        self.answers, self.fail_on = answers, fail_on
        self.unloaded = False
        self.asked: list[tuple[str, int]] = []

    def chat_stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Iterator[ChatChunk]:
        text = messages[-1]["content"]
        self.asked.append((text, max_tokens))
        if text == self.fail_on:
            raise RuntimeError("the native runtime crashed")
        yield ChatChunk(self.answers[text])
        yield ChatChunk("", Usage(5, 3))

    def unload(self) -> None:
        self.unloaded = True


def registered(model_id: str, alias: str, path: Path | None) -> RegisteredModel:
    return RegisteredModel(
        id=model_id,
        alias=alias,
        display_name=None,
        path=path,
        task="chat-completion",
        publisher="local",
        license="mit",
        file_size_mb=1,
        context_length=2048,
        device_type="CPU",
        execution_provider="CPUExecutionProvider",
        loaded=False,
    )


class FakeRuntime:
    """The FoundryRuntime protocol run_smoke uses: list_registered, get, load, cache_dir."""

    def __init__(self, models: list[RegisteredModel], loaded: FakeLoaded, cache_dir: Path) -> None:
        self.models, self.loaded, self.cache_dir = models, loaded, cache_dir
        self.load_calls: list[str] = []

    def list_registered(self) -> list[RegisteredModel]:
        return list(self.models)

    def get(self, model_id: str) -> RegisteredModel | None:
        return next((m for m in self.models if m.id == model_id), None)

    def load(self, model_id: str) -> FakeLoaded:
        self.load_calls.append(model_id)
        time.sleep(0.02)  # a load takes time: load_ms measures it
        if self.get(model_id) is None:
            raise NotFound(f"{model_id} is not registered", hint="curator register DIR")
        return self.loaded


def two_prompts(tmp_path: Path, **top: Any) -> Path:
    doc = {
        "schemaVersion": 1,
        "name": "two",
        "maxTokens": 9,
        **top,
        "prompts": [
            {"id": "capital", "prompt": "What is the capital of France?", "expected": ["Paris"]},
            {"id": "greet", "prompt": "Say hello.", "expected": ["hello"], "maxTokens": 4},
        ],
    }
    return write_set(tmp_path / "two.json", doc)


GOOD = {"What is the capital of France?": "It is Paris.", "Say hello.": "Hello!"}


def test_run_smoke_resolves_the_alias_runs_every_prompt_and_unloads(tmp_path: Path) -> None:
    model = FakeLoaded(GOOD)
    rt = FakeRuntime([registered("tiny-generic-cpu:2", "tiny", None)], model, tmp_path)
    said: list[str] = []
    prompts = two_prompts(tmp_path)
    report = run_smoke(
        "tiny",
        cache_dir=tmp_path,
        prompts=prompts,
        progress=said.append,
        runtime=rt,  # type: ignore[arg-type]
    )
    assert report.model_id == "tiny-generic-cpu:2" and rt.load_calls == ["tiny-generic-cpu:2"]
    assert report.passed and report.failed == ()
    assert [o.id for o in report.outcomes] == ["capital", "greet"]
    assert [o.answer for o in report.outcomes] == ["It is Paris.", "Hello!"]
    assert model.asked == [("What is the capital of France?", 9), ("Say hello.", 4)]
    assert model.unloaded
    assert report.prompt_set == prompts
    assert report.prompt_set_sha256 == hashlib.sha256(prompts.read_bytes()).hexdigest()
    assert 20 <= report.load_ms < 5000 and report.load_ms == round(report.load_ms, 1)
    assert isinstance(report.load_ms, float)  # milliseconds to a tenth, not whole
    assert said == [
        "smoke: loading tiny-generic-cpu:2",
        "smoke: prompt 1/2 capital",
        "smoke: prompt 2/2 greet",
    ]


def test_a_failing_prompt_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    answers = {**GOOD, "What is the capital of France?": "It is Lyon."}
    model = FakeLoaded(answers)
    rt = FakeRuntime([registered("tiny-generic-cpu:2", "tiny", None)], model, tmp_path)
    report = run_smoke(
        "tiny-generic-cpu:2", cache_dir=tmp_path, prompts=two_prompts(tmp_path), runtime=rt
    )  # type: ignore[arg-type]
    assert not report.passed and report.failed == ("capital",)
    assert report.outcomes[1].ok and model.unloaded


def test_the_model_is_unloaded_when_a_prompt_raises(tmp_path: Path) -> None:
    model = FakeLoaded(GOOD, fail_on="Say hello.")
    rt = FakeRuntime([registered("tiny-generic-cpu:2", "tiny", None)], model, tmp_path)
    with pytest.raises(RuntimeError, match="crashed"):
        run_smoke("tiny", cache_dir=tmp_path, prompts=two_prompts(tmp_path), runtime=rt)  # type: ignore[arg-type]
    assert model.unloaded


def test_an_unknown_model_is_not_found_with_a_suggestion(tmp_path: Path) -> None:
    model = FakeLoaded(GOOD)
    rt = FakeRuntime([registered("tiny-generic-cpu:2", "tiny", None)], model, tmp_path)
    with pytest.raises(NotFound) as missing:
        run_smoke("tinny", cache_dir=tmp_path, prompts=two_prompts(tmp_path), runtime=rt)  # type: ignore[arg-type]
    assert missing.value.message == "tinny is not registered"
    assert "tiny" in str(missing.value.hint)
    assert model.asked == [] and not model.unloaded  # nothing loaded, nothing to unload


def test_the_time_limit_given_overrides_each_prompts_own(tmp_path: Path) -> None:
    model = FakeLoaded(GOOD)
    rt = FakeRuntime([registered("tiny-generic-cpu:2", "tiny", None)], model, tmp_path)
    generous = two_prompts(tmp_path, timeLimitSec=0.000001)
    failed = run_smoke("tiny", cache_dir=tmp_path, prompts=generous, runtime=rt)  # type: ignore[arg-type]
    assert failed.failed == ("capital", "greet")
    assert failed.outcomes[0].error is not None
    assert failed.outcomes[0].error.startswith("over the time limit of 1e-06 s")
    passed = run_smoke(
        "tiny",
        cache_dir=tmp_path,
        prompts=generous,
        time_limit_sec=60.0,
        runtime=rt,  # type: ignore[arg-type]
    )
    assert passed.passed


def completion_model_dir(root: Path, completion_only: bool) -> Path:
    model_dir = root / ("base" if completion_only else "chat")
    model_dir.mkdir()
    manifest = {"completionOnly": True} if completion_only else {"completionOnly": False}
    (model_dir / "curator-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return model_dir


def test_a_completion_only_model_gets_the_continuation_set_by_default(tmp_path: Path) -> None:
    completion = load_prompt_set(default_prompt_set_path("completion"))
    answers = {
        p.messages[-1].content: f"{' '.join(p.expected)} and more." for p in completion.prompts
    }
    model = FakeLoaded(answers)
    base = registered("base-generic-cpu:1", "base", completion_model_dir(tmp_path, True))
    rt = FakeRuntime([base], model, tmp_path)
    report = run_smoke("base", cache_dir=tmp_path, runtime=rt)  # type: ignore[arg-type]
    assert report.prompt_set == default_prompt_set_path("completion")
    assert [o.id for o in report.outcomes] == [p.id for p in completion.prompts]


def test_a_chat_model_gets_the_smoke_set_by_default(tmp_path: Path) -> None:
    smoke = load_prompt_set()
    answers = {p.messages[-1].content: "x" for p in smoke.prompts}
    chat = registered("chat-generic-cpu:1", "chat", completion_model_dir(tmp_path, False))
    report = run_smoke(
        "chat",
        cache_dir=tmp_path,
        runtime=FakeRuntime([chat], FakeLoaded(answers), tmp_path),  # type: ignore[arg-type]
    )
    assert report.prompt_set == default_prompt_set_path()
    no_path = registered("nopath-generic-cpu:1", "nopath", None)
    report = run_smoke(
        "nopath",
        cache_dir=tmp_path,
        runtime=FakeRuntime([no_path], FakeLoaded(answers), tmp_path),  # type: ignore[arg-type]
    )
    assert report.prompt_set == default_prompt_set_path()
    # given prompts win over the completion-only default
    base = registered("base-generic-cpu:1", "base", completion_model_dir(tmp_path, True))
    mine = two_prompts(tmp_path)
    report = run_smoke(
        "base",
        cache_dir=tmp_path,
        prompts=mine,
        runtime=FakeRuntime([base], FakeLoaded(GOOD), tmp_path),  # type: ignore[arg-type]
    )
    assert report.prompt_set == mine


def test_a_report_is_frozen_data() -> None:
    report = SmokeReport("m:1", Path("s.json"), "0" * 64, 1.0, ())
    assert report.passed and report.failed == ()
    with pytest.raises(AttributeError):
        report.model_id = "x"  # type: ignore[misc]


# --- one prompt's verdict -------------------------------------------------------------------------


class Scripted:
    """Streams chunks with a pause before each (seconds), like LoadedModel.chat_stream."""

    def __init__(self, chunks: list[tuple[float, ChatChunk]], error: Exception | None = None):
        self.chunks, self.error = chunks, error
        self.closed = False

    def chat_stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Iterator[ChatChunk]:
        try:
            for pause, chunk in self.chunks:
                time.sleep(pause)
                yield chunk
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


def ask(
    expected: tuple[str, ...] = ("Paris",), text: str = "What is the capital of France?"
) -> Prompt:
    return Prompt("capital", (Message("user", text),), expected, 16, 60.0)


def test_a_stream_past_the_limit_is_cut_and_closed() -> None:
    model = Scripted(
        [(0.0, ChatChunk("Paris ")), (0.15, ChatChunk("is ")), (0.0, ChatChunk("big", Usage(3, 3)))]
    )
    outcome = _run_prompt(model, ask(), 0.1)  # type: ignore[arg-type]
    assert outcome.error == "over the time limit of 0.1 s"
    assert outcome.answer == "Paris is "  # the chunk that crossed the limit is kept, no more
    assert model.closed and not outcome.ok
    assert outcome.seconds >= 0.15 and outcome.seconds == round(outcome.seconds, 3)


def test_usage_is_the_last_reported_and_first_token_the_first_text() -> None:
    model = Scripted(
        [
            (0.0, ChatChunk("", Usage(1, 0))),
            (0.05, ChatChunk("Paris")),
            (0.0, ChatChunk(" it is.", Usage(4, 2))),
        ]
    )
    outcome = _run_prompt(model, ask(), 60.0)  # type: ignore[arg-type]
    assert outcome.ok and outcome.answer == "Paris it is."
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (4, 2)
    assert outcome.first_token_ms is not None and outcome.first_token_ms >= 50.0
    assert outcome.first_token_ms == round(outcome.first_token_ms, 1)
    assert isinstance(outcome.first_token_ms, float)
    assert outcome.first_token_ms <= outcome.seconds * 1000 + 0.5  # seconds is rounded to the ms


def test_a_runtime_error_keeps_its_message_and_the_partial_answer() -> None:
    model = Scripted(
        [(0.0, ChatChunk("Par"))], error=FoundryError("tiny failed to answer", hint="curator smoke")
    )
    outcome = _run_prompt(model, ask(), 60.0)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.error, outcome.answer) == (False, "tiny failed to answer", "Par")
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (None, None)


def test_a_degenerate_answer_fails_after_holding_the_expected_words() -> None:
    answer = "Paris " * 12
    model = Scripted([(0.0, ChatChunk(answer, Usage(5, 12)))])
    outcome = _run_prompt(model, ask(), 60.0)  # type: ignore[arg-type]
    assert not outcome.ok and outcome.missing == ()
    assert outcome.error == (
        "degenerate answer: 'paris' repeated 12 times (100% of the answer): "
        f"{' '.join(answer.split())!r}"
    )
    echo = Scripted([(0.0, ChatChunk("What is the capital of France? Paris", Usage(5, 8)))])
    echoed = _run_prompt(echo, ask(), 60.0)  # type: ignore[arg-type]
    assert echoed.error == (
        "degenerate answer: it repeats the prompt: 'What is the capital of France? Paris'"
    )


def test_missing_words_are_checked_before_degeneracy() -> None:
    model = Scripted([(0.0, ChatChunk("Lyon " * 12, Usage(5, 12)))])
    outcome = _run_prompt(model, ask(), 60.0)  # type: ignore[arg-type]
    assert outcome.missing == ("Paris",)
    assert outcome.error is not None and outcome.error.startswith("the answer lacks the expected")


# --- degenerate answers: where each check's line is drawn -----------------------------------------


def test_repetition_counts_the_shortest_gram_that_covers_the_most() -> None:
    from curator.smoke.degeneracy import repetition

    assert repetition("a a a a a a a a") == "'a' repeated 8 times (100% of the answer)"
    assert repetition("a b a b a b a b") == "'a b' repeated 4 times (100% of the answer)"
    assert repetition("a b c d e f g") is None  # under eight tokens
    assert repetition("no no no no") is None


def test_repetition_draws_the_line_at_half_the_answer_and_four_repeats() -> None:
    from curator.smoke.degeneracy import repetition

    half = "go go go go one two three four"  # 4 of 8 tokens
    assert repetition(half) == "'go' repeated 4 times (50% of the answer)"
    assert repetition("go go go go one two three four five") is None  # 4 of 9
    assert repetition("go go go one two") is None
    assert repetition("go go go x y z w v") is None  # three repeats are not enough
    eight = "x y x y x y x y x y x y x y x y"  # an 8-gram would be two repeats only
    assert repetition(eight) == "'x y' repeated 8 times (100% of the answer)"


def test_repetition_in_text_without_spaces_counts_characters() -> None:
    from curator.smoke.degeneracy import _tokens

    assert _tokens("Hello, World!") == ["hello", ",", "world", "!"]
    assert len(_tokens("东" * 31)) == 1  # too short to count by characters
    assert _tokens("东京" * 16) == ["东", "京"] * 16
    assert _tokens("a b c d e f g h") == list("abcdefgh")


def test_an_echo_is_the_prompt_first_or_over_half_the_answer() -> None:
    from curator.smoke.degeneracy import echo

    prompt = "Name a color."
    assert echo("Name a color.", prompt) == "it repeats the prompt"
    assert echo("Red. Name a color. Blue.", prompt) == "it repeats the prompt"  # 4 of 8 tokens
    assert echo("Red. Name a color. Blue, green.", prompt) is None  # 4 of 10
    assert echo("Ok Name a color.", prompt) == "it repeats the prompt"  # 4 of 5
    assert echo("name A COLOR. Red", prompt) == "it repeats the prompt"
    assert echo("", prompt) is None
    assert echo("Say hi. Say hi.", "Say hi.") is None  # two words: too short to judge
    assert echo("Say hi now.", "Say hi now.") == "it repeats the prompt"


def test_the_script_check_needs_eight_letters_and_half_in_the_prompt_s_script() -> None:
    from curator.smoke.degeneracy import wrong_script

    prompt = "Say hello."
    assert wrong_script("Привет!", prompt) is None  # six letters: too few
    assert wrong_script("Приветик", prompt) == (
        "written in Cyrillic where the prompt is Latin (0% of its letters in Latin)"
    )
    assert wrong_script("abcd Жщыд", prompt) is None  # half Latin is enough
    assert wrong_script("abc Жщыдл", prompt) == (
        "written in Cyrillic where the prompt is Latin (38% of its letters in Latin)"
    )
    assert wrong_script("Hello there", "12345") is None  # a prompt without letters
    assert (
        wrong_script("ひらがなカタカナ漢字", "漢字ですか") is None
    )  # kana and kanji are one script


def test_degeneracy_judges_the_last_user_message_for_an_echo() -> None:
    from curator.smoke.degeneracy import degeneracy

    talk = Prompt(
        "t",
        (Message("system", "You answer in English."), Message("user", "Name a color.")),
        (),
        16,
        60.0,
    )
    assert degeneracy("Name a color. Name a color.", talk) == "it repeats the prompt"
    assert degeneracy("You answer in English. Red.", talk) is None
    assert degeneracy("Red is a color.", talk) is None
    assert degeneracy("Красный цвет", talk) is not None
    system_only = Prompt("s", (Message("system", "Name a color."),), (), 16, 60.0)
    assert degeneracy("Name a color.", system_only) is None  # no user message to echo
