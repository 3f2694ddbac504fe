"""curator smoke / chat, the prompt-set format, and the curator.foundry chat API (in subprocesses:
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
from tests.conftest import TINY_MODEL_ID, run_curator


@pytest.fixture
def registered(install_compiled: Callable[..., Path]) -> Path:
    model_dir = install_compiled()
    result = run_curator("register", str(model_dir), "--license", "mit")
    assert result.returncode == 0, result.stderr
    return model_dir


def test_smoke_passes_on_the_compiled_model(registered: Path) -> None:
    result = run_curator("smoke", TINY_MODEL_ID, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    shipped = load_prompt_set()
    assert report["passed"] is True
    assert report["prompt_set_sha256"] == shipped.sha256
    assert [o["id"] for o in report["outcomes"]] == [p.id for p in shipped.prompts]
    for outcome, prompt in zip(report["outcomes"], shipped.prompts, strict=True):
        assert outcome["ok"] is True
        assert outcome["answer"].strip()
        assert 0 < outcome["completion_tokens"] <= prompt.max_tokens
        assert outcome["prompt_tokens"] > 0


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
    assert "not registered" in result.stderr
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
    follow_up = next(p for p in shipped.prompts if p.id == "follow-up")
    assert follow_up.coverage("It is BLUE.") == 0.5


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
