"""Foundry Local in process: the ONLY module that imports foundry_local_sdk (lazily).

The SDK's manager is a process-wide singleton, so this module keeps one :class:`FoundryRuntime`
per process, configured with the model cache directory, a logs directory under
``$CURATOR_HOME/foundry-logs`` and non-essential telemetry off. Use it like this::

    from curator import foundry

    rt = foundry.runtime(cache_dir)                 # or: with foundry.runtime(...) as rt:
    rt.register_model_dir(path, "tiny-generic-cpu:1", foundry.ModelMetadata(license="mit"))
    model = rt.load("tiny-generic-cpu:1")
    for chunk in model.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=32):
        print(chunk.text, end="")                   # the last chunk has chunk.usage set
    model.unload()

Stable interface (other modules build on it): :class:`Usage`, :class:`ChatChunk`,
:class:`ChatResult`, :class:`ModelMetadata`, :class:`RegisteredModel`, :func:`runtime`,
:class:`FoundryRuntime` (``register_model_dir``, ``unregister``, ``list_registered``, ``get``,
``load``, ``close``) and :class:`LoadedModel` (``chat_stream``, ``chat``, ``unload``).

Each ``chat_stream`` call runs in a fresh native chat session, so calls never see each other's
history and repeated rounds do the same work. Generation on one model is serialized by a lock
(the native runtime is not documented as safe for concurrent generation on one model); different
models may generate at the same time. Never import onnxruntime_genai in a process that used this
module: run it in a subprocess.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import FoundryError, NotFound, UsageProblem
from curator.paths import curator_home, foundry_cache_dir

APP_NAME = "curator"
ROLES = ("system", "developer", "user", "assistant")
# Foundry's model id form <name>:<version>; the registry's pattern.
MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]:[1-9][0-9]{0,5}$")


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
    """A model in Foundry's local catalog, as Foundry reports it."""

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


def clean_native_message(text: str) -> str:
    """Drop the ``file.cc:123 signature(...)`` prefix native errors carry; keep the cause."""
    text = text.strip()
    match = re.match(r"^[\w./-]+\.(?:cc|cpp|h):\d+\s+", text)
    if not match:
        return text
    rest = text[match.end() :]
    open_at = rest.find("(")
    if open_at < 0:
        return rest
    depth = 0
    for index in range(open_at, len(rest)):
        if rest[index] == "(":
            depth += 1
        elif rest[index] == ")":
            depth -= 1
            if depth == 0:
                return rest[index + 1 :].strip() or text
    return rest


def _foundry_error(exc: BaseException, what: str, hint: str) -> FoundryError:
    return FoundryError(f"{what}: {clean_native_message(str(exc))}", hint=hint)


def _is_sdk_error(exc: BaseException) -> bool:
    from foundry_local_sdk import FoundryLocalException

    return isinstance(exc, (FoundryLocalException, RuntimeError, ValueError))


class _Process:
    """The process-wide SDK manager and which directories it was configured with."""

    lock = threading.RLock()
    manager: Any = None
    config_key: tuple[str, str] | None = None
    runtime: FoundryRuntime | None = None


def default_logs_dir() -> Path:
    return curator_home() / "foundry-logs"


def runtime(cache_dir: Path | str | None = None, *, logs_dir: Path | None = None) -> FoundryRuntime:
    """The process's runtime for ``cache_dir`` (``--cache-dir`` / ``$FOUNDRY_CACHE_DIR`` / default).

    Returns the same object for the same directories. Asking for another cache directory while a
    model is loaded raises FoundryError (the SDK manager is a process-wide singleton).
    """
    cache = foundry_cache_dir(cache_dir).absolute()
    logs = (logs_dir or default_logs_dir()).absolute()
    key = (str(cache), str(logs))
    with _Process.lock:
        current = _Process.runtime
        if current is not None and _Process.config_key == key and not current.closed:
            return current
        if current is not None and not current.closed:
            if current.loaded_ids():
                raise FoundryError(
                    f"Foundry Local is already running here on {current.cache_dir} with "
                    f"{', '.join(current.loaded_ids())} loaded",
                    hint="use one cache directory per process",
                )
            current.close()
        _reset_manager(cache, logs, key)
        rt = FoundryRuntime(cache, logs)
        _Process.runtime = rt
        return rt


