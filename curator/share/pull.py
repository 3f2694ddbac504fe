"""``curator pull ID`` for a published registry entry: exactly its files at its commit, every sha256
checked before anything is placed, one rename into the Foundry cache, then the load-tested Foundry
registration ``curator register`` uses.

The entry comes from a pull request, so it is checked first (schema, safe paths, files equal to
build.artifacts). Downloads land in a work directory under the cache (``.curator-work``, which
Foundry does not scan); a missing or tampered file fails the pull with its name and the work
directory is removed: nothing is left behind.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME
from curator.compile.placement import place, remove_stale, target_dir, work_directory
from curator.compile.preflight import has_cuda_gpu
from curator.errors import CuratorError, InputFileError, NotFound, UsageProblem
from curator.hub.client import hub_errors, make_api
from curator.hub.transport import body_limit, hub_deadline, plain_http
from curator.progress import Progress
from curator.registry import load_registry, require_model
from curator.registry.document import Document, Entry, find_model, models_of
from curator.registry.rules import distribution_mismatch
from curator.registry.select import select_models
from curator.schemas import schema_problems
from curator.share.files import ListedFile, file_problems, listed_files


class PullRefused(InputFileError):
    """The downloaded files are not the ones the registry entry lists (tampered or missing)."""


@dataclass(frozen=True)
class PullResult:
    id: str
    repo: str
    commit: str
    path: Path
    action: str  # "downloaded" | "already present"
    downloaded_bytes: int
    foundry_action: str  # "registered" | "re-registered"
    load_ms: float
    completion_tokens: int


@dataclass(frozen=True)
class PullFailure:
    id: str
    error: str
    hint: str | None


@dataclass(frozen=True)
class PullAllResult:
    pulled: tuple[PullResult, ...]
    failed: tuple[PullFailure, ...]
    skipped: tuple[tuple[str, str], ...]  # (id, reason)
    ram_gb: float | None


def is_published(document: Document, model_id: str) -> bool:
    """Whether ``model_id`` names a registry entry with a ``distribution`` (the CLI's dispatch)."""
    try:
        entry = find_model(document, model_id)
    except CuratorError:
        return False
    return entry is not None and isinstance(entry.get("distribution"), dict)


def pull_model(
    model_id: str,
    *,
    registry: Path,
    cache_dir: Path,
    force: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    """Bring the published entry ``model_id`` onto this machine and register it with Foundry."""
    entry = require_model(load_registry(registry), model_id, registry)
    return _pull_entry(entry, cache_dir, force, progress or (lambda _message: None))


def pull_all(
    *,
    registry: Path,
    cache_dir: Path,
    capabilities: tuple[str, ...] = (),
    ram_gb: float | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> PullAllResult:
    """Every published entry with ``capabilities`` (and, given ``ram_gb``, whose minRamGb fits)
    that this machine's hardware runs (CPU; CUDA with an NVIDIA GPU); one failing model does not
    stop the others. Entries for other execution providers are skipped: pull them by id."""
    say = progress or (lambda _message: None)
    if not registry.exists():  # nothing to bring the machine up to: not "0 pulled"
        raise NotFound(f"registry not found: {registry}", hint="pass --registry PATH")
    document = load_registry(registry)
    models = models_of(document)
    limit = ram_gb if ram_gb is not None else math.inf
    fitting: set[str] = set()
    skipped: list[tuple[str, str]] = []
    for task in sorted({str(m.get("task")) for m in models}):
        selection = select_models(document, task, capabilities, limit)
        fitting.update(c.id for c in selection.ranked)
        skipped.extend(
            (e.id, e.reason) for e in selection.excluded if not e.reason.startswith("task is")
        )
    pulled: list[PullResult] = []
    failed: list[PullFailure] = []
    for entry in sorted(models, key=lambda m: str(m.get("id"))):
        model_id = str(entry.get("id"))
        if model_id not in fitting:
            continue
        if not isinstance(entry.get("distribution"), dict):
            skipped.append((model_id, "not published (curator publish)"))
            continue
        unsupported = _hardware_gap(entry)
        if unsupported:
            skipped.append((model_id, unsupported))
            continue
        say(f"pulling {model_id}")
        try:
            pulled.append(_pull_entry(entry, cache_dir, force, say))
        except CuratorError as exc:
            failed.append(PullFailure(model_id, exc.message, exc.hint))
    return PullAllResult(tuple(pulled), tuple(failed), tuple(sorted(set(skipped))), ram_gb)


def _hardware_gap(entry: Entry) -> str | None:
    """Why this machine cannot run ``entry``'s execution provider (None when it can)."""
    runtime = entry.get("runtime")
    provider = runtime.get("executionProvider") if isinstance(runtime, dict) else None
    if provider in (None, "CPUExecutionProvider"):
        return None
    if provider == "CUDAExecutionProvider":
        return None if has_cuda_gpu() else "needs an NVIDIA GPU (CUDA); this machine has none"
    return f"runs on {provider}: pull it by id on a machine that has it"


def _checked(entry: Entry) -> tuple[str, str, tuple[ListedFile, ...], ListedFile]:
    """(repo, commit, artifacts, manifest) of an entry that passed the schema and the rules."""
    model_id = str(entry.get("id"))
    distribution = entry.get("distribution")
    if not isinstance(distribution, dict):
        raise NotFound(
            f"{model_id} is in the registry but not published: it has no distribution",
            hint=f"whoever compiled it runs: curator publish {model_id} --to ORG/NAME",
        )
    alone = {"schemaVersion": 1, "policy": {"allowedLicenses": []}, "models": [entry]}
    problems = [str(p) for p in schema_problems(alone, "models")]
    if not problems:
        mismatch = distribution_mismatch(distribution["files"], entry["build"]["artifacts"])
        if mismatch:
            problems.append(f"distribution.files differ from build.artifacts: {mismatch}")
        if "manifest" not in distribution:
            problems.append("distribution.manifest is missing")
    if problems:
        raise InputFileError(
            f"the registry entry {model_id} cannot be pulled: {'; '.join(problems)}",
            hint="curator registry validate",
        )
    try:
        files = listed_files(distribution["files"])
    except ValueError as exc:
        raise InputFileError(
            f"the registry entry {model_id} cannot be pulled: {exc}",
            hint="curator registry validate",
        ) from None
    manifest = ListedFile(
        MANIFEST_NAME, distribution["manifest"]["sha256"], distribution["manifest"]["bytes"]
    )
    return distribution["repo"], distribution["commit"], files, manifest


def _pull_entry(entry: Entry, cache_dir: Path, force: bool, say: Progress) -> PullResult:
    model_id = str(entry["id"])
    repo, commit, files, manifest = _checked(entry)
    everything = (*files, manifest)
    target = target_dir(cache_dir, entry["publisher"], model_id)
    present = target.is_dir() and not file_problems(target, everything)
    if target.exists() and not present and not force:
        raise UsageProblem(
            f"{target} exists and is not the build the registry lists for {model_id}",
            hint=f"curator pull {model_id} --force replaces it (curator cache verify shows how "
            "it differs)",
        )
    downloaded = 0
    remove_stale(cache_dir)
    with work_directory(cache_dir, "pull") as work:
        if not present:
            staging = work / "download"
            total = sum(f.bytes for f in everything)
            say(
                f"downloading {len(everything)} files ({total / 2**20:.1f} MiB) from {repo}@{commit}"
            )
            _download(model_id, repo, commit, everything, staging)
            problems = file_problems(staging, everything)
            if problems:
                raise PullRefused(
                    f"{model_id}: refused {repo}@{commit[:12]}, nothing was placed: "
                    + "; ".join(problems),
                    hint="the published files were changed after publishing; the publisher "
                    f"runs curator publish {model_id} again and the registry records the new commit",
                )
            shutil.rmtree(staging / ".cache", ignore_errors=True)
            place(staging, target, work, replace=True)
            downloaded = total
        try:
            registration = _register(entry, target, cache_dir)
        except BaseException:  # a failed load test, Ctrl-C, anything: the old directory returns
            if not present:
                _take_back(target, work / "replaced")
            raise
    return PullResult(
        id=model_id,
        repo=repo,
        commit=commit,
        path=target,
        action="already present" if present else "downloaded",
        downloaded_bytes=downloaded,
        foundry_action=registration.action,
        load_ms=registration.load_test.load_ms,
        completion_tokens=registration.load_test.completion_tokens,
    )


def _download(
    model_id: str, repo: str, commit: str, files: tuple[ListedFile, ...], staging: Path
) -> None:
    """Each file at ``commit`` into ``staging`` (huggingface_hub's local-dir download), as one
    transfer: a Hub that stalls or trickles ends one deadline after its last real progress.

    Each file's size is checked against the registry's before its bytes arrive: the Hub's file
    metadata first, then the download's announced length, then its bytes as they come (no answer
    may exceed the listed size). A file the repository lacks is reported as missing by the check
    that follows, not here."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError

    api = make_api()
    staging.mkdir(parents=True, exist_ok=True)
    with hub_errors(repo, commit), plain_http(), hub_deadline(progress=True):
        for item in files:
            url = hf_hub_url(repo, item.path, revision=commit, endpoint=api.endpoint)
            try:
                size = get_hf_file_metadata(url, endpoint=api.endpoint).size
            except RemoteEntryNotFoundError:
                continue
            if size is not None and size != item.bytes:
                raise PullRefused(
                    f"{model_id}: refused {repo}@{commit[:12]}, nothing was placed: "
                    f"{item.path}: the Hub holds {size} bytes, the registry lists {item.bytes}",
                    hint="the published files were changed after publishing; the publisher runs "
                    f"curator publish {model_id} again and the registry records the new commit",
                )
            with body_limit(item.bytes):
                hf_hub_download(
                    repo,
                    item.path,
                    revision=commit,
                    local_dir=staging,
                    endpoint=api.endpoint,
                )


def _register(entry: Entry, target: Path, cache_dir: Path) -> Any:
    from curator.register import (  # start-up: ~220 ms (Foundry's wrappers), after a download
        foundry_metadata,
        register_load_tested,
    )

    return register_load_tested(cache_dir, target, str(entry["id"]), foundry_metadata(entry))


def _take_back(target: Path, replaced: Path) -> None:
    """A pulled model that failed its load test goes; the directory it replaced comes back."""
    shutil.rmtree(target, ignore_errors=True)
    if replaced.is_dir():
        os.replace(replaced, target)
