"""Guards: curator.cli.registry, curator.cli.share, curator.errors, curator.foundry.types,
  curator.prompts, curator.registry.rules, curator.share.files, curator.share.pull, curator.smoke.run

Tests that bite (issue 17), for the gates added this round: smoke's quality gate and the
publish/pull verification. In process and fast, so `make mutation` can run them against every
mutant; each is written as the bug it catches."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curator.errors import CuratorError, InputFileError, NotFound
from curator.foundry.types import ChatChunk, Usage
from curator.prompts import Message, Prompt
from curator.registry.rules import distribution_mismatch
from curator.share.files import ListedFile, file_problems, listed_files
from curator.share.pull import is_published, pull_model
from curator.smoke.run import PromptOutcome, SmokeReport, _excerpt, _run_prompt
from tests.samples import make_document, make_entry


class FakeModel:
    """Streams scripted chunks (then raises ``error``, if any), like LoadedModel.chat_stream."""

    def __init__(self, chunks: list[ChatChunk], error: Exception | None = None) -> None:
        self.chunks, self.error = chunks, error
        self.asked: list[tuple[list[dict[str, str]], int]] = []

    def chat_stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Iterator[ChatChunk]:
        self.asked.append((messages, max_tokens))
        yield from self.chunks
        if self.error is not None:
            raise self.error


def prompt(expected: tuple[str, ...] = ("Paris",)) -> Prompt:
    return Prompt(
        id="capital",
        messages=(Message("user", "What is the capital of France?"),),
        expected=expected,
        max_tokens=32,
        time_limit_sec=60.0,
    )


USAGE = Usage(9, 7)


def answer(*texts: str, usage: Usage | None = USAGE) -> list[ChatChunk]:
    return [ChatChunk(t) for t in texts] + [ChatChunk("", usage)]


def run(
    chunks: list[ChatChunk], expected: tuple[str, ...] = ("Paris",), **kw: Any
) -> PromptOutcome:
    model = FakeModel(chunks, kw.pop("error", None))
    outcome = _run_prompt(model, prompt(expected), kw.pop("limit", 60.0))  # type: ignore[arg-type]
    assert model.asked == [([{"role": "user", "content": "What is the capital of France?"}], 32)]
    return outcome


# --- smoke: the quality gate --------------------------------------------------------------------


def test_a_right_answer_passes() -> None:
    outcome = run(answer("The capital of France ", "is PARIS."))
    assert outcome.ok and outcome.error is None and outcome.missing == ()
    assert outcome.answer == "The capital of France is PARIS."
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (9, 7)
    assert outcome.id == "capital" and outcome.first_token_ms is not None
    assert 0 <= outcome.first_token_ms <= outcome.seconds * 1000 + 1.0  # both rounded


def test_a_garbled_answer_fails_naming_the_missing_words() -> None:
    """Bug: smoke passes "Le Grand Jestam, l'Étoisdjestam" for the capital of France."""
    outcome = run(answer("Le Grand Jestam, l'Étoisdjestam.\n  The capital of France."))
    assert not outcome.ok and outcome.missing == ("Paris",)
    assert outcome.error == (
        "the answer lacks the expected 'Paris': "
        '"Le Grand Jestam, l\'Étoisdjestam. The capital of France."'
    )
    two = run(answer("paris"), expected=("Paris", "Seine", "France"))
    assert two.missing == ("Seine", "France")
    assert two.error is not None and two.error.startswith(
        "the answer lacks the expected 'Seine', 'France': "
    )


def test_no_expected_words_means_any_answer_will_do() -> None:
    assert run(answer("anything"), expected=()).ok


def test_other_failures_come_first_and_are_not_blamed_on_missing_words() -> None:
    empty = run(answer("  \n"))
    assert (empty.ok, empty.error, empty.missing) == (False, "empty answer", ())
    no_usage = run(answer("Paris", usage=None))
    assert no_usage.error == "the runtime reported no token usage"
    assert (no_usage.prompt_tokens, no_usage.completion_tokens) == (None, None)
    broken = run(answer("Par"), error=InputFileError("the stream broke", hint="x"))
    assert (broken.ok, broken.error, broken.missing) == (False, "the stream broke", ())
    assert broken.answer == "Par"


def test_the_time_limit_fails_a_prompt() -> None:
    slow = run(answer("Paris"), limit=0.0)
    assert (slow.ok, slow.error, slow.missing) == (False, "over the time limit of 0 s", ())


class SlowModel(FakeModel):
    """Answers at once, then takes ``pause`` seconds to finish the stream."""

    def __init__(self, chunks: list[ChatChunk], before: float, after: float) -> None:
        super().__init__(chunks)
        self.before, self.after = before, after

    def chat_stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Iterator[ChatChunk]:
        time.sleep(self.before)
        yield from self.chunks
        time.sleep(self.after)


def test_a_stream_that_ends_past_the_limit_fails() -> None:
    """Bug: only the time between chunks is checked; a stream that hangs after its last chunk
    passes."""
    started = time.perf_counter()
    outcome = _run_prompt(SlowModel(answer("Paris"), 0.0, 0.3), prompt(), 0.2)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.startswith("over the time limit of 0.2 s")
    assert 0.3 <= outcome.seconds <= wall + 0.001  # measured in seconds, rounded to 1 ms


def test_times_are_reported_in_seconds_and_milliseconds() -> None:
    outcome = _run_prompt(SlowModel(answer("Paris"), 0.05, 0.0), prompt(), 60.0)  # type: ignore[arg-type]
    assert outcome.ok
    assert outcome.first_token_ms is not None and outcome.first_token_ms >= 50.0
    assert (
        outcome.seconds >= 0.05 and outcome.first_token_ms <= outcome.seconds * 1000 + 1.0
    )  # both rounded


def test_no_text_has_no_first_token() -> None:
    outcome = run([ChatChunk("", Usage(3, 0))])
    assert outcome.first_token_ms is None and outcome.error == "empty answer"


def test_long_answers_are_quoted_cut_on_one_line() -> None:
    assert _excerpt("a\n b\tc") == "a b c"
    assert _excerpt("x" * 80) == "x" * 80
    assert _excerpt("x" * 81) == "x" * 79 + "\u2026"
    assert _excerpt("abcdef", limit=4) == "abc\u2026"


def test_a_report_passes_only_when_every_prompt_did() -> None:
    good = run(answer("Paris"))
    bad = run(answer("Lyon"))
    report = SmokeReport("m:1", Path("set.json"), "0" * 64, 1.0, (good, bad, good))
    assert not report.passed and report.failed == ("capital",)
    assert SmokeReport("m:1", Path("set.json"), "0" * 64, 1.0, (good, good)).passed
    assert SmokeReport("m:1", Path("set.json"), "0" * 64, 1.0, (good,)).failed == ()


def test_expected_words_are_case_insensitive_substrings() -> None:
    p = prompt(("Paris", "seine"))
    assert p.missing("PARISIAN river SEINE") == ()
    assert p.missing("the seine") == ("Paris",)
    assert p.coverage("the seine") == 0.5
    assert p.coverage("nothing") == 0.0 and p.coverage("paris seine") == 1.0
    assert prompt(()).coverage("x") is None


# --- publish/pull verification --------------------------------------------------------------------


def record(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_listed_files_are_sorted_and_checked() -> None:
    files = listed_files([record("b.onnx", b"b"), record("a/x.json", b"x")])
    assert [f.path for f in files] == ["a/x.json", "b.onnx"]
    assert files[1].record() == record("b.onnx", b"b")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "no files listed"),
        ("a.onnx", "no files listed"),
        (["a.onnx"], "not a file record: 'a.onnx'"),
        ([{"path": "a", "sha256": "0", "bytes": "1"}], "malformed file record: "),
        ([{"path": 1, "sha256": "0", "bytes": 1}], "malformed file record: "),
        ([{"path": "a", "sha256": None, "bytes": 1}], "malformed file record: "),
        ([record("../evil", b"")], "'../evil' must not contain '..'"),
        ([record("curator-manifest.json", b"")], "'curator-manifest.json' is the manifest's name"),
        ([record("a", b""), record("a", b"x")], "a path is listed twice"),
    ],
)
def test_a_hostile_file_list_is_refused(items: Any, message: str) -> None:
    """Bug: a pulled entry's paths joined to the cache directory before they are checked."""
    with pytest.raises(ValueError) as refused:
        listed_files(items)
    assert str(refused.value).startswith(message)


