"""Guards: curator.compile.runtime_options, curator.foundry.sizing, curator.compile.api,
    curator.register.loadtest, curator.register.compiled

``curator compile --context-length N`` (issue 20, item 5): Foundry Local allocates each request's
KV cache for the model's whole context, so the option writes N into genai_config.json
(``model.context_length`` and ``search.max_length``); the plan's serving memory, the manifest and
register's minRamGb follow it. A Qwen2-shaped fixture with a stand-in Olive runner that writes a
real (tiny) ONNX graph, so the KV element type is read from the graph as it is for a real model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from curator.compile import runtime_options as ro
from curator.compile.api import compile_model, plan_compile
from curator.compile.olive_run import OliveRun
from curator.compile.source import resolve_source
from curator.compile.types import CompileRequest
from curator.errors import UsageProblem
from curator.foundry import sizing
from curator.recipes import get_recipe, predict_run_bytes
from curator.register.loadtest import LoadTest, min_ram_for, serving_floor_gb

LAYERS, HEADS, KV_HEADS, HIDDEN, OWN_CONTEXT = 4, 8, 2, 256, 8192
HEAD = HIDDEN // HEADS  # 32
# keys and values, every layer, fp32 on CPU: 2 * 4 * 2 * 32 * 4 = 2,048 bytes per token
PER_TOKEN = 2 * LAYERS * KV_HEADS * HEAD * 4
CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "max_position_embeddings": OWN_CONTEXT,
    "hidden_size": HIDDEN,
    "intermediate_size": 512,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "vocab_size": 1000,
}
PARAMETERS = 2_000_000
TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _checkpoint(root: Path) -> Path:
    model = root / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [PARAMETERS], "data_offsets": [0, 2 * PARAMETERS]}}
    ).encode()
    with (model / "model.safetensors").open("wb") as out:
        out.write(len(header).to_bytes(8, "little") + header)
        out.truncate(8 + len(header) + 2 * PARAMETERS)
    return model


def _graph(path: Path, elem_type: int) -> None:
    """A model.onnx whose past_key_values inputs have ``elem_type`` (what the builder writes)."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["batch", KV_HEADS, "past", HEAD]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
    inputs += [
        helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", elem_type, shape)
        for i in range(LAYERS)
        for kind in ("key", "value")
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.INT64, ["batch", "seq"])
    node = helper.make_node("Identity", ["input_ids"], ["logits"])
    onnx.save(helper.make_model(helper.make_graph([node], "g", inputs, [out])), str(path))


def _genai() -> dict[str, Any]:
    decoder = {
        "filename": "model.onnx",
        "head_size": HEAD,
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
    }
    return {
        "model": {"context_length": OWN_CONTEXT, "decoder": decoder, "type": "qwen2"},
        "search": {"max_length": OWN_CONTEXT, "past_present_share_buffer": True},
    }


class WritesAModel:
    """Stands in for run_olive: writes what the model builder writes where the config says."""

    def __init__(self, elem_type: int = 1) -> None:
        self.elem_type = elem_type

    def __call__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        offline: bool,
        progress: Callable[[str], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> OliveRun:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        log_path.write_text("olive: done\n")
        if on_start is not None:
            on_start(os.getpid())
        out = Path(config["output_dir"])
        out.mkdir(parents=True)
        (out / "genai_config.json").write_text(json.dumps(_genai()))
        _graph(out / "model.onnx", self.elem_type)
        (out / "model.onnx.data").write_bytes(b"\1" * 4096)
        (out / "tokenizer.json").write_text("{}")
        (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))
        return OliveRun(0, 1.0, 50_000_000, log_path)


def _plan(model: Path, **options: Any) -> Any:
    request = CompileRequest(source=str(model), recipe="int4-cpu", **options)
    found = resolve_source(str(model), None, download=False)
    return plan_compile(request, get_recipe("int4-cpu"), found)


