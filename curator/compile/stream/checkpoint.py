"""A safetensors checkpoint read one tensor at a time.

Each read is a plain positioned file read into a fresh buffer: nothing stays mapped, so the
process holds only the tensors it is using (a memory map would keep every page it touched
resident and counted in RSS until unmapped). Tensors come back in their stored dtype (bf16 stays
bf16) as torch tensors, or as numpy (bf16 as ``ml_dtypes.bfloat16``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curator.errors import InputFileError
from curator.formats.safetensors import read_safetensors_header

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
HEADER_LIMIT = 100_000_000

_NUMPY: dict[str, str] = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
_ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


class CheckpointError(ValueError):
    """The directory holds no safetensors checkpoint this reader understands."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: str  # safetensors code: F32, BF16, ...
    shape: tuple[int, ...]
    offset: int  # absolute, in file
    nbytes: int

    @property
    def parameters(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def _read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of one file, from its header checked against the file
    (curator.formats.safetensors: a hostile header is a CheckpointError, never a traceback)."""
    try:
        header = read_safetensors_header(path)
    except InputFileError as exc:
        raise CheckpointError(exc.message) from None
    out: dict[str, TensorInfo] = {}
    for entry in header.tensors:
        if entry.dtype not in _ITEMSIZE:
            raise CheckpointError(f"{path.name}: tensor {entry.name!r} has dtype {entry.dtype}")
        out[entry.name] = TensorInfo(
            entry.name,
            path,
            entry.dtype,
            entry.shape,
            header.data_offset + entry.begin,
            entry.end - entry.begin,
        )
    return out


class Checkpoint:
    """The tensors of ``model_dir`` (``model.safetensors`` or a sharded index), read on demand."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        index = model_dir / INDEX_NAME
        files: list[Path]
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            files = sorted({model_dir / str(name) for name in weight_map.values()})
        elif (model_dir / SINGLE_NAME).is_file():
            files = [model_dir / SINGLE_NAME]
        else:
            files = sorted(model_dir.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"no safetensors weights in {model_dir}")
        self.tensors: dict[str, TensorInfo] = {}
        for path in files:
            self.tensors.update(_read_header(path))

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    @property
    def parameters(self) -> int:
        return sum(info.parameters for info in self.tensors.values())

    def float_dtype(self) -> str | None:
        """The stored dtype of the first floating-point tensor (what ``dtype="auto"`` picks)."""
        for info in self.tensors.values():
            if info.dtype in ("F32", "F16", "BF16", "F64"):
                return info.dtype
        return None

    def read_bytes(self, name: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
        info = self.tensors[name]
        buffer = np.empty(info.nbytes, dtype=np.uint8)
        with info.file.open("rb", buffering=0) as handle:
            handle.seek(info.offset)
            view = buffer.data
            done = 0
            while done < info.nbytes:
                got = handle.readinto(view[done:])
                if not got:
                    raise CheckpointError(f"{info.file.name} ends inside tensor {name}")
                done += got
        return buffer

    def read_numpy(self, name: str) -> np.ndarray[Any, Any]:
        info = self.tensors[name]
        raw = self.read_bytes(name)
        if info.dtype == "BF16":
            import ml_dtypes

            bf16: np.ndarray[Any, Any] = raw.view(ml_dtypes.bfloat16).reshape(info.shape)
            return bf16
        return raw.view(_NUMPY[info.dtype]).reshape(info.shape)

    def read_torch(self, name: str) -> Any:
        """A torch tensor in the stored dtype, owning its own buffer."""
        import torch

        info = self.tensors[name]
        dtypes = {
            "F64": torch.float64,
            "F32": torch.float32,
            "F16": torch.float16,
            "BF16": torch.bfloat16,
            "I64": torch.int64,
            "I32": torch.int32,
            "I16": torch.int16,
            "I8": torch.int8,
            "U8": torch.uint8,
            "BOOL": torch.bool,
        }
        raw = torch.from_numpy(self.read_bytes(name))
        return raw.view(dtypes[info.dtype]).reshape(info.shape)
