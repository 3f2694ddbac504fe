"""Foundry Local's public model catalog through the SDK: list, look up (alias or id), download.

An alias (``qwen2.5-0.5b``) resolves to the variant for this machine as the SDK picks it (the
Foundry CLI's choice), preferring a variant already in the cache; an id (``name:version``) names one
variant; a bare name (``name`` without ``:version``) its latest version.

Reachability: with no network the SDK retries for about 4 s and then answers with its last copy of
the catalog (``<cache>/foundry.modelinfo.json``) or nothing, without saying it failed. So listing and
lookup first try a TCP connection to the catalog's host (a refused connection or an unknown host
answers at once); if that fails they say the catalog is unreachable and answer from what is cached:
finished downloads on disk, described by the SDK's stored copy of the catalog where it has one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from curator.errors import FoundryError, NotFound
from curator.foundry._native import (
    foundry_error,
    is_sdk_error,
    sdk_errors,
    variant_device_type,
    variant_path,
)
from curator.foundry.types import RegisteredModel
from curator.foundry.urls import catalog_url

if TYPE_CHECKING:
    from curator.foundry.manager import FoundryRuntime

PROBE_TIMEOUT_S = 3.0
CANCEL_WAIT_S = 30.0  # how long an interrupted download may take to stop
DOWNLOAD_SIGNAL = "download.tmp"  # the SDK's marker of an unfinished download
INFERENCE_MODEL = "inference_model.json"
STORED_CATALOG = "foundry.modelinfo.json"  # the SDK's copy of the catalog, in the cache


@dataclass(frozen=True)
class CatalogModel:
    """One variant in Foundry Local's catalog, as the SDK reports it."""

    id: str
    alias: str | None
    name: str
    version: int
    display_name: str | None
    device_type: str | None
    execution_provider: str | None
    file_size_mb: int | None
    license: str | None
    publisher: str | None
    task: str | None
    context_length: int | None
    uri: str | None
    cached: bool
    path: Path | None


@dataclass(frozen=True)
class CatalogDownload:
    model: CatalogModel
    action: str  # "downloaded" | "already cached"


def find_variant(rt: FoundryRuntime, name: str) -> Any:
    """The SDK variant ``name`` means here, or None: an id, a bare name (latest) or an alias."""
    public = rt.public_catalog()
    if ":" in name:
        return _sdk(public.get_model_variant, name)
    model = _sdk(public.get_model, name)
    if model is not None:
        chosen = _sdk(public.get_model_variant, model.id)
        if chosen is None or not chosen.is_cached:
            cached = [v for v in model.variants if v.is_cached]
            if cached:
                return cached[0]
        return chosen
    named = [v for m in _sdk(public.list_models) for v in m.variants if v.info.name == name]
    return max(named, key=lambda v: v.info.version) if named else None


def cached_variant(rt: FoundryRuntime, name: str) -> Any:
    """The cached catalog variant ``name`` resolves to; NotFound if it is unknown or not pulled.
    With the catalog unreachable, a name that no download on disk carries fails at once."""
    hint = "curator register DIR; curator cache ls and curator catalog list show the models"
    problem = probe(catalog_url())
    if problem is not None and not any(
        name in (m.id, m.alias, m.name) for m in cached_on_disk(rt.cache_dir)
    ):
        raise NotFound(
            f"{name} is neither registered with Foundry Local in {rt.cache_dir} nor a downloaded "
            f"catalog model (Foundry's catalog is unreachable: {problem})",
            hint=hint,
        )
    variant = find_variant(rt, name)
    if variant is None:
        raise NotFound(
            f"{name} is neither registered with Foundry Local in {rt.cache_dir} nor in Foundry's "
            "catalog",
            hint=hint,
        )
    if not variant.is_cached:
        raise NotFound(
            f"{name} ({variant.id}) is in Foundry's catalog but not downloaded",
            hint=f"curator pull {name}",
        )
    return variant


def download(
    rt: FoundryRuntime, name: str, progress: Callable[[float], None] | None = None
) -> CatalogDownload:
    """Download ``name``'s variant into the cache (progress in percent). An interrupted or failed
    download removes the directory it created: nothing is left that looks cached."""
    variant = find_variant(rt, name)
    if variant is None:
        raise _not_in_catalog(name, probe(catalog_url()))
    model = describe(variant)
    if model.cached:
        return CatalogDownload(model, "already cached")
    target = rt.cache_dir / (model.publisher or "") / model.id.replace(":", "-")
    created = not target.exists()
    publisher_created = not target.parent.exists()
    try:
        _download_interruptibly(variant, progress)
    except BaseException as exc:
        if created and not isinstance(exc, _StillRunning):
            shutil.rmtree(target, ignore_errors=True)
            if publisher_created and target.parent != rt.cache_dir:
                shutil.rmtree(target.parent, ignore_errors=True)
        if isinstance(exc, _StillRunning):
            raise KeyboardInterrupt from None
        if isinstance(exc, Exception) and is_sdk_error(exc):
            raise foundry_error(
                exc, f"cannot download {model.id}", f"check the network, then curator pull {name}"
            ) from None
        raise
    fresh = _sdk(rt.public_catalog().get_model_variant, model.id)
    done = describe(fresh) if fresh is not None else model
    if not done.cached:
        if created:  # nothing may be left that looks cached
            shutil.rmtree(target, ignore_errors=True)
        raise FoundryError(
            f"{model.id} is not in the cache after downloading it",
            hint=f"run curator pull {name} again; curator cache ls shows what is cached",
        )
    return CatalogDownload(done, "downloaded")


class _StillRunning(KeyboardInterrupt):
    """Interrupted, and the native download did not stop in time: leave its files alone."""


