"""A model loaded in this process and generation on it (streamed chat in a fresh native session)."""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from curator.errors import FoundryError, UsageProblem
from curator.foundry._native import foundry_error, is_sdk_error
from curator.foundry.types import ROLES, ChatChunk, ChatResult, Usage

if TYPE_CHECKING:
    from curator.foundry.manager import FoundryRuntime


def _check_messages(messages: Sequence[dict[str, str]]) -> None:
    if not messages:
        raise UsageProblem("no messages to send", hint="give at least one user message")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ROLES:
            raise UsageProblem(
                f"messages[{index}].role must be one of {', '.join(ROLES)}, not {role!r}",
                hint="fix the message list",
            )
        if not isinstance(content, str):
            raise UsageProblem(f"messages[{index}].content must be a string", hint="fix it")


class LoadedModel:
    """A model loaded in this process. Get it with :meth:`FoundryRuntime.load`."""

    def __init__(self, owner: FoundryRuntime, model_id: str, variant: Any) -> None:
        self.model_id = model_id
        self.unloaded = False
        self._owner = owner
        self._variant = variant
        # Serializes generation on this model across threads; held for the whole of one
        # chat_stream. Re-entrant, so a thread that leaves a stream suspended and starts another
        # (or unloads) gets the runtime's answer instead of a deadlock.
        self._generate = threading.RLock()

    def chat_stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Generator[ChatChunk, None, None]:
        """Stream an answer to ``messages`` (``[{"role": "user", "content": "..."}]``).

        Yields :class:`ChatChunk` text pieces as the runtime produces them, then one final chunk
        with ``text=""``, ``usage`` (the runtime's prompt/completion token counts) and
        ``finish_reason``. Each call is independent (a fresh native session: no shared history).
        ``temperature`` 0 is greedy decoding; above 0 samples, reproducibly with ``seed``.
        Calls on one model from different threads run one at a time (others wait until the
        running stream is exhausted or closed). Closing the iterator early cancels the generation;
        exhaust or close it before :meth:`unload`. Raises UsageProblem for malformed messages (before anything runs) and
        FoundryError for runtime failures (e.g. a missing chat template, a prompt too long).
        """
        _check_messages(messages)
        if max_tokens < 1:
            raise UsageProblem(f"max_tokens must be at least 1, not {max_tokens}", hint="fix it")
        if temperature < 0:
            raise UsageProblem(f"temperature must be >= 0, not {temperature}", hint="fix it")
        if self.unloaded:
            raise FoundryError(f"{self.model_id} was unloaded", hint="load it again")
        return self._stream(list(messages), max_tokens, temperature, seed)

    def _stream(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, seed: int | None
    ) -> Generator[ChatChunk, None, None]:
        from foundry_local_sdk import (
            ChatSession,
            FinishReason,
            MessageItem,
            MessageRole,
            Request,
            RequestOptions,
            SearchOptions,
            TextItem,
        )

        roles = {
            "system": MessageRole.SYSTEM,
            "developer": MessageRole.DEVELOPER,
            "user": MessageRole.USER,
            "assistant": MessageRole.ASSISTANT,
        }
        search = SearchOptions(max_output_tokens=max_tokens, temperature=temperature)
        if temperature > 0:
            search.do_sample = True
            search.seed = seed
        else:
            search.do_sample = False
        with self._generate:
            if self.unloaded:
                raise FoundryError(f"{self.model_id} was unloaded", hint="load it again")
            try:
                with ChatSession(self._variant) as session, Request() as request:
                    session.set_options(RequestOptions(search=search))
                    session.set_streaming(True)
                    for message in messages:
                        request.add_item(MessageItem(roles[message["role"]], message["content"]))
                    with session.process_streaming_request(request) as stream:
                        for item in stream:
                            if isinstance(item, TextItem) and item.text:
                                yield ChatChunk(item.text)
                        with stream.final_response as final:
                            native_usage = final.get_usage()
                            reason = final.finish_reason
                    if reason == FinishReason.ERROR:
                        raise FoundryError(
                            f"{self.model_id} stopped with an error",
                            hint="rerun with CURATOR_DEBUG=1 to see Foundry's log",
                        )
                    yield ChatChunk(
                        "",
                        Usage(int(native_usage.prompt_tokens), int(native_usage.completion_tokens)),
                        "length" if reason == FinishReason.LENGTH else "stop",
                    )
            except Exception as exc:
                if isinstance(exc, FoundryError) or not is_sdk_error(exc):
                    raise
                raise foundry_error(
                    exc, f"{self.model_id} failed to answer", f"curator smoke {self.model_id}"
                ) from None

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatResult:
        """:meth:`chat_stream`, collected: the whole text, usage and finish reason."""
        parts: list[str] = []
        usage: Usage | None = None
        reason = "stop"
        for chunk in self.chat_stream(
            messages, max_tokens=max_tokens, temperature=temperature, seed=seed
        ):
            parts.append(chunk.text)
            if chunk.usage is not None:
                usage, reason = chunk.usage, chunk.finish_reason or "stop"
        if usage is None:
            raise FoundryError(
                f"{self.model_id} reported no token usage", hint="rerun with CURATOR_DEBUG=1"
            )
        return ChatResult("".join(parts), usage, reason)

    def _unload_native(self) -> None:
        with self._generate:
            if self.unloaded:
                return
            self.unloaded = True
            try:
                if self._variant.is_loaded:
                    self._variant.unload()
            except Exception as exc:
                if is_sdk_error(exc):
                    raise foundry_error(exc, f"cannot unload {self.model_id}", "retry") from None
                raise

    def unload(self) -> None:
        """Free the model's memory; waits for a running generation to finish first."""
        with self._owner._lock:
            if self._owner._loaded.get(self.model_id) is self:
                del self._owner._loaded[self.model_id]
        self._unload_native()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *_: object) -> None:
        self.unload()
