"""An OpenAI-compatible HTTP server over the models registered with Foundry Local (FastAPI).

``GET /v1/models`` lists the local catalog (ids, then aliases); ``POST /v1/chat/completions``
answers with or without ``stream`` (server-sent events ending in ``data: [DONE]``), with ``usage``
from the runtime (in the final stream chunk when ``stream_options.include_usage``). Errors use
OpenAI's error format; nothing a client sends is answered with a 500.

Scheduling (see :class:`curator.serve.limits.ServeLimits`): a model is loaded on its first
request and stays loaded until the server stops. Up to ``parallel`` generations run on one model
at the same time, each on its own worker thread in its own native session; up to ``queue`` more
wait for a slot in arrival order; beyond that a request gets 429 with Retry-After. A streamed
request gets its response headers as soon as it is admitted, before it has a slot. A request
whose client goes away (streamed or not, waiting or running) stops within one token.
"""

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.compile.chat_templates import is_completion_only
from curator.errors import CuratorError, NotFound, UsageProblem
from curator.foundry import (
    MODEL_ID_RE,
    ChatChunk,
    FoundryRuntime,
    LoadedModel,
    RegisteredModel,
    runtime,
)
from curator.serve import aliases
from curator.serve.limits import ServeLimits
from curator.serve.memory import LARGE_BODY_BYTES, release_free_memory
from curator.serve.openai_types import (
    ApiError,
    ChatRequest,
    bad_request,
    chunk_body,
    completion_body,
    completion_id,
    context_length_exceeded,
    model_body,
    parse_chat_request,
    parse_request_json,
    usage_chunk_body,
)
from curator.serve.scheduler import ModelSlots, Place

_END = object()


def _not_found(name: str) -> ApiError:
    return ApiError(
        404, f"The model '{name}' does not exist", param="model", code="model_not_found"
    )


def _check_kind(registered: RegisteredModel, chat: bool) -> None:
    """A completion-only build (a base model) has no chat format: chat goes to /v1/completions."""
    base = is_completion_only(registered.path)
    if chat and base:
        raise bad_request(
            f"{registered.id} is a completion-only model (a base model without a chat format): "
            "send its text to POST /v1/completions",
            "model",
        )
    if not chat and not base:
        raise bad_request(
            f"{registered.id} is a chat model: send messages to POST /v1/chat/completions "
            "(/v1/completions serves completion-only models)",
            "model",
        )


# /v1/completions fields beyond the chat request's that only their default value may take.
_COMPLETION_DEFAULTS: dict[str, Any] = {
    "echo": False,
    "suffix": None,
    "best_of": 1,
    "logprobs": None,
}


