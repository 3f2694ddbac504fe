"""A model loaded in this process and generation on it (streamed chat in a fresh native session).

Generations on one model may run at the same time, each in its own native chat session over the
one loaded model (the runtime runs them side by side; how many at once is the caller's choice,
e.g. ``curator serve --parallel``). Unloading waits until the running generations have ended.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.errors import FoundryError, UsageProblem
from curator.foundry._native import clean_native_message, foundry_error, is_sdk_error, sdk_errors
from curator.foundry.types import ROLES, ChatChunk, ChatResult, Usage

if TYPE_CHECKING:
    from curator.foundry.manager import FoundryRuntime

# The request option Foundry Local's own web service uses for OpenAI's ``stop``: a JSON list of
# strings; generation ends before a stop string and the string is not returned.
_STOP_STRINGS_OPTION = "__foundry_local_internal_stop_strings_json"
# How the runtime words a JSON schema its guided decoding cannot compile (the caller's mistake).
_GRAMMAR_ERROR = "Error creating grammar"


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens and when to stop, beyond ``max_tokens``.

    ``temperature`` 0 is greedy decoding (``top_p``/``top_k``/``seed`` then change nothing);
    above 0 samples, reproducibly with ``seed``. ``stop`` strings end the answer before them
    (never emitted). ``json_schema`` (a JSON Schema document as text) constrains the answer to
    JSON that matches it (the runtime's guided decoding).
    """

    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: str | None = None


@dataclass(frozen=True)
class ContextBudget:
    """How many tokens ``messages`` take once the chat template is applied, and the model's
    context length (prompt plus answer must fit in it)."""

    prompt_tokens: int
    context_length: int

    @property
    def room(self) -> int:
        """Tokens left for the answer."""
        return max(0, self.context_length - self.prompt_tokens)


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


def _check_sampling(sampling: Sampling) -> None:
    if sampling.temperature < 0:
        raise UsageProblem(f"temperature must be >= 0, not {sampling.temperature}", hint="fix it")
    if sampling.top_p is not None and not 0 < sampling.top_p <= 1:
        raise UsageProblem(f"top_p must be in (0, 1], not {sampling.top_p}", hint="fix it")
    if sampling.top_k is not None and sampling.top_k < 0:
        raise UsageProblem(f"top_k must be >= 0, not {sampling.top_k}", hint="fix it")
    if any(not stop for stop in sampling.stop):
        raise UsageProblem("stop strings must not be empty", hint="fix it")


def _request_options(max_tokens: int, sampling: Sampling, vocab_size: int | None = None) -> Any:
    from foundry_local_sdk import RequestOptions, SearchOptions

    search = SearchOptions(max_output_tokens=max_tokens, temperature=sampling.temperature)
    search.do_sample = sampling.temperature > 0
    if search.do_sample:
        search.seed = sampling.seed
        search.top_p = sampling.top_p
        # The runtime refuses a top_k above the vocabulary; it means "every token" all the same.
        top_k = sampling.top_k
        search.top_k = top_k if top_k is None or vocab_size is None else min(top_k, vocab_size)
    extra: dict[str, str] = {}
    if sampling.stop:
        extra[_STOP_STRINGS_OPTION] = json.dumps(list(sampling.stop))
    if sampling.json_schema is not None:
        extra["guidance_type"] = "json_schema"
        extra["guidance_data"] = sampling.json_schema
    return RequestOptions(search=search, additional_options=extra)


def _native_request(messages: Sequence[dict[str, str]]) -> Any:
    from foundry_local_sdk import MessageItem, MessageRole, Request

    roles = {
        "system": MessageRole.SYSTEM,
        "developer": MessageRole.DEVELOPER,
        "user": MessageRole.USER,
        "assistant": MessageRole.ASSISTANT,
    }
    request = Request()
    for message in messages:
        request.add_item(MessageItem(roles[message["role"]], message["content"]))
    return request


