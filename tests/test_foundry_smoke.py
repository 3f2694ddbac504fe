"""Guards: curator.cli.foundry, curator.cli.imports, curator.errors, curator.foundry.model,
  curator.prompts

curator smoke / chat, the prompt-set format, and the curator.foundry chat API (in subprocesses:
the Foundry manager is a process-wide singleton)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.errors import InputFileError
from curator.prompts import default_prompt_set_path, load_prompt_set
from tests.conftest import LIVENESS_PROMPTS, TINY_MODEL_ID, run_curator


@pytest.fixture
def registered(install_compiled: Callable[..., Path]) -> Path:
    model_dir = install_compiled()
    result = run_curator("register", str(model_dir), "--license", "mit")
    assert result.returncode == 0, result.stderr
    return model_dir


def test_smoke_passes_on_the_compiled_model_with_a_liveness_set(registered: Path) -> None:
    """The tiny random model cannot answer: a set without expected words checks only liveness."""
    result = run_curator("smoke", TINY_MODEL_ID, "--prompts", str(LIVENESS_PROMPTS), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    liveness = load_prompt_set(LIVENESS_PROMPTS)
    assert report["passed"] is True
    assert report["prompt_set_sha256"] == liveness.sha256
    assert [o["id"] for o in report["outcomes"]] == [p.id for p in liveness.prompts]
    for outcome, prompt in zip(report["outcomes"], liveness.prompts, strict=True):
        assert outcome["ok"] is True and outcome["missing"] == []
        assert outcome["answer"].strip()
        assert 0 < outcome["completion_tokens"] <= prompt.max_tokens
        assert outcome["prompt_tokens"] > 0


def test_an_answer_without_its_expected_words_fails_smoke(registered: Path, tmp_path: Path) -> None:
    """Bug (issue 11): smoke said "7 prompts passed" for a build that answered the capital of
    France with "Le Grand Jestam": a garbled answer must be a failure, naming what it lacks."""
    prompts = tmp_path / "facts.json"
    prompts.write_text(
        json.dumps(
            {
                "prompts": [
                    {
                        "id": "capital",
                        "prompt": "What is the capital of France?",
                        "expected": ["paris"],
                        "maxTokens": 12,
                    },
                    {"id": "free", "prompt": "Say anything.", "maxTokens": 4},
                ]
            }
        )
    )
    result = run_curator("smoke", TINY_MODEL_ID, "--prompts", str(prompts), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["failed"] == ["capital"]
    capital, free = report["outcomes"]
    assert capital["ok"] is False and capital["missing"] == ["paris"]
    assert "lacks the expected 'paris'" in capital["error"]
    assert capital["answer"].strip() and "paris" not in capital["answer"].lower()
    assert free["ok"] is True

    human = run_curator("smoke", TINY_MODEL_ID, "--prompts", str(prompts))
    assert human.returncode == 1
    assert "capital: the answer lacks the expected 'paris'" in human.stderr


def test_smoke_fails_naming_the_prompts_when_the_chat_template_is_gone(registered: Path) -> None:
    (registered / "chat_template.jinja").unlink()
    config_path = registered / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))

    result = run_curator("smoke", TINY_MODEL_ID)
    assert result.returncode == 1
    assert "smoke failed" in result.stderr
    assert "chat template" in result.stderr.lower()
    for prompt in load_prompt_set().prompts:
        assert prompt.id in result.stderr
    assert "Traceback" not in result.stderr


def test_smoke_with_a_custom_prompt_set_and_time_limit(registered: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps({"prompts": [{"id": "only", "prompt": "Hi", "maxTokens": 4}]}))
    ok = run_curator("smoke", TINY_MODEL_ID, "--prompts", str(prompts), "--json")
    assert ok.returncode == 0, ok.stderr
    (outcome,) = json.loads(ok.stdout)["outcomes"]
    assert outcome["completion_tokens"] == 4

    slow = run_curator("smoke", TINY_MODEL_ID, "--prompts", str(prompts), "--time-limit", "1e-9")
    assert slow.returncode == 1
    assert "only: over the time limit" in slow.stderr


def test_smoke_of_an_unregistered_model_is_a_clear_error() -> None:
    result = run_curator("smoke", "nothing-generic-cpu:1")
    assert result.returncode == 1
    assert "is neither registered with Foundry Local" in result.stderr
    assert "hint: curator register" in result.stderr


def test_chat_one_shot_streams_an_answer(registered: Path) -> None:
    result = run_curator("chat", TINY_MODEL_ID, "--prompt", "Hello", "--max-tokens", "6")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "completion tokens" in result.stderr
    assert "6 completion tokens" in result.stderr


def test_chat_interactive_keeps_history_until_reset(registered: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "curator", "chat", TINY_MODEL_ID, "--max-tokens", "3"],
        input="Hello\nAnd again\n/reset\nHello\n\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    prompt_tokens = [int(n) for n in re.findall(r"\[(\d+) prompt \+ 3 completion", result.stderr)]
    assert len(prompt_tokens) == 3
    first, second, after_reset = prompt_tokens
    assert second > first  # the first exchange is part of the second prompt
    assert after_reset == first


def test_prompt_set_format() -> None:
    shipped = load_prompt_set(default_prompt_set_path())
    assert len(shipped.prompts) >= 5
    assert all(p.chat_messages()[-1]["role"] == "user" for p in shipped.prompts)
    capital = next(p for p in shipped.prompts if p.id == "capital")
    assert capital.missing("The capital of France is PARIS.") == ()
    assert capital.missing("Le Grand Jestam, l'Étoisdjestam.") == ("paris",)
    code = next(p for p in shipped.prompts if p.id == "code-reverse")
    assert code.coverage("def f(s): pass") == 0.5 and code.missing("def f(s): pass") == ("return",)
    # every shipped prompt expects something: smoke judges each answer (issue 11); `color` has
    # no one right word and is there for the degenerate-answer checks (issue 25: 'A: A: A:')
    assert [p.id for p in shipped.prompts if not p.expected] == ["color"]


@pytest.mark.parametrize(
    "doc",
    [
        {"prompts": []},
        {"prompts": [{"id": "a"}]},
        {"prompts": [{"id": "a", "prompt": "x", "messages": [{"role": "user", "content": "y"}]}]},
        {"prompts": [{"id": "a", "messages": [{"role": "bot", "content": "y"}]}]},
        {"prompts": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]},
        {"prompts": [{"id": "a", "prompt": "x", "maxTokens": 0}]},
    ],
)
def test_malformed_prompt_sets_are_refused(tmp_path: Path, doc: dict[str, object]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputFileError):
        load_prompt_set(path)


API_SCRIPT = """
import json, sys
from pathlib import Path
from curator import foundry
rt = foundry.runtime()
model = rt.load(sys.argv[1])
msgs = [{"role": "user", "content": "Tell me about ONNX."}]
rounds = []
for _ in range(3):
    chunks = list(model.chat_stream(msgs, max_tokens=12))
    rounds.append({
        "text": "".join(c.text for c in chunks),
        "usage": [chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens]
        if chunks[-1].usage else None,
        "usage_chunks": sum(1 for c in chunks if c.usage is not None),
        "finish": chunks[-1].finish_reason,
    })
sampled = [model.chat(msgs, max_tokens=12, temperature=0.9, seed=7).text for _ in range(2)]
try:
    model.chat_stream([{"role": "robot", "content": "x"}], max_tokens=3)
    bad_role = None
except Exception as exc:
    bad_role = type(exc).__name__
model.unload()
print(json.dumps({"rounds": rounds, "sampled": sampled, "bad_role": bad_role,
                  "registered": [m.id for m in rt.list_registered()]}))
"""


def test_chat_stream_rounds_are_independent_and_carry_usage(registered: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, TINY_MODEL_ID],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    rounds = out["rounds"]
    # Same work every round: the history is not carried over (the prompt would grow).
    assert all(r == rounds[0] for r in rounds)
    assert rounds[0]["usage"][1] == 12
    assert rounds[0]["usage_chunks"] == 1
    assert rounds[0]["finish"] == "length"
    assert out["sampled"][0] == out["sampled"][1]
    assert out["bad_role"] == "UsageProblem"
    assert out["registered"] == [TINY_MODEL_ID]
