"""The plain values curator.foundry hands out: token usage, chat chunks and results, metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The id form, defined with the cache's model directories (re-exported here).
from curator.cache.modeldir import MODEL_ID_RE as MODEL_ID_RE

APP_NAME = "curator"
ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class Usage:
    """Token counts the runtime reports for one request."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatChunk:
    """One streamed piece of an answer.

    Text chunks carry ``usage=None``; the final chunk of every successful stream has ``text=""``,
    ``usage`` from the runtime and ``finish_reason`` (``"stop"`` or ``"length"``).
    """

    text: str
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class ChatResult:
    """A whole answer: the joined text, the runtime's usage and why it stopped."""

    text: str
    usage: Usage
    finish_reason: str


@dataclass(frozen=True)
class ModelMetadata:
    """What Foundry's local catalog records about a registered model (all optional but task)."""

    task: str = "chat-completion"
    display_name: str | None = None
    publisher: str | None = None
    license: str | None = None
    license_description: str | None = None
    file_size_mb: int | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None
    supports_tool_calling: bool | None = None
    device_type: str | None = "CPU"
    execution_provider: str | None = "CPUExecutionProvider"


@dataclass(frozen=True)
class RegisteredModel:
    """A model Foundry Local can load here, as Foundry reports it: a local registration, or (with
    ``catalog`` True) a model downloaded from Foundry's public catalog."""

    id: str
    alias: str
    display_name: str | None
    path: Path | None
    task: str | None
    publisher: str | None
    license: str | None
    file_size_mb: int | None
    context_length: int | None
    device_type: str | None
    execution_provider: str | None
    loaded: bool
    catalog: bool = False

    def metadata(self) -> ModelMetadata:
        """The metadata that registers this model again as it is (to put back a registration)."""
        return ModelMetadata(
            task=self.task or ModelMetadata.task,
            display_name=self.display_name,
            publisher=self.publisher,
            license=self.license,
            file_size_mb=self.file_size_mb,
            context_length=self.context_length,
            device_type=self.device_type,
            execution_provider=self.execution_provider,
        )
