"""Guards: curator.compile.source

SOURCE resolution in process: what a SOURCE is (classify_local, classify_source), what compile
refuses, how a local directory, a Hugging Face cache snapshot, a GGUF file and a Hub repo id become
a SourceModel, and the facts read from a checkpoint's files (config.json, safetensors headers,
repository code). Real tiny inputs written in tmp dirs; the Hub is the loopback fake Hub.
"""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from curator.compile.source import (
    SourceKind,
    WeightFacts,
    classify_local,
    classify_source,
    custom_code_files,
    genai_variants,
    is_hub_id,
    looks_like_path,
    read_model_config,
    refuse_for_compile,
    resolve_source,
    slug,
    weight_facts,
)
from curator.compile.types import SourceModel
from curator.errors import CuratorError, PreflightError, UsageProblem
from tests.fakehub import TINY, FakeHub
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.gguf_bytes import Gguf

LOCAL_HINT = (
    "pass a Hugging Face model directory, a .gguf file, an ONNX Runtime GenAI folder, "
    "a LoRA adapter folder or an org/name repo id"
)


def safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> Path:
    """A valid safetensors file holding ``tensors`` (name -> (dtype, shape)), zeros as data."""
    width = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4}
    header: dict[str, Any] = {}
    at = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [at, at + count * width[dtype]],
        }
        at += count * width[dtype]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * at)
    return path


def checkpoint(root: Path, config: dict[str, Any] | None = None, name: str = "Tiny_Model") -> Path:
    model = root / name
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(config or {"model_type": "qwen2"}))
    return model


def refusal(exc: pytest.ExceptionInfo[CuratorError]) -> tuple[str, str | None]:
    return exc.value.message, exc.value.hint


# --- names ---------------------------------------------------------------------------------------


def test_slug_keeps_the_id_alphabet_and_collapses_the_rest() -> None:
    assert slug("SmolLM2-135M_Instruct.v1") == "smollm2-135m_instruct.v1"
    assert slug("My Model!!(v2)") == "my-model-v2"
    assert slug("--.Qwen2__.-") == "qwen2"
    assert slug("???") == "model"
    assert slug("") == "model"


def test_a_hub_id_is_org_name_that_is_not_a_local_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_hub_id("Qwen/Qwen2.5-0.5B-Instruct")
    assert is_hub_id("a/b")
    assert not is_hub_id("qwen")
    assert not is_hub_id("-org/name")
    assert not is_hub_id("org/name/extra")
    assert not is_hub_id("org/name ")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert not is_hub_id("org/name")  # a directory of that name wins


@pytest.mark.parametrize(
    "text",
    [
        "./m",
        "../m",
        "/abs/m",
        "~/m",
        "\\share",
        "a/b/c",
        "dir\\m",
        "C:\\models\\m",
        "d:/m",
        "x.GGUF",
    ],
)
def test_written_as_a_path(text: str) -> None:
    assert looks_like_path(text)


@pytest.mark.parametrize("text", ["org/name", "name", "C:name", "org/name.gguf-ish", "1:/x"])
def test_not_written_as_a_path(text: str) -> None:
    assert not looks_like_path(text)


# --- what a local source is ---------------------------------------------------------------------


def test_genai_variants_are_found_up_to_three_levels_deep(tmp_path: Path) -> None:
    for sub in ("b/x", "a", "c/d/e", "f/g/h/i"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "genai_config.json").write_text("{}")
    (tmp_path / "genai_config.json").write_text("{}")  # the folder itself is not a variant
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "other.json").write_text("{}")
    assert genai_variants(tmp_path) == ("a", "b/x", "c/d/e")
    assert genai_variants(tmp_path / "z") == ()


