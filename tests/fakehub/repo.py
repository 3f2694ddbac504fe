"""A fake Hub repository: files held in memory, one commit, metadata for listings."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Files the real Hub stores with Git LFS (their tree entries carry an ``lfs`` object).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".data", ".model", ".gguf")


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


def safetensors_header(content: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors file."""
    (size,) = struct.unpack("<Q", content[:8])
    header: dict[str, Any] = json.loads(content[8 : 8 + size])
    return header


def safetensors_counts(content: bytes) -> dict[str, int]:
    """Parameters per dtype in one safetensors file (what the Hub reports as ``safetensors``)."""
    counts: dict[str, int] = {}
    for name, tensor in safetensors_header(content).items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in tensor["shape"]:
            n *= dim
        counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + n
    return counts


@dataclass
class FakeRepo:
    """One model repository. ``listed_safetensors`` stands in for weights a listing-only repo
    does not hold (the real Hub derives the figure from the weight headers)."""

    repo_id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    trending_score: int = 0
    created_at: str = "2025-01-01T00:00:00.000Z"
    last_modified: str = "2025-01-01T00:00:00.000Z"
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = "transformers"
    gated: str | bool = False
    card_data: dict[str, Any] = field(default_factory=dict)
    branches: tuple[str, ...] = ("main",)
    listed_safetensors: dict[str, int] | None = None

    @property
    def author(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @property
    def sha(self) -> str:
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(f"{path}\0{git_blob_oid(self.files[path])}\0".encode())
        return digest.hexdigest()

    def resolve(self, revision: str) -> str | None:
        """The commit sha ``revision`` names (a branch, or the sha itself), else None."""
        if revision in self.branches or revision == self.sha:
            return self.sha
        return None

    def config(self) -> dict[str, Any] | None:
        raw = self.files.get("config.json")
        return json.loads(raw) if raw is not None else None

    def safetensors(self) -> dict[str, Any] | None:
        """``{"parameters": {dtype: n}, "total": n}`` from the weight headers, as the Hub does."""
        if self.listed_safetensors is not None:
            counts = dict(self.listed_safetensors)
        else:
            counts = {}
            for path, content in self.files.items():
                if path.endswith(".safetensors") and "/" not in path:
                    for dtype, n in safetensors_counts(content).items():
                        counts[dtype] = counts.get(dtype, 0) + n
            if not counts:
                return None
        return {"parameters": counts, "total": sum(counts.values())}

    def etag(self, path: str) -> str:
        content = self.files[path]
        return hashlib.sha256(content).hexdigest() if is_lfs(path) else git_blob_oid(content)

    def tree_entry(self, path: str) -> dict[str, Any]:
        content = self.files[path]
        entry: dict[str, Any] = {
            "type": "file",
            "oid": git_blob_oid(content),
            "size": len(content),
            "path": path,
        }
        if is_lfs(path):
            entry["lfs"] = {
                "oid": hashlib.sha256(content).hexdigest(),
                "size": len(content),
                "pointerSize": 134,
            }
        return entry


def files_from_dir(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by its POSIX relative path."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
