"""Guards: curator.cli.compile, curator.compile, curator.compile.api, curator.compile.check,
  curator.compile.olive_child, curator.compile.preflight, curator.compile.types,
  curator.devmodels.cache, curator.progress, curator.recipes, curator.schemas

curator compile for real on small local models: int4-cpu and fp32-cpu output that onnxruntime-genai
runs, a second architecture (Llama), the manifest and the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curator.compile import cost
from curator.compile.cost import predict_compile_peak_bytes
from curator.compile.source import read_model_config
from curator.recipes import get_recipe
from curator.schemas import schema_problems
from tests.conftest import TEST_MODELS_ROOT, run_curator

# How far above the predicted peak a tiny model's compile may measure (see check_compiled_dir).
PEAK_ALLOWANCE = 1.3

# Run in a subprocess: onnxruntime_genai must not share a process with foundry_local_sdk.
GENERATE = """
import json, sys
import onnxruntime_genai as og
model = og.Model(sys.argv[1])
tokenizer = og.Tokenizer(model)
messages = json.dumps([{"role": "user", "content": "def add(a, b):"}])
prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
ids = tokenizer.encode(prompt)
params = og.GeneratorParams(model)
params.set_search_options(max_length=len(ids) + int(sys.argv[2]), do_sample=False)
generator = og.Generator(model, params)
generator.append_tokens(ids)
new = []
while not generator.is_done():
    generator.generate_next_token()
    new.append(int(generator.get_next_tokens()[0]))