def test_classify_local_names_each_kind(tmp_path: Path) -> None:
    model = checkpoint(tmp_path)
    kind = classify_local(model)
    assert kind == SourceKind("checkpoint", str(model), model) and kind.is_local
    assert classify_local(model, "given").source == "given"
    (model / "adapter_config.json").write_text("{}")  # config.json too: a whole model
    assert classify_local(model).kind == "checkpoint"

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert classify_local(adapter) == SourceKind("adapter", str(adapter), adapter)

    genai = tmp_path / "genai"
    genai.mkdir()
    (genai / "genai_config.json").write_text("{}")
    (genai / "config.json").write_text("{}")
    (genai / "adapter_config.json").write_text("{}")
    assert classify_local(genai) == SourceKind("genai", str(genai), genai)

    variants = tmp_path / "variants"
    (variants / "cpu").mkdir(parents=True)
    (variants / "cpu" / "genai_config.json").write_text("{}")
    assert classify_local(variants) == SourceKind("genai", str(variants), variants)

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(Gguf().bytes())
    assert classify_local(gguf) == SourceKind("gguf", str(gguf), gguf)
    assert not SourceKind("hub", "org/name").is_local


def test_classify_local_refuses_what_is_no_model(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PreflightError) as exc:
        classify_local(text, "notes.txt")
    assert refusal(exc) == (
        "source notes.txt is a file, not a model directory or a .gguf file",
        LOCAL_HINT,
    )

    ggufs = tmp_path / "ggufs"
    ggufs.mkdir()
    for name in ("b.gguf", "a.gguf", "c.gguf", "d.gguf", "e.gguf"):
        (ggufs / name).write_bytes(b"")
    with pytest.raises(PreflightError) as exc:
        classify_local(ggufs, "ggufs")
    assert refusal(exc) == (
        "ggufs holds GGUF files, not a Hugging Face model: a.gguf, b.gguf, c.gguf, d.gguf",
        f"name one: curator info {Path('ggufs') / 'a.gguf'}",
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreflightError) as exc:
        classify_local(empty)
    assert refusal(exc) == (
        f"{empty} holds no config.json, genai_config.json, adapter_config.json or .gguf file",
        "point SOURCE at a Hugging Face model directory, a .gguf file, an ONNX Runtime GenAI "
        "folder or a LoRA adapter folder",
    )


def test_classify_source_local_hub_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = checkpoint(tmp_path, name="m")
    assert classify_source("m") == SourceKind("checkpoint", "m", model)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert classify_source("~/m").path == model
    assert classify_source("org/name") == SourceKind("hub", "org/name", None)

    with pytest.raises(PreflightError) as exc:
        classify_source("missing.gguf")
    assert refusal(exc) == ("GGUF file not found: missing.gguf", "check the path")
    with pytest.raises(PreflightError) as exc:
        classify_source("MISSING.GGUF")
    assert exc.value.message == "GGUF file not found: MISSING.GGUF"

    nowhere = (
        "source {} is neither an existing file or directory nor an org/name Hub repo id",
        "check the path (relative to the current directory), or use curator search to find a "
        "repo id",
    )
    for written in ("./gone", "a/b/c", "qwen"):
        with pytest.raises(PreflightError) as exc:
            classify_source(written)
        assert refusal(exc) == (nowhere[0].format(written), nowhere[1])
    with pytest.raises(UsageProblem):  # malformed as a Hub id: a usage error, exit 2
        classify_source("org/na me")


def test_compile_refuses_a_genai_folder_and_an_adapter_with_the_command_that_takes_it() -> None:
    with pytest.raises(PreflightError) as exc:
        refuse_for_compile(SourceKind("genai", "onnx-dir"))
    assert refusal(exc) == (
        "onnx-dir is already an ONNX Runtime GenAI model (genai_config.json): there is nothing "
        "to compile",
        "bring it in as it is: curator import onnx-dir",
    )
    with pytest.raises(PreflightError) as exc:
        refuse_for_compile(SourceKind("adapter", "lora"))
    assert refusal(exc) == (
        "lora is a LoRA adapter (adapter_config.json), not a whole model",
        "compile its base with it: curator compile BASE --adapter lora (curator info shows the "
        "base it names)",
    )
    for kind in ("checkpoint", "gguf", "hub"):
        refuse_for_compile(SourceKind(kind, "x"))  # nothing to refuse


