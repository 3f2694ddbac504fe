"""A safetensors file's header, read strictly and checked against the file (no tensor data read).

The layout: 8 bytes little-endian N, N bytes of UTF-8 JSON (an object: tensor name -> ``{dtype,
shape, data_offsets: [begin, end]}``, plus an optional ``__metadata__`` of string -> string),
then the data section, whose offsets are relative to its start. A file comes from a download or a
pull request: every claim in it is checked before it is used, and every refusal is one line naming
the file (:class:`SafetensorsHeaderError`, an :class:`~curator.errors.InputFileError`).

Checked: the header length against a limit and the file; strict JSON (no NaN, no duplicate keys,
bounded nesting); each entry's dtype known, shape a list of non-negative integers, offsets two
integers in order; the bytes the dtype and shape need equal to the offsets' span; no two tensors
overlapping, no hole between them, and the data section exactly as long as the tensors need (what
the safetensors library itself requires when it loads the file).
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.jsonio import parse_json

HEADER_LIMIT = 100_000_000  # the safetensors library's own limit on N
MAX_DIMS = 64

# Bits per element of each dtype the safetensors format names.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


class SafetensorsHeaderError(InputFileError):
    """A safetensors file whose header cannot be read or does not match the file."""


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # relative to the data section
    end: int

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    size_bytes: int
    data_offset: int  # 8 + N
    tensors: tuple[TensorEntry, ...]  # in the header's order
    metadata: Mapping[str, str]

    @property
    def parameters(self) -> int:
        return sum(t.elements for t in self.tensors)


def _refused(path: Path, why: str) -> SafetensorsHeaderError:
    return SafetensorsHeaderError(
        f"{path} is not a readable safetensors file: {why}",
        hint="download the file again, or convert the checkpoint with safetensors' save_file",
    )


def _quoted(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_safetensors_header(path: Path | str) -> SafetensorsHeader:
    """The header of the safetensors file at ``path``, checked against the file (see module
    docstring); SafetensorsHeaderError otherwise, InputFileError when it cannot be opened."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise _refused(path, "it is not a regular file")
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read(8)
            if len(raw) < 8:
                raise _refused(path, f"it holds {size} bytes, fewer than the 8 of a header length")
            (length,) = struct.unpack("<Q", raw)
            if length > HEADER_LIMIT:
                raise _refused(
                    path, f"it claims a header of {length} bytes (at most {HEADER_LIMIT})"
                )
            if length > size - 8:
                raise SafetensorsHeaderError(
                    f"truncated: {path} holds {size} bytes but its header alone needs {8 + length}",
                    hint="the file is incomplete (an interrupted download or copy): download it "
                    "again",
                )
            text = handle.read(length)
    except FileNotFoundError:
        raise InputFileError(f"safetensors file not found: {path}", hint="check the path") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc}", hint="check the file") from None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refused(path, f"its header is not UTF-8 (byte {exc.start})") from None
    document = _parse(path, decoded)
    tensors, metadata = _entries(path, document)
    _check_layout(path, size, 8 + length, tensors)
    return SafetensorsHeader(
        path=path,
        size_bytes=size,
        data_offset=8 + length,
        tensors=tuple(tensors),
        metadata=metadata,
    )


def _parse(path: Path, text: str) -> Any:
    try:
        return parse_json(text, str(path), "safetensors header")
    except InputFileError as exc:  # the message names the file, line and column
        raise SafetensorsHeaderError(exc.message, hint=exc.hint) from None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entries(path: Path, document: Any) -> tuple[list[TensorEntry], dict[str, str]]:
    if not isinstance(document, dict):
        raise _refused(path, "its header is not a JSON object")
    metadata: dict[str, str] = {}
    tensors: list[TensorEntry] = []
    for name, entry in document.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _refused(path, "__metadata__ must map strings to strings")
            metadata = dict(entry)
            continue
        where = f"tensor {_quoted(name)}"
        if not isinstance(entry, dict):
            raise _refused(path, f"{where} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            shown = _quoted(dtype) if isinstance(dtype, str) else type(dtype).__name__
            raise _refused(path, f"{where} has the unknown dtype {shown}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_integer, shape)):
            raise _refused(path, f"{where}'s shape is not a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(map(_integer, offsets))
            or offsets[0] > offsets[1]
        ):
            raise _refused(path, f"{where}'s data_offsets are not two integers [begin, end]")
        tensor = TensorEntry(str(name), dtype, tuple(shape), offsets[0], offsets[1])
        bits = tensor.elements * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != tensor.end - tensor.begin:
            raise _refused(
                path,
                f"{where}: {dtype} {list(tensor.shape)} needs {bits / 8:g} bytes, its offsets "
                f"span {tensor.end - tensor.begin}",
            )
        tensors.append(tensor)
    return tensors, metadata


def _check_layout(path: Path, size: int, data_offset: int, tensors: list[TensorEntry]) -> None:
    """The tensors tile the data section: in order, no overlap, no hole, nothing after."""
    at = 0
    last: TensorEntry | None = None
    for tensor in sorted(tensors, key=lambda t: (t.begin, t.end, t.name)):
        if tensor.begin < at and last is not None:
            raise _refused(path, f"tensors {_quoted(last.name)} and {_quoted(tensor.name)} overlap")
        if tensor.begin > at:
            raise _refused(path, f"bytes {at}-{tensor.begin} of its data belong to no tensor")
        at, last = tensor.end, tensor
    needed = data_offset + at
    if size < needed:
        ends = f"tensor {_quoted(last.name)} ends at byte {needed}" if last else "its header"
        raise SafetensorsHeaderError(
            f"truncated: {path} holds {size} bytes but its header needs {needed} ({ends})",
            hint="the file is incomplete (an interrupted download or copy): download it again",
        )
    if size > needed:
        raise _refused(path, f"{size - needed} bytes follow its last tensor")