print(json.dumps({"prompt": prompt, "prompt_tokens": len(ids), "new_tokens": new}))
"""


def generate(model_dir: Path, max_new: int = 8) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", GENERATE, str(model_dir), str(max_new)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def op_types(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Each op type in model.onnx with the attributes of its first node (weights not loaded)."""
    import onnx

    graph = onnx.load(str(model_dir / "model.onnx"), load_external_data=False).graph
    found: dict[str, dict[str, Any]] = {}
    for node in graph.node:
        found.setdefault(
            node.op_type,
            {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute},
        )
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_compiled_dir(model_dir: Path, recipe: str, model_id: str) -> dict[str, Any]:
    """The issue's output contract; returns the manifest."""
    for name in (
        "genai_config.json",
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "inference_model.json",
        "curator-manifest.json",
        "compile.log",
    ):
        assert (model_dir / name).is_file(), name
    assert not {"footprint.json", "run_history.txt"} & {p.name for p in model_dir.iterdir()}
    inference = json.loads((model_dir / "inference_model.json").read_text())
    assert inference["Name"] == model_id.split(":")[0]
    assert inference["PromptTemplate"]["prompt"] == (
        "<|im_start|>user\n{Content}<|im_end|>\n<|im_start|>assistant\n"
    )
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    assert manifest["id"] == model_id
    assert manifest["build"]["recipe"] == recipe
    recipe_file = Path(__file__).resolve().parent.parent / "recipes" / f"{recipe}.json"
    assert manifest["build"]["recipeSha256"] == sha256(recipe_file)
    tools = manifest["build"]["tools"]
    assert tools["olive-ai"] == "0.13.0" and tools["onnxruntime-genai"] == "0.14.1"
    listed = {a["path"]: a for a in manifest["build"]["artifacts"]}
    on_disk = {
        p.name
        for p in model_dir.iterdir()
        if p.name not in {"curator-manifest.json", "compile.log"}
    }
    assert set(listed) == on_disk
    for name, artifact in listed.items():
        assert artifact["sha256"] == sha256(model_dir / name)
        assert artifact["bytes"] == (model_dir / name).stat().st_size
    assert manifest["compile"]["wallSeconds"] > 0
    peak = manifest["compile"]["peakRssBytes"]
    assert peak > 50 * 2**20  # Python + torch at least
    parameters = manifest["source"]["parameters"]
    architecture = manifest["source"]["architecture"]
    # what the compile's preflight predicts: from the source's config.json, so from its shape (a
    # tiny model's tensors are each one task: no quantizer processes start, none are counted)
    config = read_model_config(Path(manifest["sourceDir"]))
    assert config["architectures"] == [architecture]
    predicted = cost.estimate(get_recipe(recipe), parameters, config)
    assert predicted.peak_bytes == predict_compile_peak_bytes(
        get_recipe(recipe), parameters, config=config
    )
    if not predicted.streamed:  # the builder's own path: a pessimistic per-parameter figure
        assert peak <= predicted.peak_bytes, (peak, predicted)
    else:
        # A streamed prediction is a central estimate, not an upper bound: a fixed base
        # (cost.BASE_BYTES, 490 MiB, fitted at 461-504 MiB on the ladder) plus the largest unit,
        # under 1 MiB for a tiny model, so here the peak is all base. Measured for these tiny
        # models: 473-504 MiB on the 2-core dev machine, 576 MiB (18% above the base) in a
        # fresh-clone run elsewhere; the base moves with the machine, hence the allowance. A peak
        # taken from the wrong process (curator's launcher alone) or a build holding 30% more
        # than the base still falls outside it.
        low, high = 0.75 * predicted.peak_bytes, PEAK_ALLOWANCE * predicted.peak_bytes
        assert low <= peak <= high, (peak, predicted)
    assert "Running pass builder" in (model_dir / "compile.log").read_text()
    # Without it onnxruntime-genai decodes at about half speed on 2 cores (issue 11): all cores.
    genai = json.loads((model_dir / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["session_options"]["intra_op_num_threads"] == 0
    return manifest


def test_int4_compile_output_is_complete_and_generates(
    compiled_tiny_int4: Path, tiny_model_dir: Path
) -> None:
    manifest = check_compiled_dir(compiled_tiny_int4, "int4-cpu", "tiny-qwen2-generic-cpu:1")
    assert manifest["source"]["repo"] == f"local:{tiny_model_dir.name}"
    assert manifest["source"]["architecture"] == "Qwen2ForCausalLM"
    assert manifest["precision"] == "int4"
    assert manifest["predictedRunBytes"] > manifest["source"]["parameters"]
    ops = op_types(compiled_tiny_int4)
    assert ops["MatMulNBits"]["bits"] in (4, 8)  # int4, with int8 where the recipe mixes them
    # the settings the recipe asks of the model builder are the ones the graph has
    passes = get_recipe("int4-cpu").passes
    builder = next(
        (p.config for p in passes if p.type in ("ModelBuilder", "CuratorModelBuilder")), {}
    )
    if "int4_block_size" in builder and "int4_algo_config" not in builder:
        assert ops["MatMulNBits"]["block_size"] == builder["int4_block_size"]
    if "int4_accuracy_level" in builder:
        assert ops["MatMulNBits"]["accuracy_level"] == builder["int4_accuracy_level"]
    embedding_int4 = (
        "Gather" in builder.get("int4_op_types_to_quantize", ())
        or builder.get("embedding_quant", {}).get("bits") == 4
        or any("Gather" in str(p.config.get("nodes_to_include", "")) for p in passes)
    )  # by the builder (the streaming one's embedding_quant), or by a pass after it
    assert ("GatherBlockQuantized" in ops) == embedding_int4  # recipes/README.md
    genai = json.loads((compiled_tiny_int4 / "genai_config.json").read_text())
    vocab = genai["model"]["vocab_size"]
    out = generate(compiled_tiny_int4)
    assert out["prompt"].endswith("<|im_start|>assistant\n")
    assert 1 <= len(out["new_tokens"]) <= 8
    assert all(0 <= t < vocab for t in out["new_tokens"])


def test_fp32_compile_generates_and_is_larger_than_int4(
    compiled_tiny_fp32: Path, compiled_tiny_int4: Path
) -> None:
    manifest = check_compiled_dir(compiled_tiny_fp32, "fp32-cpu", "tiny-qwen2-fp32-generic-cpu:1")
    assert manifest["precision"] == "fp32"
    assert "MatMulNBits" not in op_types(compiled_tiny_fp32)
    int4_data = (compiled_tiny_int4 / "model.onnx.data").stat().st_size
    # The fp32 embedding table is in both; the int4 MatMul weights are 1/8 their fp32 size.
    assert (compiled_tiny_fp32 / "model.onnx.data").stat().st_size > 1.5 * int4_data
    assert len(generate(compiled_tiny_fp32)["new_tokens"]) >= 1


def test_manifest_fields_fit_a_registry_entry(compiled_tiny_int4: Path) -> None:
    manifest = json.loads((compiled_tiny_int4 / "curator-manifest.json").read_text())
    entry = {
        "id": manifest["id"],
        "alias": "tiny-qwen2",
        "displayName": "tiny qwen2",
        "variant": manifest["variant"],
        "task": "chat-completion",
        "license": "mit",
        "publisher": manifest["publisher"],
        "capabilities": ["chat"],
        "fileSizeMb": manifest["fileSizeMb"],
        "minRamGb": 1,
        "contextLength": manifest["contextLength"],
        "runtime": manifest["runtime"],
        "source": manifest["source"],
        "build": manifest["build"],
    }
    document = {"schemaVersion": 1, "policy": {"allowedLicenses": ["mit"]}, "models": [entry]}
    assert schema_problems(document, "models") == []


def test_cli_compile_refuses_then_replaces_an_existing_model(
    tiny_model_dir: Path, isolated_env: Path, install_compiled: Callable[..., Path]
) -> None:
    cache = isolated_env / "foundry-cache"
    target = install_compiled(model_id="cli-tiny-generic-cpu:2")  # an earlier compile's output
    (target / "stale-extra-file.txt").write_text("from the old directory")
    args = [
        "compile",
        str(tiny_model_dir),
        "--recipe",
        "int4-cpu",
        "--id",
        "cli-tiny-generic-cpu:2",
    ]
    again = run_curator(*args)
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert (target / "stale-extra-file.txt").is_file()
    done = run_curator(*args, "--force", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["path"] == str(target)
    assert result["model_id"] == "cli-tiny-generic-cpu:2"
    assert result["total_bytes"] == sum(a["bytes"] for a in result["artifacts"])
    check_compiled_dir(target, "int4-cpu", "cli-tiny-generic-cpu:2")  # no stale file either
    # Progress went to stderr: the pass and its time.
    assert "pass builder running" in done.stderr and "pass builder done in" in done.stderr
    # Nothing else in the cache: no work directory, no copy of the old model left behind.
    assert sorted(p.relative_to(cache).as_posix() for p in cache.iterdir()) == ["local"]
    assert [p.name for p in (cache / "local").iterdir()] == ["cli-tiny-generic-cpu-2"]


def test_llama_compiles_with_int4_and_generates(isolated_env: Path) -> None:
    from curator.compile import CompileRequest, compile_model
    from curator.devmodels.cache import cached_tiny_model

    llama = cached_tiny_model(TEST_MODELS_ROOT, architecture="llama", hidden_size=64, num_layers=2)
    messages: list[str] = []
    result = compile_model(
        CompileRequest(source=str(llama), recipe="int4-cpu", model_id="tiny-llama-generic-cpu:1"),
        progress=messages.append,
    )
    assert result.path == isolated_env / "foundry-cache" / "local" / "tiny-llama-generic-cpu-1"
    manifest = check_compiled_dir(result.path, "int4-cpu", "tiny-llama-generic-cpu:1")
    assert manifest["source"]["architecture"] == "LlamaForCausalLM"
    assert json.loads((result.path / "genai_config.json").read_text())["model"]["type"] == "llama"
    assert any(m.startswith("pass builder done in") for m in messages)
    assert result.peak_rss_bytes == manifest["compile"]["peakRssBytes"]
    assert len(generate(result.path)["new_tokens"]) >= 1


def test_dry_run_prints_the_plan_and_touches_nothing(
    tiny_model_dir: Path, isolated_env: Path
) -> None:
    cache = isolated_env / "foundry-cache"
    done = run_curator(
        "compile", str(tiny_model_dir), "--recipe", "int4-cuda", "--dry-run", "--json"
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["dry_run"] is True
    config = data["olive_config"]
    assert config["input_model"]["model_path"] == str(tiny_model_dir)
    assert config["systems"]["local_system"]["accelerators"][0]["execution_providers"] == [
        "CUDAExecutionProvider"
    ]
    assert config["passes"]["builder"]["precision"] == "int4"
    plan = data["plan"]
    assert plan["model_id"] == f"{tiny_model_dir.name}-cuda-gpu:1"
    assert plan["parameters"] > 100_000 and plan["architecture"] == "Qwen2ForCausalLM"
    assert plan["predicted_peak_bytes"] > plan["parameters"]
    human = run_curator("compile", str(tiny_model_dir), "--recipe", "int4-cpu", "--dry-run")
    assert human.returncode == 0 and 'ModelBuilder"' in human.stdout and "target:" in human.stdout
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("recipe", ["int4-cuda", "fp16-cuda"])
def test_gpu_recipe_without_gpu_stops_clearly(
    recipe: str, tiny_model_dir: Path, isolated_env: Path
) -> None:
    from curator.compile.preflight import has_cuda_gpu

    if has_cuda_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    done = run_curator("compile", str(tiny_model_dir), "--recipe", recipe)
    assert done.returncode == 1
    assert "no NVIDIA GPU" in done.stderr and "hint:" in done.stderr
    assert list((isolated_env / "foundry-cache").iterdir()) == []


def test_a_snapshot_in_the_hf_cache_keeps_its_hub_provenance(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    sha = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--SomeOrg--Tiny-Chat" / "snapshots" / sha
    shutil.copytree(tiny_model_dir, snapshot)
    done = run_curator("compile", str(snapshot), "--recipe", "int4-cpu", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert (plan["source_repo"], plan["source_revision"]) == ("SomeOrg/Tiny-Chat", sha)
    assert (plan["publisher"], plan["model_id"]) == ("SomeOrg", "tiny-chat-generic-cpu:1")
