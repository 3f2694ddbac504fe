"""GGUF files written byte by byte for tests: valid ones to start from, and the means to break them
(the GGUF layout: magic, version, tensor count, key/value count, key/values, tensor entries, padding
to the alignment, tensor data)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

UINT32, STRING, ARRAY, UINT64, FLOAT32 = 4, 8, 9, 10, 6
F32, Q8_0 = 0, 8  # tensor types: F32 (block 1, 4 bytes), Q8_0 (block 32, 34 bytes)


def string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(kind: int, item: Any) -> bytes:
    """A metadata value of ``kind`` (arrays: ``item`` is (item kind, [items]))."""
    if kind == STRING:
        return string(item)
    if kind == ARRAY:
        item_kind, items = item
        body = b"".join(value(item_kind, x) for x in items)
        return struct.pack("<IQ", item_kind, len(items)) + body
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}[kind]  # fmt: skip
    return struct.pack(fmt, item)


def kv(key: str, kind: int, item: Any) -> bytes:
    return string(key) + struct.pack("<I", kind) + value(kind, item)


@dataclass
class Tensor:
    name: str
    dims: Sequence[int]
    kind: int = F32
    offset: int | None = None  # None: laid out one after another, aligned

    def nbytes(self) -> int:
        block, size = {F32: (1, 4), Q8_0: (32, 34)}.get(self.kind, (1, 0))
        elements = 1
        for d in self.dims:
            elements *= d
        return elements // block * size


@dataclass
class Gguf:
    """A small GGUF file (architecture ``llama`` by default)."""

    tensors: list[Tensor] = field(
        default_factory=lambda: [Tensor("token_embd.weight", [8, 4]), Tensor("output.weight", [8])]
    )
    metadata: list[bytes] = field(
        default_factory=lambda: [
            kv("general.architecture", STRING, "llama"),
            kv("llama.context_length", UINT32, 128),
            kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b", "c"])),
        ]
    )
    alignment: int = 32
    version: int = 3

    def layout(self) -> list[int]:
        offsets, at = [], 0
        for tensor in self.tensors:
            if tensor.offset is not None:
                offsets.append(tensor.offset)
                at = tensor.offset + tensor.nbytes()
            else:
                offsets.append(at)
                at += tensor.nbytes()
            at = -(-at // self.alignment) * self.alignment
        return offsets

    def header(self) -> bytes:
        out = b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(self.metadata))
        out += b"".join(self.metadata)
        for tensor, offset in zip(self.tensors, self.layout(), strict=True):
            out += string(tensor.name) + struct.pack("<I", len(tensor.dims))
            out += b"".join(struct.pack("<Q", d) for d in tensor.dims)
            out += struct.pack("<IQ", tensor.kind, offset % 2**64)  # a huge layout wraps
        return out

    def data_offset(self) -> int:
        return -(-len(self.header()) // self.alignment) * self.alignment

    def bytes(self) -> bytes:
        head = self.header()
        out = head + b"\0" * (self.data_offset() - len(head))
        ends = [o + t.nbytes() for o, t in zip(self.layout(), self.tensors, strict=True)]
        return out + b"\x01" * min(max(ends, default=0), 2**20)  # no more than 1 MiB of data