def parse_completion_request(body: Any, limits: ServeLimits) -> ChatRequest:
    """A ``POST /v1/completions`` body as the chat request the runtime runs: the prompt is one
    user message, which a completion-only model's template passes through unchanged."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise bad_request("'prompt' is required and must be one non-empty string", "prompt")
    for name, default in _COMPLETION_DEFAULTS.items():
        if body.get(name, default) != default:
            raise ApiError(
                400, f"{name} is not supported", param=name, code="unsupported_parameter"
            )
    if body.get("stream"):
        raise ApiError(
            400,
            "stream is not supported on /v1/completions",
            param="stream",
            code="unsupported_parameter",
        )
    chat_body = {k: v for k, v in body.items() if k not in _COMPLETION_DEFAULTS and k != "prompt"}
    chat_body["messages"] = [{"role": "user", "content": prompt}]
    return parse_chat_request(chat_body, limits)


def text_completion_body(
    cid: str, model: str, text: str, finish_reason: str, usage: Any
) -> dict[str, Any]:
    body = completion_body(cid, model, text, finish_reason, usage)
    body["id"] = cid.replace("chatcmpl-", "cmpl-", 1)
    body["object"] = "text_completion"
    body["choices"] = [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]
    return body


@dataclass
class _Worker:
    """One model: its generation threads, admission and loaded handle."""

    executor: ThreadPoolExecutor
    slots: ModelSlots
    loaded: LoadedModel | None = None
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelPool:
    """Resolves names, loads models on demand and runs their generations off the event loop."""

    def __init__(self, rt: FoundryRuntime, limits: ServeLimits) -> None:
        self.rt = rt
        self.limits = limits
        self._workers: dict[str, _Worker] = {}
        self._guard = threading.Lock()

    def registered(self) -> list[RegisteredModel]:
        return self.rt.list_registered()

    def resolve(self, name: str) -> RegisteredModel | None:
        """``name`` as Foundry Local takes it: an id, an id without version, or an alias."""
        found = self.rt.get(name) if MODEL_ID_RE.match(name) else None
        return found or aliases.resolve(name, self.registered())

    def _worker(self, model_id: str) -> _Worker:
        with self._guard:
            worker = self._workers.get(model_id)
            if worker is None:
                parallel = self.limits.parallel
                worker = _Worker(
                    ThreadPoolExecutor(parallel, thread_name_prefix=f"gen-{model_id}"),
                    ModelSlots(model_id, parallel, self.limits.queue),
                )
                self._workers[model_id] = worker
            return worker

    async def loaded(self, name: str, *, chat: bool = True) -> tuple[str, _Worker, LoadedModel]:
        """The resolved id, its worker and the loaded model; ApiError 404 if not registered, 400
        when a completion-only model is asked to chat or a chat model to complete (issue 21)."""
        try:
            registered = await asyncio.to_thread(self.resolve, name)
        except CuratorError as exc:
            raise ApiError(500, exc.message, type="server_error") from None
        if registered is None:
            raise _not_found(name)
        _check_kind(registered, chat)
        model_id = registered.id
        worker = self._worker(model_id)
        async with worker.load_lock:
            if worker.loaded is None or worker.loaded.unloaded:
                loop = asyncio.get_running_loop()
                try:
                    worker.loaded = await loop.run_in_executor(
                        worker.executor, self.rt.load, model_id
                    )
                except NotFound:
                    raise _not_found(name) from None
                except CuratorError as exc:
                    raise ApiError(500, exc.message, type="server_error") from None
            return model_id, worker, worker.loaded

    async def max_tokens(self, loaded: LoadedModel, request: ChatRequest) -> int:
        """The answer's token budget: as asked if it fits the context, else 400; unset, the room
        the prompt leaves (at most ``limits.default_max_tokens``)."""
        try:
            budget = await asyncio.to_thread(loaded.context_budget, request.message_dicts())
        except UsageProblem as exc:
            raise bad_request(exc.message, "messages") from None
        except CuratorError as exc:
            raise ApiError(500, exc.message, type="server_error") from None
        asked = request.max_tokens
        if asked is None:
            if budget.room < 1:
                raise context_length_exceeded(budget.prompt_tokens, 0, budget.context_length)
            return min(budget.room, self.limits.default_max_tokens)
        if budget.prompt_tokens + asked > budget.context_length:
            raise context_length_exceeded(budget.prompt_tokens, asked, budget.context_length)
        return asked

    async def generate(
        self,
        worker: _Worker,
        loaded: LoadedModel,
        request: ChatRequest,
        max_tokens: int,
    ) -> AsyncIterator[ChatChunk]:
        """The answer's chunks as a worker thread produces them; ApiError on failure. Closing
        this iterator (or cancelling its consumer) stops the generation within one token."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def job() -> None:
            try:
                if cancel.is_set():
                    return
                chunks = loaded.chat_stream(
                    request.message_dicts(),
                    max_tokens=max_tokens,
                    sampling=request.sampling,
                    cancel=cancel,
                )
                with contextlib.closing(chunks):
                    for chunk in chunks:
                        put(chunk)
            except Exception as exc:
                put(exc)
            finally:
                put(_END)

        loop.run_in_executor(worker.executor, job)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, UsageProblem):  # what the client sent, found by the runtime
                    raise bad_request(item.message)
                if isinstance(item, CuratorError):
                    raise ApiError(500, item.message, type="server_error")
                if isinstance(item, Exception):
                    raise ApiError(500, f"generation failed: {item}", type="server_error")
                yield item
        finally:
            cancel.set()

    def close(self) -> None:
        with self._guard:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.executor.shutdown(wait=True, cancel_futures=True)
        self.rt.close()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts_for(bind_host: str) -> tuple[str, ...]:
    """Host headers to accept: on a loopback address only loopback names (a web page that rebinds
    its own name to 127.0.0.1 is refused); on any other address, whatever the operator chose."""
    import ipaddress

    try:
        loopback = ipaddress.ip_address(bind_host.strip("[]")).is_loopback
    except ValueError:
        loopback = bind_host == "localhost"
    return LOOPBACK_HOSTS if loopback else ("*",)


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, or ApiError 413 as soon as it is known to exceed ``limit`` bytes (a
    declared Content-Length is refused before anything is read)."""
    too_large = ApiError(
        413,
        f"the request body is larger than this server's limit of {limit} bytes",
        code="request_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise bad_request("bad Content-Length header") from None
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


async def _client_gone(request: Any) -> None:
    """Returns when the client disconnects (the body has been read: only that can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class AccessLog:
    """One line per request once its response has ended (streams included): method, path,
    status, milliseconds. A plain ASGI wrapper: it leaves ``receive`` alone, so a client's
    disconnect still reaches the request within one token."""

    def __init__(self, app: Any, log: Callable[[str], None]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: list[int] = []

        async def sending(message: Any) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - start) * 1000
            code = status[0] if status else "-"
            self.log(f"{scope.get('method', '-')} {scope.get('path', '-')} {code} {ms:.0f} ms")


def create_app(
    cache_dir: Path | None = None,
    allowed_hosts: tuple[str, ...] = ("*",),
    limits: ServeLimits | None = None,
    log: Callable[[str], None] | None = None,
    rt: FoundryRuntime | None = None,
) -> Any:
    """The FastAPI application serving the models registered in ``cache_dir``; ``log`` gets one
    line per request. ``rt`` is the runtime to serve from (default: Foundry Local's, started
    with the app); the server closes it when it stops."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    limits = limits or ServeLimits()
    pool_holder: dict[str, ModelPool] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        pool_holder["pool"] = ModelPool(rt if rt is not None else runtime(cache_dir), limits)
        try:
            yield
        finally:
            await asyncio.to_thread(pool_holder.pop("pool").close)

    app = FastAPI(title="curator serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    if log is not None:
        app.add_middleware(AccessLog, log=log)  # outermost: refused hosts are logged too

    def error_response(error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(ApiError(exc.status_code, str(exc.detail), type=kind))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Up and serving: what a load balancer or a script polls."""
        pool = pool_holder.get("pool")
        return {"status": "ok" if pool is not None else "starting"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        registered = await asyncio.to_thread(pool_holder["pool"].registered)
        now = int(time.time())
        data = [model_body(m.id, m.publisher, now) for m in registered]
        data += [
            model_body(alias, m.publisher, now, root=m.id)
            for alias, m in aliases.aliases(registered).items()
        ]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(pool_holder["pool"].resolve, model_id)
        if found is None:
            raise _not_found(model_id)
        root = found.id if found.id != model_id else None
        return model_body(model_id, found.publisher, int(time.time()), root=root)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        # JSON only: a web page can send text/plain to loopback without a CORS preflight.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "send the request as Content-Type: application/json")
        raw = await read_body(request, limits.max_body_bytes)
        if len(raw) < LARGE_BODY_BYTES:
            return await answer_chat(request, raw)
        try:
            return await answer_chat(request, raw)
        finally:
            del raw
            await asyncio.to_thread(release_free_memory)

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "send the request as Content-Type: application/json")
        raw = await read_body(request, limits.max_body_bytes)
        completion = parse_completion_request(parse_request_json(raw), limits)
        pool = pool_holder["pool"]
        model_id, worker, loaded = await pool.loaded(completion.model, chat=False)
        place = worker.slots.admit()
        try:
            max_tokens = await pool.max_tokens(loaded, completion)
            parts: list[str] = []
            last: ChatChunk | None = None
            async with place.run_slot():
                async for chunk in pool.generate(worker, loaded, completion, max_tokens):
                    parts.append(chunk.text)
                    last = chunk
        finally:
            place.close()
        if last is None or last.usage is None:
            raise ApiError(500, "the runtime reported no usage", type="server_error")
        return JSONResponse(
            text_completion_body(
                completion_id(), model_id, "".join(parts), last.finish_reason or "stop", last.usage
            )
        )

    async def answer_chat(request: Request, raw: bytes) -> Response:
        body = parse_request_json(raw)  # a 400 for NaN and nesting too deep, not a 500
        chat = parse_chat_request(body, limits)
        del body
        pool = pool_holder["pool"]
        model_id, worker, loaded = await pool.loaded(chat.model)
        place = worker.slots.admit()
        try:
            max_tokens = await pool.max_tokens(loaded, chat)
        except BaseException:
            place.close()
            raise
        cid = completion_id()
        if chat.stream:
            events = _sse(
                chat, model_id, cid, place, pool.generate(worker, loaded, chat, max_tokens)
            )
            # Started here, so that however the response ends (even never sent) closing the
            # generator gives the place back.
            first = await events.__anext__()
            return StreamingResponse(
                _prepend(first, events),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )

        async def answer() -> JSONResponse:
            parts: list[str] = []
            last: ChatChunk | None = None
            async with place.run_slot():
                async for chunk in pool.generate(worker, loaded, chat, max_tokens):
                    parts.append(chunk.text)
                    last = chunk
            if last is None or last.usage is None:
                raise ApiError(500, "the runtime reported no usage", type="server_error")
            reason = last.finish_reason or "stop"
            return JSONResponse(completion_body(cid, model_id, "".join(parts), reason, last.usage))

        work = asyncio.ensure_future(answer())
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # the client went away: stop generating (or waiting)
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, ApiError):
                    await work
                return Response(status_code=499)
            return work.result()
        finally:
            gone.cancel()
            place.close()

    return app


