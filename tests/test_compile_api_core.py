"""Guards: curator.compile.api

The compile's planning and bookkeeping in process: ``plan_compile`` for each kind of source (its
ids, target, sizes, predictions, notes and refusals), the chat template options, the Hub's sizes for
a dry run, adapters, recipe files, and ``compile_model`` around Olive (the work directory, the
Olive config it writes, assembling, the manifest, placement, the log kept on failure, cleanup),
with a stand-in Olive runner passed as ``olive=`` that writes what Olive writes. The subprocess
tests (test_compile.py) run the real Olive end to end.
"""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import errno
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curator.compile import chat_templates, cost, preflight
from curator.compile.adapter import SEPARATE_ADAPTER_BLOCKED
from curator.compile.api import (
    compile_model,
    plan_compile,
    resolve_recipe,
)
from curator.compile.gguf_source import already_quantized_note
from curator.compile.olive_run import OliveRun
from curator.compile.placement import WORK_ROOT_NAME
from curator.compile.source import resolve_source
from curator.compile.types import CompileRequest
from curator.errors import CompileError, CuratorError, PreflightError, UsageProblem
from curator.hub.client import offline_error
from curator.recipes import get_recipe, predict_run_bytes
from tests.fakehub import TINY, FakeHub
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.gguf_bytes import STRING, UINT32, Gguf, kv

QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "max_position_embeddings": 2048,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}
TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def sparse_bf16(path: Path, elements: int) -> None:
    """A safetensors file of one BF16 tensor of ``elements`` values, sparse on disk."""
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [elements], "data_offsets": [0, 2 * elements]}}
    )
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header.encode())
        out.truncate(8 + len(header) + 2 * elements)


def local_model(
    root: Path,
    name: str = "m",
    *,
    config: dict[str, Any] | None = None,
    parameters: int = 1_000_000,
    template: bool = True,
    license_id: str | None = "mit",
) -> Path:
    model = root / name
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(config if config is not None else QWEN2))
    if template:
        (model / "chat_template.jinja").write_text(TEMPLATE)
    if license_id:
        (model / "README.md").write_text(f"---\nlicense: {license_id}\n---\n# m\n")
    if parameters:
        sparse_bf16(model / "model.safetensors", parameters)
    return model


def plan_for(source: str, recipe: str = "int4-cpu", **options: Any) -> Any:
    request = CompileRequest(source=source, recipe=recipe, **options)
    found = resolve_source(source, request.revision, download=False, gguf_file=request.gguf_file)
    return plan_compile(request, get_recipe(recipe), found)


def refusal(exc: pytest.ExceptionInfo[CuratorError]) -> tuple[str, str | None]:
    return exc.value.message, exc.value.hint


@pytest.fixture
def cache(isolated_env: Path) -> Path:
    return isolated_env / "foundry-cache"


# --- plan_compile -------------------------------------------------------------------------------


