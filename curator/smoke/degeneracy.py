"""Degenerate answers (issue 25): one n-gram repeated over most of the answer (SmolLM2 int4-cpu
answered "Name a color." with ``A: A: A: A: ...``), an echo of the prompt, or another script than
the prompt's. Degenerate repetition is the commonest symptom of a broken quantization."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from curator.prompts import Prompt

REPEAT_SHARE = 0.5  # one n-gram's repeats covering at least this share of the answer's tokens
REPEAT_MIN_TOKENS = 8  # shorter answers are too short to call repetitive
REPEAT_MIN_COUNT = 4
REPEAT_MAX_N = 8
SCRIPT_MIN_LETTERS = 8
SCRIPT_MIN_SHARE = 0.5  # the prompt's script must hold at least this share of the answer's letters
ECHO_MIN_WORDS = 3
_WORD = re.compile(r"\w+|[^\w\s]+")
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "BOPOMOFO": "CJK"}


def degeneracy(answer: str, prompt: Prompt) -> str | None:
    """Why ``answer`` is degenerate (one line), or None: :func:`repetition`, :func:`echo`,
    :func:`wrong_script`, in that order."""
    user = [m.content for m in prompt.messages if m.role == "user"]
    last_user = user[-1] if user else ""
    return (
        repetition(answer)
        or echo(answer, last_user)
        or wrong_script(answer, " ".join(m.content for m in prompt.messages))
    )


def _tokens(text: str) -> list[str]:
    """Words and punctuation runs, lower-cased; characters for text written without spaces."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < REPEAT_MIN_TOKENS and len(text) >= 4 * REPEAT_MIN_TOKENS:
        tokens = [c for c in text.lower() if not c.isspace()]
    return tokens


def repetition(answer: str) -> str | None:
    """One n-gram (n <= 8 tokens) repeated, without overlap, over at least half of the answer."""
    tokens = _tokens(answer)
    if len(tokens) < REPEAT_MIN_TOKENS:
        return None
    best: tuple[float, int, tuple[str, ...]] | None = None
    for n in range(1, REPEAT_MAX_N + 1):
        counts = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for gram, _ in counts.most_common(3):
            count, i = 0, 0
            while i <= len(tokens) - n:  # occurrences that do not overlap
                if tuple(tokens[i : i + n]) == gram:
                    count, i = count + 1, i + n
                else:
                    i += 1
            share = count * n / len(tokens)
            if count >= REPEAT_MIN_COUNT and (best is None or share > best[0]):
                best = (share, count, gram)
    if best is None or best[0] < REPEAT_SHARE:
        return None
    share, count, gram = best
    shown = " ".join(gram)
    return f"{shown!r} repeated {count} times ({share:.0%} of the answer)"


def echo(answer: str, prompt_text: str) -> str | None:
    """The answer starts with the prompt's words, or is the prompt's words for at least half."""
    asked = _WORD.findall(prompt_text.lower())
    said = _WORD.findall(answer.lower())
    words = [w for w in asked if w.isalnum()]
    if len(words) < ECHO_MIN_WORDS or not said:
        return None
    n = len(asked)
    starts = said[:n] == asked
    covered, i = 0, 0
    while i <= len(said) - n:
        if said[i : i + n] == asked:
            covered, i = covered + n, i + n
        else:
            i += 1
    if starts or covered / len(said) >= 0.5:
        return "it repeats the prompt"
    return None


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0] if name else "UNKNOWN"
    return _SCRIPT_GROUPS.get(first, first)


def _scripts(text: str) -> Counter[str]:
    return Counter(s for s in map(_script, text) if s is not None)


def wrong_script(answer: str, prompt_text: str) -> str | None:
    """The answer's letters are mostly in another script than the prompt's (e.g. Cyrillic or CJK
    for an English prompt)."""
    asked = _scripts(prompt_text)
    said = _scripts(answer)
    letters = sum(said.values())
    if not asked or letters < SCRIPT_MIN_LETTERS:
        return None
    expected = asked.most_common(1)[0][0]
    share = said[expected] / letters
    if share >= SCRIPT_MIN_SHARE:
        return None
    found = said.most_common(1)[0][0]
    return (
        f"written in {found.title()} where the prompt is {expected.title()} "
        f"({share:.0%} of its letters in {expected.title()})"
    )