# --- resolve_source ------------------------------------------------------------------------------


def test_a_local_directory_is_taken_as_it_is(tmp_path: Path) -> None:
    model = checkpoint(tmp_path, name="My Model")
    got = resolve_source(str(model), None, download=False)
    assert got == SourceModel(model.resolve(), "local:my-model", None, "local", "my-model", True)

    with pytest.raises(UsageProblem) as exc:
        resolve_source(str(model), "main", download=False)
    assert refusal(exc) == (
        "--revision applies only to a Hub repo id, not to a local path",
        "drop --revision",
    )
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(PreflightError, match="is a LoRA adapter"):
        resolve_source(str(adapter), None, download=False)


def test_a_hugging_face_cache_snapshot_keeps_its_provenance(tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--Org--Some.Model" / "snapshots" / sha
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    got = resolve_source(str(snap), None, download=True)
    assert got == SourceModel(snap.resolve(), "Org/Some.Model", sha, "Org", "some.model", True)

    for bad in (
        tmp_path / "models--Org--M" / "snapshot" / sha,  # not snapshots/
        tmp_path / "models--Org--M" / "snapshots" / sha[:-1],  # not 40 hex digits
        tmp_path / "models--Org--M" / "snapshots" / sha.upper(),
        tmp_path / "datasets--Org--M" / "snapshots" / sha,  # not a model repo
        tmp_path / "models--Org--" / "snapshots" / sha,
        tmp_path / "models---x--M" / "snapshots" / sha,  # org starts with '-': not a repo id
    ):
        bad.mkdir(parents=True)
        (bad / "config.json").write_text("{}")
        got = resolve_source(str(bad), None, download=False)
        assert got.repo == f"local:{slug(bad.name)}" and got.revision is None, bad


def test_a_gguf_file_before_dequantizing_is_known_by_its_name(tmp_path: Path) -> None:
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(Gguf().bytes())
    got = resolve_source(str(gguf), None, download=False)
    assert got == SourceModel(
        None,
        "local:smollm2-135m-instruct",
        None,
        "local",
        "smollm2-135m-instruct",
        True,
        gguf_path=gguf.resolve(),
        gguf_file=gguf.name,
    )
    # --gguf-file NAME of a local directory
    assert resolve_source(str(tmp_path), None, download=False, gguf_file=gguf.name) == got
    with pytest.raises(PreflightError) as exc:
        resolve_source(str(tmp_path), None, download=False, gguf_file="other.gguf")
    assert refusal(exc) == (f"no GGUF file other.gguf in {tmp_path}", "check --gguf-file")
    with pytest.raises(UsageProblem) as exc:
        resolve_source(str(gguf), None, download=False, gguf_file="x.gguf")
    assert refusal(exc) == (
        "--gguf-file names a file inside a Hub repo or a directory, not inside a file",
        f"pass the GGUF file itself: curator compile {gguf}",
    )
    with pytest.raises(UsageProblem, match="--revision"):
        resolve_source(str(gguf), "main", download=False)
    (tmp_path / "notes.txt").write_text("not a GGUF file")
    with pytest.raises(PreflightError) as exc:
        resolve_source(str(tmp_path), None, download=False, gguf_file="notes.txt")
    assert refusal(exc) == (
        f"source {tmp_path} is a file, not a model directory or a .gguf file",
        "pass a Hugging Face model directory, a .gguf file or an org/name repo id",
    )


def test_a_hub_repo_id_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    got = resolve_source("Org/Big_Model", "v1", download=False)
    assert got == SourceModel(None, "Org/Big_Model", "v1", "Org", "big_model", False)
    gguf = resolve_source("Org/SmolLM2-GGUF", None, download=False, gguf_file="s.Q4_1.gguf")
    assert gguf == SourceModel(
        None, "Org/SmolLM2-GGUF", None, "Org", "smollm2", False, gguf_file="s.Q4_1.gguf"
    )
    with pytest.raises(PreflightError, match="neither an existing file"):
        resolve_source("./not-here", None, download=False)


def test_a_hub_repo_id_is_downloaded_at_its_commit(hub: FakeHub) -> None:
    got = resolve_source(TINY, None, download=True)
    org, name = TINY.split("/")
    assert got.revision == hub.repos[TINY].sha
    assert got.local_dir is not None and (got.local_dir / "config.json").is_file()
    assert got.local_dir.name == got.revision
    assert (got.repo, got.publisher, got.name, got.is_local) == (TINY, org, slug(name), False)


# --- facts read from the files -------------------------------------------------------------------


def test_read_model_config_refusals(tmp_path: Path) -> None:
    model = checkpoint(tmp_path, {"model_type": "llama", "hidden_size": 8})
    assert read_model_config(model) == {"model_type": "llama", "hidden_size": 8}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreflightError) as exc:
        read_model_config(empty)
    assert refusal(exc) == (
        f"no config.json in {empty}",
        "point SOURCE at a Hugging Face model directory",
    )
    config = model / "config.json"
    config.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(PreflightError) as exc:
        read_model_config(model)
    assert refusal(exc) == (
        f"{config}:3:3: config.json is not valid JSON: Expecting property name enclosed in "
        "double quotes",
        "fix or re-download config.json",
    )
    config.write_text("[1, 2]")
    with pytest.raises(PreflightError) as exc:
        read_model_config(model)
    assert refusal(exc) == (f"{config} is not a JSON object", "re-download config.json")
    config.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(PreflightError) as exc:
        read_model_config(model)
    assert exc.value.message.startswith(f"cannot read {config}: ")
    assert exc.value.hint == "check the file"
    config.unlink()
    config.mkdir()  # unreadable as a file
    with pytest.raises(PreflightError) as exc:
        read_model_config(model)
    assert exc.value.message.startswith(f"cannot read {config}: ")