def test_file_problems_name_each_difference(tmp_path: Path) -> None:
    """Bug: pull checks sizes only (a swapped file of the same size is placed)."""
    (tmp_path / "same.bin").write_bytes(b"abc")
    (tmp_path / "short.bin").write_bytes(b"ab")
    (tmp_path / "swapped.bin").write_bytes(b"xyz")
    (tmp_path / "dir.bin").mkdir()
    files = (
        ListedFile(**record("same.bin", b"abc")),
        ListedFile(**record("short.bin", b"abc")),
        ListedFile(**record("swapped.bin", b"abc")),
        ListedFile(**record("gone.bin", b"abc")),
        ListedFile(**record("dir.bin", b"abc")),
    )
    assert file_problems(tmp_path, files) == [
        "short.bin: 2 bytes, expected 3",
        "swapped.bin: sha256 differs from the registry's",
        "gone.bin: missing",
        "dir.bin: missing",
    ]


def test_published_files_must_be_the_built_ones() -> None:
    built = [record("a", b"a"), record("b", b"b"), record("c", b"c")]
    assert distribution_mismatch(list(built), built) == ""
    published = [record("a", b"a"), record("b", b"B"), record("d", b"d")]
    assert distribution_mismatch(published, built) == ("not published: c; not built: d; changed: b")
    assert distribution_mismatch([*built, built[0]], built) == "a file is listed twice"


