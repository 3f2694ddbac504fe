"""Guards: curator.cli.search, curator.compile.source, curator.compile.stream.checkpoint,
  curator.errors, curator.fidelity.worker, curator.hub.local, curator.formats.safetensors

Fuzzing the safetensors header reader (curator.formats.safetensors, which `curator info`, local
search, compile's parameter count, the streaming builder's checkpoint and fidelity's dtype choice
read through): random bytes, hostile header lengths, bad JSON,
offsets outside the file, overlapping or leaving holes, dtype and shape that disagree with the
offsets. A refusal is a SafetensorsHeaderError (an InputFileError) of one line; a file the reader
accepts, the safetensors library loads too, with the same tensors.

`make fuzz` runs 10,000 cases per property; the default run a few hundred."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from curator.compile.source import weight_facts
from curator.compile.stream.checkpoint import _ITEMSIZE as ITEMSIZE
from curator.compile.stream.checkpoint import Checkpoint, CheckpointError
from curator.errors import InputFileError
from curator.fidelity.worker import _safetensors_facts
from curator.formats.safetensors import (
    DTYPE_BITS,
    HEADER_LIMIT,
    SafetensorsHeader,
    SafetensorsHeaderError,
    read_safetensors_header,
)
from curator.hub.local import safetensors_file_parameters
from tests.fuzzing import assert_one_line, bounded

pytestmark = pytest.mark.fuzz

NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8}


def file_of(header: bytes | str, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def check(path: Path, content: bytes) -> SafetensorsHeader | None:
    """Read ``content`` through every reader that takes safetensors headers; the strict one's
    answer (None: refused, after checking the refusal)."""
    path.write_bytes(content)
    with bounded():
        try:
            header = read_safetensors_header(path)
        except SafetensorsHeaderError as exc:
            assert_one_line(exc.message, exc.hint)
            assert str(path) in exc.message
            header = None
        count = safetensors_file_parameters(path)
        facts = weight_facts(path.parent, {})
        stored = _safetensors_facts(path.parent)
        try:
            streamed: int | None = Checkpoint(path.parent).parameters
        except CheckpointError as exc:
            assert_one_line(str(exc))
            streamed = None
    if header is None:
        assert count is None and streamed is None and stored == (None, 0)
        return None
    assert count == header.parameters
    assert facts.parameters == header.parameters
    if all(t.dtype in ITEMSIZE for t in header.tensors):
        assert streamed == header.parameters
    at = 0
    for tensor in sorted(header.tensors, key=lambda t: (t.begin, t.end)):  # tiling the data
        assert tensor.begin == at and tensor.elements * DTYPE_BITS[tensor.dtype] == 8 * (
            tensor.end - tensor.begin
        )
        at = tensor.end
    assert header.data_offset + at == header.size_bytes == len(content)
    return header


def same_as_library(path: Path, header: SafetensorsHeader) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as opened:
        assert set(opened.keys()) == {t.name for t in header.tensors}
        for tensor in header.tensors:
            if tensor.dtype in NUMPY_DTYPES:
                assert opened.get_slice(tensor.name).get_shape() == list(tensor.shape)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    return folder / "model.safetensors"


@given(st.binary(max_size=2048))
@example(b"")
@example(b"\x00" * 7)
@example(struct.pack("<Q", 2**64 - 1))
@example(struct.pack("<Q", HEADER_LIMIT) + b"{}")
@example(file_of("{}", length=3))
@example(file_of("[" * 100_000))  # nesting the JSON parser would recurse into
@example(file_of("{}"))
@example(file_of('{"a": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}}'))
@example(file_of('["not", "an", "object"]'))
@example(file_of(b'{"\xff": 1}'))
def test_random_bytes(target: Path, content: bytes) -> None:
    check(target, content)


DTYPES = st.sampled_from([*DTYPE_BITS, "F32", "F32", "Q4", "", "f32"])
DIM = st.one_of(
    st.integers(0, 5),
    st.integers(-3, 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))


@st.composite
def entries(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A header document, mostly well-formed, each field sometimes wrong; and its data length."""
    names = draw(st.lists(st.text(min_size=1, max_size=8), max_size=5, unique=True))
    document: dict[str, Any] = {}
    at = 0
    for name in names:
        dtype = draw(DTYPES) if draw(st.integers(0, 4)) == 0 else "F32"
        if draw(st.integers(0, 9)):
            shape: Any = draw(st.lists(st.integers(0, 4), max_size=3))
        else:
            shape = draw(st.one_of(st.lists(DIM, max_size=3), JSON_SCALARS))
        elements = (
            int(np.prod(shape))
            if isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 100 for d in shape)
            else 1
        )
        nbytes = elements * DTYPE_BITS.get(dtype, 32) // 8
        begin = at + draw(st.sampled_from([0] * 30 + [1, -1, -4]))
        end = begin + nbytes + draw(st.sampled_from([0] * 30 + [1, -1, 2**40]))
        offsets: Any = [begin, end]
        if draw(st.integers(0, 19)) == 0:
            offsets = draw(st.one_of(st.lists(DIM, max_size=3), JSON_SCALARS))
        entry: Any = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        if draw(st.integers(0, 29)) == 0:
            entry = draw(JSON_SCALARS)
        document[name] = entry
        at = max(at, end if isinstance(end, int) else at)
    if draw(st.integers(0, 3)) == 0:
        document["__metadata__"] = draw(
            st.one_of(st.dictionaries(st.text(max_size=4), st.text(max_size=4)), JSON_SCALARS)
        )
    length = max(0, at + draw(st.sampled_from([0] * 6 + [-1, 1, -7])))
    return document, min(length, 1 << 20)


