"""Where requests go: Foundry Local in this process, or an OpenAI-compatible HTTP endpoint.

Both yield :class:`StreamChunk` s from one streamed chat completion, and every call is independent
(no chat history carried between rounds), so each round is the same work.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from curator.bench.measure import StreamChunk, TokenCounter, TokenizerFileCounter, Usage
from curator.cache.modeldir import find_model_dir
from curator.errors import BenchError
from curator.names import load_registered
from curator.prompts import Message

DEFAULT_ENDPOINT_ENV = "FOUNDRY_LOCAL_ENDPOINT"


class Backend(Protocol):
    """What the runner needs from a place that serves models."""

    kind: str  # "in-process" or "endpoint"
    concurrent: bool  # may several requests run at once?

    def load(self, model_id: str) -> float | None:
        """Make the model ready; the cold load time in ms, None where it cannot be measured."""
        ...

    def stream(
        self,
        model_id: str,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[StreamChunk]:
        """One streamed chat completion; the request starts at the first ``next``."""
        ...

    def unload(self, model_id: str) -> None: ...

    def serving_pid(self) -> int | None:
        """The process whose memory serves the model (None: unknown)."""
        ...

    def token_counter(self, model_id: str) -> TokenCounter | None:
        """Where usage may be missing: a tokenizer-based counter for this model, if one is found."""
        ...

    def close(self) -> None: ...


class FoundryBackend:
    """Foundry Local in this process, through curator.foundry (the only SDK user)."""

    kind = "in-process"
    concurrent = False

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._loaded: dict[str, Any] = {}
        self._runtime: Any = None

    def _get_runtime(self) -> Any:
        from curator import foundry  # start-up: loads curator.foundry

        if self._runtime is None:
            self._runtime = foundry.runtime(self.cache_dir)
        return self._runtime

    def load(self, model_id: str) -> float | None:
        runtime = self._get_runtime()
        start = time.perf_counter()
        self._loaded[model_id] = load_registered(runtime, model_id)  # id, id w/o version, alias
        return (time.perf_counter() - start) * 1000.0

    def stream(
        self,
        model_id: str,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[StreamChunk]:
        loaded = self._loaded[model_id]
        payload = [{"role": m.role, "content": m.content} for m in messages]
        for chunk in loaded.chat_stream(
            payload, max_tokens=max_tokens, temperature=temperature, seed=seed
        ):
            usage = chunk.usage
            yield StreamChunk(
                chunk.text,
                Usage(int(usage.prompt_tokens), int(usage.completion_tokens)) if usage else None,
            )

    def unload(self, model_id: str) -> None:
        loaded = self._loaded.pop(model_id, None)
        if loaded is not None:
            loaded.unload()

    def serving_pid(self) -> int | None:
        return os.getpid()

    def token_counter(self, model_id: str) -> TokenCounter | None:
        loaded = self._loaded.get(model_id)
        resolved = str(getattr(loaded, "model_id", model_id)) if loaded is not None else model_id
        return _counter_from_cache(self.cache_dir, resolved)

    def close(self) -> None:
        for model_id in list(self._loaded):
            self.unload(model_id)


class EndpointBackend:
    """An OpenAI-compatible server (``curator serve``, Foundry Local's service, others)."""

    kind = "endpoint"
    concurrent = True

    def __init__(
        self,
        url: str,
        *,
        server_pid: int | None = None,
        cache_dir: Path | None = None,
        timeout: float = 600.0,
        max_connections: int = 16,
        api_key: str | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise BenchError(
                "benchmarking an endpoint needs the httpx package",
                hint="pip install httpx (or install curator with the dev extra)",
            ) from None

        self.base_url = normalize_endpoint(url)
        self.server_pid = server_pid
        self.cache_dir = cache_dir
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections),
            headers=headers,
        )
        self._served: set[str] | None = None

    def check_reachable(self) -> None:
        """BenchError (one line, with a hint) when nothing answers at the endpoint at all."""
        import httpx

        try:
            self._client.get(f"{self.base_url}/models", timeout=10.0)
        except httpx.TransportError as exc:
            raise BenchError(
                f"cannot reach {self.base_url}: {exc}",
                hint="start the server (curator serve) or fix --endpoint / $FOUNDRY_LOCAL_ENDPOINT",
            ) from None

    def served_models(self) -> set[str] | None:
        """Ids from ``GET /v1/models`` (None if the endpoint does not list them)."""
        import httpx

        if self._served is None:
            try:
                response = self._client.get(f"{self.base_url}/models")
                response.raise_for_status()
                data = response.json().get("data", [])
                self._served = {str(item.get("id")) for item in data if isinstance(item, dict)}
            except (httpx.HTTPError, ValueError, AttributeError):
                return None
        return self._served

    def load(self, model_id: str) -> float | None:
        import httpx

        try:
            served = self.served_models()
        except httpx.HTTPError as exc:  # pragma: no cover - served_models handles these
            raise BenchError(f"endpoint {self.base_url} unreachable: {exc}") from None
        if served is not None and model_id not in served:
            listed = ", ".join(sorted(served)) or "none"
            raise BenchError(f"{self.base_url} does not serve {model_id} (it lists: {listed})")
        return None

    def stream(
        self,
        model_id: str,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[StreamChunk]:
        body: dict[str, Any] = {
            "model": model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if seed is not None:
            body["seed"] = seed
        url = f"{self.base_url}/chat/completions"
        with self._client.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise BenchError(f"HTTP {response.status_code}: {_error_text(response.text)}")
            if "text/event-stream" in response.headers.get("content-type", ""):
                yield from parse_sse(response.iter_lines())
            else:  # a server that ignores "stream": one whole answer (TTFT = latency)
                response.read()
                yield from parse_completion(response.text)

    def unload(self, model_id: str) -> None:
        return None

    def serving_pid(self) -> int | None:
        return self.server_pid

    def token_counter(self, model_id: str) -> TokenCounter | None:
        return _counter_from_cache(self.cache_dir, model_id) if self.cache_dir else None

    def close(self) -> None:
        self._client.close()


def parse_sse(lines: Iterator[str]) -> Iterator[StreamChunk]:
    """Chunks from the ``data:`` lines of an OpenAI chat-completion event stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise BenchError(f"malformed server-sent event: {data[:200]}") from None
        if "error" in event:
            raise BenchError(f"endpoint error: {_error_text(json.dumps(event))}")
        text = ""
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
        usage = event.get("usage")
        parsed = None
        if isinstance(usage, dict) and "completion_tokens" in usage:
            parsed = Usage(int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"]))
        if text or parsed:
            yield StreamChunk(text, parsed)


def parse_completion(body: str) -> Iterator[StreamChunk]:
    """The single chunk of a non-streamed chat completion."""
    try:
        data = json.loads(body)
        message = data["choices"][0]["message"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        raise BenchError(f"not a chat completion: {body[:200]}") from None
    usage = data.get("usage")
    parsed = None
    if isinstance(usage, dict) and "completion_tokens" in usage:
        parsed = Usage(int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"]))
    yield StreamChunk(str(message.get("content") or ""), parsed)


def normalize_endpoint(url: str) -> str:
    """``http://host:port``, ``.../`` or ``.../v1`` -> ``http://host:port/v1``."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise BenchError(
            f"not an http(s) URL: {url!r}", hint="e.g. --endpoint http://127.0.0.1:5273"
        )
    return base if base.endswith("/v1") else f"{base}/v1"


def _error_text(body: str) -> str:
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:300]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    return body.strip()[:300]


def _counter_from_cache(cache_dir: Path, model_id: str) -> TokenCounter | None:
    model_dir = find_model_dir(cache_dir, model_id)
    if model_dir is None or not (model_dir / "tokenizer.json").is_file():
        return None
    return TokenizerFileCounter(model_dir / "tokenizer.json")
