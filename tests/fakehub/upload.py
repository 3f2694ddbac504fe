"""Writes to the fake Hub: the upload protocol huggingface_hub 2.4.0 speaks with ``create_repo``,
``create_branch`` and ``create_commit`` when Xet is not used (curator publishes over Git LFS: see
curator/share/publish.py).

- ``POST /api/repos/create``: ``{"name", "organization", "visibility", "type"}``; 409 when taken.
- ``POST /api/models/{repo}/branch/{branch}``: a branch from ``main`` (or ``startingPoint``); 409.
- ``POST /api/models/{repo}/preupload/{rev}``: per file ``uploadMode`` (``lfs`` for the suffixes the
  real Hub's ``.gitattributes`` track and for files over 10 MB, else ``regular``), ``shouldIgnore``
  and the remote ``oid`` (git blob sha1, or sha256 for LFS) so unchanged files are skipped.
- ``POST /{repo}.git/info/lfs/objects/batch``: Git LFS batch API. An object the server holds gets no
  ``actions`` (the client skips it: a re-run uploads only what is missing); a new one gets a
  ``basic`` upload URL, or, above ``multipart_threshold``, the Hub's multipart form (``chunk_size``
  and numbered part URLs in the header, ``href`` the completion URL); each gets a ``verify`` URL.
- ``PUT`` upload / part URLs, ``POST`` completion (``{"oid", "parts": [{"partNumber", "etag"}]}``)
  and verify (``{"oid", "size"}``): the server checks every object's sha256 and size.
- ``POST /api/models/{repo}/commit/{rev}``: ndjson (``header``, ``file`` base64, ``lfsFile``,
  ``deletedFile``); an ``lfsFile`` whose object was never uploaded is refused (422).

Writes need a token in ``FakeHub.tokens`` (401 otherwise). Limitation: a repository serves its latest
tree at every commit it knows (tests publish, then read that commit).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakehub.repo import FakeRepo, git_blob_oid, is_lfs

REGULAR_MAX_BYTES = 10 * 2**20  # the Hub puts larger files in LFS whatever their suffix


@dataclass
class UploadedRepo(FakeRepo):
    """A repository created through the API: commits by sha, branch heads, visibility."""

    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    last_commit: str = ""

    @property
    def sha(self) -> str:
        return self.last_commit or "0" * 40

    def resolve(self, revision: str) -> str | None:
        if revision in self.heads:
            return self.heads[revision]
        return revision if revision in self.commits else None

    def commit(self, branch: str, tree: dict[str, bytes], summary: str) -> str:
        parent = self.heads.get(branch, "")
        digest = hashlib.sha1(f"{self.repo_id}\0{parent}\0{summary}\0".encode())
        for path in sorted(tree):
            digest.update(f"{path}\0{git_blob_oid(tree[path])}\0".encode())
        sha = digest.hexdigest()
        self.commits[sha] = dict(tree)
        self.heads[branch] = sha
        self.branches = tuple(sorted(self.heads))
        self.files = dict(tree)
        self.last_commit = sha
        return sha


@dataclass
class UploadState:
    """What the uploads of one fake Hub hold: LFS objects by sha256, multipart parts in flight."""

    objects: dict[str, bytes] = field(default_factory=dict)
    # (oid, upload id, part number): each batch answer starts its own multipart upload, as S3 does,
    # so two clients sending the same object at once do not mix their parts.
    parts: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    uploads: int = 0
    multipart_threshold: int = 8 * 2**20
    part_size: int = 4 * 2**20
    commits: list[dict[str, Any]] = field(default_factory=list)
    fail_commits: int = 0  # the next N commits answer 500 (an upload cut off before its commit)
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATES: dict[int, UploadState] = {}
_STATES_LOCK = threading.Lock()


def state_of(hub: Any) -> UploadState:
    """The upload state of ``hub`` (created on first use)."""
    with _STATES_LOCK:
        return _STATES.setdefault(id(hub), UploadState())


def reset(hub: Any) -> UploadState:
    """Forget every uploaded object and repository created through the API."""
    with _STATES_LOCK:
        _STATES[id(hub)] = UploadState()
    for repo_id in [r for r, repo in hub.repos.items() if isinstance(repo, UploadedRepo)]:
        del hub.repos[repo_id]
    return _STATES[id(hub)]


_BRANCH = re.compile(r"^/api/models/([^/]+/[^/]+)/branch/([^/]+)$")
_PREUPLOAD = re.compile(r"^/api/models/([^/]+/[^/]+)/preupload/([^/]+)$")
_COMMIT = re.compile(r"^/api/models/([^/]+/[^/]+)/commit/([^/]+)$")
_BATCH = re.compile(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_PUT_OBJECT = re.compile(r"^/fake-lfs/([0-9a-f]{64})$")
_PUT_PART = re.compile(r"^/fake-lfs/([0-9a-f]{64})/(\d+)/part/(\d+)$")
_COMPLETE = re.compile(r"^/fake-lfs/([0-9a-f]{64})/(\d+)/complete$")
_VERIFY = re.compile(r"^/fake-lfs/verify$")


def route(hub: Any, request: Any, base: str) -> None:
    """Dispatch a POST or PUT; every branch raises a server ``Reply``."""
    from tests.fakehub.server import Reply, error

    path, body = request.path, request.body
    state = state_of(hub)
    if request.method == "PUT":
        if match := _PUT_OBJECT.match(path):
            raise _store(state, match[1], body)
        if match := _PUT_PART.match(path):
            with state.lock:
                state.parts[match[1], int(match[2]), int(match[3])] = body
            etag = hashlib.md5(body).hexdigest()
            raise Reply(200, b"", {"ETag": f'"{etag}"'})
        raise error(404, None, f"no route for PUT {path}")
    if match := _COMPLETE.match(path):
        raise _complete(state, match[1], int(match[2]), _json(body))
    if _VERIFY.match(path):
        wanted = _json(body)
        held = state.objects.get(str(wanted.get("oid")))
        if held is None or len(held) != wanted.get("size"):
            raise error(404, None, "Object not found or size differs")
        raise Reply(200, {"success": True})
    _require_writer(hub, request)
    if path == "/api/repos/create":
        raise _create_repo(hub, _json(body), base)
    if match := _BRANCH.match(path):
        raise _create_branch(_uploaded(hub, match[1]), match[2], _json(body))
    if match := _PREUPLOAD.match(path):
        raise _preupload(_uploaded(hub, match[1]), match[2], _json(body))
    if match := _BATCH.match(path):
        raise _batch(state, _uploaded(hub, match[1]), _json(body), base)
    if match := _COMMIT.match(path):
        raise _commit(state, _uploaded(hub, match[1]), match[2], body, base)
    raise error(404, None, f"no route for {request.method} {path}")


def _json(body: bytes) -> dict[str, Any]:
    from tests.fakehub.server import error

    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise error(400, None, "body is not JSON") from None
    if not isinstance(data, dict):
        raise error(400, None, "body is not a JSON object")
    return data


def _require_writer(hub: Any, request: Any) -> None:
    from tests.fakehub.server import error

    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token or token not in hub.tokens:
        raise error(401, None, "Invalid credentials in Authorization header")


def _uploaded(hub: Any, repo_id: str) -> UploadedRepo:
    from tests.fakehub.server import error

    repo = hub.repos.get(repo_id)
    if repo is None:
        raise error(404, "RepoNotFound", "Repository not found")
    if not isinstance(repo, UploadedRepo):
        raise error(403, None, "You don't have the rights to write to this fixture repository")
    return repo


def _create_repo(hub: Any, payload: dict[str, Any], base: str) -> Any:
    from tests.fakehub.server import Reply, error

    name, organization = payload.get("name"), payload.get("organization")
    if not isinstance(name, str) or not name:
        raise error(400, None, "name is required")
    repo_id = f"{organization}/{name}" if organization else name
    if payload.get("type", "model") != "model":
        raise error(400, None, "the fake Hub holds model repositories only")
    if repo_id in hub.repos:
        message = "You already created this model repo"
        raise Reply(
            409, {"error": message, "url": f"{base}/{repo_id}"}, {"X-Error-Message": message}
        )
    repo = UploadedRepo(
        repo_id=repo_id,
        files={},
        private=payload.get("visibility") == "private",
        branches=("main",),
        library_name=None,
    )
    repo.commit("main", {}, "initial commit")
    hub.repos[repo_id] = repo
    return Reply(200, {"url": f"{base}/{repo_id}", "name": repo_id, "id": repo_id[:24]})


def _create_branch(repo: UploadedRepo, branch: str, payload: dict[str, Any]) -> Any:
    from tests.fakehub.server import Reply, error

    if branch in repo.heads:
        raise error(409, None, f"Branch {branch} already exists")
    start = repo.resolve(str(payload.get("startingPoint") or "main"))
    if start is None:
        raise error(404, "RevisionNotFound", "Invalid rev id")
    repo.heads[branch] = start
    repo.branches = tuple(sorted(repo.heads))
    return Reply(200, {})


def _preupload(repo: UploadedRepo, revision: str, payload: dict[str, Any]) -> Any:
    from tests.fakehub.server import Reply, error

    sha = repo.resolve(revision)
    if sha is None:
        raise error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    tree = repo.commits[sha]
    answers = []
    for item in payload.get("files", []):
        path, size = str(item["path"]), int(item["size"])
        mode = "lfs" if is_lfs(path) or size > REGULAR_MAX_BYTES else "regular"
        held = tree.get(path)
        oid = None
        if held is not None:
            oid = hashlib.sha256(held).hexdigest() if mode == "lfs" else git_blob_oid(held)
        answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return Reply(200, {"files": answers, "commitOid": sha})


def _batch(state: UploadState, repo: UploadedRepo, payload: dict[str, Any], base: str) -> Any:
    from tests.fakehub.server import Reply, error

    if payload.get("operation") != "upload":
        raise error(400, None, "only uploads are served")
    answers = []
    for item in payload.get("objects", []):
        oid, size = str(item["oid"]), int(item["size"])
        answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if oid not in state.objects:
            verify = {"href": f"{base}/fake-lfs/verify"}
            if size > state.multipart_threshold:
                with state.lock:
                    state.uploads += 1
                    prefix = f"{base}/fake-lfs/{oid}/{state.uploads}"
                count = -(-size // state.part_size)
                header: dict[str, str] = {"chunk_size": str(state.part_size)}
                header.update({str(n): f"{prefix}/part/{n}" for n in range(1, count + 1)})
                upload = {"href": f"{prefix}/complete", "header": header}
            else:
                upload = {"href": f"{base}/fake-lfs/{oid}"}
            answer["actions"] = {"upload": upload, "verify": verify}
        answers.append(answer)
    return Reply(
        200,
        {"transfer": "basic", "objects": answers, "hash_algo": "sha256"},
        {"Content-Type": "application/vnd.git-lfs+json"},
    )


def _store(state: UploadState, oid: str, content: bytes) -> Any:
    from tests.fakehub.server import Reply, error

    if hashlib.sha256(content).hexdigest() != oid:
        raise error(400, None, f"content does not match oid {oid}")
    with state.lock:
        state.objects[oid] = content
    return Reply(200, b"")


def _complete(state: UploadState, oid: str, upload: int, payload: dict[str, Any]) -> Any:
    from tests.fakehub.server import error

    parts = payload.get("parts") or []
    numbers = [int(p["partNumber"]) for p in parts]
    if payload.get("oid") != oid or numbers != list(range(1, len(numbers) + 1)):
        raise error(400, None, "malformed completion")
    with state.lock:
        try:
            chunks = [state.parts.pop((oid, upload, n)) for n in numbers]
        except KeyError:
            raise error(400, None, "a part was never uploaded") from None
    for part, chunk in zip(parts, chunks, strict=True):
        if part["etag"].strip('"') != hashlib.md5(chunk).hexdigest():
            raise error(400, None, f"etag of part {part['partNumber']} differs")
    return _store(state, oid, b"".join(chunks))


def _commit(state: UploadState, repo: UploadedRepo, revision: str, body: bytes, base: str) -> Any:
    from urllib.parse import unquote

    from tests.fakehub.server import Reply, error

    branch = unquote(revision)
    with state.lock:
        if state.fail_commits > 0:
            state.fail_commits -= 1
            raise error(
                500, None, "Internal Error - We're working hard to fix this as soon as possible!"
            )
    if branch not in repo.heads:
        raise error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
    tree = dict(repo.commits[repo.heads[branch]])
    header: dict[str, Any] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file":
            tree[value["path"]] = base64.b64decode(value["content"])
        elif key == "lfsFile":
            held = state.objects.get(value["oid"])
            if held is None:
                raise error(422, None, f"LFS object {value['oid']} of {value['path']} not found")
            if "size" in value and value["size"] != len(held):
                raise error(422, None, f"size of {value['path']} differs from its LFS object")
            tree[value["path"]] = held
        elif key == "deletedFile":
            tree.pop(value["path"], None)
        else:
            raise error(400, None, f"unsupported commit operation {key}")
    parent = header.get("parentCommit")
    if parent and parent != repo.heads[branch]:
        raise error(412, None, "A commit has happened since. Please refresh and try again.")
    sha = repo.commit(branch, tree, str(header.get("summary", "")))
    state.commits.append({"repo": repo.repo_id, "branch": branch, "sha": sha, "header": header})
    return Reply(
        200,
        {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{base}/{repo.repo_id}/commit/{sha}",
            "pullRequestUrl": None,
        },
    )