def test_the_plan_of_a_local_checkpoint(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    recipe = get_recipe("int4-cpu")
    plan = plan_for(str(model))
    weight_bytes = (model / "model.safetensors").stat().st_size
    predicted = cost.estimate(recipe, 1_000_000, QWEN2, weight_bytes / 1_000_000)
    work = cache.absolute() / WORK_ROOT_NAME / "m-generic-cpu-1-XXXXXXXX"
    assert (plan.model_id, plan.publisher, plan.target) == (
        "m-generic-cpu:1",
        "local",
        cache.absolute() / "local" / "m-generic-cpu-1",
    )
    assert (plan.recipe, plan.recipe_sha256) == ("int4-cpu", recipe.sha256)
    assert (plan.source_repo, plan.source_revision, plan.source_dir) == ("local:m", None, model)
    assert (plan.architecture, plan.parameters, plan.context_length) == (
        "Qwen2ForCausalLM",
        1_000_000,
        2048,
    )
    assert plan.predicted_peak_bytes == predicted.peak_bytes
    shapeless = cost.estimate(recipe, 1_000_000, None, weight_bytes / 1_000_000)
    assert predicted.basis != shapeless.basis  # the config's shape is what the plan streams
    assert plan.predicted_seconds == predicted.seconds
    assert plan.prediction_basis == predicted.basis
    assert plan.predicted_disk_bytes == preflight.predicted_disk_bytes(recipe, 1_000_000)
    assert plan.available_ram_bytes > 2**20 and plan.free_disk_bytes > 2**20
    assert plan.olive_config["input_model"]["model_path"] == str(model)
    assert plan.olive_config["output_dir"] == str(work / "olive-output")
    assert plan.olive_config["cache_dir"] == str(work / "olive-cache")
    assert plan.notes == () and plan.unknown_because == ()
    assert plan.chat_template is None and plan.completion_only is False
    assert plan.source_gguf_file is None and plan.source_gguf is None
    assert plan.source_adapter is None
    assert plan.source_license == "mit"


def test_the_plan_keeps_what_the_files_do_not_say_unknown(tmp_path: Path) -> None:
    config = {**QWEN2, "max_position_embeddings": "2048"}  # not an int: not a context length
    model = local_model(tmp_path, config=config, parameters=0, license_id=None)
    plan = plan_for(str(model), model_id="other-generic-cpu:3")
    assert plan.model_id == "other-generic-cpu:3"
    assert plan.target.name == "other-generic-cpu-3"
    assert plan.context_length is None and plan.source_license is None
    assert (plan.parameters, plan.predicted_peak_bytes, plan.predicted_disk_bytes) == (
        None,
        None,
        None,
    )
    assert (plan.predicted_seconds, plan.prediction_basis) == (None, None)


def test_weights_stored_in_fp32_raise_the_predicted_peak(tmp_path: Path) -> None:
    recipe = get_recipe("int4-cpu")
    model = local_model(tmp_path, parameters=0)
    (model / "model.bin").write_bytes(b"\0" * 4_000_000)  # no header: counted as float32 bytes
    plan = plan_for(str(model))
    assert plan.parameters == 1_000_000
    expected = cost.estimate(recipe, 1_000_000, QWEN2, 4.0)
    assert plan.predicted_peak_bytes == expected.peak_bytes
    assert expected.peak_bytes != cost.estimate(recipe, 1_000_000, QWEN2, 2.0).peak_bytes


def test_the_model_id_and_the_target_are_checked_first(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    with pytest.raises(UsageProblem, match="is not NAME-VARIANT:VERSION"):
        plan_for(str(model), model_id="Bad Id")
    target = cache.absolute() / "local" / "m-generic-cpu-1"
    target.mkdir(parents=True)
    with pytest.raises(PreflightError) as exc:
        plan_for(str(model))
    assert refusal(exc) == (
        f"{target} already exists",
        "add --force to replace it, or choose another --id",
    )
    note = (
        f"{target} already exists: a real run stops there; with --force it compiles again and "
        "replaces it"
    )
    assert plan_for(str(model), dry_run=True).notes == (note,)
    assert plan_for(str(model), force=True).notes == ()
    assert plan_for(str(model), force=True, dry_run=True).notes == ()


def test_a_recipe_predicted_to_need_more_ram_than_there_is(tmp_path: Path) -> None:
    """GPTQ holds the model in torch (8.3 bytes per fp32 parameter, 4.15 per bf16 one): 7B
    parameters need more than this machine's RAM, the streamed int4 recipes fit."""
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    model = local_model(tmp_path, config=config, parameters=7_000_000_000)
    recipe = get_recipe("int4-gptq-cpu")
    stored = (model / "model.safetensors").stat().st_size / 7_000_000_000
    peak = cost.estimate(recipe, 7_000_000_000, config, stored).peak_bytes
    with pytest.raises(PreflightError) as exc:
        plan_for(str(model), recipe="int4-gptq-cpu")
    available = preflight.available_ram_bytes()
    assert exc.value.message.startswith(
        f"recipe int4-gptq-cpu is predicted to need {preflight.gib(peak)} of RAM at peak; "
    )
    fits = cost.fitting_recipes(recipe, 7_000_000_000, available, config, stored)
    assert "int4-cpu" in fits
    assert (
        exc.value.hint
        == f"predicted to fit: {', '.join(fits)} (--recipe NAME); or close other programs"
    )


def test_calibration_and_device_are_checked_before_anything_else(tmp_path: Path) -> None:
    model = local_model(tmp_path)
    with pytest.raises(UsageProblem, match="needs calibration data"):
        compile_model(CompileRequest(source=str(model), recipe="int4-gptq-cpu", dry_run=True))
    cuda = get_recipe("int4-cuda")
    request = CompileRequest(
        source=str(model), recipe="int4-cuda", model_id=f"m-{cuda.variant}:1", dry_run=True
    )
    assert compile_model(request).plan.recipe == "int4-cuda"  # a dry run shows the plan
    if not preflight.has_cuda_gpu():
        with pytest.raises(PreflightError, match="has no NVIDIA GPU"):
            compile_model(
                CompileRequest(
                    source=str(model), recipe="int4-cuda", model_id=f"m-{cuda.variant}:1"
                ),
                olive=FakeOlive(),
            )


def test_repository_code_and_architecture_are_refused(tmp_path: Path) -> None:
    model = local_model(tmp_path, config={"model_type": "qwen2"})
    with pytest.raises(PreflightError, match="names no architectures"):
        plan_for(str(model))
    custom = local_model(tmp_path, "custom")
    (custom / "modeling_x.py").write_text("")
    with pytest.raises(PreflightError) as exc:
        plan_for(str(custom))
    assert refusal(exc) == (
        "the model ships its own code (modeling_x.py); it would run during the compile",
        "read that code, then add --trust-remote-code",
    )
    plan = plan_for(str(custom), trust_remote_code=True)
    assert plan.olive_config["input_model"]["load_kwargs"]["trust_remote_code"] is True


def test_a_prequantized_checkpoint_is_noted_or_refused_by_recipe(tmp_path: Path) -> None:
    config = {**QWEN2, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    model = local_model(tmp_path, config=config)
    quant = get_recipe("int4-prequantized-cpu")
    plan = plan_for(str(model), recipe="int4-prequantized-cpu", model_id=f"m-{quant.variant}:1")
    from curator.compile.prequantized import prequantized

    found = prequantized(config)
    assert found is not None and plan.notes == (found.note(),)
    with pytest.raises(PreflightError):
        plan_for(str(model), recipe="fp32-cpu")


def test_a_chat_model_without_a_template_needs_one_of_the_options(tmp_path: Path) -> None:
    model = local_model(tmp_path, template=False)
    with pytest.raises(PreflightError, match="has no chat template"):
        plan_for(str(model))
    completion = plan_for(str(model), completion_only=True)
    assert completion.chat_template == chat_templates.completion_template()
    assert completion.completion_only is True
    assert completion.notes == (
        "completion-only: the prompt is passed to the model unchanged (no chat format); it is "
        "registered for text-generation and smoke-tested with continuations",
    )
    chatml = plan_for(str(model), chat_template="chatml")
    assert chatml.chat_template == chat_templates.resolve_chat_template("chatml")
    assert chatml.notes == (
        "chat template: chatml (shipped) replaces the model's own, if any",
    )  # no tokenizer.json to compare the markers with
    with pytest.raises(UsageProblem) as exc:
        plan_for(str(model), completion_only=True, chat_template="chatml")
    assert refusal(exc) == (
        "--completion-only and --chat-template exclude each other",
        "a base model: --completion-only; a chat model: --chat-template NAME",
    )


def test_a_template_whose_markers_the_tokenizer_lacks_is_noted(tmp_path: Path) -> None:
    model = local_model(tmp_path)
    tokenizer: dict[str, Any] = {"added_tokens": [], "model": {"vocab": {"a": 0}}}
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert (
        plan_for(str(model), chat_template="chatml")
        .notes[1]
        .startswith("the tokenizer has no token for <|im_end|>, <|im_start|>: ")
    )
    tokenizer["added_tokens"].append({"content": "<|im_start|>"})
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    plan = plan_for(str(model), chat_template="chatml")
    assert plan.notes == (
        "chat template: chatml (shipped) replaces the model's own, if any",
        "the tokenizer has no token for <|im_end|>: the model reads them as plain text (choose "
        "the template the model was trained with)",
    )
    tokenizer["added_tokens"].append({"content": "<|im_end|>"})
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert len(plan_for(str(model), chat_template="chatml").notes) == 1


def gguf_file(path: Path, *, template: bool, license_id: str | None = None) -> Path:
    doc = Gguf()
    if template:
        doc.metadata.append(kv("tokenizer.chat_template", STRING, TEMPLATE))
    if license_id:
        doc.metadata.append(kv("general.license", STRING, license_id))
    doc.metadata.append(kv("general.file_type", UINT32, 0))
    path.write_bytes(doc.bytes())
    return path


def test_the_plan_of_a_gguf_file_reads_its_header(tmp_path: Path) -> None:
    gguf = gguf_file(tmp_path / "Tiny.Q8_0.gguf", template=True, license_id="Apache-2.0")
    plan = plan_for(str(gguf), dry_run=True)
    assert (plan.model_id, plan.source_repo) == ("tiny-generic-cpu:1", "local:tiny")
    assert (plan.parameters, plan.context_length, plan.architecture) == (8 * 4 + 8, 128, None)
    assert plan.unknown_because == (
        ("architecture", "the transformers class is read when dequantizing"),
    )
    assert plan.notes == (already_quantized_note("Tiny.Q8_0.gguf"),)
    assert plan.source_gguf_file == "Tiny.Q8_0.gguf" and plan.source_dir is None
    assert plan.source_license == "apache-2.0"
    assert plan.olive_config["input_model"]["model_path"] == "local:tiny"
    bare = gguf_file(tmp_path / "bare.gguf", template=False)
    with pytest.raises(PreflightError, match="has no chat template"):
        plan_for(str(bare), dry_run=True)
    assert plan_for(str(bare), dry_run=True, completion_only=True).source_license is None


def test_a_hub_dry_run_takes_its_sizes_from_the_hub(hub: FakeHub) -> None:
    plan = plan_for(TINY, dry_run=True)
    assert plan.architecture == "Qwen2ForCausalLM"
    assert plan.parameters is not None and plan.parameters > 0
    assert plan.unknown_because == ()
    assert plan.source_dir is None and plan.source_license is None
    org, _ = TINY.split("/")
    assert plan.publisher == org
    real = plan_for(TINY)  # a real run reads the sizes from the download, not from the Hub
    assert (real.architecture, real.parameters, real.unknown_because) == (None, None, ())


def test_a_hub_dry_run_offline_says_why_the_sizes_are_unknown() -> None:
    plan = plan_for("org/never-seen", dry_run=True)  # HF_HUB_OFFLINE=1 in every test
    why = f"Hub unreachable: {offline_error().message}"
    assert plan.unknown_because == (("architecture", why), ("parameters", why))
    assert (plan.architecture, plan.parameters) == (None, None)


def adapter_dir(root: Path, base: str | None) -> Path:
    adapter = root / "My-LoRA"
    adapter.mkdir(parents=True)
    config: dict[str, Any] = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}
    if base:
        config["base_model_name_or_path"] = base
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    return adapter


def test_a_dry_run_with_an_adapter_plans_the_merge(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    adapter = adapter_dir(tmp_path, "Org/Base")
    request = CompileRequest(
        source=str(model), recipe="int4-cpu", dry_run=True, adapter=str(adapter)
    )
    result = compile_model(request)
    plan = result.plan
    assert result.dry_run is True and result.path is None
    assert (plan.model_id, plan.publisher) == ("my-lora-generic-cpu:1", "local")
    assert plan.target == cache.absolute() / "local" / "my-lora-generic-cpu-1"
    assert plan.source_adapter is not None and plan.source_adapter.repo == "local:my-lora"
    assert plan.source_dir == model  # nothing merged in a dry run
    assert plan.source_license == "mit"  # the base's card
    assert plan.notes == (
        plan.source_adapter.note("local:m"),
        "the adapter names Org/Base as its base; merging into local:m (the merge checks every "
        "tensor's shape)",
        SEPARATE_ADAPTER_BLOCKED,
    )
    same = adapter_dir(tmp_path / "b", "local:m")
    request = CompileRequest(source=str(model), recipe="int4-cpu", dry_run=True, adapter=str(same))
    assert compile_model(request).plan.notes[1:] == (SEPARATE_ADAPTER_BLOCKED,)


def test_a_hub_base_with_an_adapter_in_a_dry_run(tmp_path: Path) -> None:
    adapter = adapter_dir(tmp_path, None)
    request = CompileRequest(
        source="Org/Base", recipe="int4-cpu", dry_run=True, adapter=str(adapter)
    )
    plan = compile_model(request).plan
    assert (plan.model_id, plan.publisher, plan.source_repo) == (
        "my-lora-generic-cpu:1",
        "local",
        "Org/Base",
    )
    assert plan.notes[-1] == SEPARATE_ADAPTER_BLOCKED and len(plan.notes) == 2
    plain = compile_model(CompileRequest(source="Org/Base", recipe="int4-cpu", dry_run=True))
    assert (plain.plan.model_id, plain.plan.publisher) == ("base-generic-cpu:1", "Org")


# --- recipes ------------------------------------------------------------------------------------


def test_a_recipe_by_name_or_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_recipe("int4-cpu") == get_recipe("int4-cpu")
    mine = tmp_path / "own" / "fp32-cpu.json"
    mine.parent.mkdir()
    shutil.copyfile(Path(__file__).parent.parent / "recipes" / "fp32-cpu.json", mine)
    from_file = resolve_recipe(str(mine))
    assert from_file.sha256 == get_recipe("fp32-cpu").sha256
    assert from_file.path == mine
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_recipe("~/own/fp32-cpu.json").path == mine
    with pytest.raises(CuratorError):
        resolve_recipe(str(tmp_path / "missing.json"))  # not a file: looked up as a name
    (tmp_path / "fp32-cpu").write_text("not json")  # a file not ending in .json: a name
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("fp32-cpu") == get_recipe("fp32-cpu")


# --- compile_model around Olive -----------------------------------------------------------------


GENAI = {
    "model": {
        "context_length": 2048,
        "decoder": {"filename": "model.onnx", "session_options": {"log_id": "olive"}},
    }
}


class FakeOlive:
    """Stands in for run_olive: reads the workflow config compile wrote and writes, where that
    config says, what Olive's ModelBuilder writes (or nothing, for a failed pass)."""

    def __init__(self, *, writes: bool = True, during: Callable[[], None] | None = None) -> None:
        self.writes = writes
        self.during = during
        self.config: dict[str, Any] = {}
        self.owner: dict[str, Any] = {}
        self.offline: bool | None = None
        self.progress: Callable[[str], None] | None = None

    def __call__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        offline: bool,
        progress: Callable[[str], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> OliveRun:
        self.offline = offline
        self.progress = progress
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        log_path.write_text("olive: starting\nolive: pass builder failed\n")
        if on_start is not None:
            on_start(os.getpid())
        self.owner = json.loads((config_path.parent / "owner.json").read_text())
        out = Path(self.config["output_dir"])
        if self.writes:
            out.mkdir(parents=True)
            (out / "genai_config.json").write_text(json.dumps(GENAI))
            (out / "model.onnx").write_bytes(b"onnx graph")
            (out / "model.onnx.data").write_bytes(b"\1" * 1000)
            (out / "tokenizer.json").write_text("{}")
            (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))
            (out / "footprint.json").write_text("{}")  # Olive's bookkeeping
            (out / "model_config.json").write_text("{}")
        if self.during is not None:
            self.during()
        return OliveRun(0 if self.writes else 1, 2.5, 123_000_000, log_path)


MODEL_FILES = [
    "compile.log",
    "curator-manifest.json",
    "genai_config.json",
    "inference_model.json",
    "model.onnx",
    "model.onnx.data",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_compile_places_the_model_with_its_manifest(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    stale = cache / WORK_ROOT_NAME / "old-compile-12345678"
    stale.mkdir(parents=True)
    os.utime(stale, (1, 1))  # no owner, long ago: an interrupted compile's
    said: list[str] = []
    olive = FakeOlive()
    request = CompileRequest(source=str(model), recipe="int4-cpu")
    result = compile_model(request, progress=said.append, olive=olive)

    target = cache.absolute() / "local" / "m-generic-cpu-1"
    assert said == [
        "removed a work directory left by an interrupted compile: old-compile-12345678",
        "olive: int4-cpu (builder)",
    ]
    assert olive.offline is True and olive.owner["pid"] == os.getpid()
    assert olive.progress == said.append  # Olive's own progress reaches the same person
    assert olive.owner["child_pid"] == os.getpid()
    assert olive.config["input_model"]["model_path"] == str(model)
    assert Path(olive.config["output_dir"]).parent.parent == cache.absolute() / WORK_ROOT_NAME
    assert Path(olive.config["output_dir"]).parent.name.startswith("m-generic-cpu-1-")
    assert not (cache / WORK_ROOT_NAME).exists()  # the work directory and its root are gone

    assert result.dry_run is False and result.path == target
    assert result.manifest_path == target / "curator-manifest.json"
    assert result.log_path == target / "compile.log"
    assert result.peak_rss_bytes == 123_000_000 and 0 < result.wall_seconds < 120
    assert sorted(p.name for p in target.iterdir()) == MODEL_FILES
    assert (target / "compile.log").read_text().startswith("olive: starting")
    genai = json.loads((target / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["session_options"] == {
        "log_id": "olive",
        "intra_op_num_threads": 0,
    }
    assert json.loads((target / "inference_model.json").read_text())["Name"] == "m-generic-cpu"
    manifest = json.loads((target / "curator-manifest.json").read_text())
    assert manifest["id"] == "m-generic-cpu:1" and manifest["contextLength"] == 2048
    assert manifest["predictedRunBytes"] == predict_run_bytes(get_recipe("int4-cpu"), 1_000_000)
    assert manifest["compile"]["oliveSeconds"] == 2.5
    assert manifest["compile"]["peakRssBytes"] == 123_000_000
    assert manifest["compile"]["wallSeconds"] == round(result.wall_seconds, 3)
    assert (
        manifest["build"]["compiledAt"].endswith("Z") and len(manifest["build"]["compiledAt"]) == 20
    )
    listed = [a["path"] for a in manifest["build"]["artifacts"]]
    assert listed == [a.path for a in result.artifacts]
    assert listed == [n for n in MODEL_FILES if n not in ("compile.log", "curator-manifest.json")]


def test_compile_installs_the_chosen_template(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path, template=False, parameters=0)
    request = CompileRequest(source=str(model), recipe="int4-rtn-cpu", chat_template="chatml")
    said: list[str] = []
    result = compile_model(request, progress=said.append, olive=FakeOlive())
    assert result.path is not None
    assert said == ["olive: int4-rtn-cpu (rtn -> builder)"]
    chatml = chat_templates.resolve_chat_template("chatml").text
    assert (result.path / "chat_template.jinja").read_text() == chatml
    assert (
        json.loads((result.path / "tokenizer_config.json").read_text())["chat_template"] == chatml
    )
    manifest = json.loads((result.path / "curator-manifest.json").read_text())
    assert "predictedRunBytes" not in manifest  # no parameter count, no prediction


def test_a_failed_olive_run_keeps_its_log_and_leaves_nothing(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = local_model(tmp_path)
    monkeypatch.setenv("CURATOR_HOME", str(tmp_path / "new" / "home"))  # made when needed
    request = CompileRequest(source=str(model), recipe="int4-cpu", chat_template="chatml")
    with pytest.raises(CompileError) as exc:
        compile_model(request, olive=FakeOlive(writes=False))
    assert exc.value.message == (
        "Olive did not produce a usable model (exit code 1): Olive wrote no output directory "
        "(olive-output)\n--- last lines of compile.log ---\n"
        "olive: starting\nolive: pass builder failed"
    )
    (kept,) = (tmp_path / "new" / "home" / "logs").iterdir()
    assert exc.value.hint == f"full log: {kept}"
    assert kept.name.startswith("compile-m-generic-cpu-1-") and kept.name.endswith("Z.log")
    assert len(kept.name) == len("compile-m-generic-cpu-1-20261206T101500Z.log")
    assert kept.read_text() == "olive: starting\nolive: pass builder failed\n"
    assert not (cache / WORK_ROOT_NAME).exists() and not (cache / "local").exists()
    kept.unlink()
    with pytest.raises(CompileError) as again:  # the logs directory exists now
        compile_model(request, olive=FakeOlive(writes=False))
    assert again.value.hint is not None and again.value.hint.startswith("full log: ")


def test_a_failed_run_whose_log_cannot_be_kept_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = local_model(tmp_path)
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("CURATOR_HOME", str(home))
    with pytest.raises(CompileError) as exc:
        compile_model(
            CompileRequest(source=str(model), recipe="int4-cpu"), olive=FakeOlive(writes=False)
        )
    assert exc.value.hint == "rerun to see the log"


def test_a_target_that_appears_while_compiling(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    target = cache.absolute() / "local" / "m-generic-cpu-1"

    def racing_compile() -> None:
        target.mkdir(parents=True)
        (target / "theirs").write_text("x")

    with pytest.raises(CompileError) as exc:
        compile_model(
            CompileRequest(source=str(model), recipe="int4-cpu"),
            olive=FakeOlive(during=racing_compile),
        )
    assert refusal(exc) == (
        f"{target} appeared while compiling (another compile of the same id?)",
        "rerun with --force to replace it, or choose another --id",
    )
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert not (cache / WORK_ROOT_NAME).exists()


def test_a_full_disk_at_placement_says_so_and_leaves_nothing(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step, moving the model into the cache, fails for the disk's reason (here ENOSPC
    from the rename), not as a racing compile."""
    from curator.compile import placement
    from curator.errors import StorageError

    model = local_model(tmp_path)
    target = cache.absolute() / "local" / "m-generic-cpu-1"

    rename = os.replace

    def full(src: Path, dst: Path) -> None:  # every other rename of the compile goes through
        if Path(dst) == target:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        rename(src, dst)

    monkeypatch.setattr(placement.os, "replace", full)
    with pytest.raises(StorageError) as exc:
        compile_model(CompileRequest(source=str(model), recipe="int4-cpu"), olive=FakeOlive())
    assert refusal(exc)[0] == f"No space left on device: {target}"
    assert str(refusal(exc)[1]).startswith("free disk space")
    monkeypatch.undo()
    assert not target.exists() and not (cache / WORK_ROOT_NAME).exists()


def test_force_replaces_an_earlier_build(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    target = cache.absolute() / "local" / "m-generic-cpu-1"
    target.mkdir(parents=True)
    (target / "old").write_text("x")
    result = compile_model(
        CompileRequest(source=str(model), recipe="int4-cpu", force=True), olive=FakeOlive()
    )
    assert result.path == target and sorted(p.name for p in target.iterdir()) == MODEL_FILES


def test_a_dry_run_runs_nothing(tmp_path: Path, cache: Path) -> None:
    model = local_model(tmp_path)
    olive = FakeOlive()
    result = compile_model(
        CompileRequest(source=str(model), recipe="int4-cpu", dry_run=True), olive=olive
    )
    assert result.dry_run is True and result.plan.model_id == "m-generic-cpu:1"
    assert olive.config == {} and list(cache.iterdir()) == []


def test_a_hub_source_is_refused_before_its_download(hub: FakeHub, cache: Path) -> None:
    org, name = TINY.split("/")
    target = cache.absolute() / org / f"{name.lower()}-generic-cpu-1"
    target.mkdir(parents=True)
    hub.requests.clear()
    with pytest.raises(PreflightError, match="already exists"):
        compile_model(CompileRequest(source=TINY, recipe="int4-cpu"), olive=FakeOlive())
    assert hub.seen("GET", "/resolve/") == []  # nothing downloaded


def test_a_hub_source_is_downloaded_then_compiled(hub: FakeHub, cache: Path) -> None:
    said: list[str] = []
    olive = FakeOlive()
    result = compile_model(
        CompileRequest(source=TINY, recipe="int4-cpu"), progress=said.append, olive=olive
    )
    assert said[0] == f"downloading {TINY}"
    assert said[-1] == "olive: int4-cpu (builder)"
    assert result.plan.source_revision == hub.repos[TINY].sha
    assert result.plan.source_dir is not None
    assert olive.config["input_model"]["model_path"] == str(result.plan.source_dir)
    assert result.path is not None and (result.path / "curator-manifest.json").is_file()


def test_a_hub_adapter_names_the_model_after_its_repo(
    hub: FakeHub, tmp_path: Path, cache: Path
) -> None:
    from tests.fakehub.repo import FakeRepo

    config = {"peft_type": "LORA", "r": 4, "base_model_name_or_path": "local:m"}
    hub.repos["team/My_LoRA"] = FakeRepo(
        repo_id="team/My_LoRA",
        files={
            "adapter_config.json": json.dumps(config).encode(),
            "adapter_model.safetensors": struct.pack("<Q", 2) + b"{}",
        },
    )
    try:
        model = local_model(tmp_path)
        request = CompileRequest(
            source=str(model), recipe="int4-cpu", dry_run=True, adapter="team/My_LoRA"
        )
        plan = compile_model(request).plan
    finally:
        del hub.repos["team/My_LoRA"]
    assert (plan.model_id, plan.publisher) == ("my_lora-generic-cpu:1", "team")
    assert plan.target == cache.absolute() / "team" / "my_lora-generic-cpu-1"
    assert plan.source_adapter is not None and plan.source_adapter.repo == "team/My_LoRA"


def test_calibration_data_is_passed_to_olive_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = local_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal.jsonl").write_text('{"text": "hello"}\n')
    plan = plan_for(str(model), recipe="int4-gptq-cpu", calibration=Path("cal.jsonl"))
    rendered = json.dumps(plan.olive_config)
    assert json.dumps(str(tmp_path / "cal.jsonl")) in rendered
    assert '"cal.jsonl"' not in rendered


def test_a_gguf_source_is_dequantized_then_compiled(
    smollm2_gguf: Path, use_dequantized_smollm2: Path, cache: Path
) -> None:
    """The real SmolLM2 GGUF (its dequantization cached): the progress names each step and the
    plan says the source was already quantized."""
    said: list[str] = []
    olive = FakeOlive()
    result = compile_model(
        CompileRequest(source=str(smollm2_gguf), recipe="int4-cpu"),
        progress=said.append,
        olive=olive,
    )
    plan = result.plan
    assert plan.source_gguf is not None and plan.source_dir is not None
    assert plan.source_dir.parent == use_dequantized_smollm2
    assert plan.notes == (plan.source_gguf.note(),)
    assert said == [
        f"dequantizing {smollm2_gguf.name} to fp32 (once per file) ...",
        f"note: {plan.source_gguf.note()}",
        "olive: int4-cpu (builder)",
    ]
    assert olive.config["input_model"]["model_path"] == str(plan.source_dir)
    assert result.path == cache.absolute() / "local" / "smollm2-135m-instruct-generic-cpu-1"
    manifest = json.loads((result.path / "curator-manifest.json").read_text())
    assert manifest["gguf"] == plan.source_gguf.manifest_record()


def test_a_hub_repo_without_sizes_says_why_in_a_dry_run(hub: FakeHub) -> None:
    from tests.fakehub.repo import FakeRepo

    hub.repos["org/bare"] = FakeRepo(repo_id="org/bare", files={"README.md": b"# bare\n"})
    try:
        plan = plan_for("org/bare", dry_run=True)
    finally:
        del hub.repos["org/bare"]
    assert (plan.architecture, plan.parameters) == (None, None)
    assert plan.unknown_because == (
        ("architecture", "the Hub's model info does not name it"),
        ("parameters", "the Hub lists no safetensors parameter count"),
    )


def test_compile_into_another_cache_directory(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = local_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    request = CompileRequest(source=str(model), recipe="int4-cpu", cache_dir=Path("team-cache"))
    result = compile_model(request, olive=FakeOlive())
    target = tmp_path / "team-cache" / "local" / "m-generic-cpu-1"
    assert result.path == target and result.plan.target == target
    assert sorted(p.name for p in target.iterdir()) == MODEL_FILES
    assert list(cache.iterdir()) == []  # $FOUNDRY_CACHE_DIR is left alone
