"""The reference's side of a fidelity measurement, computed once and kept on disk.

A measurement compares the compiled model's next-token distributions with its reference's on the
same tokens. The reference's side does not change between measurements of the same source on the
same text (a budget search measures several compiles of one source), so it is computed once, in a
process of its own, and stored under ``$CURATOR_HOME/fidelity/reference``:

- ``tokens/<key>.npy``: the text's token ids as the compiled model's tokenizer cuts them (int64),
  keyed by the tokenizer files' content and the text's sha256;
- ``entries/<key>/``: per scored position, the reference's log-probabilities over its vocabulary
  as 16-bit levels between the row's minimum and maximum (``logprobs.npy``, 2 bytes per
  vocabulary entry, as llama.cpp's ``--kl-divergence-base`` keeps them: at most about 2e-4 nats
  off), and in fp64 what needs full precision (``exact.npy``: the reference's argmax, its NLL of
  the next token, and each row's minimum and maximum), with ``meta.json`` naming the key and both
  files' sizes and sha256. An entry is keyed by the reference's content digest, the token ids'
  digest, the window, the reference kind and the dtype it is held in, and SCORING_VERSION. The
  scorer reads both files window by window with plain reads (no mapping: the pages it has read
  do not stay in its resident memory).

Nothing read from the cache is trusted: a missing, truncated, reshaped or altered file (its size,
its .npy header or its sha256 differ from ``meta.json``) makes the entry invalid, and the
measurement computes it again. Files are written to temporary names and renamed into place,
``meta.json`` last, so a run that dies half way leaves an entry that is simply not valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.cache.modeldir import sha256_file
from curator.paths import curator_home

# Bump when what the reference worker stores, or how the scorer reads it, changes.
SCORING_VERSION = 1
# Entries kept (newest by use): a 3B reference on the default text is about 1 GiB.
KEEP_ENTRIES = 4
LOGPROBS = "logprobs.npy"
EXACT = "exact.npy"
META = "meta.json"
EXACT_COLUMNS = 4  # argmax, NLL of the next token, row minimum, row maximum
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def default_cache_dir(home: Path | None = None) -> Path:
    """``$CURATOR_HOME/fidelity/reference`` (or under ``home``)."""
    return (home or curator_home()) / "fidelity" / "reference"


def reference_digest(kind: str, path: Path) -> str:
    """One sha256 over the reference's weights and config (names and bytes, sorted).

    For a Hugging Face checkpoint this is curator.budget.sensitivity's ``source_sha256`` (same
    files, same order), so a budget search can pass the digest it already has."""
    if kind == "onnx":
        names = {"genai_config.json", *(p.name for p in path.glob("*.onnx"))}
        names |= {p.name for p in path.glob("*.onnx.data")} | {p.name for p in path.glob("*.data")}
        files = [path / n for n in sorted(names)]
    else:
        files = [*sorted(path.glob("*.safetensors")), path / "config.json"]
    digest = hashlib.sha256()
    for file in files:
        if file.is_file():
            digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def tokenizer_digest(model_dir: Path) -> str:
    """One sha256 over the compiled model's tokenizer files (what decides the token ids)."""
    digest = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        file = model_dir / name
        if file.is_file():
            digest.update(f"{name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def ids_digest(ids: Any) -> str:
    """sha256 of token ids as little-endian int64."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def _key_name(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def npy_header(path: Path) -> tuple[tuple[int, ...], bool, Any, int] | None:
    """(shape, fortran order, dtype, offset of the data) from a .npy file's header; None when the
    file is missing or its header is not one numpy wrote."""
    import numpy as np

    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            return tuple(shape), bool(fortran), dtype, handle.tell()
    except (OSError, ValueError, SyntaxError):
        return None


def _npy_layout(path: Path, dtype: str, shape: tuple[int, ...]) -> bool:
    """True when ``path`` is a C-ordered .npy of exactly ``dtype`` and ``shape`` whose size is its
    header plus its data (a truncated or padded file is not)."""
    import numpy as np

    header = npy_header(path)
    if header is None:
        return False
    got_shape, fortran, got_dtype, offset = header
    if fortran or got_shape != shape or got_dtype != np.dtype(dtype):
        return False
    expected = offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return path.stat().st_size == expected


class RowWriter:
    """A 2-D .npy written row block by row block (nothing but the block in memory; no mapping,
    whose dirty pages would count in the process's resident memory)."""

    def __init__(self, path: Path, dtype: str, shape: tuple[int, int]) -> None:
        import numpy as np

        self._np = np
        self._dtype = np.dtype(dtype)
        self._shape = shape
        self._rows = 0
        self._handle = path.open("wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self._dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(self._handle, header)

    def write(self, rows: Any) -> None:
        block = self._np.ascontiguousarray(rows, dtype=self._dtype)
        if block.ndim != 2 or block.shape[1] != self._shape[1]:
            raise ValueError(f"rows of shape {block.shape} for an array of {self._shape}")
        self._rows += block.shape[0]
        if self._rows > self._shape[0]:
            raise ValueError(f"more than {self._shape[0]} rows written")
        self._handle.write(block.tobytes())

    def close(self) -> None:
        self._handle.close()
        if self._rows != self._shape[0]:
            raise ValueError(f"{self._rows} rows written of {self._shape[0]}")


class RowReader:
    """Rows of a 2-D .npy read on demand with plain reads (bounded memory, whatever its size)."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        header = npy_header(path)
        if header is None or len(header[0]) != 2 or header[1]:
            raise ValueError(f"{path} is not a C-ordered 2-D .npy")
        self._np = np
        self.shape, _, self.dtype, self._offset = header
        self._handle = path.open("rb")

    def rows(self, start: int, stop: int) -> Any:
        width = self.shape[1]
        self._handle.seek(self._offset + start * width * self.dtype.itemsize)
        count = (stop - start) * width
        data = self._np.frombuffer(self._handle.read(count * self.dtype.itemsize), self.dtype)
        if data.size != count:
            raise ValueError("the file ended early")
        return data.reshape(stop - start, width)

    def close(self) -> None:
        self._handle.close()


# --- token ids ------------------------------------------------------------------------------------


def tokens_path(cache_dir: Path, tokenizer_sha: str, text_sha: str) -> Path:
    name = hashlib.sha256(f"{tokenizer_sha}:{text_sha}".encode()).hexdigest()[:32]
    return cache_dir / "tokens" / f"{name}.npy"


def read_tokens(path: Path) -> Any | None:
    """The cached token ids at ``path`` (int64, 1-D), or None when absent or not as written
    (its sidecar ``.json`` names the count and sha256)."""
    import numpy as np

    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        count = int(meta["count"])
        want = str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if count < 0 or not _npy_layout(path, "<i8", (count,)):
        return None
    ids = np.load(path, allow_pickle=False)
    return ids if ids_digest(ids) == want else None


def write_tokens(path: Path, ids: Any) -> None:
    """Store ``ids`` (atomically: data first, then the sidecar naming its digest)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(ids, dtype="<i8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)
    side = path.with_suffix(".json")
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    side_tmp.write_text(
        json.dumps({"count": int(array.size), "sha256": ids_digest(array)}), encoding="utf-8"
    )
    os.replace(side_tmp, side)


# --- reference entries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Where one reference's stored side lives, and what it must hold."""

    directory: Path
    key: dict[str, Any]
    positions: int  # scored positions: sum over windows of (window length - 1)

    @property
    def logprobs(self) -> Path:
        return self.directory / LOGPROBS

    @property
    def exact(self) -> Path:
        return self.directory / EXACT

    @property
    def meta(self) -> Path:
        return self.directory / META


def entry_for(
    cache_dir: Path,
    *,
    reference_sha: str,
    reference_kind: str,
    reference_dtype: str,
    ids_sha: str,
    window: int,
    positions: int,
) -> Entry:
    key = {
        "reference": reference_sha,
        "kind": reference_kind,
        "dtype": reference_dtype,
        "ids": ids_sha,
        "window": window,
        "version": SCORING_VERSION,
    }
    return Entry(cache_dir / "entries" / _key_name(key), key, positions)


def read_meta(entry: Entry) -> dict[str, Any] | None:
    """The entry's meta.json when the entry is whole: the key matches, both arrays have the
    stated shape and size and their sha256 matches; None otherwise (compute it again)."""
    try:
        meta: Any = json.loads(entry.meta.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != entry.key:
            return None
        vocab = int(meta["vocab"])
        positions = int(meta["positions"])
        sums = (str(meta["logprobsSha256"]), str(meta["exactSha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if positions != entry.positions or vocab < 2:
        return None
    if not _npy_layout(entry.logprobs, "<u2", (positions, vocab)):
        return None
    if not _npy_layout(entry.exact, "<f8", (positions, EXACT_COLUMNS)):
        return None
    if (sha256_file(entry.logprobs), sha256_file(entry.exact)) != sums:
        return None
    return meta


def writing(path: Path) -> Path:
    """The temporary name this process fills before ``path`` is sealed by :func:`finish_entry`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def finish_entry(entry: Entry, facts: dict[str, Any]) -> None:
    """Seal an entry this process filled (its :func:`writing` files): rename the arrays into
    place, then write meta.json with their sha256 (atomically, last)."""
    for final in (entry.logprobs, entry.exact):
        os.replace(writing(final), final)
    meta = {
        **facts,
        "key": entry.key,
        "positions": entry.positions,
        "logprobsSha256": sha256_file(entry.logprobs),
        "exactSha256": sha256_file(entry.exact),
    }
    tmp = entry.meta.with_name(f".{META}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    os.replace(tmp, entry.meta)


def discard(entry: Entry) -> None:
    """Remove an entry that is not valid (before computing it again)."""
    shutil.rmtree(entry.directory, ignore_errors=True)


def touch(entry: Entry) -> None:
    """Mark an entry as used now (eviction keeps the most recently used)."""
    with contextlib.suppress(OSError):
        os.utime(entry.meta)


def evict(cache_dir: Path, keep: int = KEEP_ENTRIES) -> list[Path]:
    """Delete all but the ``keep`` most recently used entries; the directories removed."""
    root = cache_dir / "entries"
    if not root.is_dir():
        return []

    def used(directory: Path) -> float:
        try:
            return (directory / META).stat().st_mtime
        except OSError:
            return 0.0

    entries = sorted((d for d in root.iterdir() if d.is_dir()), key=used, reverse=True)
    removed = entries[keep:]
    for directory in removed:
        shutil.rmtree(directory, ignore_errors=True)
    return removed
