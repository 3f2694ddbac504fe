"""A loopback HTTP server that answers the Hub API calls huggingface_hub 2.4.0 makes.

Endpoints (shapes follow the Hub's responses; errors carry the X-Error-Code / X-Error-Message
headers huggingface_hub's ``hf_raise_for_status`` maps to its exception types):

- ``GET /api/models``: search, author, filter (repeated), pipeline_tag, gated, num_parameters,
  sort (descending), limit, expand (repeated), cursor pagination with a ``Link: rel="next"`` header.
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info (``blobs=true``
  adds file sizes; ``expand`` limits the fields; ``securityStatus=true`` adds the scan status).
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: file listing with sizes (``recursive``).
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: ETag, X-Repo-Commit, Content-Length,
  Accept-Ranges, and single-range ``Range`` requests (206), no redirects.

Recorded answers (``FakeHub.recordings``, tests/fakehub/replay.py) are served verbatim at their
path; other URLs of a recorded repository answer a plain 404. A renamed repository
(``FakeHub.renames``) answers 307 to the same URL under its new id, as the Hub does.

Tokens: ``Authorization: Bearer T`` must be one of ``FakeHub.tokens`` (401 "Invalid credentials in
Authorization header" otherwise); a gated repository's files need a token granted access to it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.fakehub.replay import Recording, recorded_repo
from tests.fakehub.repo import FakeRepo

SORT_KEYS = {
    "downloads": lambda r: r.downloads,
    "likes": lambda r: r.likes,
    "trendingScore": lambda r: r.trending_score,
    "lastModified": lambda r: r.last_modified,
    "createdAt": lambda r: r.created_at,
}
LIST_DEFAULT_FIELDS = (
    "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag", "library_name",
    "createdAt",
)  # fmt: skip
INFO_DEFAULT_FIELDS = (
    "author", "sha", "lastModified", "private", "disabled", "gated", "tags", "pipeline_tag",
    "library_name", "downloads", "likes", "cardData", "config", "siblings", "safetensors",
    "createdAt", "usedStorage", "spaces",
)  # fmt: skip
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class FakeHub:
    """The fixture set and what the server saw. ``tokens`` maps a token to the gated repositories
    it may read (``"*"``: all)."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    # Real answers by path (tests/fakehub/replay.py), and old id -> new id of renamed repositories.
    recordings: dict[str, Recording] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)
    list_recorded: bool = False  # the listing holds the recorded answers instead of the repos
    page_size: int = 1000
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def start(self) -> FakeHub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self, method: str | None = None, contains: str = "") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and contains in r.path
            ]


