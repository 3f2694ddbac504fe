"""The OpenAI chat-completions wire format: parse a request, shape responses, chunks and errors.

Plain dicts and frozen dataclasses only (no web framework here), so it is easy to test.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from curator.foundry import ROLES, Usage
from curator.foundry.model import Sampling
from curator.serve.limits import ServeLimits

MAX_STOP_STRINGS = 4  # OpenAI's limit
INT32_MAX = 2**31 - 1
# Accepted and meaningless here (bookkeeping for hosted services): ignored.
IGNORED_FIELDS = frozenset(
    {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options"}
)
KNOWN_FIELDS = IGNORED_FIELDS | {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "n",
    "stream",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
}


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {message, type, param, code}}``.

    ``headers`` go on the HTTP response (e.g. ``Retry-After`` on a 429).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unsupported(param: str, message: str) -> ApiError:
    """A 400 for a parameter this server cannot honour (never silently ignored)."""
    return ApiError(400, message, param=param, code="unsupported_parameter")


def context_length_exceeded(prompt_tokens: int, max_tokens: int, context_length: int) -> ApiError:
    """OpenAI's 400 for a request that does not fit the model's context, with the numbers."""
    if max_tokens:
        asked = (
            f"However, you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in "
            f"the messages, {max_tokens} in the completion). Please reduce the length of the "
            "messages or completion."
        )
    else:
        asked = (
            f"However, your messages resulted in {prompt_tokens} tokens, which leaves no room "
            "for an answer. Please reduce the length of the messages."
        )
    return ApiError(
        400,
        f"This model's maximum context length is {context_length} tokens. {asked}",
        param="messages",
        code="context_length_exceeded",
    )


MAX_MODEL_NAME = 256  # longer than any model id; an echo of it stays short
MAX_SHOWN = 80  # characters of a client's field name repeated in an error


def _shown(text: str) -> str:
    """A name the client sent, fit to repeat in a one-line error (escaped, cut)."""
    escaped = json.dumps(text[: MAX_SHOWN + 1])[1:-1]  # control characters as \u001f ...
    return escaped if len(escaped) <= MAX_SHOWN else escaped[:MAX_SHOWN] + "..."


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_request_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400: not UTF-8, not JSON, NaN or Infinity (not JSON either,
    though Python's parser takes them), or nested too deep for the parser."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_request("the request body is not valid JSON") from None


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request; ``max_tokens`` None means "what fits"."""

    model: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int | None
    sampling: Sampling
    stream: bool
    include_usage: bool

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


def parse_chat_request(body: Any, limits: ServeLimits | None = None) -> ChatRequest:
    """Validate a ``POST /v1/chat/completions`` body; ApiError(400) names the bad field.

    Every parameter is either honoured or refused with a 400 that says so: nothing a client
    sends is silently ignored except hosted-service bookkeeping (``user``, ``metadata``, ...).
    """
    limits = limits or ServeLimits()
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", "model")
    if len(model) > MAX_MODEL_NAME:
        raise bad_request(f"'model' is longer than {MAX_MODEL_NAME} characters", "model")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        name = _shown(unknown[0])
        raise unsupported(name, f"unrecognized request argument: {name}")
    _refuse_unsupported(body)
    messages = _messages(body.get("messages"), limits)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= INT32_MAX
    ):
        raise bad_request(
            f"'max_tokens' must be a positive integer (at most {INT32_MAX})", "max_tokens"
        )
    n = body.get("n", 1)
    if n not in (1, None):
        raise unsupported("n", "only n=1 is supported")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad_request("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        sampling=_sampling(body),
        stream=bool(stream),
        include_usage=bool((options or {}).get("include_usage", False)),
    )


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"'{name}' must be a number", name)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}", name)
    return float(value)