async def _prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


async def _sse(
    chat: ChatRequest,
    model_id: str,
    cid: str,
    place: Place,
    chunks: AsyncIterator[ChatChunk],
) -> AsyncIterator[str]:
    created = int(time.time())

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        yield event(chunk_body(cid, model_id, created, {"role": "assistant", "content": ""}))
        async with place.run_slot():
            try:
                async for chunk in chunks:
                    if chunk.text:
                        yield event(chunk_body(cid, model_id, created, {"content": chunk.text}))
                    if chunk.usage is not None:
                        reason = chunk.finish_reason or "stop"
                        yield event(chunk_body(cid, model_id, created, {}, reason))
                        if chat.include_usage:
                            yield event(usage_chunk_body(cid, model_id, created, chunk.usage))
            except ApiError as exc:
                yield event(exc.body())
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
        yield "data: [DONE]\n\n"
    finally:
        place.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); the caller reads the bound port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CuratorError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another --port (0 picks a free one)",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    host: str,
    port: int,
    cache_dir: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    limits: ServeLimits | None = None,
    log: Callable[[str], None] | None = None,
    rt: FoundryRuntime | None = None,
) -> None:
    """Run the server until Ctrl-C (a clean stop: it returns); ``on_ready`` gets the base URL
    (``http://h:p/v1``), ``log`` one line per request; ``rt`` as in :func:`create_app`.

    Foundry Local starts before the server listens, so a missing install or an unusable cache
    directory is a one-line error here, not a traceback from inside the server's startup."""
    try:
        import uvicorn
    except ImportError as exc:
        raise UsageProblem(
            f"the server's packages are not installed ({exc})",
            hint="pip install 'curator[serve]' (or '.[serve]' in a checkout)",
        ) from None
    if rt is None:
        rt = runtime(cache_dir)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        create_app(cache_dir, allowed_hosts_for(host), limits, log, rt),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{shown_host}:{bound_port}/v1")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stopped gracefully and re-raised the signal: done
        pass
    finally:
        sock.close()