def _reset_manager(cache: Path, logs: Path, key: tuple[str, str]) -> None:
    from foundry_local_sdk import Configuration, FoundryLocalManager, LogLevel

    if _Process.manager is not None and _Process.config_key == key:
        return
    if _Process.manager is not None:
        _Process.manager.close()
        _Process.manager = None
    elif FoundryLocalManager.instance is not None:
        FoundryLocalManager.instance.close()
    cache.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    _quiet_python_logger()
    # Native failures come back as exceptions carrying the native message, so by default the
    # native logger stays silent (it would repeat each error on stderr); CURATOR_DEBUG=1 turns
    # it on, to stderr and to <logs_dir>/foundry_local_<date>.log.
    debug = os.environ.get("CURATOR_DEBUG") == "1"
    config = Configuration(
        app_name=APP_NAME,
        model_cache_dir=str(cache),
        logs_dir=str(logs),
        log_level=LogLevel.WARNING if debug else LogLevel.FATAL,
        disable_nonessential_telemetry=True,
    )
    try:
        FoundryLocalManager.initialize(config)
    except Exception as exc:
        raise _foundry_error(
            exc, "cannot start Foundry Local", "check the cache directory (curator paths)"
        ) from None
    _Process.manager = FoundryLocalManager.instance
    _Process.config_key = key


def _quiet_python_logger() -> None:
    """The SDK's Python logger writes to stdout; move it to stderr (stdout may carry --json)."""
    import logging

    for handler in logging.getLogger("foundry_local_sdk").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