@given(entries(), st.booleans())
@example(({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 8), False)
@example(({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 7), False)  # truncated
@example(({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8), False)  # mismatch
@example(
    (
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]},
        },
        8,
    ),
    False,
)  # overlapping
@example(({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8), False)  # a hole
@example(({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2**70]}}, 8), False)
@example(({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, 1), False)  # half a byte
@example(({"__metadata__": {"format": 1}}, 0), False)
@example(({"\r": {"dtype": "F8_E5M2", "shape": [], "data_offsets": [0, 1]}}, 1), False)
def test_structured_headers(target: Path, case: tuple[dict[str, Any], int], pad: bool) -> None:
    document, length = case
    text = json.dumps(document) + (" " * 7 if pad else "")  # the format allows padding spaces
    header = check(target, file_of(text, b"\x01" * length))
    event("accepted" if header is not None else "refused")
    if header is not None:
        same_as_library(target, header)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.tuples(st.sampled_from(sorted(NUMPY_DTYPES)), st.lists(st.integers(0, 4), max_size=3)),
        max_size=6,
    )
)
def test_files_the_library_writes_are_read_alike(
    target: Path, tensors: dict[str, tuple[str, list[int]]]
) -> None:
    from safetensors.numpy import save_file

    arrays = {
        name: np.zeros(shape, dtype=NUMPY_DTYPES[dtype]) for name, (dtype, shape) in tensors.items()
    }
    save_file(arrays, str(target), metadata={"format": "np"})
    header = check(target, target.read_bytes())
    assert header is not None
    assert {t.name: (t.dtype, t.shape) for t in header.tensors} == {
        name: (dtype, tuple(shape)) for name, (dtype, shape) in tensors.items()
    }
    assert header.metadata == {"format": "np"}


def test_a_header_length_past_the_limit_is_refused_reading_nothing(target: Path) -> None:
    """2^60 claimed: refused from the 8 length bytes, not by reading (or allocating) 2^60."""
    import tracemalloc

    target.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    tracemalloc.start()
    with pytest.raises(SafetensorsHeaderError, match="claims a header of"):
        read_safetensors_header(target)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_a_missing_safetensors_file_and_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_safetensors_header(tmp_path / "absent.safetensors")
    with pytest.raises(SafetensorsHeaderError, match="not a regular file"):
        read_safetensors_header(tmp_path)


