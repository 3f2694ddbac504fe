"""The Foundry model cache: list model directories with their registration states, remove one,
verify artifacts against the compile manifest. One id, one directory: a directory whose id (its
manifest's, else its name's) another directory also claims is flagged by both ``ls`` and ``verify``
(a copied directory keeps the manifest, so the id, of the original)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from curator import foundry
from curator.cache.modeldir import (
    MANIFEST_NAME,
    artifacts,
    dir_bytes,
    dir_model_id,
    find_model_dir,
    inside,
    model_dirs,
    read_manifest,
    sha256_file,
)
from curator.errors import InputFileError, NotFound
from curator.foundry.catalog import DOWNLOAD_SIGNAL, finished_download_id
from curator.registry import find_model, load_registry
from curator.registry import remove_model as remove_entry
from curator.registry.rules import unsafe_path_reason


@dataclass(frozen=True)
class CachedModel:
    """One model: its directory (None if registered but gone), size and where it is known.

    ``foundry_registered`` is true only for the directory Foundry's registration points at;
    ``shares_id_with`` lists the other directories that claim the same id (it should be empty).
    """

    id: str
    path: Path | None
    size_mb: float | None
    foundry_registered: bool
    in_registry: bool
    has_manifest: bool
    in_cache: bool
    shares_id_with: tuple[Path, ...] = ()
    unfinished_download: bool = False  # Foundry's download.tmp marker: not usable, not cached


def list_cache(cache_dir: Path, registry: Path) -> list[CachedModel]:
    """Model directories in ``cache_dir`` plus models Foundry has registered from elsewhere."""
    if not cache_dir.is_dir():
        return []  # nothing compiled, nothing registered (Foundry keeps registrations in it)
    registered = {m.id: m for m in foundry.runtime(cache_dir).list_registered()}
    registry_ids = {
        str(e.get("id")) for e in load_registry(registry).get("models", []) if isinstance(e, dict)
    }
    rows: list[CachedModel] = []
    seen: set[str] = set()
    ids = dir_ids(cache_dir)
    for path, model_id in ids.items():
        seen.add(model_id)
        registration = registered.get(model_id)
        rows.append(
            CachedModel(
                id=model_id,
                path=path,
                size_mb=round(dir_bytes(path) / 2**20, 2),
                foundry_registered=registration is not None
                and (registration.path is None or _same(registration.path, path)),
                in_registry=model_id in registry_ids,
                has_manifest=(path / MANIFEST_NAME).is_file(),
                in_cache=True,
                shares_id_with=_others(ids, path),
                unfinished_download=(path / DOWNLOAD_SIGNAL).exists(),
            )
        )
    for model_id, model in registered.items():
        if model_id in seen:
            continue
        found = model.path if model.path is not None and model.path.is_dir() else None
        rows.append(
            CachedModel(
                id=model_id,
                path=model.path,
                size_mb=round(dir_bytes(found) / 2**20, 2) if found else None,
                foundry_registered=True,
                in_registry=model_id in registry_ids,
                has_manifest=bool(found and (found / MANIFEST_NAME).is_file()),
                in_cache=False,
            )
        )
    return sorted(rows, key=lambda r: (r.id, str(r.path)))


def dir_ids(cache_dir: Path) -> dict[Path, str]:
    """Every model directory in the cache with the id it claims (manifest, else its name)."""
    return {path: dir_model_id(path) or path.name for path in model_dirs(cache_dir)}


def _others(ids: dict[Path, str], path: Path) -> tuple[Path, ...]:
    return tuple(other for other, held in ids.items() if held == ids[path] and other != path)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


@dataclass(frozen=True)
class RemoveResult:
    id: str
    unregistered: bool
    removed_dir: Path | None
    kept_dir: Path | None
    registry_entry_removed: bool
    catalog_download: bool = (
        False  # a model downloaded from Foundry's catalog (nothing to unregister)
    )


def remove_model(model_id: str, cache_dir: Path, registry: Path | None = None) -> RemoveResult:
    """Unregister ``model_id`` from Foundry, delete its directory if it lies in the cache, and with
    ``registry`` remove its registry entry. A directory outside the cache is left in place."""
    rt = foundry.runtime(cache_dir)
    registered = rt.get(model_id)
    path = find_model_dir(cache_dir, model_id)
    if path is None and registered is not None:
        path = registered.path
    entry_exists = False
    if registry is not None:
        entry_exists = find_model(load_registry(registry), model_id) is not None
    if registered is None and path is None and not entry_exists:
        raise NotFound(
            f"{model_id} is neither registered nor in {cache_dir}", hint="curator cache ls"
        )
    catalog = registered is not None and registered.catalog
    unregistered = rt.unregister(model_id) if registered is not None and not catalog else False
    removed: Path | None = None
    kept: Path | None = None
    if path is not None and path.is_dir():
        if inside(path, cache_dir, strictly=True):
            _remove_tree(path)
            removed = path
        else:
            kept = path
    if entry_exists and registry is not None:
        remove_entry(registry, model_id)
    return RemoveResult(model_id, unregistered, removed, kept, entry_exists, catalog)


def _remove_tree(path: Path) -> None:
    """Rename out of the way first (Foundry and ``cache ls`` skip dot names), then delete."""
    doomed = path.with_name(f".{path.name}.removing-{os.getpid()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        parent = path.parent
        if not any(parent.iterdir()):
            parent.rmdir()


@dataclass(frozen=True)
class VerifyResult:
    """One model directory checked against its manifest; ``ok`` only if nothing is wrong."""

    id: str
    path: Path
    checked: int
    missing: tuple[str, ...]
    changed: tuple[str, ...]
    problem: str | None
    note: str | None = None  # why nothing was checked, for a directory with nothing to check

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed and self.problem is None


def verify_dir(path: Path, model_id: str | None = None) -> VerifyResult:
    """sha256 and size of every artifact the manifest lists, against the files on disk."""
    try:
        manifest = read_manifest(path)
    except InputFileError as exc:
        name = model_id or dir_model_id(path) or path.name
        return VerifyResult(name, path, 0, (), (), f"cannot verify: {exc.message}")
    name = model_id or dir_model_id(path, manifest) or path.name
    listed = artifacts(manifest)
    if manifest is None and _catalog_download(path):
        note = "a Foundry catalog download: no compile manifest to check it against"
        return VerifyResult(name, path, 0, (), (), None, note)
    if manifest is None or not listed:
        reason = "no " + MANIFEST_NAME if manifest is None else "the manifest lists no artifacts"
        return VerifyResult(name, path, 0, (), (), f"cannot verify: {reason}")
    missing: list[str] = []
    changed: list[str] = []
    for artifact in listed:
        rel = str(artifact["path"])
        unsafe = unsafe_path_reason(rel)
        if unsafe:  # a manifest is input too: never read outside the model directory
            return VerifyResult(name, path, len(listed), (), (), f"manifest path {rel!r}: {unsafe}")
        file = path / rel
        if not file.is_file():
            missing.append(rel)
            continue
        size_ok = artifact.get("bytes") is None or file.stat().st_size == artifact["bytes"]
        if not size_ok or sha256_file(file) != artifact.get("sha256"):
            changed.append(rel)
    return VerifyResult(name, path, len(listed), tuple(missing), tuple(changed), None)


def verify_cache(cache_dir: Path, model_id: str | None = None) -> list[VerifyResult]:
    """Verify one model (by id) or every model directory in the cache; a directory whose id
    another directory also claims fails with that as its problem."""
    ids = dir_ids(cache_dir)
    if model_id is None:
        return [_flag_shared(verify_dir(p), _others(ids, p)) for p in ids]
    holders = [p for p, held in ids.items() if held == model_id]
    if len(holders) > 1:
        return [_flag_shared(verify_dir(p, model_id), _others(ids, p)) for p in holders]
    path = find_model_dir(cache_dir, model_id)
    if path is None:
        registered = foundry.runtime(cache_dir).get(model_id)
        path = registered.path if registered is not None else None
    if path is None or not path.is_dir():
        raise NotFound(f"no directory for {model_id} in {cache_dir}", hint="curator cache ls")
    return [verify_dir(path, model_id)]


def _catalog_download(path: Path) -> bool:
    return finished_download_id(path) is not None


def _flag_shared(result: VerifyResult, others: tuple[Path, ...]) -> VerifyResult:
    if not others or result.problem is not None:
        return result
    problem = f"id {result.id} is also held by {', '.join(map(str, others))}"
    return dataclasses.replace(result, problem=problem)
