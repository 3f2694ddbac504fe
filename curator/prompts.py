"""Prompt sets (schemas/prompts.schema.json): load, validate and hash the fixed prompts that
``curator smoke`` and ``curator bench`` run.

A prompt gives either ``prompt`` (one user message) or ``messages`` (a conversation);
:meth:`Prompt.chat_messages` always returns the ``[{"role": ..., "content": ...}]`` form that
:meth:`curator.foundry.LoadedModel.chat_stream` takes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.jsonio import parse_json
from curator.registry.rules import one_line
from curator.schemas import schema_problems

DEFAULT_MAX_TOKENS = 64
DEFAULT_TIME_LIMIT_SEC = 120.0
_PACKAGE = Path(__file__).resolve().parent


def default_prompt_set_path(name: str = "smoke") -> Path:
    """The prompt set shipped inside the package (``curator/data/prompts/<name>.json``)."""
    return _PACKAGE / "data" / "prompts" / f"{name}.json"


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Prompt:
    """One prompt; ``max_tokens`` and ``time_limit_sec`` already fall back to the set's defaults."""

    id: str
    messages: tuple[Message, ...]
    expected: tuple[str, ...]
    max_tokens: int
    time_limit_sec: float
    category: str | None = None

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def missing(self, answer: str) -> tuple[str, ...]:
        """The ``expected`` aspects ``answer`` lacks (case-insensitive substrings)."""
        lowered = answer.lower()
        return tuple(aspect for aspect in self.expected if aspect.lower() not in lowered)

    def coverage(self, answer: str) -> float | None:
        """Share of ``expected`` aspects in ``answer`` (case-insensitive); None if none listed."""
        if not self.expected:
            return None
        return 1 - len(self.missing(answer)) / len(self.expected)


@dataclass(frozen=True)
class PromptSet:
    """A validated prompt set; ``sha256`` is of the file's bytes (reports cite it)."""

    name: str
    path: Path
    sha256: str
    prompts: tuple[Prompt, ...]


def load_prompt_set(path: Path | None = None) -> PromptSet:
    """Read and validate a prompt set (default: the shipped smoke set).

    Raises InputFileError naming the file and every schema problem, or a duplicate prompt id.
    """
    chosen = path or default_prompt_set_path()
    try:
        raw = chosen.read_bytes()
    except FileNotFoundError:
        raise InputFileError(
            f"prompt set not found: {chosen}", hint="check the path given to --prompts"
        ) from None
    except OSError as exc:
        raise InputFileError(
            f"cannot read prompt set {chosen}: {exc}", hint="check the file"
        ) from None
    doc = parse_json(raw.decode("utf-8", errors="replace"), str(chosen), "prompt set")
    return parse_prompt_set(doc, chosen, hashlib.sha256(raw).hexdigest())


def parse_prompt_set(doc: Any, path: Path, sha256: str) -> PromptSet:
    """Validate an already-parsed prompt-set document against the schema."""
    problems = schema_problems(doc, "prompts")
    if problems:
        # a key or value from the file may hold a line break: each problem stays one line
        listed = "; ".join(one_line(str(p)) for p in problems[:5])
        raise InputFileError(
            f"{path}: not a valid prompt set: {listed}",
            hint="see schemas/prompts.schema.json for the format",
        )
    default_max = int(doc.get("maxTokens", DEFAULT_MAX_TOKENS))
    default_limit = float(doc.get("timeLimitSec", DEFAULT_TIME_LIMIT_SEC))
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for item in doc["prompts"]:
        if item["id"] in seen:
            raise InputFileError(
                f"{path}: prompt id {item['id']!r} appears twice",
                hint="give each prompt its own id",
            )
        seen.add(item["id"])
        if "prompt" in item:
            messages: tuple[Message, ...] = (Message("user", item["prompt"]),)
        else:
            messages = tuple(Message(m["role"], m["content"]) for m in item["messages"])
        prompts.append(
            Prompt(
                id=item["id"],
                messages=messages,
                expected=tuple(item.get("expected", ())),
                max_tokens=int(item.get("maxTokens", default_max)),
                time_limit_sec=float(item.get("timeLimitSec", default_limit)),
                category=item.get("category"),
            )
        )
    return PromptSet(
        name=str(doc.get("name", path.stem)), path=path, sha256=sha256, prompts=tuple(prompts)
    )
