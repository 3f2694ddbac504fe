"""Foundry Local in process: the ONLY package that imports foundry_local_sdk (lazily).

The SDK's manager is a process-wide singleton, so this module keeps one :class:`FoundryRuntime`
per process, configured with the model cache directory, a logs directory under
``$CURATOR_HOME/foundry-logs`` and non-essential telemetry off. Use it like this::

    from curator import foundry

    rt = foundry.runtime(cache_dir)                 # or: with foundry.runtime(...) as rt:
    rt.register_model_dir(path, "tiny-generic-cpu:1", foundry.ModelMetadata(license="mit"))
    model = rt.load("tiny-generic-cpu:1")
    for chunk in model.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=32):
        print(chunk.text, end="")                   # the last chunk has chunk.usage set
    model.unload()

Stable interface (other modules build on it): :class:`Usage`, :class:`ChatChunk`,
:class:`ChatResult`, :class:`ModelMetadata`, :class:`RegisteredModel`, :func:`runtime`,
:class:`FoundryRuntime` (``register_model_dir``, ``unregister``, ``list_registered``, ``get``,
``load``, ``close``) and :class:`LoadedModel` (``chat_stream``, ``chat``, ``unload``).

Each ``chat_stream`` call runs in a fresh native chat session, so calls never see each other's
history and repeated rounds do the same work. Several generations may run side by side on one
loaded model, each in its own session (the runtime cannot batch them on CPU); ``unload`` waits for
the running ones. Never import onnxruntime_genai in a process that used this
module: run it in a subprocess.

Layout: ``types`` (the plain values), ``manager`` (the SDK manager singleton, :func:`runtime`,
:class:`FoundryRuntime` and local registrations), ``model`` (:class:`LoadedModel` and generation),
``_native`` (native failures as FoundryError).
"""

from __future__ import annotations

from curator.foundry._native import clean_native_message
from curator.foundry.manager import FoundryRuntime, default_logs_dir, runtime
from curator.foundry.model import LoadedModel
from curator.foundry.types import (
    APP_NAME,
    MODEL_ID_RE,
    ROLES,
    ChatChunk,
    ChatResult,
    ModelMetadata,
    RegisteredModel,
    Usage,
)

__all__ = [
    "APP_NAME",
    "MODEL_ID_RE",
    "ROLES",
    "ChatChunk",
    "ChatResult",
    "FoundryRuntime",
    "LoadedModel",
    "ModelMetadata",
    "RegisteredModel",
    "Usage",
    "clean_native_message",
    "default_logs_dir",
    "runtime",
]
