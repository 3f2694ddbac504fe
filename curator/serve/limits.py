"""What one ``curator serve`` accepts and how much work it takes on at once."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PARALLEL = 4
DEFAULT_QUEUE = 16
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_MESSAGES = 1024
DEFAULT_MAX_PROMPT_CHARS = 1_000_000
# Each running generation reserves key-value memory for prompt + max_tokens up front: "all the
# context" on a long-context model (128k tokens: gigabytes) must be asked for explicitly.
DEFAULT_DEFAULT_MAX_TOKENS = 4096


@dataclass(frozen=True)
class ServeLimits:
    """Per-server limits.

    ``parallel``: generations that run at the same time on one model (each in its own native
    session over the one loaded model); ``queue``: requests per model that may wait for one of
    those slots (one more is answered 429 with Retry-After); ``max_body_bytes``: larger request
    bodies are answered 413 before they are read; ``max_messages`` / ``max_prompt_chars``: caps on
    the messages array and on its total text (a 400 before any tokenization);
    ``default_max_tokens``: a request without max_tokens gets what its prompt leaves of the
    context, at most this many.
    """

    parallel: int = DEFAULT_PARALLEL
    queue: int = DEFAULT_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_messages: int = DEFAULT_MAX_MESSAGES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    default_max_tokens: int = DEFAULT_DEFAULT_MAX_TOKENS

    def __post_init__(self) -> None:
        for name in (
            "parallel",
            "max_body_bytes",
            "max_messages",
            "max_prompt_chars",
            "default_max_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.queue < 0:
            raise ValueError("queue must be at least 0")