def published_entry(**distribution: Any) -> dict[str, Any]:
    entry = make_entry(0)
    entry["distribution"] = {
        "repo": "org/model0",
        "commit": "a" * 40,
        "files": [dict(a) for a in entry["build"]["artifacts"]],
        "manifest": {"sha256": "b" * 64, "bytes": 10},
        **distribution,
    }
    return entry


def pull(tmp_path: Path, entry: dict[str, Any]) -> CuratorError:
    registry = tmp_path / "models.json"
    registry.write_text(json.dumps(make_document([entry])))
    with pytest.raises(CuratorError) as refused:
        pull_model(str(entry["id"]), registry=registry, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))
    return refused.value


def test_pull_refuses_an_entry_whose_files_differ_from_its_build(tmp_path: Path) -> None:
    """Bug: pull trusts distribution.files even where they are not what was built and reviewed."""
    entry = published_entry()
    entry["distribution"]["files"][0]["sha256"] = "c" * 64
    error = pull(tmp_path, entry)
    assert isinstance(error, InputFileError)
    assert error.message == (
        "the registry entry model0-generic-cpu:1 cannot be pulled: distribution.files differ "
        "from build.artifacts: changed: model.onnx"
    )
    assert error.hint == "curator registry validate"


def test_pull_refuses_an_entry_without_a_manifest_record(tmp_path: Path) -> None:
    entry = published_entry()
    del entry["distribution"]["manifest"]
    error = pull(tmp_path, entry)
    assert error.message.endswith("cannot be pulled: distribution.manifest is missing")


def test_a_checked_entry_gives_what_pull_downloads() -> None:
    from curator.share.pull import _checked

    entry = published_entry()
    repo, commit, files, manifest = _checked(entry)
    assert (repo, commit) == ("org/model0", "a" * 40)
    assert [f.record() for f in files] == sorted(
        entry["build"]["artifacts"], key=lambda a: a["path"]
    )
    assert manifest == ListedFile("curator-manifest.json", "b" * 64, 10)


def test_pull_refuses_unsafe_paths_the_schema_lets_through(tmp_path: Path) -> None:
    """Bug: a path is joined to the cache directory before it is checked."""
    entry = published_entry()
    for record_ in (entry["build"]["artifacts"][0], entry["distribution"]["files"][0]):
        record_["path"] = "../../evil.onnx"
    error = pull(tmp_path, entry)
    assert isinstance(error, InputFileError)
    assert error.message == (
        "the registry entry model0-generic-cpu:1 cannot be pulled: '../../evil.onnx' must not "
        "contain '..'"
    )
    assert error.hint == "curator registry validate"


def test_every_problem_of_an_entry_is_named(tmp_path: Path) -> None:
    entry = published_entry()
    entry["distribution"]["files"].pop()
    del entry["distribution"]["manifest"]
    error = pull(tmp_path, entry)
    assert error.message == (
        "the registry entry model0-generic-cpu:1 cannot be pulled: distribution.files differ "
        "from build.artifacts: not published: genai_config.json; distribution.manifest is missing"
    )


def test_pull_refuses_an_entry_the_schema_refuses(tmp_path: Path) -> None:
    error = pull(tmp_path, published_entry(repo="not a repo"))
    assert isinstance(error, InputFileError)
    assert error.message.startswith("the registry entry model0-generic-cpu:1 cannot be pulled: ")
    assert "distribution.repo" in error.message


def test_pull_of_an_unpublished_or_unknown_entry(tmp_path: Path) -> None:
    entry = make_entry(0)
    error = pull(tmp_path, entry)
    assert isinstance(error, NotFound)
    assert error.message == (
        "model0-generic-cpu:1 is in the registry but not published: it has no distribution"
    )
    assert (
        error.hint == "whoever compiled it runs: curator publish model0-generic-cpu:1 --to ORG/NAME"
    )
    registry = tmp_path / "models.json"
    with pytest.raises(NotFound) as unknown:
        pull_model("nope:1", registry=registry, cache_dir=tmp_path / "cache")
    assert unknown.value.message == f"no model 'nope:1' in {registry}"
    assert unknown.value.hint == f"`curator registry list --registry {registry}` shows the ids"
    assert is_published(make_document([published_entry()]), "model0-generic-cpu:1")
    assert not is_published(make_document([entry]), "model0-generic-cpu:1")
    assert not is_published(make_document([published_entry()]), "other:1")
    assert not is_published({"models": "broken"}, "model0-generic-cpu:1")
