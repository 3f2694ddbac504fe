"""The process-wide SDK manager and Foundry Local's local catalog (registrations) over one cache."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from curator.errors import FoundryError, UsageProblem
from curator.foundry._native import (
    foundry_error,
    sdk_errors,
    variant_device_type,
    variant_path,
)
from curator.foundry.catalog import cached_registrations, cached_variant
from curator.foundry.model import LoadedModel
from curator.foundry.types import APP_NAME, MODEL_ID_RE, ModelMetadata, RegisteredModel
from curator.foundry.urls import configured_catalog_url
from curator.paths import curator_home, foundry_cache_dir


class _Process:
    """The process-wide SDK manager and which directories it was configured with."""

    lock = threading.RLock()
    manager: Any = None
    config_key: tuple[str, str, str] | None = None
    runtime: FoundryRuntime | None = None


def default_logs_dir() -> Path:
    return curator_home() / "foundry-logs"


def runtime(cache_dir: Path | str | None = None, *, logs_dir: Path | None = None) -> FoundryRuntime:
    """The process's runtime for ``cache_dir`` (``--cache-dir`` / ``$FOUNDRY_CACHE_DIR`` / default).

    Returns the same object for the same directories. Asking for another cache directory while a
    model is loaded raises FoundryError (the SDK manager is a process-wide singleton).
    """
    cache = foundry_cache_dir(cache_dir).absolute()
    logs = (logs_dir or default_logs_dir()).absolute()
    key = (str(cache), str(logs), configured_catalog_url() or "")
    with _Process.lock:
        current = _Process.runtime
        if current is not None and _Process.config_key == key and not current.closed:
            return current
        if current is not None and not current.closed:
            if current.loaded_ids():
                raise FoundryError(
                    f"Foundry Local is already running here on {current.cache_dir} with "
                    f"{', '.join(current.loaded_ids())} loaded",
                    hint="use one cache directory per process",
                )
            current.close()
        _reset_manager(cache, logs, key)
        rt = FoundryRuntime(cache, logs)
        _Process.runtime = rt
        return rt


def _reset_manager(cache: Path, logs: Path, key: tuple[str, str, str]) -> None:
    try:
        from foundry_local_sdk import Configuration, FoundryLocalManager, LogLevel
    except ImportError as exc:
        raise FoundryError(
            f"Foundry Local is not installed here ({exc})",
            hint="pip install 'curator[foundry]' (or '.[foundry]' in a checkout)",
        ) from None

    if _Process.manager is not None and _Process.config_key == key:
        return
    if _Process.manager is not None:
        _Process.manager.close()
        _Process.manager = None
    elif FoundryLocalManager.instance is not None:
        FoundryLocalManager.instance.close()
    for directory, what in ((cache, "Foundry cache"), (logs, "Foundry logs")):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FoundryError(
                f"cannot use {directory} as the {what} directory: {exc.strerror or exc}",
                hint="--cache-dir, $FOUNDRY_CACHE_DIR and $CURATOR_HOME must name writable "
                "directories (curator paths shows them)",
            ) from None
    _quiet_python_logger()
    # Native failures come back as exceptions carrying the native message, so by default the
    # native logger stays silent (it would repeat each error on stderr); CURATOR_DEBUG=1 turns
    # it on, to stderr and to <logs_dir>/foundry_local_<date>.log.
    debug = os.environ.get("CURATOR_DEBUG") == "1"
    catalog_url = key[2]
    config = Configuration(
        app_name=APP_NAME,
        model_cache_dir=str(cache),
        logs_dir=str(logs),
        log_level=LogLevel.WARNING if debug else LogLevel.FATAL,
        disable_nonessential_telemetry=True,
        # None: the SDK's default public catalog; $CURATOR_CATALOG_URL points it elsewhere.
        catalog_urls=[(catalog_url, None)] if catalog_url else None,
    )
    try:
        FoundryLocalManager.initialize(config)
    except Exception as exc:
        raise foundry_error(
            exc, "cannot start Foundry Local", "check the cache directory (curator paths)"
        ) from None
    _Process.manager = FoundryLocalManager.instance
    _Process.config_key = key


def _quiet_python_logger() -> None:
    """The SDK's Python logger writes to stdout; move it to stderr (stdout may carry --json)."""
    import logging

    for handler in logging.getLogger("foundry_local_sdk").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