class FoundryRuntime:
    """Foundry Local's local catalog over one model cache directory. Get it with :func:`runtime`.

    A context manager: leaving it unloads the models loaded through it. Methods raise FoundryError
    (native failures, with the native cause) or NotFound (an id that is not registered).
    """

    def __init__(self, cache_dir: Path, logs_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.logs_dir = logs_dir
        self.closed = False
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()

    def __enter__(self) -> FoundryRuntime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _catalog(self) -> Any:
        from foundry_local_sdk import CatalogType

        if self.closed:
            raise FoundryError(
                "the Foundry runtime was closed", hint="call foundry.runtime() again"
            )
        return _Process.manager.get_catalog(CatalogType.LOCAL)

    def _variant(self, model_id: str) -> Any:
        try:
            return self._catalog().get_model_variant(model_id)
        except Exception as exc:
            if _is_sdk_error(exc):
                raise _foundry_error(
                    exc, f"cannot look up {model_id}", "curator cache ls"
                ) from None
            raise

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    def register_model_dir(
        self, path: Path, model_id: str, metadata: ModelMetadata
    ) -> RegisteredModel:
        """Register (or re-register, replacing) ``path`` in the local catalog as ``model_id``.

        Foundry checks only that genai_config.json exists: load-test the model afterwards.
        A model already registered under ``model_id`` is unloaded and replaced.
        """
        from foundry_local_sdk import ModelInfoBuilder

        if not MODEL_ID_RE.match(model_id):
            raise UsageProblem(
                f"bad model id {model_id!r}: Foundry ids look like <name>-<variant>:<version>",
                hint="e.g. tiny-qwen2-generic-cpu:1",
            )
        with self._lock:
            if self._variant(model_id) is not None:
                self.unregister(model_id)
            try:
                with ModelInfoBuilder() as info:
                    _fill_metadata(info, metadata)
                    self._catalog().register_model(
                        model_path=str(path.absolute()), model_id=model_id, metadata=info
                    )
            except Exception as exc:
                if _is_sdk_error(exc):
                    raise _foundry_error(
                        exc, f"Foundry Local refused to register {path}", "curator cache verify"
                    ) from None
                raise
            found = self.get(model_id)
            if found is None:
                raise FoundryError(f"{model_id} is not listed after registering it", hint=None)
            return found

    def unregister(self, model_id: str) -> bool:
        """Unload (if loaded) and unregister ``model_id``; False if it was not registered."""
        with self._lock:
            held = self._loaded.pop(model_id, None)
            if held is not None:
                held._unload_native()
            variant = self._variant(model_id)
            if variant is None:
                return False
            try:
                if variant.is_loaded:
                    variant.unload()
                self._catalog().unregister_model(model_id)
            except Exception as exc:
                if _is_sdk_error(exc):
                    raise _foundry_error(exc, f"cannot unregister {model_id}", "retry") from None
                raise
            return True

    def list_registered(self) -> list[RegisteredModel]:
        """Every model in the local catalog, sorted by id."""
        try:
            models = self._catalog().list_models()
            variants = {v.id: v for m in models for v in m.variants}
            return [_describe(variants[key]) for key in sorted(variants)]
        except Exception as exc:
            if _is_sdk_error(exc):
                raise _foundry_error(exc, "cannot list Foundry models", "curator paths") from None
            raise

    def get(self, model_id: str) -> RegisteredModel | None:
        """The registration of ``model_id``, or None."""
        variant = self._variant(model_id)
        return None if variant is None else _describe(variant)

    def load(self, model_id: str) -> LoadedModel:
        """Load ``model_id`` (once per process; later calls return the same object)."""
        with self._lock:
            held = self._loaded.get(model_id)
            if held is not None and not held.unloaded:
                return held
            variant = self._variant(model_id)
            if variant is None:
                raise NotFound(
                    f"{model_id} is not registered with Foundry Local in {self.cache_dir}",
                    hint="curator register DIR; curator cache ls shows what is registered",
                )
            try:
                variant.load()
            except Exception as exc:
                if _is_sdk_error(exc):
                    raise _foundry_error(
                        exc, f"cannot load {model_id}", f"curator cache verify {model_id}"
                    ) from None
                raise
            loaded = LoadedModel(self, model_id, variant)
            self._loaded[model_id] = loaded
            return loaded

    def close(self) -> None:
        """Unload every model loaded through this runtime (the SDK manager stays for reuse)."""
        with self._lock:
            for model_id in list(self._loaded):
                self._loaded.pop(model_id)._unload_native()
            self.closed = True


def _fill_metadata(info: Any, metadata: ModelMetadata) -> None:
    strings = {
        "task": metadata.task,
        "display_name": metadata.display_name,
        "publisher": metadata.publisher,
        "license": metadata.license,
        "license_description": metadata.license_description,
        "device_type": metadata.device_type,
        "execution_provider": metadata.execution_provider,
    }
    for key, value in strings.items():
        if value:
            info.set_string_property(key, value)
    ints = {
        "filesize_mb": metadata.file_size_mb,
        "context_length": metadata.context_length,
        "max_output_tokens": metadata.max_output_tokens,
        "supports_tool_calling": (
            None if metadata.supports_tool_calling is None else int(metadata.supports_tool_calling)
        ),
    }
    for key, number in ints.items():
        if number is not None:
            info.set_int_property(key, int(number))


def _describe(variant: Any) -> RegisteredModel:
    info = variant.info
    try:
        raw_path = variant.get_path()
    except Exception:
        raw_path = ""
    runtime_info = info.runtime
    return RegisteredModel(
        id=info.id,
        alias=info.alias,
        display_name=info.display_name,
        path=Path(raw_path) if raw_path else None,
        task=info.task,
        publisher=info.publisher,
        license=info.license,
        file_size_mb=info.file_size_mb,
        context_length=info.context_length,
        device_type=(
            str(runtime_info.device_type.value)
            if runtime_info is not None and runtime_info.device_type is not None
            else None
        ),
        execution_provider=runtime_info.execution_provider if runtime_info is not None else None,
        loaded=bool(variant.is_loaded),
    )


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
                if isinstance(exc, FoundryError) or not _is_sdk_error(exc):
                    raise
                raise _foundry_error(
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
                if _is_sdk_error(exc):
                    raise _foundry_error(exc, f"cannot unload {self.model_id}", "retry") from None
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
