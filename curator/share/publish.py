"""``curator publish ID --to REPO``: the compiled directory of a registry entry to a Hugging Face
model repository, and ``distribution`` (repo, commit, files) into the entry.

What is uploaded is exactly the entry's ``build.artifacts`` (checked against the directory first:
a model recompiled since it was registered is refused) plus ``curator-manifest.json``.

Transfer: huggingface_hub's commit API over Git LFS. With ``hf_xet`` installed huggingface_hub
would send large files through the Xet protocol; curator turns that off for the upload
(``hub.transport.plain_http``) so that the protocol it runs is the one its tests run against the
loopback Hub (tests/fakehub/upload.py), under curator's deadline and size checks. A
re-run after an interrupted upload sends only what the Hub does not hold yet (the LFS batch answer
has no upload action for a stored object), and a re-run after a finished one makes no new commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.errors import HubError, InputFileError, NotFound, UsageProblem
from curator.hub.client import check_repo_id, hub_errors, make_api, map_error, token_present
from curator.hub.errors import LOGIN_HINT, HubAuthError
from curator.progress import Progress
from curator.registry import find_model, load_registry, update_model
from curator.share.files import ListedFile, file_problems, listed_files

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class PublishResult:
    id: str
    repo: str
    branch: str
    commit: str
    private: bool
    url: str
    path: Path
    files: tuple[ListedFile, ...]
    manifest: ListedFile
    registry: Path
    distribution: dict[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files) + self.manifest.bytes


def publish(
    model_id: str,
    *,
    repo: str,
    cache_dir: Path,
    registry: Path,
    revision: str | None = None,
    private: bool = False,
    progress: Progress | None = None,
) -> PublishResult:
    """Upload the entry's compiled directory to ``repo`` (created if missing, ``private`` then) on
    branch ``revision`` (created from main if missing) and record ``distribution`` in the entry."""
    from curator.register import resolve_model_dir  # start-up: loads curator.register

    say = progress or (lambda _message: None)
    check_repo_id(repo)
    branch = revision or DEFAULT_BRANCH
    _check_branch(branch)
    entry = find_model(load_registry(registry), model_id)
    if entry is None:
        raise NotFound(
            f"no model {model_id!r} in {registry}",
            hint="register it first: curator register ID (or curator onboard SOURCE)",
        )
    try:
        files = listed_files(entry.get("build", {}).get("artifacts"))
    except ValueError as exc:
        raise InputFileError(
            f"{model_id}: the registry entry's build.artifacts are unusable: {exc}",
            hint="curator registry validate",
        ) from None
    path = resolve_model_dir(model_id, cache_dir)
    problems = file_problems(path, files)
    if problems:
        raise InputFileError(
            f"{path} is not the build the registry lists for {model_id}: {'; '.join(problems)}",
            hint=f"curator register {model_id} again after a recompile, then publish",
        )
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputFileError(
            f"{path} has no {MANIFEST_NAME}", hint="compile it with curator compile SOURCE"
        )
    manifest = ListedFile(MANIFEST_NAME, sha256_file(manifest_path), manifest_path.stat().st_size)
    if not token_present():
        raise HubAuthError(
            "publishing needs a Hugging Face token with write access to " + repo,
            hint=LOGIN_HINT,
        )
    total = sum(f.bytes for f in files) + manifest.bytes
    say(f"uploading {len(files) + 1} files ({total / 2**20:.1f} MiB) to {repo}@{branch}")
    commit, url = _upload(repo, branch, private, path, (*files, manifest), model_id)
    say(f"{repo}@{branch} is at commit {commit}")
    distribution: dict[str, Any] = {
        "repo": repo,
        "commit": commit,
        "files": [f.record() for f in files],
        "manifest": {"sha256": manifest.sha256, "bytes": manifest.bytes},
        "publishedAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if branch != DEFAULT_BRANCH:
        distribution["branch"] = branch

    def record(current: dict[str, Any]) -> None:
        current["distribution"] = distribution

    update_model(registry, model_id, record)
    return PublishResult(
        id=model_id,
        repo=repo,
        branch=branch,
        commit=commit,
        private=private,
        url=url,
        path=path,
        files=files,
        manifest=manifest,
        registry=registry,
        distribution=distribution,
    )


def _check_branch(branch: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", branch) or len(branch) > 200:
        raise UsageProblem(
            f"{branch!r} is not a branch name curator publishes to",
            hint="use letters, digits, '.', '_' and '-', e.g. --revision int4-cpu",
        )


def _upload(
    repo: str,
    branch: str,
    private: bool,
    directory: Path,
    files: tuple[ListedFile, ...],
    model_id: str,
) -> tuple[str, str]:
    """One commit with every file; returns (commit sha, repository URL)."""
    from huggingface_hub import CommitOperationAdd

    from curator.hub.endpoint import deadline_seconds  # start-up: with the Hub client
    from curator.hub.transport import UPLOAD_TIMEOUT, hub_deadline, plain_http  # start-up: idem

    api = make_api()
    # One transfer: by default it may wait as long as one upload read for the Hub to answer (it
    # stores and checks what it was sent first); every 64 KiB sent or received moves it on.
    seconds = deadline_seconds(default=UPLOAD_TIMEOUT)
    with (
        hub_errors(repo, branch),
        _upload_errors(repo),
        plain_http(),
        hub_deadline(seconds, progress=True),
    ):
        url = api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        if branch != DEFAULT_BRANCH:
            api.create_branch(repo, branch=branch, repo_type="model", exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(directory / f.path))
            for f in files
        ]
        info = api.create_commit(
            repo,
            operations,
            commit_message=f"curator publish {model_id}",
            revision=branch,
            repo_type="model",
        )
    return str(info.oid), str(url)


@contextmanager
def _upload_errors(repo: str) -> Iterator[None]:
    """huggingface_hub wraps a failed LFS transfer in ``RuntimeError("Error while uploading
    'PATH' to the Hub.")``: report it as a HubError naming the file and the Hub's answer."""
    try:
        yield
    except RuntimeError as exc:
        if not str(exc).startswith("Error while uploading"):
            raise
        cause = map_error(exc.__cause__, repo, None) if exc.__cause__ is not None else None
        detail = cause.message if cause is not None else str(exc.__cause__ or "")
        raise HubError(
            f"{exc} {detail}".strip(),
            hint="run the same curator publish again: files the Hub holds are not sent twice",
        ) from exc
