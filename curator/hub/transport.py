"""Fail fast, and in bounded time, when the Hub cannot be reached or stops answering.

huggingface_hub retries connection errors and timeouts with backoff (about 23 s for a refused
connection, 5 x 30 s for a stalled one), logging each retry. curator installs an HTTP client whose
transport

- bounds the name lookup and the connect time (``$CURATOR_HUB_CONNECT_TIMEOUT``, 1.5 s),
- bounds every read of a GET or HEAD (``$CURATOR_HUB_TIMEOUT``, 8 s; uploads and commits 60 s)
  where the library sets no or a longer limit,
- inside :func:`hub_deadline`, bounds all requests together and answers a server error (429, 5xx)
  at once instead of sleeping through retries,

and raises its own exception types (subclasses of ``httpx2.TransportError`` that the library does not
retry), so that a dead, stalled or failing Hub ends in one error, without the library's retry chatter.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.hub.endpoint import connect_timeout, deadline_seconds, read_timeout

if TYPE_CHECKING:
    import httpx2

# Seconds an upload or a commit may wait for each read and write (GET and HEAD: read_timeout()).
UPLOAD_TIMEOUT = 60.0

# Status codes huggingface_hub retries with backoff (see utils/_http.py).
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_installed = False
_install_lock = threading.Lock()
_resolved: set[str] = set()
_deadline: float | None = None  # time.monotonic() by which the current Hub work must be done
_deadline_seconds: float = 0.0


@contextmanager
def hub_deadline(seconds: float | None = None) -> Iterator[None]:
    """Within this block every Hub request must finish by ``seconds`` from now (default
    ``$CURATOR_HUB_DEADLINE``). Blocks nest; the outer deadline wins."""
    global _deadline, _deadline_seconds
    limit = deadline_seconds() if seconds is None else seconds
    outer, outer_seconds = _deadline, _deadline_seconds
    if outer is None:
        _deadline, _deadline_seconds = time.monotonic() + limit, limit
    try:
        yield
    finally:
        _deadline, _deadline_seconds = outer, outer_seconds


def unreachable_error_type() -> type[Exception]:
    """The exception the transport raises for a failed lookup or connection."""
    return _types().unreachable


def stalled_error_type() -> type[Exception]:
    """The exception the transport raises when the Hub does not answer in time."""
    return _types().stalled


def unavailable_error_type() -> type[Exception]:
    """The exception the transport raises for a server error inside a deadline."""
    return _types().unavailable


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
    try:
        return httpx2.Client(
            event_hooks=base.event_hooks,
            follow_redirects=base.follow_redirects,
            timeout=base.timeout,
            transport=_types().transport(httpx2.HTTPTransport()),
        )
    finally:
        base.close()


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


def _limits(current: dict[str, Any], method: str) -> tuple[dict[str, Any], float | None]:
    """The request's timeouts bounded by curator's limits, and the seconds left before the deadline
    (None outside :func:`hub_deadline`). Uploads and commits (not GET/HEAD) may wait longer for
    the Hub to answer: it stores what it was sent first."""
    timeouts = dict(current)
    left = None if _deadline is None else _deadline - time.monotonic()
    wait = read_timeout() if method in ("GET", "HEAD") else max(read_timeout(), UPLOAD_TIMEOUT)
    bounds = {"connect": connect_timeout(), "read": wait, "write": wait, "pool": wait}
    for name, bound in bounds.items():
        if left is not None:
            bound = min(bound, max(left, 0.001))
        value = timeouts.get(name)
        timeouts[name] = bound if value is None else min(float(value), bound)
    return timeouts, left


@dataclass(frozen=True)
class _Types:
    unreachable: type[Exception]
    stalled: type[Exception]
    unavailable: type[Exception]
    transport: type[Any]


_TYPES: _Types | None = None


def _types() -> _Types:
    """Define the exception and transport classes on first use (they subclass httpx2 types)."""
    global _TYPES
    if _TYPES is not None:
        return _TYPES
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

    def stalled(request: httpx2.Request, seconds: float, deadline: bool) -> HubStalledError:
        what = "finish answering" if deadline else "answer"
        error = HubStalledError(
            f"the Hub did not {what} within {seconds:g} s ({request.method} {request.url.path})",
            request=request,
        )
        error.seconds, error.deadline = seconds, deadline
        return error

    class FailFastTransport(httpx2.BaseTransport):
        def __init__(self, inner: httpx2.BaseTransport) -> None:
            self._inner = inner

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            timeouts, left = _limits(request.extensions.get("timeout") or {}, request.method)
            if left is not None and left <= 0:
                raise stalled(request, _deadline_seconds, deadline=True)
            request.extensions["timeout"] = timeouts
            try:
                _resolve_within(request.url.host, timeouts["connect"])
            except OSError as exc:
                raise HubUnreachable(str(exc), request=request) from exc
            try:
                response = self._inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                raise HubUnreachable(str(exc) or type(exc).__name__, request=request) from exc
            except httpx2.TimeoutException as exc:
                over = left is not None and timeouts["read"] >= left
                seconds = _deadline_seconds if over else float(timeouts["read"])
                raise stalled(request, seconds, deadline=over) from exc
            if left is not None and response.status_code in RETRIED_STATUSES:
                response.close()
                error = HubUnavailableError(
                    f"the Hub answered {response.status_code} {response.reason_phrase} "
                    f"({request.method} {request.url.path})",
                    request=request,
                )
                error.status = response.status_code
                raise error
            response.stream = GuardedStream(response.stream, request, float(timeouts["read"]))
            return response

        def close(self) -> None:
            self._inner.close()

    class GuardedStream(httpx2.SyncByteStream):
        """The response body: a read that times out is a stall, not a retried ReadTimeout."""

        def __init__(self, inner: Any, request: httpx2.Request, seconds: float) -> None:
            self._inner, self._request, self._seconds = inner, request, seconds

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self._inner
            except httpx2.TimeoutException as exc:
                raise stalled(self._request, self._seconds, deadline=False) from exc

        def close(self) -> None:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()

    _TYPES = _Types(HubUnreachable, HubStalledError, HubUnavailableError, FailFastTransport)
    return _TYPES
