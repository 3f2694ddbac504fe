"""GGUF files: read their header facts (metadata and tensor table) without reading tensor data.

``read_gguf_facts(path)`` reads the header only (no torch, no tensor data read), fast enough for
``curator info``; every offset and size is checked against the file, so a truncated or malformed
file is one InputFileError. Dequantizing a GGUF into an fp32 checkpoint is
:mod:`curator.formats.gguf_checkpoint`.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError

GGUF_MAGIC = b"GGUF"

GGML_MAX_DIMS = 4  # llama.cpp's limit on a tensor's dimensions
MAX_ARRAY_NESTING = 8  # arrays of arrays deeper than this are refused (not recursed into)
MAX_ELEMENTS = 2**62  # a tensor with more elements overflows llama.cpp's int64 sizes
DEFAULT_ALIGNMENT = 32  # the tensor data's alignment when general.alignment is absent
MAX_ARCHITECTURE_LENGTH = 64
MAX_NAME_LENGTH = 200

# GGUF metadata value types (the file format's numbering)
_SCALARS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9


def _redownload_hint(path: Path) -> str:
    return (
        "the file is incomplete (an interrupted download or copy): download it again, then "
        f"check it with `curator info {path}`"
    )


class GgufTruncated(InputFileError):
    """A GGUF file shorter than its own header or tensor table says it is."""


@dataclass(frozen=True)
class GgufFacts:
    """What a GGUF file's header says, without reading its tensor data.

    ``architecture`` is the GGUF's own name (``general.architecture``, e.g. ``llama``);
    ``quantization_types`` the tensor types present, sorted (e.g. ``("F32", "Q4_1", "Q8_0")``);
    ``parameter_count`` the elements of all tensors (a tied embedding counts once);
    ``metadata`` the scalar and string metadata (arrays such as the vocabulary left out);
    ``data_offset`` where the tensor data starts and ``expected_bytes`` the size the tensor table
    says the file has (the end of its last tensor); a file shorter than that is refused.
    """

    path: Path
    size_bytes: int
    version: int
    architecture: str
    name: str | None
    quantization_types: tuple[str, ...]
    tensor_count: int
    parameter_count: int
    context_length: int | None
    vocab_size: int | None
    has_chat_template: bool
    metadata: Mapping[str, Any]
    data_offset: int = 0
    expected_bytes: int = 0


def _not_gguf(path: Path, why: str) -> InputFileError:
    return InputFileError(
        f"{path} is not a readable GGUF file: {why}",
        hint="pass a .gguf file written by llama.cpp, Ollama or LM Studio",
    )


def _truncated_header(path: Path, size: int) -> GgufTruncated:
    return GgufTruncated(
        f"truncated: {path} holds {size} bytes and ends inside its header "
        "(metadata and tensor table)",
        hint=_redownload_hint(path),
    )


def _quoted(text: str, limit: int = 60) -> str:
    """A name from the file, fit for a one-line message (escaped, cut)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _Header:
    """A little-endian cursor over the memory-mapped header; every length is checked against
    the bytes left before anything is read or skipped, so a claimed length allocates nothing."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, size: int) -> None:
        if size > len(self.buf) - self.pos:
            raise _truncated_header(self.path, len(self.buf))

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.take("<Q")
        self.need(length)
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int, depth: int = 0) -> Any:
        """A value of ``kind``; arrays are skipped and stand as ``None`` (except their length)."""
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            if depth >= MAX_ARRAY_NESTING:
                raise _not_gguf(
                    self.path, f"arrays nested more than {MAX_ARRAY_NESTING} deep in its metadata"
                )
            item_kind = self.take("<I")
            count = self.take("<Q")
            if item_kind in _SCALARS:
                size = struct.calcsize(_SCALARS[item_kind]) * count
                self.need(size)
                self.pos += size
            elif item_kind in (_STRING, _ARRAY):
                # every item takes at least 8 bytes: a claimed count beyond that is truncation
                self.need(8 * count)
                for _ in range(count):
                    self.value(item_kind, depth + 1)
            else:
                raise _not_gguf(self.path, f"unknown metadata array item type {item_kind}")
            return _ArrayLength(count)
        raise _not_gguf(self.path, f"unknown metadata value type {kind}")


@dataclass(frozen=True)
class _ArrayLength:
    count: int


@dataclass(frozen=True)
class _Tensor:
    name: str
    offset: int  # from the start of the data section
    nbytes: int


def _quant_type_name(code: int) -> str:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(code).name
    except ValueError:
        return f"type-{code}"


def _type_sizes(code: int) -> tuple[int, int] | None:
    """(elements per block, bytes per block) of a tensor type; None for an unknown type."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES.get(GGMLQuantizationType(code))
    except ValueError:
        return None


def _shown_name(value: Any) -> str | None:
    """``general.name`` fit for one line of `curator info`: a string, printable, cut at
    :data:`MAX_NAME_LENGTH` characters (the file may say anything)."""
    if not isinstance(value, str) or not value:
        return None
    text = "".join(c if c.isprintable() else " " for c in value[:MAX_NAME_LENGTH]).strip()
    return (text + "..." if len(value) > MAX_NAME_LENGTH else text) or None


