"""An OpenAI-compatible HTTP server over the models registered with Foundry Local (FastAPI).

``GET /v1/models`` lists the local catalog; ``POST /v1/chat/completions`` answers with or without
``stream`` (server-sent events ending in ``data: [DONE]``), with ``usage`` from the runtime (in the
final stream chunk when ``stream_options.include_usage``). Errors use OpenAI's error format.

Concurrency: every model has one worker thread; requests for it queue there in arrival order, so
generation never runs concurrently on one model and never on the event loop. A model is loaded
on its first request and stays loaded until the server stops.
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

from curator.errors import CuratorError, NotFound
from curator.foundry import ChatChunk, FoundryRuntime, LoadedModel, runtime
from curator.serve.openai_types import (
    ApiError,
    ChatRequest,
    bad_request,
    chunk_body,
    completion_body,
    completion_id,
    model_body,
    parse_chat_request,
    usage_chunk_body,
)

_END = object()


@dataclass
class _Worker:
    """One model's single generation thread and its loaded handle."""

    executor: ThreadPoolExecutor
    loaded: LoadedModel | None = None
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelPool:
    """Loads models on demand and runs their generations, one at a time per model, off the loop."""

    def __init__(self, rt: FoundryRuntime) -> None:
        self.rt = rt
        self._workers: dict[str, _Worker] = {}
        self._guard = threading.Lock()

    def _worker(self, model_id: str) -> _Worker:
        with self._guard:
            worker = self._workers.get(model_id)
            if worker is None:
                worker = _Worker(ThreadPoolExecutor(1, thread_name_prefix=f"gen-{model_id}"))
                self._workers[model_id] = worker
            return worker

    async def loaded(self, model_id: str) -> _Worker:
        """The model's worker with the model loaded; ApiError 404 if it is not registered."""
        registered = await asyncio.to_thread(self.rt.get, model_id)
        if registered is None:
            raise ApiError(
                404,
                f"The model '{model_id}' does not exist",
                param="model",
                code="model_not_found",
            )
        worker = self._worker(model_id)
        async with worker.load_lock:
            if worker.loaded is None or worker.loaded.unloaded:
                loop = asyncio.get_running_loop()
                try:
                    worker.loaded = await loop.run_in_executor(
                        worker.executor, self.rt.load, model_id
                    )
                except NotFound as exc:
                    raise ApiError(
                        404, exc.message, param="model", code="model_not_found"
                    ) from None
                except CuratorError as exc:
                    raise ApiError(500, exc.message, type="server_error") from None
        return worker

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer's chunks as the worker thread produces them; ApiError on failure."""
        worker = await self.loaded(request.model)
        loaded = worker.loaded
        assert loaded is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def job() -> None:
            try:
                if cancelled.is_set():
                    return
                chunks = loaded.chat_stream(
                    request.message_dicts(),
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    seed=request.seed,
                )
                with contextlib.closing(chunks):
                    for chunk in chunks:
                        if cancelled.is_set():
                            break
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
                if isinstance(item, CuratorError):
                    raise ApiError(500, item.message, type="server_error")
                if isinstance(item, Exception):
                    raise ApiError(500, f"generation failed: {item}", type="server_error")
                yield item
        finally:
            cancelled.set()

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


def create_app(cache_dir: Path | None = None, allowed_hosts: tuple[str, ...] = ("*",)) -> Any:
    """The FastAPI application serving the models registered in ``cache_dir``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    pool_holder: dict[str, ModelPool] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        pool_holder["pool"] = ModelPool(runtime(cache_dir))
        try:
            yield
        finally:
            await asyncio.to_thread(pool_holder.pop("pool").close)

    app = FastAPI(title="curator serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    def error_response(error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(ApiError(exc.status_code, str(exc.detail), type=kind))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(bad_request(str(exc)))

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        registered = await asyncio.to_thread(pool_holder["pool"].rt.list_registered)
        now = int(time.time())
        return {
            "object": "list",
            "data": [model_body(m.id, m.publisher, now) for m in registered],
        }

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(pool_holder["pool"].rt.get, model_id)
        if found is None:
            raise ApiError(
                404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            )
        return model_body(found.id, found.publisher, int(time.time()))

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        # JSON only: a web page can send text/plain to loopback without a CORS preflight.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "send the request as Content-Type: application/json")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise bad_request("the request body is not valid JSON") from None
        chat = parse_chat_request(body)
        pool = pool_holder["pool"]
        chunks = pool.stream(chat)
        cid = completion_id()
        if not chat.stream:
            parts: list[str] = []
            last: ChatChunk | None = None
            async for chunk in chunks:
                parts.append(chunk.text)
                last = chunk
            if last is None or last.usage is None:
                raise ApiError(500, "the runtime reported no usage", type="server_error")
            reason = last.finish_reason or "stop"
            return JSONResponse(
                completion_body(cid, chat.model, "".join(parts), reason, last.usage)
            )
        # Wait for the first chunk so that a failure before any token is an HTTP error.
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise ApiError(500, "the runtime produced nothing", type="server_error") from None
        return StreamingResponse(
            _sse(chat, cid, first, chunks),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


async def _sse(
    chat: ChatRequest, cid: str, first: ChatChunk, rest: AsyncIterator[ChatChunk]
) -> AsyncIterator[str]:
    created = int(time.time())

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield event(chunk_body(cid, chat.model, created, {"role": "assistant", "content": ""}))

    async def all_chunks() -> AsyncIterator[ChatChunk]:
        yield first
        async for chunk in rest:
            yield chunk

    try:
        async for chunk in all_chunks():
            if chunk.text:
                yield event(chunk_body(cid, chat.model, created, {"content": chunk.text}))
            if chunk.usage is not None:
                reason = chunk.finish_reason or "stop"
                yield event(chunk_body(cid, chat.model, created, {}, reason))
                if chat.include_usage:
                    yield event(usage_chunk_body(cid, chat.model, created, chunk.usage))
    except ApiError as exc:
        yield event(exc.body())
    finally:
        with contextlib.suppress(Exception):
            await rest.aclose()  # type: ignore[attr-defined]
    yield "data: [DONE]\n\n"


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
) -> None:
    """Run the server until interrupted; ``on_ready`` gets the base URL (``http://h:p/v1``)."""
    import uvicorn

    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        create_app(cache_dir, allowed_hosts_for(host)),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{shown_host}:{bound_port}/v1")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
