"""Fail fast, and in bounded time, when the Hub cannot be reached, stops answering or trickles.

huggingface_hub retries connection errors and timeouts with backoff (about 23 s for a refused
connection, 5 x 30 s for a stalled one), logging each retry, and a server that sends one byte
every few seconds never trips a read timeout. curator installs an HTTP client whose transport

- bounds the name lookup and the connect time (``$CURATOR_HUB_CONNECT_TIMEOUT``, 1.5 s),
- bounds every read of a GET or HEAD (``$CURATOR_HUB_TIMEOUT``, 8 s; uploads and commits 60 s)
  where the library sets no or a longer limit,
- inside :func:`hub_deadline`, bounds the whole operation: every socket read and write of every
  request, headers and body, waits at most until the deadline (a network backend under httpcore
  caps each one), so a trickling answer ends at the deadline, not at the next read timeout;
  server errors (429, 5xx) are answered at once instead of slept through,
- for a transfer (``hub_deadline(progress=True)``: downloads and uploads) judges a stall by
  progress, not by total time: every :data:`PROGRESS_BYTES` moved push the deadline to a full
  ``seconds`` from then, so a large download that keeps moving is never cut off and one that
  trickles ends one deadline after its last real progress,
- inside :func:`body_limit`, asks for the file itself (no compression, which would let a small
  body decode into an unbounded one), refuses an answer whose Content-Length exceeds the limit
  before its body is read, and stops reading one whose body grows past it,

and raises its own exception types (subclasses of ``httpx2.TransportError`` that the library does not
retry), so that a dead, stalled, trickling or failing Hub ends in one error, without the library's
retry chatter.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.hub.endpoint import connect_timeout, deadline_seconds, read_timeout

if TYPE_CHECKING:
    import httpx2

# Seconds an upload or a commit may wait for each read and write (GET and HEAD: read_timeout()).
UPLOAD_TIMEOUT = 60.0

# Bytes a transfer must move to count as progress (each such step pushes its deadline forward):
# with the default 10 s deadline, a download slower than 6.4 KiB/s is a stall.
PROGRESS_BYTES = 64 * 1024

# Status codes huggingface_hub retries with backoff (see utils/_http.py).
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_installed = False
_install_lock = threading.Lock()
_resolved: set[str] = set()


class _Operation:
    """The Hub operation under way: its deadline (time.monotonic()), and for a transfer the bytes
    moved since the deadline last moved. Shared by the threads a download starts."""

    def __init__(self, seconds: float, progress: bool) -> None:
        self.seconds = seconds
        self.progress = progress
        self.deadline = time.monotonic() + seconds
        self.moved = 0
        self._lock = threading.Lock()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def moved_bytes(self, count: int) -> None:
        if not self.progress or count <= 0:
            return
        with self._lock:
            self.moved += count
            if self.moved >= PROGRESS_BYTES:
                self.moved = 0
                self.deadline = max(self.deadline, time.monotonic() + self.seconds)

    def describe(self) -> str:
        if self.progress:
            return f"move {PROGRESS_BYTES // 1024} KiB within {self.seconds:g} s"
        return f"finish answering within {self.seconds:g} s"


_operation: _Operation | None = None
_max_body: int | None = None  # bytes one answer's body may hold (body_limit)


@contextmanager
def hub_deadline(seconds: float | None = None, *, progress: bool = False) -> Iterator[None]:
    """Within this block every Hub request, headers and body, must be done by ``seconds`` from
    now (default ``$CURATOR_HUB_DEADLINE``). With ``progress`` (a transfer), every
    :data:`PROGRESS_BYTES` received or sent move the deadline to ``seconds`` from then. Blocks
    nest; the outer one wins."""
    global _operation
    outer = _operation
    if outer is None:
        limit = deadline_seconds() if seconds is None else seconds
        _operation = _Operation(limit, progress)
    try:
        yield
    finally:
        _operation = outer


@contextmanager
def body_limit(max_bytes: int) -> Iterator[None]:
    """Within this block no answer's body may exceed ``max_bytes``: an announced Content-Length
    over it is refused before any byte of the body is read (HEAD answers are not bodies)."""
    global _max_body
    outer = _max_body
    _max_body = max_bytes
    try:
        yield
    finally:
        _max_body = outer


@contextmanager
def plain_http() -> Iterator[None]:
    """Transfers over plain HTTP(S), through curator's transport, instead of the Xet protocol
    (hf_xet's own client, which no deadline or size limit of curator's reaches)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = before


def unreachable_error_type() -> type[Exception]:
    """The exception the transport raises for a failed lookup or connection."""
    return _types().unreachable


def stalled_error_type() -> type[Exception]:
    """The exception the transport raises when the Hub does not answer in time."""
    return _types().stalled


def unavailable_error_type() -> type[Exception]:
    """The exception the transport raises for a server error inside a deadline."""
    return _types().unavailable