def _sampling(body: dict[str, Any]) -> Sampling:
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    if top_p == 0:
        raise bad_request("'top_p' must be greater than 0", "top_p")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise bad_request("'top_k' must be a non-negative integer", "top_k")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("'seed' must be an integer", "seed")
    for penalty in ("frequency_penalty", "presence_penalty"):
        if _number(body, penalty, -2, 2):
            raise unsupported(
                penalty,
                f"'{penalty}' is not supported: Foundry Local's runtime has only a repetition "
                "penalty, with different semantics; send 0 or leave it out",
            )
    return Sampling(
        temperature=temperature or 0.0,
        top_p=top_p,
        # The runtime reads both as 32-bit integers: a larger top_k means "all tokens" anyway, and
        # a 64-bit seed is folded into the range, the same seed always to the same value.
        top_k=None if top_k is None else min(top_k, INT32_MAX),
        seed=seed if seed is None or -INT32_MAX <= seed <= INT32_MAX else seed % INT32_MAX,
        stop=_stop(body.get("stop")),
        json_schema=_json_schema(body.get("response_format")),
    )


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    stops = [raw] if isinstance(raw, str) else raw
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad_request("'stop' must be a non-empty string or an array of them", "stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise bad_request(f"'stop' takes at most {MAX_STOP_STRINGS} strings", "stop")
    if any("\x00" in stop for stop in stops):
        raise bad_request("'stop' strings must not contain NUL characters", "stop")
    return tuple(_text(stop, "stop") for stop in stops)


def _json_schema(raw: Any) -> str | None:
    """The JSON Schema text that ``response_format`` asks answers to follow (None: free text)."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json.dumps({"type": "object"})
    if kind == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request(
                "response_format.json_schema.schema must be a JSON Schema object",
                "response_format",
            )
        return json.dumps(schema)
    raise bad_request(
        "response_format.type must be 'text', 'json_object' or 'json_schema'", "response_format"
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body.get("tools") or body.get("functions"):
        param = "tools" if body.get("tools") else "functions"
        raise unsupported(
            param,
            f"tool calling is not supported by curator serve; send the request without '{param}'",
        )
    for choice in ("tool_choice", "function_call"):
        if body.get(choice) not in (None, "none", "auto"):
            raise unsupported(choice, f"'{choice}' needs tools, which are not supported")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise unsupported("logprobs", "'logprobs' is not supported by curator serve")
    if body.get("logit_bias"):
        raise unsupported("logit_bias", "'logit_bias' is not supported by curator serve")


def _messages(raw: Any, limits: ServeLimits) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty array", "messages")
    if len(raw) > limits.max_messages:
        raise bad_request(
            f"'messages' has {len(raw)} entries; this server takes at most {limits.max_messages}",
            "messages",
        )
    out: list[tuple[str, str]] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object", where)
        role = message.get("role")
        if role in ("tool", "function"):
            raise unsupported(f"{where}.role", "tool calling is not supported by curator serve")
        if role not in ROLES:
            raise bad_request(f"{where}.role must be one of {', '.join(ROLES)}", f"{where}.role")
        out.append((str(role), _content(message.get("content"), f"{where}.content")))
    if not any(role == "user" for role, _ in out):
        raise bad_request("'messages' must contain a user message", "messages")
    if not any(content for _, content in out):
        raise bad_request("the messages have no text to answer", "messages")
    chars = sum(len(content) for _, content in out)
    if chars > limits.max_prompt_chars:
        raise bad_request(
            f"the messages hold {chars} characters; this server takes at most "
            f"{limits.max_prompt_chars}",
            "messages",
            code="context_length_exceeded",
        )
    return tuple(out)


def _text(text: str, where: str) -> str:
    """``text``, if the runtime can take it: UTF-8 encodable (JSON allows lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{where} is not valid Unicode (a lone surrogate)", where) from None
    return text


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return _text(content, where)
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise bad_request(f"{where}: only text content parts are supported", where)
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{where}: a text part needs a 'text' string", where)
            texts.append(text)
        return _text("".join(texts), where)
    raise bad_request(f"{where} must be a string or an array of text parts", where)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(
    cid: str, model: str, text: str, finish_reason: str, usage: Usage
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage_body(usage),
    }


def chunk_body(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, str],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def usage_chunk_body(cid: str, model: str, created: int, usage: Usage) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_body(usage),
    }


def model_body(
    model_id: str, owned_by: str | None, created: int, root: str | None = None
) -> dict[str, Any]:
    """A model object; an alias carries the id it resolves to as ``root``."""
    body: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": owned_by or "local",
    }
    if root is not None:
        body["root"] = root
    return body