def _count(value: Any) -> int | None:
    """A metadata value that is a count (a non-negative integer, not a bool), else None."""
    if isinstance(value, _ArrayLength):
        return value.count
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def read_gguf_facts(path: Path | str) -> GgufFacts:
    """Parse a GGUF header (metadata and tensor table) and check the file against its tensor
    table: every tensor's type known, its offset aligned, its bytes inside the file and apart from
    the others'. InputFileError when it is not a GGUF file; GgufTruncated (one line: the file, its
    size and the size its table needs) when it is shorter than its header or tensor table says."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the open, a device ...
            raise _not_gguf(path, "it is not a regular file")
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputFileError(f"GGUF file not found: {path}", hint="check the path") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc}", hint="check the file") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 24:
            raise _not_gguf(path, "too short")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != GGUF_MAGIC:
                raise _not_gguf(path, "it does not start with the GGUF magic bytes")
            head = _Header(buf, path)
            head.pos = 4
            version = head.take("<I")
            if version < 2:
                raise _not_gguf(path, f"GGUF version {version} is too old (2 or later needed)")
            tensor_count = head.take("<Q")
            kv_count = head.take("<Q")
            head.need(13 * kv_count)  # a key/value takes 13 bytes at least
            metadata: dict[str, Any] = {}
            array_lengths: dict[str, int] = {}
            for _ in range(kv_count):
                key = head.string()
                value = head.value(head.take("<I"))
                if isinstance(value, _ArrayLength):
                    array_lengths[key] = value.count
                else:
                    metadata[key] = value
            head.need(24 * tensor_count)  # a tensor's entry takes 24 bytes at least
            tensors, type_codes, parameters = _tensor_table(head, tensor_count)
            table_end = head.pos
    arch = metadata.get("general.architecture", "")
    if not isinstance(arch, str) or not arch:
        raise _not_gguf(path, "no general.architecture in its metadata")
    if len(arch) > MAX_ARCHITECTURE_LENGTH or not arch.isprintable():
        raise _not_gguf(path, f"general.architecture {_quoted(arch)} is not an architecture name")
    data_offset, expected = _check_layout(path, size, metadata, tensors, table_end)
    vocab = _count(metadata.get(f"{arch}.vocab_size", array_lengths.get("tokenizer.ggml.tokens")))
    context = _count(metadata.get(f"{arch}.context_length"))
    name = metadata.get("general.name")
    return GgufFacts(
        path=path,
        size_bytes=size,
        version=version,
        architecture=arch,
        name=_shown_name(name),
        quantization_types=tuple(sorted(_quant_type_name(code) for code in type_codes)),
        tensor_count=tensor_count,
        parameter_count=parameters,
        context_length=context,
        vocab_size=vocab,
        has_chat_template="tokenizer.chat_template" in metadata,
        metadata=metadata,
        data_offset=data_offset,
        expected_bytes=expected,
    )


def _tensor_table(head: _Header, tensor_count: int) -> tuple[list[_Tensor], set[int], int]:
    """The tensor entries (name, data offset, bytes), the type codes present and the elements of
    all tensors; InputFileError for an entry no GGUF reader could use."""
    path = head.path
    tensors: list[_Tensor] = []
    names: set[str] = set()
    type_codes: set[int] = set()
    parameters = 0
    for _ in range(tensor_count):
        name = head.string()
        n_dims = head.take("<I")
        if n_dims > GGML_MAX_DIMS:
            raise _not_gguf(
                path, f"tensor {_quoted(name)} has {n_dims} dimensions (at most {GGML_MAX_DIMS})"
            )
        dims = [head.take("<Q") for _ in range(n_dims)]
        code = head.take("<I")
        offset = head.take("<Q")
        elements = 1
        for dim in dims:
            elements *= dim
        if any(dim >= MAX_ELEMENTS for dim in dims):  # even beside a 0: no reader's shape
            raise _not_gguf(path, f"tensor {_quoted(name)} claims a dimension of {max(dims)}")
        if elements >= MAX_ELEMENTS:
            raise _not_gguf(path, f"tensor {_quoted(name)} claims {elements} elements")
        sizes = _type_sizes(code)
        if sizes is None:
            raise _not_gguf(path, f"tensor {_quoted(name)} has the unknown type {code}")
        block, block_bytes = sizes
        first = dims[0] if dims else 1  # a missing dimension is 1 (llama.cpp's reading)
        if first % block:
            raise _not_gguf(
                path,
                f"tensor {_quoted(name)}'s first dimension {first} is not a multiple of its "
                f"type's block of {block} ({_quant_type_name(code)})",
            )
        if name in names:
            raise _not_gguf(path, f"tensor {_quoted(name)} is listed twice")
        names.add(name)
        tensors.append(_Tensor(name, offset, elements // block * block_bytes))
        type_codes.add(code)
        parameters += elements
    return tensors, type_codes, parameters


def _check_layout(
    path: Path, size: int, metadata: Mapping[str, Any], tensors: list[_Tensor], table_end: int
) -> tuple[int, int]:
    """(data offset, expected file size) after checking the alignment, each tensor's offset, that
    no two tensors overlap, and that the file holds every tensor's bytes."""
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise _not_gguf(path, f"general.alignment {alignment!r} is not a power of two")
    data_offset = -(-table_end // alignment) * alignment
    expected = data_offset if tensors else table_end
    last: _Tensor | None = None
    for tensor in sorted(tensors, key=lambda t: (t.offset, t.nbytes, t.name)):
        if tensor.offset % alignment:
            raise _not_gguf(
                path,
                f"tensor {_quoted(tensor.name)}'s data offset {tensor.offset} is not a multiple "
                f"of the alignment {alignment}",
            )
        if last is not None and tensor.offset < last.offset + last.nbytes:
            raise _not_gguf(
                path, f"tensors {_quoted(last.name)} and {_quoted(tensor.name)} overlap"
            )
        last = tensor
    if last is not None:  # sorted and apart: the last tensor ends last
        expected = data_offset + last.offset + last.nbytes
    if size < expected:
        ends = f"tensor {_quoted(last.name)} ends at byte {expected}" if last else "its header"
        raise GgufTruncated(
            f"truncated: {path} holds {size} bytes but its tensor table needs {expected} ({ends})",
            hint=_redownload_hint(path),
        )
    return data_offset, expected
