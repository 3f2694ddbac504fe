"""The file list a registry entry publishes, and checking a directory against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.registry.rules import unsafe_path_reason


@dataclass(frozen=True)
class ListedFile:
    """One file of a published model: relative POSIX path, sha256, size in bytes."""

    path: str
    sha256: str
    bytes: int

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


def listed_files(items: Any) -> tuple[ListedFile, ...]:
    """``[{path, sha256, bytes}]`` (build.artifacts or distribution.files) sorted by path.

    Raises ValueError naming the first entry that is malformed or has an unsafe path: entries come
    from pull requests, and a path is joined to a directory only after this check.
    """
    if not isinstance(items, list) or not items:
        raise ValueError("no files listed")
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"not a file record: {item!r}")
        path, sha, size = item.get("path"), item.get("sha256"), item.get("bytes")
        if not isinstance(path, str) or not isinstance(sha, str) or not isinstance(size, int):
            raise ValueError(f"malformed file record: {item!r}")
        reason = unsafe_path_reason(path) or (
            "is the manifest's name" if path == MANIFEST_NAME else None
        )
        if reason:
            raise ValueError(f"{path!r} {reason}")
        found.append(ListedFile(path, sha, size))
    if len({f.path for f in found}) != len(found):
        raise ValueError("a path is listed twice")
    return tuple(sorted(found, key=lambda f: f.path))


def file_problems(directory: Path, files: tuple[ListedFile, ...]) -> list[str]:
    """What differs between ``directory`` and ``files``: ``'PATH: missing'``, ``'PATH: N bytes,
    expected M'``, ``'PATH: sha256 differs'`` (size first, so a short file is not hashed)."""
    problems = []
    for item in files:
        path = directory / item.path
        if not path.is_file():
            problems.append(f"{item.path}: missing")
        elif (size := path.stat().st_size) != item.bytes:
            problems.append(f"{item.path}: {size} bytes, expected {item.bytes}")
        elif sha256_file(path) != item.sha256:
            problems.append(f"{item.path}: sha256 differs from the registry's")
    return problems
