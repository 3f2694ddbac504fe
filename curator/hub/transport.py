"""Fail fast when the Hub cannot be reached.

huggingface_hub retries connection errors with backoff (about 23 s before it gives up). curator
installs an HTTP client whose transport bounds the connect time and the name lookup, and turns a
failed connection into :class:`HubUnreachable`, which is not one of the errors the library retries,
so an unreachable Hub is reported within a couple of seconds.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TYPE_CHECKING, Any

from curator.hub.endpoint import connect_timeout

if TYPE_CHECKING:
    import httpx2

# Read timeout where huggingface_hub sets none: a stalled Hub must not hang curator forever.
READ_TIMEOUT_SECONDS = 30.0

_installed = False
_install_lock = threading.Lock()
_resolved: set[str] = set()


def unreachable_error_type() -> type[Exception]:
    """The exception the transport raises (created lazily so that httpx2 loads only when used)."""
    return _types()[0]


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
            transport=_types()[1](httpx2.HTTPTransport()),
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


_TYPES: tuple[type[Exception], type[Any]] | None = None


def _types() -> tuple[type[Exception], type[Any]]:
    """Define the exception and transport classes on first use (they subclass httpx2 types)."""
    global _TYPES
    if _TYPES is not None:
        return _TYPES
    import httpx2

    class HubUnreachable(httpx2.TransportError):
        """The Hub's host could not be looked up or connected to (not retried by huggingface_hub)."""

    class FailFastTransport(httpx2.BaseTransport):
        def __init__(self, inner: httpx2.BaseTransport) -> None:
            self._inner = inner

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            limit = connect_timeout()
            timeouts = dict(request.extensions.get("timeout") or {})
            current = timeouts.get("connect")
            timeouts["connect"] = limit if current is None else min(float(current), limit)
            if timeouts.get("read") is None:  # list_models asks for no read timeout at all
                timeouts["read"] = READ_TIMEOUT_SECONDS
            request.extensions["timeout"] = timeouts
            try:
                _resolve_within(request.url.host, limit)
            except OSError as exc:
                raise HubUnreachable(str(exc), request=request) from exc
            try:
                return self._inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                raise HubUnreachable(str(exc) or type(exc).__name__, request=request) from exc

        def close(self) -> None:
            self._inner.close()

    _TYPES = (HubUnreachable, FailFastTransport)
    return _TYPES