def test_the_plan_states_the_kv_cache_at_the_context_the_model_will_run_with(
    tmp_path: Path,
) -> None:
    model = _checkpoint(tmp_path)
    run = predict_run_bytes(get_recipe("int4-cpu"), PARAMETERS)
    own = _plan(model)
    assert own.context_length == OWN_CONTEXT and own.serving_context_length == OWN_CONTEXT
    assert own.predicted_kv_bytes == PER_TOKEN * OWN_CONTEXT == 16 * 2**20
    assert own.predicted_serving_bytes == run + 16 * 2**20
    short = _plan(model, context_length=1024)
    assert short.context_length == OWN_CONTEXT  # the model's own, as before
    assert short.serving_context_length == 1024
    assert short.predicted_kv_bytes == PER_TOKEN * 1024 == 2 * 2**20
    assert short.predicted_serving_bytes == run + 2 * 2**20


@pytest.mark.parametrize(
    ("asked", "cause", "hint"),
    [
        (
            OWN_CONTEXT + 1,
            f"--context-length {OWN_CONTEXT + 1} is longer than the model's own {OWN_CONTEXT} tokens",
            f"give at most {OWN_CONTEXT} (or leave it out to keep {OWN_CONTEXT})",
        ),
        (
            ro.MIN_CONTEXT_LENGTH - 1,
            f"--context-length {ro.MIN_CONTEXT_LENGTH - 1} is too short: smoke's prompts and "
            "answers take up to about 400 tokens",
            f"give at least {ro.MIN_CONTEXT_LENGTH}",
        ),
    ],
)
def test_a_context_the_model_cannot_run_with_is_refused_before_olive(
    tmp_path: Path, asked: int, cause: str, hint: str
) -> None:
    model = _checkpoint(tmp_path)
    with pytest.raises(UsageProblem) as exc:
        _plan(model, context_length=asked)
    assert (exc.value.message, exc.value.hint) == (cause, hint)
    assert _plan(model, context_length=OWN_CONTEXT).serving_context_length == OWN_CONTEXT
    assert _plan(model, context_length=ro.MIN_CONTEXT_LENGTH).predicted_kv_bytes == (
        PER_TOKEN * ro.MIN_CONTEXT_LENGTH
    )


def test_the_compiled_model_runs_with_the_context_asked_and_the_manifest_records_it(
    tmp_path: Path,
) -> None:
    model = _checkpoint(tmp_path)
    request = CompileRequest(source=str(model), recipe="int4-cpu", context_length=2048)
    result = compile_model(request, olive=WritesAModel())
    assert result.path is not None
    genai = json.loads((result.path / "genai_config.json").read_text())
    assert genai["model"]["context_length"] == 2048
    assert genai["search"]["max_length"] == 2048
    assert genai["search"]["past_present_share_buffer"] is True  # the rest is kept
    assert genai["model"]["decoder"]["session_options"]["intra_op_num_threads"] == 0
    manifest = json.loads((result.path / "curator-manifest.json").read_text())
    assert manifest["contextLength"] == 2048
    assert manifest["modelContextLength"] == OWN_CONTEXT
    assert manifest["kvCacheBytes"] == PER_TOKEN * 2048 == 4 * 2**20
    run = predict_run_bytes(get_recipe("int4-cpu"), PARAMETERS)
    assert manifest["predictedRunBytes"] == run + 4 * 2**20
    listed = {a["path"]: a["sha256"] for a in manifest["build"]["artifacts"]}
    import hashlib

    digest = hashlib.sha256((result.path / "genai_config.json").read_bytes()).hexdigest()
    assert listed["genai_config.json"] == digest  # the manifest lists the config as written


def test_without_the_option_the_model_keeps_its_context(tmp_path: Path) -> None:
    model = _checkpoint(tmp_path)
    # fp16 past_key_values (a GPU build's): half the bytes per token, read from the graph
    result = compile_model(
        CompileRequest(source=str(model), recipe="int4-cpu"), olive=WritesAModel(elem_type=10)
    )
    assert result.path is not None
    genai = json.loads((result.path / "genai_config.json").read_text())
    assert (genai["model"]["context_length"], genai["search"]["max_length"]) == (8192, 8192)
    manifest = json.loads((result.path / "curator-manifest.json").read_text())
    assert manifest["contextLength"] == OWN_CONTEXT and "modelContextLength" not in manifest
    assert manifest["kvCacheBytes"] == PER_TOKEN // 2 * OWN_CONTEXT