def test_parameters_come_from_the_safetensors_headers(tmp_path: Path) -> None:
    model = checkpoint(tmp_path)
    safetensors(model / "model-00001.safetensors", {"a": ("BF16", [4, 8]), "b": ("F32", [3])})
    safetensors(model / "model-00002.safetensors", {"c": ("F16", [5])})
    (model / "pytorch_model.bin").write_bytes(b"x" * 1000)  # ignored when safetensors exist
    size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    assert weight_facts(model, {}) == WeightFacts(32 + 3 + 5, size)


def test_a_prequantized_checkpoint_counts_its_packed_weights(tmp_path: Path) -> None:
    model = checkpoint(tmp_path)
    safetensors(
        model / "model.safetensors",
        {
            "l.qweight": ("I32", [2, 4]),  # 8 int32 -> 8 * 32/4 = 64 parameters at 4 bits
            "l.qzeros": ("I32", [1, 4]),
            "l.scales": ("F16", [1, 4]),
            "norm.weight": ("F16", [6]),
        },
    )
    config = {"quantization_config": {"quant_method": "gptq", "bits": 4}}
    assert weight_facts(model, config).parameters == 64 + 6
    assert weight_facts(model, {}).parameters == 8 + 4 + 4 + 6  # plain: every element counts


def test_without_readable_headers_parameters_are_estimated_from_bytes(tmp_path: Path) -> None:
    model = checkpoint(tmp_path)
    (model / "model.safetensors").write_bytes(b"\xff" * 64)  # a header length past the file
    (model / "a.bin").write_bytes(b"x" * 100)
    (model / "b.pt").write_bytes(b"x" * 20)
    total = 64 + 100 + 20
    assert weight_facts(model, {}) == WeightFacts(total // 4, total)  # float32 unless stated
    assert weight_facts(model, {"torch_dtype": "bfloat16"}).parameters == total // 2
    assert weight_facts(model, {"dtype": "float64"}).parameters == total // 8
    assert weight_facts(model, {"torch_dtype": "int8", "dtype": "float32"}).parameters == total
    assert weight_facts(model, {"torch_dtype": "float16"}).parameters == total // 2
    assert weight_facts(model, {"torch_dtype": "float32"}).parameters == total // 4
    assert weight_facts(model, {"torch_dtype": "int4"}).parameters == total // 2  # unknown: 2
    (model / "model.safetensors").unlink()
    assert weight_facts(model, {}) == WeightFacts(120 // 4, 120)
    for f in model.glob("*.*"):
        if f.name != "config.json":
            f.unlink()
    assert weight_facts(model, {}) == WeightFacts(None, 0)


def test_repository_code_is_every_auto_map_entry_and_python_file(tmp_path: Path) -> None:
    model = checkpoint(tmp_path)
    assert custom_code_files(model, {}) == []
    (model / "modeling_b.py").write_text("")
    (model / "configuration_a.py").write_text("")
    (model / "notes.txt").write_text("")
    config = {"auto_map": {"AutoModel": "m.M", "AutoConfig": "c.C"}}
    assert custom_code_files(model, config) == [
        "auto_map AutoConfig",
        "auto_map AutoModel",
        "configuration_a.py",
        "modeling_b.py",
    ]
    for f in model.glob("*.py"):
        f.unlink()
    assert custom_code_files(model, {"auto_map": "m.M"}) == ["auto_map (malformed)"]
    assert custom_code_files(model, {"auto_map": {}}) == []
    assert custom_code_files(model, {"auto_map": None}) == []


def test_a_gguf_source_becomes_its_dequantized_checkpoint(
    smollm2_gguf: Path, use_dequantized_smollm2: Path
) -> None:
    """The real SmolLM2 GGUF, dequantized once (the cached checkpoint is reused by sha256)."""
    got = resolve_source(str(smollm2_gguf), None, download=True)
    assert got.local_dir is not None and (got.local_dir / "config.json").is_file()
    assert got.local_dir.parent == use_dequantized_smollm2
    assert got.gguf is not None and got.gguf.file == smollm2_gguf.name
    assert got == SourceModel(
        got.local_dir,
        "local:smollm2-135m-instruct",
        None,
        "local",
        "smollm2-135m-instruct",
        True,
        smollm2_gguf.resolve(),
        smollm2_gguf.name,
        got.gguf,
    )


def test_a_hub_gguf_file_is_downloaded_then_dequantized(
    hub: FakeHub, smollm2_gguf: Path, use_dequantized_smollm2: Path
) -> None:
    from tests.fakehub.upload import UploadedRepo

    repo = UploadedRepo("Org/SmolLM2-GGUF", {}, library_name="gguf")
    published = repo.commit("main", {smollm2_gguf.name: smollm2_gguf.read_bytes()}, "gguf")
    files = {smollm2_gguf.name: smollm2_gguf.read_bytes(), "README.md": b"# later\n"}
    assert repo.commit("main", files, "readme") != published  # main moved on: --revision pins
    hub.add(repo)
    try:
        got = resolve_source(
            "Org/SmolLM2-GGUF", published, download=True, gguf_file=smollm2_gguf.name
        )
    finally:
        del hub.repos["Org/SmolLM2-GGUF"]
    assert got.local_dir is not None and got.local_dir.parent == use_dequantized_smollm2
    assert got.gguf is not None and got.gguf_path is not None
    assert got.gguf_path.read_bytes()[:4] == b"GGUF"
    assert got == SourceModel(
        got.local_dir,
        "Org/SmolLM2-GGUF",
        published,
        "Org",
        "smollm2",
        False,
        got.gguf_path,
        smollm2_gguf.name,
        got.gguf,
    )