def oversized_error_type() -> type[Exception]:
    """The exception the transport raises for an answer larger than :func:`body_limit`."""
    return _types().oversized


def install_fail_fast_client() -> None:
    """Make huggingface_hub use the fail-fast client in this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from huggingface_hub import set_client_factory

        set_client_factory(_client_factory)
        _installed = True


def _client_factory() -> httpx2.Client:
    import httpx2

    # huggingface_hub's own client carries the request hooks (offline switch, request ids): keep
    # them, and swap only the transport.
    from huggingface_hub.utils._http import default_client_factory

    base = default_client_factory()
    inner = httpx2.HTTPTransport()
    _bound_socket_io(inner)
    try:
        return httpx2.Client(
            event_hooks=base.event_hooks,
            follow_redirects=base.follow_redirects,
            timeout=base.timeout,
            transport=_types().transport(inner),
        )
    finally:
        base.close()


def _bound_socket_io(transport: Any) -> None:
    """Put the deadline-aware network backend under ``transport``'s connection pool (httpx2
    builds its pool with httpcore2's default backend and offers no argument for another)."""
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if inner is not None:
        pool._network_backend = _types().backend(inner)  # type: ignore[union-attr]


def _io_timeout(timeout: float | None) -> float | None:
    """A socket operation's timeout capped by the time left before the operation's deadline;
    raises the library's timeout when none is left."""
    operation = _operation
    if operation is None:
        return timeout
    left = operation.left()
    if left <= 0:
        raise TimeoutError("the Hub operation's deadline has passed")
    return left if timeout is None else min(timeout, left)