def _download_interruptibly(variant: Any, progress: Callable[[float], None] | None) -> None:
    """``variant.download`` in a worker thread, so that Ctrl-C (which Python delivers to the main
    thread only) cancels it: the SDK checks the cancel event at each progress step and while it
    waits for another process's download of the same model."""
    cancel = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            variant.download(progress, cancel)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, name="foundry-download", daemon=True)
    try:
        worker.start()  # inside the try: the interrupt may come before start() returns
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        if worker.ident is not None:
            worker.join(CANCEL_WAIT_S)
        if worker.is_alive():
            raise _StillRunning from None
        raise
    if failure:
        raise failure[0]


def describe(variant: Any) -> CatalogModel:
    info = variant.info
    runtime_info = info.runtime
    cached = bool(variant.is_cached)
    path = variant_path(variant) if cached else None
    return CatalogModel(
        id=info.id,
        alias=info.alias or None,
        name=info.name,
        version=int(info.version),
        display_name=info.display_name,
        device_type=variant_device_type(runtime_info),
        execution_provider=(runtime_info.execution_provider or None) if runtime_info else None,
        file_size_mb=info.file_size_mb,
        license=info.license,
        publisher=info.publisher,
        task=info.task,
        context_length=info.context_length,
        uri=info.uri or None,
        cached=cached,
        path=path,
    )


def cached_on_disk(cache_dir: Path) -> list[CatalogModel]:
    """Catalog models whose download finished (``<cache>/<publisher>/<name>-<version>/`` with
    ``inference_model.json`` naming ``name:version`` and no ``download.tmp``), read from disk: what
    is cached even when the SDK has no copy of the catalog to describe it."""
    found: list[CatalogModel] = []
    if not cache_dir.is_dir():
        return found
    stored = _stored_catalog(cache_dir)
    for publisher in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        if publisher.name.startswith("."):
            continue
        for model_dir in sorted(p for p in publisher.iterdir() if p.is_dir()):
            model_id = finished_download_id(model_dir)
            if model_id is None:
                continue
            name, version = model_id.rsplit(":", 1)
            known = stored.get(model_id, {})
            runtime_info = known.get("runtime")
            found.append(
                CatalogModel(
                    id=model_id,
                    alias=_text(known, "alias"),
                    name=name,
                    version=int(version),
                    display_name=_text(known, "displayName"),
                    device_type=_text(runtime_info, "deviceType"),
                    execution_provider=_text(runtime_info, "executionProvider"),
                    file_size_mb=_int(known, "fileSizeMb"),
                    license=_text(known, "license"),
                    publisher=_text(known, "publisher") or publisher.name,
                    task=_text(known, "task"),
                    context_length=_int(known, "contextLength"),
                    uri=_text(known, "uri"),
                    cached=True,
                    path=model_dir,
                )
            )
    return found


def cached_registrations(rt: FoundryRuntime) -> list[RegisteredModel]:
    """Downloaded catalog models as Foundry Local models this runtime can load (from disk)."""
    loaded = set(rt.loaded_ids())
    return [
        RegisteredModel(
            id=m.id,
            alias=m.alias or m.name,
            display_name=m.display_name,
            path=m.path,
            task=m.task,
            publisher=m.publisher,
            license=m.license,
            file_size_mb=m.file_size_mb,
            context_length=m.context_length,
            device_type=m.device_type,
            execution_provider=m.execution_provider,
            loaded=m.id in loaded,
            catalog=True,
        )
        for m in cached_on_disk(rt.cache_dir)
    ]


def _stored_catalog(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """The SDK's last stored copy of the catalog, by id (empty if missing or unreadable)."""
    try:
        document = json.loads((cache_dir / STORED_CATALOG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list):
        return {}
    return {str(m["id"]): m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)}


def _text(holder: Any, key: str) -> str | None:
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, str) and value else None


def _int(holder: Any, key: str) -> int | None:
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def finished_download_id(model_dir: Path) -> str | None:
    """``name:version`` if ``model_dir`` holds a finished catalog download, else None."""
    if (model_dir / DOWNLOAD_SIGNAL).exists():
        return None
    try:
        holders = [model_dir, *(p for p in model_dir.iterdir() if p.is_dir())]
    except OSError:  # unreadable: not a usable download, whatever it holds
        return None
    for holder in holders:
        try:
            name = json.loads((holder / INFERENCE_MODEL).read_text(encoding="utf-8")).get("Name")
        except (OSError, ValueError, AttributeError):
            continue
        versioned = isinstance(name, str) and name.rpartition(":")[2].isdigit()
        if versioned and str(name).replace(":", "-") == model_dir.name:
            return str(name)
    return None


def _not_in_catalog(name: str, problem: str | None) -> NotFound:
    if problem is not None:
        return NotFound(
            f"{name} is not cached and Foundry's catalog is unreachable ({problem})",
            hint="connect to the network, or curator catalog list to see what is cached",
        )
    return NotFound(f"{name} is not in Foundry's catalog", hint="curator catalog list")


def _sdk(call: Callable[..., Any], *args: Any) -> Any:
    with sdk_errors("Foundry's catalog failed", "curator catalog list"):
        result = call(*args)
    return result


def probe(url: str) -> str | None:
    """None if the catalog's host accepts a TCP connection, else why not (within
    PROBE_TIMEOUT_S). With a proxy configured the SDK's traffic does not go straight to the host:
    then the host is taken as reachable and the SDK's answer as it is."""
    proxy_vars = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy")
    if any(os.environ.get(name) for name in proxy_vars):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except socket.gaierror:
        return f"cannot resolve {host}"
    except TimeoutError:
        return f"{host}:{port} did not answer in {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