def tensor(dtype: Any = "F32", shape: Any = (2,), offsets: Any = (0, 8)) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HINT = "download the file again, or convert the checkpoint with safetensors' save_file"
TRUNCATED_HINT = "the file is incomplete (an interrupted download or copy): download it again"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x01\x02", "it holds 2 bytes, fewer than the 8 of a header length"),
        (file_of(b"{}", length=HEADER_LIMIT + 1), f"a header of {HEADER_LIMIT + 1} bytes (at most"),
        (file_of(b'{"\xff": 1}'), "its header is not UTF-8 (byte 2)"),
        (file_of("[1, 2]"), "its header is not a JSON object"),
        (file_of('{"__metadata__": {"a": 1}}'), "__metadata__ must map strings to strings"),
        (file_of('{"__metadata__": ["a"]}'), "__metadata__ must map strings to strings"),
        (file_of('{"w": 5}'), "tensor 'w' is not an object"),
        (file_of(json.dumps({"w": tensor(dtype="F99")})), "tensor 'w' has the unknown dtype 'F99'"),
        (
            file_of(json.dumps({"w": tensor(dtype=None)})),
            "tensor 'w' has the unknown dtype NoneType",
        ),
        (file_of(json.dumps({"w": tensor(shape=[-1])})), "shape is not a list of non-negative"),
        (file_of(json.dumps({"w": tensor(shape=[True])})), "shape is not a list of non-negative"),
        (file_of(json.dumps({"w": tensor(shape=[1] * 65)})), "shape is not a list of non-negative"),
        (file_of(json.dumps({"w": tensor(offsets=[8, 0])})), "data_offsets are not two integers"),
        (file_of(json.dumps({"w": tensor(offsets=[0])})), "data_offsets are not two integers"),
        (file_of(json.dumps({"w": tensor(offsets=[0, 8.0])})), "data_offsets are not two integers"),
        (
            file_of(json.dumps({"w": tensor(shape=[3])}), b"\0" * 8),
            "tensor 'w': F32 [3] needs 12 bytes, its offsets span 8",
        ),
        (
            file_of(json.dumps({"w": tensor("F4", [3], [0, 2])}), b"\0" * 2),
            "tensor 'w': F4 [3] needs 1.5 bytes, its offsets span 2",
        ),
        (
            file_of(json.dumps({"a": tensor(), "b": tensor(offsets=[4, 12])}), b"\0" * 12),
            "tensors 'a' and 'b' overlap",
        ),
        (
            file_of(json.dumps({"a": tensor(offsets=[8, 16])}), b"\0" * 16),
            "bytes 0-8 of its data belong to no tensor",
        ),
        (file_of(json.dumps({"w": tensor()}), b"\0" * 11), "3 bytes follow its last tensor"),
    ],
)
def test_each_refused_header_names_its_reason(target: Path, content: bytes, why: str) -> None:
    target.write_bytes(content)
    with pytest.raises(SafetensorsHeaderError) as caught:
        read_safetensors_header(target)
    assert caught.value.message.startswith(f"{target} is not a readable safetensors file: ")
    assert why in caught.value.message
    assert caught.value.hint == HINT


def test_a_truncated_safetensors_file_says_where_it_ends(target: Path) -> None:
    header = json.dumps({"w": tensor()})
    target.write_bytes(file_of(header, b"\0" * 5))
    with pytest.raises(SafetensorsHeaderError) as caught:
        read_safetensors_header(target)
    needed = 8 + len(header) + 8
    assert caught.value.message == (
        f"truncated: {target} holds {needed - 3} bytes but its header needs {needed} "
        f"(tensor 'w' ends at byte {needed})"
    )
    assert caught.value.hint == TRUNCATED_HINT
    target.write_bytes(file_of("{}", length=20))
    with pytest.raises(SafetensorsHeaderError) as caught:
        read_safetensors_header(target)
    assert (
        caught.value.message == f"truncated: {target} holds 10 bytes but its header alone needs 28"
    )
    assert caught.value.hint == TRUNCATED_HINT


def test_an_accepted_safetensors_file_lists_its_tensors_in_header_order(target: Path) -> None:
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "b": tensor("F16", [2, 2], [4, 12]),
            "a": tensor("U8", [4], [0, 4]),
            "s": tensor("F32", [], [12, 16]),
        }
    )
    target.write_bytes(file_of(header, b"\0" * 16))
    read = read_safetensors_header(str(target))
    assert read.path == target
    assert (read.size_bytes, read.data_offset) == (8 + len(header) + 16, 8 + len(header))
    assert [(t.name, t.dtype, t.shape, t.begin, t.end) for t in read.tensors] == [
        ("b", "F16", (2, 2), 4, 12),
        ("a", "U8", (4,), 0, 4),
        ("s", "F32", (), 12, 16),
    ]
    assert read.parameters == 4 + 4 + 1
    assert read.metadata == {"format": "pt"}
    empty = target.with_name("empty.safetensors")
    empty.write_bytes(file_of("{}"))
    assert read_safetensors_header(empty).tensors == ()


@pytest.mark.skipif(sys.platform == "win32", reason="Windows says 'not found' here")
def test_an_unreadable_safetensors_path_is_an_input_error(target: Path) -> None:
    target.write_bytes(file_of("{}"))
    with pytest.raises(InputFileError) as caught:
        read_safetensors_header(target / "inside-a-file.safetensors")  # NotADirectoryError
    assert not isinstance(caught.value, SafetensorsHeaderError)
    assert caught.value.message.startswith(f"cannot read {target / 'inside-a-file.safetensors'}: ")
    assert caught.value.hint == "check the file"