def test_the_dry_run_shows_the_serving_memory(tmp_path: Path) -> None:
    from curator.cli.main import cli

    model = _checkpoint(tmp_path)
    args = ["compile", str(model), "--dry-run", "--context-length", "4096"]
    shown = CliRunner().invoke(cli, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    plan = json.loads(shown.output)["plan"]
    run = predict_run_bytes(get_recipe("int4-cpu"), PARAMETERS)
    assert plan["serving_context_length"] == 4096 and plan["context_length"] == OWN_CONTEXT
    assert plan["predicted_kv_bytes"] == 8 * 2**20
    assert plan["predicted_serving_bytes"] == run + 8 * 2**20
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert (
        f"  serving:      {(run + 8 * 2**20) / 2**20:,.0f} MiB predicted to run it, of which KV "
        "cache 8 MiB (allocated per request for 4,096 tokens; --context-length N changes it)"
    ) in text.output
    refused = CliRunner().invoke(cli, [*args[:3], "--context-length", "0"])
    assert refused.exit_code == 2 and "0 is not in the range x>=1" in refused.output


def test_set_context_length_writes_both_keys_and_says_what_was_there(tmp_path: Path) -> None:
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {}, "search": {}}))
    assert ro.set_context_length(tmp_path, 4096) is None
    assert ro.set_context_length(tmp_path, 1024) == 4096
    written = json.loads((tmp_path / "genai_config.json").read_text())
    assert written == {"model": {"context_length": 1024}, "search": {"max_length": 1024}}
    (tmp_path / "genai_config.json").write_text(json.dumps({"search": {"max_length": 77}}))
    with pytest.raises(UsageProblem, match="has no model section"):
        ro.set_context_length(tmp_path, 1024)


def test_kv_shapes_from_a_checkpoint_config() -> None:
    shape = sizing.source_kv_shape(CONFIG, "cpu")
    assert shape == sizing.KvShape(LAYERS, KV_HEADS, HEAD, 4) and shape.bytes_per_token == PER_TOKEN
    assert sizing.source_kv_shape(CONFIG, "gpu") == sizing.KvShape(LAYERS, KV_HEADS, HEAD, 2)
    # no num_key_value_heads: multi-head attention, a KV head per head; head_dim wins over
    # hidden / heads; a multimodal config's text_config is the language model's
    mha = {k: v for k, v in CONFIG.items() if k != "num_key_value_heads"} | {"head_dim": 48}
    assert sizing.source_kv_shape(mha, "cpu") == sizing.KvShape(LAYERS, HEADS, 48, 4)
    assert sizing.source_kv_shape({"text_config": CONFIG}, "cpu") == shape
    assert sizing.source_kv_shape({"num_hidden_layers": 2}, "cpu") is None
    assert sizing.kv_cache_bytes(shape, None) is None and sizing.kv_cache_bytes(None, 10) is None
    assert sizing.kv_cache_bytes(shape, 10) == 10 * PER_TOKEN


def _load_test(peak_mb: float) -> LoadTest:
    return LoadTest(
        load_ms=1.0, generate_ms=1.0, prompt_tokens=5, completion_tokens=8, peak_rss_mb=peak_mb
    )


def test_min_ram_covers_the_weights_and_the_kv_cache_of_the_whole_context() -> None:
    """A load test on a runtime that allocated the cache lazily would under-state what a long
    request needs: minRamGb is at least the files plus the KV cache at the model's context."""
    gib = 2**30
    floor = serving_floor_gb(files_bytes=int(2.43 * gib), kv_bytes=int(2.25 * gib))
    assert floor == 5.2  # 4.68 GiB + 0.5 GiB for the runtime's libraries and interpreter, up to 0.1
    assert serving_floor_gb(files_bytes=int(2.43 * gib), kv_bytes=int(0.28 * gib)) == 3.3
    small_peak = _load_test(1024.0)  # 1 GiB measured: 1.5 + 0.25 = 1.8 GiB
    assert min_ram_for(None, small_peak, None) == 1.8
    assert min_ram_for(None, small_peak, None, serving_floor=floor) == 5.2
    big_peak = _load_test(5.31 * 1024)
    assert min_ram_for(None, big_peak, None, serving_floor=floor) == 8.3  # 5.31 * 1.5 + 0.25
    assert min_ram_for(3.0, big_peak, None, serving_floor=floor) == 3.0  # --min-ram-gb wins
