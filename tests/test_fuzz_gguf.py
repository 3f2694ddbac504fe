"""Guards: curator.cli.search, curator.errors, curator.formats.gguf

Fuzzing the GGUF header reader (curator.formats.gguf.read_gguf_facts, which `curator info`, compile and
onboard read a GGUF through): random bytes, claimed lengths of 2^60 that must not allocate, nested
arrays, unknown types, truncation at every byte, random damage to a valid file. A refusal is an
InputFileError (GgufTruncated for a short file) of one line; a file the reader accepts, the gguf
library (which transformers dequantizes with) reads too, with the same tensors.

`make fuzz` runs 10,000 cases per property; the default run a few hundred."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from curator.errors import InputFileError
from curator.formats.gguf import GgufFacts, GgufTruncated, read_gguf_facts
from tests.fuzzing import assert_one_line, bounded
from tests.gguf_bytes import ARRAY, F32, Q8_0, STRING, UINT32, Gguf, Tensor, kv, string, value

pytestmark = pytest.mark.fuzz

HUGE = 2**60


def check(path: Path, content: bytes) -> GgufFacts | None:
    path.write_bytes(content)
    with bounded():
        try:
            facts = read_gguf_facts(path)
        except InputFileError as exc:
            assert_one_line(exc.message, exc.hint)
            assert str(path) in exc.message
            return None
    assert facts.expected_bytes <= facts.size_bytes == len(content)
    assert facts.data_offset <= facts.expected_bytes or facts.tensor_count == 0
    assert facts.parameter_count >= 0 and len(facts.architecture) <= 64
    assert facts.name is None or (len(facts.name) <= 203 and facts.name.isprintable())
    assert facts.context_length is None or isinstance(facts.context_length, int)
    return facts


def same_as_library(path: Path, facts: GgufFacts) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    assert len(reader.tensors) == facts.tensor_count
    assert int(reader.data_offset) == facts.data_offset


def _llama(*extra: bytes) -> list[bytes]:
    return [kv("general.architecture", STRING, "llama"), *extra]


DEEP_ARRAYS = (
    b"GGUF"
    + struct.pack("<IQQ", 3, 0, 2)
    + kv("general.architecture", STRING, "llama")
    + string("k")
    + struct.pack("<I", ARRAY)
    + struct.pack("<IQ", ARRAY, 1) * 5000
    + struct.pack("<IQ", 0, 0)
)
CONTEXT_INFINITE = Gguf(metadata=_llama(kv("llama.context_length", 12, float("inf")))).bytes()
CONTEXT_TEXT = Gguf(metadata=_llama(kv("llama.context_length", STRING, "abc"))).bytes()
ARCH_NUMBER = Gguf(metadata=[kv("general.architecture", UINT32, 5)]).bytes()
HUGE_DIMS = Gguf(tensors=[Tensor("a", [2**64 - 1] * 4)]).header()
UNKNOWN_TYPE = Gguf(tensors=[Tensor("a", [8], kind=99)]).bytes()
LONG_NAME = Gguf(metadata=_llama(kv("general.name", STRING, "x\n" * 50_000))).bytes()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "model.gguf"


@given(st.sampled_from([2, 3]), st.binary(max_size=2048))
@example(3, b"")
@example(3, b"\xff" * 30)
@example(3, struct.pack("<QQ", 0, 1) + string("k") + struct.pack("<I", 99))
# Found by fuzzing the reader as it was (each a traceback or a wrong fact in `curator info`):
@example(3, DEEP_ARRAYS[8:])  # RecursionError
@example(3, CONTEXT_INFINITE[8:])  # OverflowError: int(inf)
@example(3, CONTEXT_TEXT[8:])  # ValueError: int('abc')
@example(3, ARCH_NUMBER[8:])  # accepted, architecture "5"
@example(3, HUGE_DIMS[8:])  # accepted, a 78-digit parameter count
@example(3, UNKNOWN_TYPE[8:])  # accepted, type "type-99"
@example(3, Gguf().bytes()[8:-10])  # accepted, 10 bytes of tensor data missing
@example(3, LONG_NAME[8:])  # accepted, a 100,000-character name with line breaks for `info`
def test_random_bytes_after_the_magic(target: Path, version: int, rest: bytes) -> None:
    check(target, b"GGUF" + struct.pack("<I", version) + rest)


METADATA_KINDS = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12])


@st.composite
def metadata_value(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One metadata value, its type code first: scalars, strings, arrays nested a few deep, and
    now and then a claimed length or count that the bytes do not hold, or an unknown type."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return struct.pack("<I", draw(st.integers(13, 2**32 - 1)))  # unknown type
    if choice <= 3:
        kind = draw(METADATA_KINDS)
        fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
               11: "<q", 12: "<d"}[kind]  # fmt: skip
        raw = draw(st.binary(min_size=struct.calcsize(fmt), max_size=struct.calcsize(fmt)))
        return struct.pack("<I", kind) + raw
    if choice <= 6:
        text = draw(st.binary(max_size=20))
        length = len(text) if draw(st.integers(0, 4)) else draw(st.sampled_from([HUGE, 2**64 - 1]))
        return struct.pack("<IQ", STRING, length) + text
    if depth >= 10:
        return struct.pack("<IIQ", ARRAY, 0, 0)
    items = draw(st.lists(metadata_value(depth + 1), max_size=3))  # type: ignore[call-arg]
    # an array holds items of one type: take the first item's; a count that may lie
    item_kind = struct.unpack("<I", items[0][:4])[0] if items else draw(METADATA_KINDS)
    count = len(items) if draw(st.integers(0, 4)) else draw(st.sampled_from([HUGE, 2**64 - 1]))
    body = b"".join(item[4:] for item in items)
    return struct.pack("<IIQ", ARRAY, item_kind, count) + body


@st.composite
def tensors(draw: st.DrawFn) -> list[Tensor]:
    found = []
    for index in range(draw(st.integers(0, 4))):
        dims = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
        kind = F32
        if draw(st.integers(0, 5)) == 0:
            kind = draw(st.sampled_from([Q8_0, 99, 2**31]))
            dims = [32, *dims[1:]] if kind == Q8_0 and draw(st.booleans()) else dims
        if draw(st.integers(0, 9)) == 0:
            dims = draw(st.lists(st.sampled_from([0, 1, 2**32, 2**63, 2**64 - 1]), max_size=6))
        offset = None if draw(st.integers(0, 5)) else draw(st.integers(0, 2**64 - 1))
        found.append(Tensor(draw(st.sampled_from([f"t{index}", "t0"])), dims, kind, offset))
    return found


@given(
    st.lists(metadata_value(), max_size=4),
    tensors(),
    st.sampled_from([None, 1, 24, 32, 64, 0]),
    st.one_of(st.none(), st.integers(0, 4096)),
)
@example([], [], None, None)
@example([], [Tensor("a", [8]), Tensor("a", [8])], None, None)  # a name twice
@example([], [Tensor("a", [8], offset=3)], None, None)  # misaligned
@example([], [Tensor("a", [16]), Tensor("b", [8], offset=32)], None, None)  # overlapping
@example([], [Tensor("a", [2**32, 2**32])], None, None)  # 2^64 elements
@example([], [Tensor("a", [8])], 24, None)  # an alignment that is no power of two
@example([], [Tensor("t0", [], Q8_0, offset=0)], None, None)  # no dimension: 1, not a block
@example([], [Tensor("t0", [0, 2**63], Q8_0, offset=0)], None, None)  # 0 elements, a 2^63 dim
@example([], [Tensor("t0", [0, 2**63], offset=0)], None, None)  # the same as F32 (numpy refused it)
@example([struct.pack("<IIQ", ARRAY, ARRAY, 1) * 12 + struct.pack("<IQ", 0, 0)], [], None, None)
def test_structured_files(
    target: Path,
    extra: list[bytes],
    table: list[Tensor],
    alignment: int | None,
    cut: int | None,
) -> None:
    metadata = [kv("general.architecture", STRING, "llama")]
    metadata += [string(f"k{i}") + raw for i, raw in enumerate(extra)]
    if alignment is not None:
        metadata.append(kv("general.alignment", UINT32, alignment))
    gguf = Gguf(tensors=table, metadata=metadata, alignment=alignment or 32)
    try:
        content = gguf.bytes()
    except (OverflowError, ZeroDivisionError, MemoryError):  # a layout the builder cannot lay out
        content = gguf.header()
    if cut is not None:
        content = content[:cut]
    facts = check(target, content)
    event("accepted" if facts is not None else "refused")
    if facts is not None:
        same_as_library(target, facts)


def test_truncation_at_every_byte(target: Path) -> None:
    """Every proper prefix of a valid file is refused: as too short, or as truncated."""
    whole = Gguf(
        tensors=[Tensor("token_embd.weight", [32, 4], Q8_0), Tensor("output.weight", [8])],
        metadata=[
            kv("general.architecture", STRING, "llama"),
            kv("general.name", STRING, "tiny"),
            kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "bb", "ccc"])),
            kv("nested", ARRAY, (ARRAY, [(UINT32, [1, 2]), (UINT32, [])])),
        ],
    ).bytes()
    assert check(target, whole) is not None
    for cut in range(len(whole)):
        target.write_bytes(whole[:cut])
        with pytest.raises(InputFileError) as refused:
            read_gguf_facts(target)
        assert_one_line(refused.value.message, refused.value.hint)
        if cut >= 24:
            assert isinstance(refused.value, GgufTruncated), (cut, refused.value.message)
            assert refused.value.message.startswith(f"truncated: {target} holds {cut} bytes")


@given(st.data())
def test_damage_to_a_valid_file(target: Path, data: st.DataObject) -> None:
    content = bytearray(
        Gguf(metadata=[*Gguf().metadata, kv("general.alignment", UINT32, 32)]).bytes()
    )
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    check(target, bytes(content))


CLAIMS: list[tuple[str, bytes]] = [
    ("a key of 2^60 bytes", b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, HUGE) + b"k" * 64),
    ("a string of 2^60 bytes", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("k")
     + struct.pack("<IQ", STRING, HUGE) + b"x" * 64),
    ("2^60 uint8 items", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("k")
     + struct.pack("<IIQ", ARRAY, 0, HUGE) + b"x" * 64),
    ("2^60 strings", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("k")
     + struct.pack("<IIQ", ARRAY, STRING, HUGE) + value(STRING, "x") * 8),
    ("2^60 arrays", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("k")
     + struct.pack("<IIQ", ARRAY, ARRAY, HUGE) + struct.pack("<IQ", 0, 0) * 8),
    ("2^60 key/values", b"GGUF" + struct.pack("<IQQ", 3, 0, HUGE) + b"\0" * 64),
    ("2^60 tensors", b"GGUF" + struct.pack("<IQQ", 3, HUGE, 0) + b"\0" * 64),
]  # fmt: skip


@pytest.mark.parametrize(("claim", "content"), CLAIMS, ids=[c for c, _ in CLAIMS])
def test_a_claimed_length_allocates_nothing(target: Path, claim: str, content: bytes) -> None:
    target.write_bytes(content)
    tracemalloc.start()
    with bounded(1.0), pytest.raises(GgufTruncated) as refused:
        read_gguf_facts(target)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20, (claim, peak)
    assert_one_line(refused.value.message, refused.value.hint)
