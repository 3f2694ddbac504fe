"""Loopback servers that misbehave the way a Hub, mirror or proxy can: one that accepts connections
and never answers, and one that answers every request with the same bare status (a mirror's plain
404 without the Hub's X-Error-Code, a 503 from an overloaded front)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from tests.fakehub.server import request_body


class StallingServer:
    """Accepts every connection on 127.0.0.1 and never sends a byte. ``connections`` counts them."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="stalling-hub", daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._held.append(conn)  # held open, never read from or written to

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._sock.close()


class _LoopbackHTTPServer:
    """A threaded HTTP server on a free loopback port (``url``), serving ``handler`` from
    ``__enter__`` until ``__exit__``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class BareStatusServer(_LoopbackHTTPServer):
    """Answers every GET and HEAD with ``status`` and a short text body, no Hub headers."""

    def __init__(self, status: int, body: bytes = b"Not Found") -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        super().__init__(Handler)


class TricklingServer(_LoopbackHTTPServer):
    """A proxy in front of ``upstream`` (the fake Hub) that passes each answer's status and headers
    at once and then sends its body ``chunk`` bytes at a time, one step every ``every`` seconds,
    for requests whose path contains ``match`` (other answers pass through whole).

    ``every=2, chunk=1`` is the Hub that trickles a byte every 2 s; a large ``chunk`` at a short
    ``every`` is a slow but steadily progressing download. ``pad`` bytes are appended to the body
    of every trickled GET (and counted in its Content-Length): a file larger than its metadata
    said; ``gzip`` sends it compressed whatever the client asked. ``sent`` counts the body bytes
    written per path."""

    def __init__(
        self,
        upstream: str,
        *,
        every: float = 2.0,
        chunk: int = 1,
        match: str = "",
        pad: int = 0,
        gzip: bool = False,
    ) -> None:
        import http.client
        from urllib.parse import urlsplit

        self.sent: dict[str, int] = {}
        self._stop = threading.Event()
        target = urlsplit(upstream)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = request_body(self) or None
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding")
                }
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                connection.close()
                trickled = match in self.path.split("?", 1)[0]
                if trickled and self.command == "GET":
                    content += b"\0" * pad
                    if gzip:
                        import gzip as gzip_module

                        content = gzip_module.compress(content)
                self.send_response(answer.status)
                if trickled and gzip and self.command == "GET":
                    self.send_header("Content-Encoding", "gzip")
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                announced = int(answer.getheader("Content-Length") or len(content))
                if self.command == "HEAD":
                    self.send_header("Content-Length", str(announced))
                else:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    if not trickled:
                        self.wfile.write(content)
                        return
                    self.wfile.flush()
                    for start in range(0, len(content), chunk):
                        if outer._stop.wait(every):
                            return
                        self.wfile.write(content[start : start + chunk])
                        self.wfile.flush()
                        outer.sent[self.path] = outer.sent.get(self.path, 0) + chunk
                except OSError:  # the client gave up: what the tests want
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = _forward

        super().__init__(Handler)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        super().__exit__(kind, exc, tb)
