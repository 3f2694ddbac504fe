"""Guards: curator.cli.imports, curator.cli.recipes, curator.compile.preflight, curator.errors,
  curator.recipes

Recipes as data: the shipped files, the schema, rendering Olive configs, memory predictions."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sysconfig
from pathlib import Path

import pytest

from curator import recipes as rec
from curator.compile.cost import predict_compile_peak_bytes
from curator.errors import RecipeError, UsageProblem
from tests.conftest import REPO_ROOT, run_curator

EXPECTED = {
    # name: (device, precision, variant, pass types, needs)
    "int4-cpu": ("cpu", "int4", "generic-cpu", ["CuratorModelBuilder"], []),
    "int4-cpu-accurate": ("cpu", "int4", "generic-cpu", ["CuratorModelBuilder"], []),
    "fp32-cpu": ("cpu", "fp32", "generic-cpu", ["CuratorModelBuilder"], []),
    "int4-rtn-cpu": ("cpu", "int4", "generic-cpu", ["Rtn", "ModelBuilder"], []),
    "int8-cpu": ("cpu", "int8", "generic-cpu", ["CuratorModelBuilder"], []),
    "int4-gptq-cpu": ("cpu", "int4", "generic-cpu", ["Gptq", "ModelBuilder"], ["calibration"]),
    "int4-cuda": ("gpu", "int4", "cuda-gpu", ["CuratorModelBuilder"], []),
    "fp16-cuda": ("gpu", "fp16", "cuda-gpu", ["CuratorModelBuilder"], []),
}


def test_shipped_recipes_load_with_the_promised_shape() -> None:
    loaded = {r.name: r for r in rec.load_recipes()}
    assert set(EXPECTED) <= set(loaded)
    for name, (device, precision, variant, passes, needs) in EXPECTED.items():
        recipe = loaded[name]
        assert (recipe.device, recipe.precision, recipe.variant) == (device, precision, variant)
        assert [p.type for p in recipe.passes] == passes
        assert list(recipe.needs) == needs
        assert recipe.sha256 == hashlib.sha256(recipe.path.read_bytes()).hexdigest()
        assert recipe.path == REPO_ROOT / "recipes" / f"{name}.json"
    (builder,) = (p.config for p in loaded["int4-cpu"].passes)
    # chosen on SmolLM2's real weights (recipes/README.md): k-quant with 8-bit sensitive tensors,
    # the embedding int4 RTN in the same streaming pass (was a second pass)
    assert builder == {**INT4_CPU_BUILDER, "embedding_quant": INT4_CPU_EMBEDDING_QUANT}
    accurate = loaded["int4-cpu-accurate"].passes[0].config
    assert accurate == {"precision": "int4", "int4_block_size": 32, "int4_accuracy_level": 4}


def test_unknown_recipe_is_a_usage_problem_listing_the_known_ones() -> None:
    with pytest.raises(UsageProblem) as caught:
        rec.get_recipe("int3-cpu")
    assert "int4-cpu" in caught.value.message and "fp16-cuda" in caught.value.message
    assert caught.value.exit_code == 2


def _copy_recipes(tmp_path: Path) -> Path:
    directory = tmp_path / "recipes"
    shutil.copytree(REPO_ROOT / "recipes", directory)
    return directory


def test_a_recipe_breaking_the_schema_is_refused_with_the_problem(tmp_path: Path) -> None:
    directory = _copy_recipes(tmp_path)
    data = json.loads((directory / "int4-cpu.json").read_text())
    data["device"] = "tpu"
    del data["ram_factor"]
    (directory / "int4-cpu.json").write_text(json.dumps(data))
    with pytest.raises(RecipeError) as caught:
        rec.load_recipes(directory)
    assert "device" in caught.value.message and "ram_factor" in caught.value.message


def test_a_recipe_whose_name_differs_from_its_file_is_refused(tmp_path: Path) -> None:
    directory = _copy_recipes(tmp_path)
    (directory / "int4-cpu.json").rename(directory / "other.json")
    with pytest.raises(RecipeError, match=re.escape("must be int4-cpu.json")):
        rec.load_recipes(directory)


def test_a_data_pass_without_calibration_need_is_refused(tmp_path: Path) -> None:
    directory = _copy_recipes(tmp_path)
    data = json.loads((directory / "int4-gptq-cpu.json").read_text())
    data["needs"] = []
    (directory / "int4-gptq-cpu.json").write_text(json.dumps(data))
    with pytest.raises(RecipeError, match="does not need calibration"):
        rec.load_recipes(directory)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"half_scales": "yes"}, "half_scales must be true or false, not 'yes'"),
        ({"half_scales": True, "stream": False}, "half_scales needs the streaming build"),
        ({"tensor_overrides": [{"match": "re:(", "bits": 8}]}, "tensor_overrides pattern"),
        ({"tensor_overrides": [{"match": "/lm_head/MatMul", "bits": 5}]}, "bits must be one of"),
    ],
)
def test_a_builder_plan_option_that_cannot_compile_is_refused_when_read(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    """Checked in this process when the recipe is read, not in the compile's Olive child (where
    pydantic would have taken "yes" for true)."""
    directory = _copy_recipes(tmp_path)
    data = json.loads((directory / "int4-cpu.json").read_text())
    data["passes"][0]["config"].update(options)
    (directory / "int4-cpu.json").write_text(json.dumps(data))
    with pytest.raises(RecipeError, match=re.escape(message)) as caught:
        rec.load_recipes(directory)
    assert caught.value.message.startswith("recipe int4-cpu.json, pass builder: ")
    assert "\n" not in caught.value.message and caught.value.hint


def test_recipe_file_bytes_change_the_sha(tmp_path: Path) -> None:
    directory = _copy_recipes(tmp_path)
    before = rec.get_recipe("int4-cpu", directory).sha256
    path = directory / "int4-cpu.json"
    path.write_text(path.read_text() + "\n")
    other = tmp_path / "again"
    shutil.copytree(directory, other)
    assert rec.get_recipe("int4-cpu", other).sha256 != before


INT4_CPU_BUILDER = {
    "precision": "int4",
    "int4_block_size": 32,
    "int4_accuracy_level": 4,
    "int4_is_symmetric": False,
    "int4_algo_config": "k_quant_mixed",
}
INT4_CPU_EMBEDDING_QUANT = {"bits": 4, "block_size": 32, "symmetric": False}


def test_render_int4_config_places_everything_where_asked(tmp_path: Path) -> None:
    config = rec.render_olive_config(
        rec.get_recipe("int4-cpu"),
        model_path=tmp_path / "m",
        output_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    assert config["input_model"] == {"type": "HfModel", "model_path": str(tmp_path / "m")}
    assert config["output_dir"] == str(tmp_path / "o")
    assert config["cache_dir"] == str(tmp_path / "c")
    assert config["passes"] == {
        "builder": {
            "type": "CuratorModelBuilder",
            **INT4_CPU_BUILDER,
            "embedding_quant": INT4_CPU_EMBEDDING_QUANT,
        },
    }
    accelerators = config["systems"]["local_system"]["accelerators"]
    assert accelerators == [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]
    assert "data_configs" not in config


def test_render_keeps_pass_order_and_does_not_share_state(tmp_path: Path) -> None:
    recipe = rec.get_recipe("int4-rtn-cpu")
    config = rec.render_olive_config(
        recipe, model_path=tmp_path, output_dir=tmp_path, cache_dir=tmp_path
    )
    assert list(config["passes"]) == ["rtn", "builder"]
    config["passes"]["builder"]["int4_block_size"] = 128
    assert recipe.passes[1].config["int4_block_size"] == 32


def test_gptq_needs_calibration_and_renders_a_local_json_dataset(tmp_path: Path) -> None:
    recipe = rec.get_recipe("int4-gptq-cpu")
    with pytest.raises(UsageProblem, match="calibration"):
        rec.render_olive_config(
            recipe, model_path=tmp_path, output_dir=tmp_path, cache_dir=tmp_path
        )
    calibration = tmp_path / "cal.jsonl"
    config = rec.render_olive_config(
        recipe,
        model_path=tmp_path,
        output_dir=tmp_path,
        cache_dir=tmp_path,
        calibration=calibration,
        trust_remote_code=True,
    )
    (data,) = config["data_configs"]
    assert data["load_dataset_config"]["data_files"] == str(calibration)
    assert data["load_dataset_config"]["data_name"] == "json"
    assert config["passes"]["gptq"]["data_config"] == data["name"]
    assert config["input_model"]["load_kwargs"] == {"trust_remote_code": True}


def test_supported_architectures_match_the_installed_model_builder() -> None:
    builder = Path(sysconfig.get_paths()["purelib"]) / "onnxruntime_genai/models/builder.py"
    names = set(re.findall(r'config\.architectures\[0\] == "(\w+)"', builder.read_text()))
    assert names, "the builder's dispatch changed shape"
    assert names - {"WhisperForConditionalGeneration"} - set(rec.BUILT_WRONG) == set(
        rec.SUPPORTED_ARCHITECTURES
    )
    assert set(rec.BUILT_WRONG) <= names  # refused by measurement, not unknown to the builder
    assert {
        "Qwen2ForCausalLM",
        "LlamaForCausalLM",
        "Phi3ForCausalLM",
    } <= rec.SUPPORTED_ARCHITECTURES
    assert "BertModel" not in rec.SUPPORTED_ARCHITECTURES


def test_memory_predictions_grow_with_size_and_match_the_field_notes() -> None:
    int4 = rec.get_recipe("int4-cpu")
    fp32 = rec.get_recipe("fp32-cpu")
    small, large = 100_000_000, 1_000_000_000
    assert predict_compile_peak_bytes(int4, small) < predict_compile_peak_bytes(int4, large)
    assert rec.predict_run_bytes(int4, large) < rec.predict_run_bytes(fp32, large)
    # Field notes: a 242M-parameter Qwen2 stored fp32 compiled to int4 at 2.7 GB peak RSS with the
    # builder's own path (int4-rtn-cpu still takes it); the streamed int4-cpu needs far less.
    legacy = predict_compile_peak_bytes(
        rec.get_recipe("int4-rtn-cpu"), 242_000_000, stored_bytes=4.0
    )
    assert 1.5e9 <= legacy <= 2.7e9 * 1.5
    assert predict_compile_peak_bytes(int4, 242_000_000) < 1.2e9
    # Its int4 file is 262 MB; running needs at least that.
    assert rec.predict_run_bytes(int4, 242_000_000) >= 262_000_000


def test_cli_recipes_list_and_show() -> None:
    listed = run_curator("recipes", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [r["name"] for r in json.loads(listed.stdout)]
    assert names == sorted(names) and set(EXPECTED) <= set(names)
    shown = run_curator("recipes", "show", "int4-rtn-cpu", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [p["type"] for p in data["passes"]] == ["Rtn", "ModelBuilder"]
    assert data["sha256"] == rec.get_recipe("int4-rtn-cpu").sha256
    table = run_curator("recipes", "list")
    assert table.returncode == 0 and "Gptq -> ModelBuilder" in table.stdout
    human = run_curator("recipes", "show", "int4-gptq-cpu")
    assert "calibration" in human.stdout and "Gptq" in human.stdout
    assert "8.3 bytes per fp32 parameter" in human.stdout  # GPTQ holds the model in torch


def test_recipes_show_states_the_predicted_compile_cost_of_a_1_5b_and_a_7b() -> None:
    """A streamed recipe's ram_factor is only its fallback: show what the cost model predicts
    (issue 20: a 7B under 12 GiB with int4-cpu), not ram_factor as the peak."""
    shown = run_curator("recipes", "show", "int4-cpu", "--json")
    assert shown.returncode == 0, shown.stderr
    predicted = json.loads(shown.stdout)["predicted_compile"]
    assert set(predicted) == {"Qwen2.5-1.5B", "Qwen2.5-7B"}
    assert all(p["streamed"] for p in predicted.values())
    assert predicted["Qwen2.5-1.5B"]["peak_bytes"] < predicted["Qwen2.5-7B"]["peak_bytes"]
    assert predicted["Qwen2.5-7B"]["peak_bytes"] < 12 * 2**30
    gptq = json.loads(run_curator("recipes", "show", "int4-gptq-cpu", "--json").stdout)
    assert not gptq["predicted_compile"]["Qwen2.5-7B"]["streamed"]
    assert gptq["predicted_compile"]["Qwen2.5-7B"]["peak_bytes"] > 24 * 2**30
    human = run_curator("recipes", "show", "int4-cpu").stdout
    assert "streamed, one layer or table at a time" in human
    peak_7b = predicted["Qwen2.5-7B"]["peak_bytes"] / 2**30
    assert f"Qwen2.5-7B: {peak_7b:.1f} GiB" in human
    assert "bytes per parameter at peak compile" not in human
    missing = run_curator("recipes", "show", "nope")
    assert missing.returncode == 2
    assert "unknown recipe 'nope'" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("architecture", ["OlmoForCausalLM", "SmolLM3ForCausalLM"])
def test_preflight_refuses_what_the_builder_gets_wrong_and_says_why(
    tmp_path: Path, architecture: str
) -> None:
    from curator.compile.preflight import check_architecture
    from curator.errors import PreflightError

    with pytest.raises(PreflightError, match=f"architecture {architecture} is refused: the model"):
        check_architecture({"architectures": [architecture]}, tmp_path)
    assert check_architecture({"architectures": ["LlamaForCausalLM"]}, tmp_path)
