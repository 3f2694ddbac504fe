"""Importance files: how much each input of each MatMul matters, for ``wk_quant``.

A recipe names one in its ``CuratorModelBuilder`` config (``"importance": "NAME.safetensors"``,
relative to the recipe file): a safetensors file whose keys are node patterns, as a
``tensor_overrides`` ``match`` (``/lm_head/MatMul``, ``re:/model/layers\\.3/mlp/(gate_up|gate|up)_
proj/MatMul``), each a float32 vector with one value per input of the node: the mean squared
activation of that input over a calibration text. The budget's sensitivity pass measures them
(curator.budget.sensitivity) and writes them beside the recipe it makes.

The file is read as untrusted input (safetensors: no code, no pickle): every vector must be 1-D,
float32, finite and non-negative, or the compile stops with one line saying which is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from curator.formats.safetensors import SafetensorsHeaderError, read_safetensors_header
from curator.quant.plan import PlanError, TensorOverride

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ImportanceTable:
    """Node pattern -> importance vector; the first pattern that matches a node wins."""

    entries: tuple[tuple[TensorOverride, Vector], ...]

    def for_node(self, node_name: str) -> Vector | None:
        for pattern, vector in self.entries:
            if pattern.matches(node_name):
                return vector
        return None

    @classmethod
    def from_vectors(cls, vectors: Mapping[str, Vector]) -> ImportanceTable:
        entries = []
        for match, raw in vectors.items():
            pattern = TensorOverride.from_json({"match": match})
            vector = np.asarray(raw)
            if vector.ndim != 1 or vector.dtype != np.float32:
                raise PlanError(
                    f"importance {match!r}: expected a 1-D float32 vector, got "
                    f"{vector.dtype} {tuple(vector.shape)}"
                )
            if not np.all(np.isfinite(vector)) or bool(np.any(vector < 0)):
                raise PlanError(f"importance {match!r}: values must be finite and non-negative")
            entries.append((pattern, vector))
        return cls(tuple(entries))


def load_importance(path: Path) -> ImportanceTable:
    """The table in ``path``; PlanError (one line) when it cannot be read or is malformed. The
    header is checked by curator's own reader first (sizes, offsets, dtypes: the one place that
    reads untrusted safetensors headers), and only 1-D float32 tensors are loaded."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        header = read_safetensors_header(path)
    except SafetensorsHeaderError as exc:
        raise PlanError(f"cannot read the importance file {path}: {exc.message}") from None
    for entry in header.tensors:
        if entry.dtype != "F32" or len(entry.shape) != 1:
            raise PlanError(
                f"importance {entry.name!r}: expected a 1-D float32 vector, got "
                f"{entry.dtype} {entry.shape}"
            )
    try:
        vectors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise PlanError(f"cannot read the importance file {path}: {exc}") from None
    return ImportanceTable.from_vectors(vectors)


def write_importance(path: Path, vectors: Mapping[str, Vector]) -> None:
    """``vectors`` (node pattern -> per-input importance) as a safetensors file, atomically."""
    from safetensors.numpy import save_file

    checked = ImportanceTable.from_vectors(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}
    )
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({p.match: v for p, v in checked.entries}, str(tmp))
    tmp.replace(path)


def importance_of(covariance_diagonal: npt.ArrayLike) -> Vector:
    """A calibration pass's mean squared activations as an importance vector (float32, finite)."""
    vector = np.asarray(covariance_diagonal, dtype=np.float64).reshape(-1)
    top = float(np.max(vector)) if vector.size else 0.0
    if not math.isfinite(top) or top <= 0:
        return np.ones(vector.shape, dtype=np.float32)
    return np.clip(vector / top, 0.0, 1.0).astype(np.float32)
