"""Guards: curator.quant.importance

Fuzzing the importance file a recipe names (untrusted: it comes with a recipe file): random
bytes, a valid file with bytes flipped or cut short, and well-formed files whose vectors are of
the wrong type, shape or value. A refusal is a PlanError of one line; a file that loads holds
only 1-D float32, finite, non-negative vectors under valid patterns.

`make fuzz` runs 10,000 cases per property; the default run a few hundred."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curator.quant.importance import ImportanceTable, load_importance, write_importance
from curator.quant.plan import PlanError
from tests.fuzzing import assert_one_line, bounded

pytestmark = pytest.mark.fuzz


def check(path: Path, content: bytes) -> ImportanceTable | None:
    path.write_bytes(content)
    with bounded():
        try:
            table = load_importance(path)
        except PlanError as exc:
            assert_one_line(str(exc))
            return None
    for pattern, vector in table.entries:
        assert pattern.match
        assert vector.ndim == 1 and vector.dtype == np.float32
        assert bool(np.all(np.isfinite(vector))) and bool(np.all(vector >= 0))
    return table


def _valid(tmp: Path) -> bytes:
    path = tmp / "valid.safetensors"
    vectors = {"/lm_head/MatMul": np.linspace(0, 1, 16, dtype=np.float32)}
    vectors[r"re:/model/layers\.0/.*"] = np.ones(8, dtype=np.float32)
    write_importance(path, vectors)
    return path.read_bytes()


@given(st.binary(max_size=2048))
def test_random_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    check(tmp_path_factory.mktemp("f") / "x.safetensors", content)


@given(st.data())
def test_a_valid_file_damaged(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("f")
    content = bytearray(_valid(tmp))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(content)))
    check(tmp / "x.safetensors", bytes(content[:cut]))


@given(
    dtype=st.sampled_from(["F32", "F64", "F16", "I32", "U8"]),
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=3),
    value=st.sampled_from([0.5, -1.0, float("nan"), float("inf"), 0.0]),
    name=st.sampled_from(["/lm_head/MatMul", "re:(", "", "re:/model/.*"]),
)
def test_well_formed_files_of_the_wrong_kind(
    tmp_path_factory: pytest.TempPathFactory, dtype: str, shape: list[int], value: float, name: str
) -> None:
    count = int(np.prod(shape)) if shape else 1
    numpy_type = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
    if dtype in numpy_type:
        payload = np.full(count, value, dtype=numpy_type[dtype]).tobytes()
    else:  # integers: zeros of their width
        payload = bytes(count * {"I32": 4, "U8": 1}[dtype])
    entry = {"dtype": dtype, "shape": shape, "data_offsets": [0, len(payload)]}
    header = json.dumps({name: entry}).encode()
    table = check(
        tmp_path_factory.mktemp("f") / "x.safetensors",
        struct.pack("<Q", len(header)) + header + payload,
    )
    accepted = dtype == "F32" and len(shape) == 1 and name in ("/lm_head/MatMul", "re:/model/.*")
    accepted = accepted and (count == 0 or (np.isfinite(value) and value >= 0))
    assert (table is not None) == accepted, (dtype, shape, value, name)