class Reply(Exception):
    """Raised by a route to send a response."""

    def __init__(
        self,
        status: int,
        body: bytes | Any = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = dict(headers or {})
        if not isinstance(body, bytes):
            self.headers.setdefault("Content-Type", "application/json; charset=utf-8")


def error(
    status: int, code: str | None, message: str, extra: dict[str, str] | None = None
) -> Reply:
    headers = {"X-Error-Message": message, **(extra or {})}
    if code:
        headers["X-Error-Code"] = code
    return Reply(status, {"error": message}, headers)


def request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body: chunked (Transfer-Encoding) or ``Content-Length`` bytes (none: b"")."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        handler.rfile.readline()
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:  # uploads: tests/fakehub/upload.py
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            request = Request(
                method=method,
                path=unquote(parts.path),
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=request_body(self) if method in ("POST", "PUT") else b"",
            )
            hub.record(request)
            base = f"http://{self.headers.get('Host') or hub.url.split('://', 1)[1]}"
            try:
                route(hub, request, base, parts.path)
                reply = Reply(404, b"not found")
            except Reply as answer:
                reply = answer
            self.send_response(reply.status)
            headers = {"Content-Length": str(len(reply.body)), **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(reply.body)

    return Handler


_MODEL_API = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def route(hub: FakeHub, request: Request, base: str, raw_path: str) -> None:
    """Dispatch ``request``; every branch raises a Reply."""
    granted = _authorise(hub, request)
    path = request.path
    if request.method in ("GET", "HEAD"):
        _replay_or_redirect(hub, path, raw_path, request)
    if request.method in ("POST", "PUT"):
        from tests.fakehub.upload import route as upload_route

        upload_route(hub, request, base)
    if path == "/api/models":
        raise list_models(hub, request, base, raw_path)
    match = _MODEL_API.match(path)
    if match:
        repo_id, kind, revision, sub = match.groups()
        repo = _repo(hub, repo_id)
        if kind == "tree":
            raise tree(hub, repo, revision, sub or "", request, base, raw_path)
        raise model_info(repo, revision or "main", request)
    match = _RESOLVE.match(path)
    if match:
        repo_id, revision, file_path = match.groups()
        repo = _repo(hub, repo_id)
        raise resolve(repo, revision, file_path, request, granted)
    raise error(404, None, f"no route for {path}")


def _replay_or_redirect(hub: FakeHub, path: str, raw_path: str, request: Request) -> None:
    """A recorded answer; a 307 to the new id of a renamed repository, keeping the rest of the
    URL (as the Hub does); a plain 404 for anything else under a recorded repository."""
    recording = hub.recordings.get(path)
    if recording is not None:
        raise Reply(recording.status, recording.body, recording.headers)
    for old, new in hub.renames.items():
        for prefix in (f"/api/models/{old}", f"/{old}/"):
            if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
                target = path.replace(old, new, 1)
                query = urlencode([(k, v) for k, vs in request.query.items() for v in vs])
                location = quote(target) + (f"?{query}" if query else "")
                raise Reply(
                    307,
                    f"Temporary Redirect. Redirecting to {target}".encode(),
                    {"Location": location, "Content-Type": "text/plain; charset=utf-8"},
                )
    if recorded_repo(hub.recordings, path) is not None:
        raise Reply(404, b"Not Found", {"Content-Type": "text/plain; charset=utf-8"})


def _authorise(hub: FakeHub, request: Request) -> frozenset[str] | None:
    """Gated repositories this request may read; None without a token; 401 for an unknown one."""
    header = request.headers.get("authorization", "")
    if not header:
        return None
    token = header.removeprefix("Bearer ").strip()
    if token not in hub.tokens:
        raise error(401, None, "Invalid credentials in Authorization header")
    return hub.tokens[token]


def _repo(hub: FakeHub, repo_id: str) -> FakeRepo:
    repo = hub.repos.get(repo_id)
    if repo is None:
        raise error(404, "RepoNotFound", "Repository not found")
    return repo


def _sha(repo: FakeRepo, revision: str) -> str:
    sha = repo.resolve(revision)
    if sha is None:
        raise error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    return sha


# ---- /api/models -------------------------------------------------------------------------------


def list_models(hub: FakeHub, request: Request, base: str, raw_path: str) -> Reply:
    q = request.query
    if hub.list_recorded:
        return recorded_listing(hub, q)
    repos = list(hub.repos.values())
    if search := _one(q, "search"):
        repos = [r for r in repos if search.lower() in r.repo_id.lower()]
    if author := _one(q, "author"):
        repos = [r for r in repos if r.author == author]
    for wanted in q.get("filter", []) + q.get("filter[]", []):
        repos = [r for r in repos if wanted in _filter_tags(r)]
    if task := _one(q, "pipeline_tag"):
        repos = [r for r in repos if r.pipeline_tag == task]
    gated = _one(q, "gated")
    if gated is not None:
        want = gated.lower() == "true"
        repos = [r for r in repos if bool(r.gated) == want]
    if spec := _one(q, "num_parameters"):
        low, high = _param_range(spec)
        repos = [r for r in repos if _in_range(r, low, high)]
    sort = _one(q, "sort")
    if sort:
        if sort not in SORT_KEYS:
            return error(400, None, f"Invalid sort parameter: {sort}")
        ascending = _one(q, "direction") == "1"  # older clients sent direction=-1
        repos.sort(key=lambda r: (SORT_KEYS[sort](r), r.repo_id), reverse=not ascending)
    else:
        repos.sort(key=lambda r: r.repo_id)
    limit = int(_one(q, "limit") or 0) or None
    page = min(hub.page_size, limit) if limit else hub.page_size
    start = int(_one(q, "cursor") or 0)
    chunk = repos[start : start + page]
    expand = q.get("expand", []) + q.get("expand[]", [])
    body = [_fields(r, expand or LIST_DEFAULT_FIELDS, blobs=False) for r in chunk]
    headers = {}
    if start + page < len(repos):
        following = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
        following.append(("cursor", str(start + page)))
        headers["Link"] = f'<{base}{raw_path}?{urlencode(following)}>; rel="next"'
    return Reply(200, body, headers)


def recorded_listing(hub: FakeHub, q: dict[str, list[str]]) -> Reply:
    """The listing built from the recorded model info answers: the same filters and sorts, each
    entry cut to the ``expand`` fields (a listing entry is a model info answer with fewer fields)."""
    bodies = [r.json() for r in hub.recordings.values() if r.status == 200]
    if search := _one(q, "search"):
        bodies = [b for b in bodies if search.lower() in b["id"].lower()]
    if author := _one(q, "author"):
        bodies = [b for b in bodies if b.get("author") == author]
    for wanted in q.get("filter", []) + q.get("filter[]", []):
        bodies = [b for b in bodies if wanted in b.get("tags", [])]
    if task := _one(q, "pipeline_tag"):
        bodies = [b for b in bodies if b.get("pipeline_tag") == task]
    gated = _one(q, "gated")
    if gated is not None:
        bodies = [b for b in bodies if bool(b.get("gated")) == (gated.lower() == "true")]
    if spec := _one(q, "num_parameters"):
        low, high = _param_range(spec)
        bodies = [
            b
            for b in bodies
            if b.get("safetensors")
            and (low is None or b["safetensors"]["total"] >= low)
            and (high is None or b["safetensors"]["total"] <= high)
        ]
    sort = _one(q, "sort") or "downloads"
    bodies.sort(key=lambda b: (b.get(sort) or 0, b["id"]), reverse=True)
    limit = int(_one(q, "limit") or 0) or len(bodies)
    expand = q.get("expand", []) + q.get("expand[]", []) or list(LIST_DEFAULT_FIELDS)
    entries = [
        {"_id": b["_id"], "id": b["id"], **{k: b[k] for k in expand if k in b}}
        for b in bodies[:limit]
    ]
    return Reply(200, entries)


def _filter_tags(repo: FakeRepo) -> set[str]:
    extra = {repo.pipeline_tag, repo.library_name} - {None}
    return set(repo.tags) | {str(x) for x in extra}


def _param_range(spec: str) -> tuple[int | None, int | None]:
    low = high = None
    for part in spec.split(","):
        key, _, value = part.partition(":")
        number = _count(value)
        if key == "min":
            low = number
        elif key == "max":
            high = number
    return low, high


def _count(text: str) -> int:
    text = text.strip().upper()
    suffix = text[-1] if text and text[-1] in _SUFFIX else ""
    return round(float(text[: len(text) - len(suffix)]) * _SUFFIX[suffix])


def _in_range(repo: FakeRepo, low: int | None, high: int | None) -> bool:
    info = repo.safetensors()
    if info is None:
        return False
    total = int(info["total"])
    return (low is None or total >= low) and (high is None or total <= high)


# ---- model info --------------------------------------------------------------------------------


def model_info(repo: FakeRepo, revision: str, request: Request) -> Reply:
    sha = _sha(repo, revision)
    expand = request.query.get("expand", []) + request.query.get("expand[]", [])
    blobs = _one(request.query, "blobs") in ("1", "true", "True")
    body = _fields(repo, expand or INFO_DEFAULT_FIELDS, blobs=blobs)
    if "sha" in body:
        body["sha"] = sha
    if _one(request.query, "securityStatus") in ("1", "true", "True"):
        body["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
    return Reply(200, body)


def _fields(repo: FakeRepo, names: Iterable[str], *, blobs: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"_id": repo.sha[:24], "id": repo.repo_id}
    for name in names:
        value = _field(repo, name, blobs=blobs)
        if value is not _MISSING:
            body[name] = value
    return body


_MISSING = object()


def _field(repo: FakeRepo, name: str, *, blobs: bool) -> Any:
    config = repo.config()
    simple = {
        "author": repo.author,
        "sha": repo.sha,
        "lastModified": repo.last_modified,
        "createdAt": repo.created_at,
        "private": False,
        "disabled": False,
        "gated": repo.gated,
        "tags": list(repo.tags),
        "pipeline_tag": repo.pipeline_tag,
        "library_name": repo.library_name,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "trendingScore": repo.trending_score,
        "spaces": [],
        "usedStorage": sum(len(c) for c in repo.files.values()),
    }
    if name in simple:
        return simple[name]
    if name == "cardData":
        return repo.card_data or _MISSING
    if name == "safetensors":
        return repo.safetensors() or _MISSING
    if name == "config":
        if config is None:
            return _MISSING
        keep = {k: config[k] for k in ("architectures", "model_type", "auto_map") if k in config}
        tokenizer_config = repo.files.get("tokenizer_config.json")
        if tokenizer_config is not None:
            tc = json.loads(tokenizer_config)
            keep["tokenizer_config"] = {
                k: tc[k] for k in ("chat_template", "eos_token", "pad_token") if k in tc
            }
        return keep
    if name == "siblings":
        siblings = []
        for path in sorted(repo.files):
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                tree_entry = repo.tree_entry(path)
                entry["size"] = tree_entry["size"]
                entry["blobId"] = tree_entry["oid"]
                if "lfs" in tree_entry:
                    lfs = tree_entry["lfs"]
                    entry["lfs"] = {
                        "size": lfs["size"],
                        "sha256": lfs["oid"],
                        "pointerSize": lfs["pointerSize"],
                    }
            siblings.append(entry)
        return siblings
    return _MISSING


# ---- tree --------------------------------------------------------------------------------------


def tree(
    hub: FakeHub, repo: FakeRepo, revision: str, sub: str, request: Request, base: str,
    raw_path: str,
) -> Reply:  # fmt: skip
    _sha(repo, revision)
    recursive = _one(request.query, "recursive") in ("1", "true", "True")
    prefix = f"{sub.strip('/')}/" if sub.strip("/") else ""
    if prefix and not any(p.startswith(prefix) for p in repo.files):
        return error(404, "EntryNotFound", f"{sub} does not exist on {revision}")
    entries: list[dict[str, Any]] = []
    folders: set[str] = set()
    for path in sorted(repo.files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        if "/" in rest:
            folder = prefix + rest.split("/", 1)[0]
            if folder not in folders:
                folders.add(folder)
                entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
            if not recursive:
                continue
        entries.append(repo.tree_entry(path))
    start = int(_one(request.query, "cursor") or 0)
    chunk = entries[start : start + hub.page_size]
    headers = {}
    if start + hub.page_size < len(entries):
        following = [(k, v) for k, vs in request.query.items() if k != "cursor" for v in vs]
        following.append(("cursor", str(start + hub.page_size)))
        headers["Link"] = f'<{base}{raw_path}?{urlencode(following)}>; rel="next"'
    return Reply(200, chunk, headers)


# ---- resolve -----------------------------------------------------------------------------------


def resolve(
    repo: FakeRepo, revision: str, path: str, request: Request, granted: frozenset[str] | None
) -> Reply:
    if repo.gated and not (granted and ("*" in granted or repo.repo_id in granted)):
        status = 401 if granted is None else 403
        return error(
            status,
            "GatedRepo",
            f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
            "authenticated to access it. Please log in.",
        )
    sha = _sha(repo, revision)
    if path not in repo.files:
        return error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
    content = repo.files[path]
    headers = {
        "ETag": f'"{repo.etag(path)}"',
        "X-Repo-Commit": sha,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    wanted = request.headers.get("range")
    if wanted:
        span = _range(wanted, len(content))
        if span is None:
            return Reply(416, b"", {**headers, "Content-Range": f"bytes */{len(content)}"})
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
        return Reply(206, content[first : last + 1], headers)
    return Reply(200, content, headers)


def _range(header: str, size: int) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or size == 0:
        return None
    first_text, last_text = match.groups()
    if not first_text:  # suffix range: the last N bytes
        if not last_text:
            return None
        n = int(last_text)
        return (max(size - n, 0), size - 1)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
