"""Guards: curator.prompts, curator.smoke.degeneracy

Smoke's degenerate-answer checks (issue 25): repetition, an echo of the prompt, another script.

The positive cases are answers observed on SmolLM2-135M-Instruct compiled with int4-cpu from its
Q4_1 GGUF (greedy decoding); the negative ones are its fp32 build's answers to the same prompts,
which must pass.
"""

from __future__ import annotations

import pytest

from curator.prompts import Message, Prompt, load_prompt_set
from curator.smoke.degeneracy import degeneracy, echo, repetition, wrong_script


def _prompt(text: str, expected: tuple[str, ...] = ()) -> Prompt:
    return Prompt("p", (Message("user", text),), expected, 64, 120.0)


INT4_COLOR = "A: A: A: A: A: A: A: A: A: A: A: A: A: A: A: A:"
FP32_ANSWERS = {
    "Name a color.": "The color I'm referring to is a rare and precious shade of indigo, often "
    "associated with the planet Neptune.",
    "Count from one to five.": "1. 1\n2. 2\n3. 3\n4. 4\n5. 5",
    "Name three fruits.": "1. Bananas\n2. Oranges\n3. Grapes",
    "Write a Python function that reverses a string.": "```python\ndef reverse_string(input_str):"
    "\n    return input_str[::-1]\n```\n\nThis function uses slicing with a step of -1.",
    "What is the capital of France?": "The capital of France is Paris.",
    "Say hello.": "Hello there, welcome to my world! I'm here to help with any kind",
}


def test_the_observed_repetition_fails_the_shipped_color_prompt() -> None:
    (color,) = [p for p in load_prompt_set().prompts if p.id == "color"]
    assert color.messages[-1].content == "Name a color."
    found = degeneracy(INT4_COLOR, color)
    assert found == "'a :' repeated 16 times (100% of the answer)"


@pytest.mark.parametrize("prompt", sorted(FP32_ANSWERS))
def test_the_fp32_answers_are_not_degenerate(prompt: str) -> None:
    assert degeneracy(FP32_ANSWERS[prompt], _prompt(prompt)) is None


@pytest.mark.parametrize(
    ("answer", "caught"),
    [
        ("Paris Paris Paris Paris Paris Paris Paris Paris", True),
        ("The capital is Paris. " + "and then and then " * 4, True),  # 8 of 13 tokens
        ("the the the cat sat on the mat today, it was", False),  # under REPEAT_MIN_COUNT runs
        ("东京东京东京东京东京东京东京东京东京东京东京东京东京东京东京东京", True),  # no spaces
        ("Paris. Paris.", False),  # too short to call
    ],
)
def test_repetition(answer: str, caught: bool) -> None:
    assert (repetition(answer) is not None) is caught


def test_echo() -> None:
    assert echo("Name a color. Name a color.", "Name a color.") == "it repeats the prompt"
    assert echo("What is the capital of France? Paris", "What is the capital of France?")
    assert echo("The capital of France is Paris.", "What is the capital of France?") is None
    assert echo("Hi", "Say hello.") is None  # a two-word prompt is too short to judge


def test_wrong_script() -> None:
    prompt = "What is the capital of France?"
    found = wrong_script("Столица Франции — Париж, красивый город.", prompt)
    assert found == "written in Cyrillic where the prompt is Latin (0% of its letters in Latin)"
    assert wrong_script("The capital is Paris (Париж).", prompt) is None  # mostly Latin
    assert wrong_script("東京です。とても大きな都市です。", "日本の首都はどこですか") is None
    assert wrong_script("The capital of Japan is Tokyo.", "日本の首都はどこですか") is not None
    assert wrong_script("42", prompt) is None  # too few letters