def _resolve_within(host: str, seconds: float) -> None:
    """Look ``host`` up with a time limit (getaddrinfo itself has none); raise OSError if it fails."""
    if host in _resolved or _is_ip(host):
        return
    outcome: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise OSError(f"looking up {host} took more than {seconds:g} s")
    if outcome[0] is not None:
        raise OSError(f"cannot resolve {host}: {outcome[0]}")
    _resolved.add(host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _limits(current: dict[str, Any], method: str) -> dict[str, Any]:
    """The request's timeouts bounded by curator's limits (and, outside a transfer, by the time
    left before the deadline). Uploads and commits (not GET/HEAD) may wait longer for the Hub to
    answer: it stores what it was sent first."""
    timeouts = dict(current)
    operation = _operation
    left = None if operation is None or operation.progress else operation.left()
    wait = read_timeout() if method in ("GET", "HEAD") else max(read_timeout(), UPLOAD_TIMEOUT)
    bounds = {"connect": connect_timeout(), "read": wait, "write": wait, "pool": wait}
    for name, bound in bounds.items():
        if left is not None:
            bound = min(bound, max(left, 0.001))
        value = timeouts.get(name)
        timeouts[name] = bound if value is None else min(float(value), bound)
    return timeouts


def _deadline_passed() -> _Operation | None:
    """The operation whose deadline has (all but) passed, if any: a timeout then is its doing."""
    operation = _operation
    return operation if operation is not None and operation.left() <= 0.05 else None


@dataclass(frozen=True)
class _Types:
    unreachable: type[Exception]
    stalled: type[Exception]
    unavailable: type[Exception]
    oversized: type[Exception]
    transport: type[Any]
    backend: type[Any]


_TYPES: _Types | None = None


def _types() -> _Types:
    """Define the exception, transport and backend classes on first use (they subclass httpx2's
    and httpcore2's types)."""
    global _TYPES
    if _TYPES is not None:
        return _TYPES
    import httpcore2
    import httpx2

    class HubUnreachable(httpx2.TransportError):
        """The Hub's host could not be looked up or connected to (not retried by huggingface_hub)."""

    class HubStalledError(httpx2.TransportError):
        """The Hub did not answer within the read timeout or the deadline (not retried)."""

        seconds: float = 0.0
        deadline: bool = False

    class HubUnavailableError(httpx2.TransportError):
        """A server error answered inside a deadline (not retried)."""

        status: int = 0

    class HubOversizedError(httpx2.TransportError):
        """An answer larger than the body limit (announced or received; not retried)."""

        limit: int = 0
        size: int = 0

    def stalled(request: httpx2.Request, seconds: float) -> HubStalledError:
        operation = _deadline_passed()
        where = f"({request.method} {request.url.path})"
        if operation is not None:
            text = f"the Hub did not {operation.describe()} {where}"
            seconds = operation.seconds
        else:
            text = f"the Hub did not answer within {seconds:g} s {where}"
        error = HubStalledError(text, request=request)
        error.seconds, error.deadline = seconds, operation is not None
        return error

    def oversized(request: httpx2.Request, size: int, limit: int, announced: bool) -> Exception:
        what = "announced" if announced else "sent more than"
        error = HubOversizedError(
            f"the Hub {what} {size} bytes for {request.url.path}, more than the {limit} expected",
            request=request,
        )
        error.limit, error.size = limit, size
        return error

    def connect_timeout(timeout: float | None) -> float | None:
        """A connect's (or TLS handshake's) timeout capped by the operation's deadline; the
        library's connect timeout when none is left."""
        try:
            return _io_timeout(timeout)
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(str(exc)) from exc

    class FailFastTransport(httpx2.BaseTransport):
        def __init__(self, inner: httpx2.BaseTransport) -> None:
            self._inner = inner

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            timeouts = _limits(request.extensions.get("timeout") or {}, request.method)
            operation = _operation
            if operation is not None and operation.left() <= 0:
                raise stalled(request, operation.seconds)
            request.extensions["timeout"] = timeouts
            limit = _max_body if request.method != "HEAD" else None
            if limit is not None:  # the bytes counted are the file's own: no compression
                request.headers["Accept-Encoding"] = "identity"
            try:
                _resolve_within(request.url.host, timeouts["connect"])
            except OSError as exc:
                raise HubUnreachable(str(exc), request=request) from exc
            try:
                response = self._inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                if _deadline_passed() is not None:
                    raise stalled(request, float(timeouts["connect"])) from exc
                raise HubUnreachable(str(exc) or type(exc).__name__, request=request) from exc
            except httpx2.TimeoutException as exc:
                raise stalled(request, float(timeouts["read"])) from exc
            if operation is not None and response.status_code in RETRIED_STATUSES:
                response.close()
                error = HubUnavailableError(
                    f"the Hub answered {response.status_code} {response.reason_phrase} "
                    f"({request.method} {request.url.path})",
                    request=request,
                )
                error.status = response.status_code
                raise error
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if limit is not None and encoding not in ("", "identity"):
                # decoded, a small body could grow without bound past the limit's count
                response.close()
                raise HubOversizedError(
                    f"the Hub sent {request.url.path} {encoding}-encoded, not as the file itself",
                    request=request,
                )
            announced = _content_length(response.headers.get("Content-Length"))
            if limit is not None and announced is not None and announced > limit:
                response.close()
                raise oversized(request, announced, limit, announced=True)
            response.stream = GuardedStream(response.stream, request, timeouts["read"], limit)
            return response

        def close(self) -> None:
            self._inner.close()

    class GuardedStream(httpx2.SyncByteStream):
        """The response body: a read that times out is a stall, not a retried ReadTimeout; a body
        past the deadline or the body limit ends there."""

        def __init__(
            self, inner: Any, request: httpx2.Request, seconds: float, limit: int | None
        ) -> None:
            self._inner, self._request, self._seconds = inner, request, float(seconds)
            self._limit = limit

        def __iter__(self) -> Iterator[bytes]:
            received = 0
            try:
                for chunk in self._inner:
                    received += len(chunk)
                    if self._limit is not None and received > self._limit:
                        raise oversized(self._request, received, self._limit, announced=False)
                    operation = _operation
                    if operation is not None and operation.left() <= 0:
                        raise stalled(self._request, self._seconds)
                    yield chunk
            except httpx2.TimeoutException as exc:
                raise stalled(self._request, self._seconds) from exc

        def close(self) -> None:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()

    class DeadlineStream(httpcore2.NetworkStream):
        """A connection whose every read and write waits at most until the operation's deadline,
        and counts what it moves as the operation's progress."""

        def __init__(self, inner: httpcore2.NetworkStream) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            try:
                limit = _io_timeout(timeout)
            except TimeoutError as exc:
                raise httpcore2.ReadTimeout(str(exc)) from exc
            data = self._inner.read(max_bytes, limit)
            if _operation is not None:
                _operation.moved_bytes(len(data))
            return data

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            view = memoryview(buffer)
            while view:  # in steps, so that a long upload's progress moves the deadline
                try:
                    limit = _io_timeout(timeout)
                except TimeoutError as exc:
                    raise httpcore2.WriteTimeout(str(exc)) from exc
                step = view[:PROGRESS_BYTES]
                self._inner.write(bytes(step), limit)
                if _operation is not None:
                    _operation.moved_bytes(len(step))
                view = view[PROGRESS_BYTES:]

        def close(self) -> None:
            self._inner.close()

        def start_tls(
            self,
            ssl_context: Any,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore2.NetworkStream:
            limit = connect_timeout(timeout)
            return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, limit))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class DeadlineBackend(httpcore2.NetworkBackend):
        def __init__(self, inner: httpcore2.NetworkBackend) -> None:
            self._inner = inner

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.NetworkStream:
            limit = connect_timeout(timeout)
            return DeadlineStream(
                self._inner.connect_tcp(host, port, limit, local_address, socket_options)
            )

        def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.NetworkStream:
            limit = connect_timeout(timeout)
            return DeadlineStream(self._inner.connect_unix_socket(path, limit, socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    _TYPES = _Types(
        HubUnreachable,
        HubStalledError,
        HubUnavailableError,
        HubOversizedError,
        FailFastTransport,
        DeadlineBackend,
    )
    return _TYPES


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