class LoadedModel:
    """A model loaded in this process. Get it with :meth:`FoundryRuntime.load`."""

    def __init__(self, owner: FoundryRuntime, model_id: str, variant: Any) -> None:
        self.model_id = model_id
        self.unloaded = False
        self._owner = owner
        self._variant = variant
        # Counts running generations (by thread) so that unloading waits for them to end; a
        # thread that unloads while it holds a suspended stream gets an error, not a deadlock.
        self._generations = threading.Condition()
        self._running: dict[int, int] = {}
        self._vocab: int | None = None  # read on first use; 0: unknown

    def chat_stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
        sampling: Sampling | None = None,
        cancel: threading.Event | None = None,
    ) -> Generator[ChatChunk, None, None]:
        """Stream an answer to ``messages`` (``[{"role": "user", "content": "..."}]``).

        Yields :class:`ChatChunk` text pieces as the runtime produces them, then one final chunk
        with ``text=""``, ``usage`` (the runtime's prompt/completion token counts) and
        ``finish_reason``. Each call is independent (a fresh native session: no shared history).
        ``temperature`` 0 is greedy decoding; above 0 samples, reproducibly with ``seed``;
        ``sampling`` (when given) replaces both and adds top_p/top_k, stop strings and JSON.
        Calls from different threads run at the same time. Generation stops within one token of
        ``cancel`` being set (the stream then ends without a final chunk), and when the iterator
        is closed early; exhaust or close it before :meth:`unload`. Raises UsageProblem for
        malformed messages or options (before anything runs) or a JSON schema the runtime cannot
        compile, and FoundryError for runtime failures (e.g. a missing chat template, a prompt
        too long).
        """
        _check_messages(messages)
        if max_tokens < 1:
            raise UsageProblem(f"max_tokens must be at least 1, not {max_tokens}", hint="fix it")
        chosen = sampling or Sampling(temperature=temperature, seed=seed)
        _check_sampling(chosen)
        if self.unloaded:
            raise FoundryError(f"{self.model_id} was unloaded", hint="load it again")
        return self._stream(list(messages), max_tokens, chosen, cancel or threading.Event())

    def context_budget(self, messages: list[dict[str, str]]) -> ContextBudget:
        """The prompt's token count (chat template applied) and the model's context length."""
        from foundry_local_sdk import ChatSession

        _check_messages(messages)
        with self._generation():
            try:
                session = ChatSession(self._variant)
                with session, _native_request(messages) as request:
                    session.set_options(_request_options(1, Sampling()))
                    result = session.preflight_request(request)
            except Exception as exc:
                if not is_sdk_error(exc):
                    raise
                raise foundry_error(
                    exc,
                    f"{self.model_id} cannot count the prompt",
                    f"curator smoke {self.model_id}",
                ) from None
        return ContextBudget(int(result.prompt_tokens), int(result.context_limit_tokens))

    def _vocab_size(self) -> int | None:
        """The model's vocabulary size from its genai_config.json (None if it cannot be read)."""
        if self._vocab is None:
            try:
                config = Path(self._variant.get_path()) / "genai_config.json"
                size = json.loads(config.read_text(encoding="utf-8"))["model"]["vocab_size"]
                self._vocab = int(size) if isinstance(size, int) and size > 0 else 0
            except Exception:
                self._vocab = 0
        return self._vocab or None

    @contextlib.contextmanager
    def _generation(self) -> Iterator[None]:
        """Count one generation for as long as it runs (unloading waits for the count to drop)."""
        owner = threading.get_ident()
        with self._generations:
            if self.unloaded:
                raise FoundryError(f"{self.model_id} was unloaded", hint="load it again")
            self._running[owner] = self._running.get(owner, 0) + 1
        try:
            yield
        finally:
            with self._generations:
                left = self._running.get(owner, 1) - 1
                if left:
                    self._running[owner] = left
                else:
                    self._running.pop(owner, None)
                self._generations.notify_all()

    def _stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        sampling: Sampling,
        cancel: threading.Event,
    ) -> Generator[ChatChunk, None, None]:
        from foundry_local_sdk import ChatSession, FinishReason, TextItem

        with self._generation():
            try:
                with ChatSession(self._variant) as session, _native_request(messages) as request:
                    session.set_options(_request_options(max_tokens, sampling, self._vocab_size()))
                    session.set_streaming(True)
                    with session.process_streaming_request(request) as stream:
                        # Leaving this loop early (cancel, or the caller closing us) makes the
                        # SDK cancel the native request and wait for it to end.
                        for item in stream:
                            if cancel.is_set():
                                return
                            if isinstance(item, TextItem) and item.text:
                                yield ChatChunk(item.text)
                        if cancel.is_set():
                            return
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
                cause = clean_native_message(str(exc))
                if sampling.json_schema is not None and _GRAMMAR_ERROR in cause:
                    raise UsageProblem(
                        "the JSON schema cannot guide generation: "
                        + cause.split(_GRAMMAR_ERROR, 1)[1].lstrip(": "),
                        hint="fix the schema (a JSON Schema object)",
                    ) from None
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
        sampling: Sampling | None = None,
    ) -> ChatResult:
        """:meth:`chat_stream`, collected: the whole text, usage and finish reason."""
        parts: list[str] = []
        usage: Usage | None = None
        reason = "stop"
        for chunk in self.chat_stream(
            messages, max_tokens=max_tokens, temperature=temperature, seed=seed, sampling=sampling
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
        me = threading.get_ident()
        with self._generations:
            if self._running.get(me):
                raise FoundryError(
                    f"cannot unload {self.model_id} while this thread is generating with it",
                    hint="exhaust or close the stream first",
                )
            if self.unloaded:
                return
            self.unloaded = True  # no new generation starts from here on
            self._generations.wait_for(lambda: not self._running)
            with sdk_errors(f"cannot unload {self.model_id}", "retry"):
                if self._variant.is_loaded:
                    self._variant.unload()

    def unload(self) -> None:
        """Free the model's memory; waits for running generations to finish first."""
        with self._owner._lock:
            if self._owner._loaded.get(self.model_id) is self:
                del self._owner._loaded[self.model_id]
        self._unload_native()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *_: object) -> None:
        self.unload()