class FoundryRuntime:
    """Foundry Local's local catalog over one model cache directory. Get it with :func:`runtime`.

    A context manager: leaving it unloads the models loaded through it. Methods raise FoundryError
    (native failures, with the native cause) or NotFound (an id that is not registered).
    """

    def __init__(self, cache_dir: Path, logs_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.logs_dir = logs_dir
        self.closed = False
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()

    def __enter__(self) -> FoundryRuntime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _catalog(self) -> Any:
        return self._sdk_catalog("LOCAL")

    def public_catalog(self) -> Any:
        """The SDK's PUBLIC catalog object (Foundry Local's model catalog); see curator.foundry.catalog.

        Its first use in a process fetches the catalog (about 4 s of retries with no network).
        """
        return self._sdk_catalog("PUBLIC")

    def _sdk_catalog(self, kind: str) -> Any:
        """The SDK's catalog of this kind (a CatalogType name); FoundryError once closed."""
        from foundry_local_sdk import CatalogType

        if self.closed:
            raise FoundryError(
                "the Foundry runtime was closed", hint="call foundry.runtime() again"
            )
        return _Process.manager.get_catalog(CatalogType[kind])

    def _variant(self, model_id: str) -> Any:
        with sdk_errors(f"cannot look up {model_id}", "curator cache ls"):
            variant = self._catalog().get_model_variant(model_id)
        return variant

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    def register_model_dir(
        self, path: Path, model_id: str, metadata: ModelMetadata
    ) -> RegisteredModel:
        """Register (or re-register, replacing) ``path`` in the local catalog as ``model_id``.

        Foundry checks only that genai_config.json exists: load-test the model afterwards.
        A model already registered under ``model_id`` is unloaded and replaced.
        """
        from foundry_local_sdk import ModelInfoBuilder

        if not MODEL_ID_RE.match(model_id):
            raise UsageProblem(
                f"bad model id {model_id!r}: Foundry ids look like <name>-<variant>:<version>",
                hint="e.g. tiny-qwen2-generic-cpu:1",
            )
        with self._lock:
            if self._variant(model_id) is not None:
                self.unregister(model_id)
            with (
                sdk_errors(f"Foundry Local refused to register {path}", "curator cache verify"),
                ModelInfoBuilder() as info,
            ):
                _fill_metadata(info, metadata)
                self._catalog().register_model(
                    model_path=str(path.absolute()), model_id=model_id, metadata=info
                )
            found = self.get(model_id)
            if found is None:
                raise FoundryError(f"{model_id} is not listed after registering it", hint=None)
            return found

    def unregister(self, model_id: str) -> bool:
        """Unload (if loaded) and unregister ``model_id``; False if it was not registered."""
        with self._lock:
            held = self._loaded.pop(model_id, None)
            if held is not None:
                held._unload_native()
            variant = self._variant(model_id)
            if variant is None:
                return False
            with sdk_errors(f"cannot unregister {model_id}", "retry"):
                if variant.is_loaded:
                    variant.unload()
                self._catalog().unregister_model(model_id)
            return True

    def list_registered(self) -> list[RegisteredModel]:
        """Every model in the local catalog, then every model downloaded from Foundry's public
        catalog (``catalog`` True; read from the cache, no network), sorted by id."""
        with sdk_errors("cannot list Foundry models", "curator paths"):
            models = self._catalog().list_models()
            variants = {v.id: v for m in models for v in m.variants}
            local = [_describe(variants[key]) for key in sorted(variants)]
        extra = [m for m in cached_registrations(self) if m.id not in variants]
        return sorted(local + extra, key=lambda m: m.id)

    def get(self, model_id: str) -> RegisteredModel | None:
        """The registration of ``model_id``, or the downloaded catalog model with that id, or None."""
        variant = self._variant(model_id)
        if variant is not None:
            return _describe(variant)
        return next((m for m in cached_registrations(self) if m.id == model_id), None)

    def load(self, model_id: str) -> LoadedModel:
        """Load ``model_id`` (once per process; later calls return the same object).

        ``model_id`` is a local registration's id or, failing that, a Foundry catalog id or alias
        of a model in the cache (``curator pull``); an alias resolves to this machine's variant and
        the returned model carries the resolved id.
        """
        with self._lock:
            held = self._loaded.get(model_id)
            if held is not None and not held.unloaded:
                return held
            variant = self._variant(model_id)
            if variant is None:
                variant = cached_variant(self, model_id)
                model_id = variant.id
                held = self._loaded.get(model_id)
                if held is not None and not held.unloaded:
                    return held
            with sdk_errors(f"cannot load {model_id}", f"curator cache verify {model_id}"):
                variant.load()
            loaded = LoadedModel(self, model_id, variant)
            self._loaded[model_id] = loaded
            return loaded

    def close(self) -> None:
        """Unload every model loaded through this runtime (the SDK manager stays for reuse)."""
        with self._lock:
            for model_id in list(self._loaded):
                self._loaded.pop(model_id)._unload_native()
            self.closed = True


def _fill_metadata(info: Any, metadata: ModelMetadata) -> None:
    strings = {
        "task": metadata.task,
        "display_name": metadata.display_name,
        "publisher": metadata.publisher,
        "license": metadata.license,
        "license_description": metadata.license_description,
        "device_type": metadata.device_type,
        "execution_provider": metadata.execution_provider,
    }
    for key, value in strings.items():
        if value:
            info.set_string_property(key, value)
    ints = {
        "filesize_mb": metadata.file_size_mb,
        "context_length": metadata.context_length,
        "max_output_tokens": metadata.max_output_tokens,
        "supports_tool_calling": (
            None if metadata.supports_tool_calling is None else int(metadata.supports_tool_calling)
        ),
    }
    for key, number in ints.items():
        if number is not None:
            info.set_int_property(key, int(number))


def _describe(variant: Any) -> RegisteredModel:
    info = variant.info
    runtime_info = info.runtime
    return RegisteredModel(
        id=info.id,
        alias=info.alias,
        display_name=info.display_name,
        path=variant_path(variant),
        task=info.task,
        publisher=info.publisher,
        license=info.license,
        file_size_mb=info.file_size_mb,
        context_length=info.context_length,
        device_type=variant_device_type(runtime_info),
        execution_provider=runtime_info.execution_provider if runtime_info is not None else None,
        loaded=bool(variant.is_loaded),
    )
