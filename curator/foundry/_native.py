"""Native (SDK) failures turned into FoundryError with the native cause, cleaned; values read off
the SDK's model objects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curator.errors import FoundryError


def clean_native_message(text: str) -> str:
    """Drop the ``file.cc:123 signature(...)`` prefix native errors carry; keep the cause."""
    text = text.strip()
    match = re.match(r"^[\w./-]+\.(?:cc|cpp|h):\d+\s+", text)
    if not match:
        return text
    rest = text[match.end() :]
    open_at = rest.find("(")
    if open_at < 0:
        return rest
    depth = 0
    for index in range(open_at, len(rest)):
        if rest[index] == "(":
            depth += 1
        elif rest[index] == ")":
            depth -= 1
            if depth == 0:
                return rest[index + 1 :].strip() or text
    return rest


def foundry_error(exc: BaseException, what: str, hint: str) -> FoundryError:
    return FoundryError(f"{what}: {clean_native_message(str(exc))}", hint=hint)


def is_sdk_error(exc: BaseException) -> bool:
    from foundry_local_sdk import FoundryLocalException

    return isinstance(exc, (FoundryLocalException, RuntimeError, ValueError))


@contextmanager
def sdk_errors(what: str, hint: str) -> Iterator[None]:
    """An SDK failure (:func:`is_sdk_error`) inside the block is raised as FoundryError
    ``what: <native cause>`` with ``hint``; any other exception passes unchanged."""
    try:
        yield
    except Exception as exc:
        if is_sdk_error(exc):
            raise foundry_error(exc, what, hint) from None
        raise


def variant_path(variant: Any) -> Path | None:
    """Where the SDK keeps a model variant's files; None when it cannot say."""
    try:
        raw = variant.get_path()
    except Exception:
        raw = ""
    return Path(raw) if raw else None


def variant_device_type(runtime_info: Any) -> str | None:
    """The device type (CPU, GPU, NPU) an SDK model's runtime info names, if any."""
    if runtime_info is None or runtime_info.device_type is None:
        return None
    return str(runtime_info.device_type.value)
