"""Compile recipes as data: load and check ``recipes/*.json``, predict memory, render Olive configs."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from curator.errors import RecipeError, UsageProblem
from curator.jsonio import parse_json
from curator.quant.plan import PlanError, config_problem
from curator.resources import data_dir
from curator.schemas import schema_problems

# The HF ``architectures[0]`` names onnxruntime-genai 0.14.1's model builder turns into a text
# decoder (models/builder.py), less BUILT_WRONG. Whisper is left out: it is speech-to-text, not a
# chat model.
# Architectures the builder lists but gets wrong with transformers 5, measured on tiny models (fp32
# logits against transformers'): the reason is shown when preflight refuses one.
BUILT_WRONG: dict[str, str] = {
    "OlmoForCausalLM": "the model builder builds it wrong (RMSNorm where OLMo uses LayerNorm)",
    "GptOssForCausalLM": "the model builder builds it wrong (logits off by 0.3 on a tiny model)",
    "SmolLM3ForCausalLM": "the model builder fails on its no-RoPE layers",
}
SUPPORTED_ARCHITECTURES: frozenset[str] = frozenset(
    {
        "ChatGLMForConditionalGeneration",
        "ChatGLMModel",
        "Ernie4_5ForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "GraniteForCausalLM",
        "HunYuanDenseV1ForCausalLM",
        "InternLM2ForCausalLM",
        "Lfm2ForCausalLM",
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Mistral3ForConditionalGeneration",
        "NemotronForCausalLM",
        "PhiForCausalLM",
        "Phi3ForCausalLM",
        "PhiMoEForCausalLM",
        "Phi3SmallForCausalLM",
        "Phi3VForCausalLM",
        "Phi4MMForCausalLM",
        "Qwen2ForCausalLM",
        "VideoChatFlashQwenForCausalLM",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForConditionalGeneration",
        "Qwen3VLForConditionalGeneration",
    }
)

# Fixed memory on top of the per-parameter figures: Python + torch + Olive (+ datasets for GPTQ)
# for a compile (measured 0.49-0.64 GB peak RSS for a 0.2M-parameter model), onnxruntime-genai +
# KV cache headroom for a run. The recipes' ram_factor were measured on a 159M-parameter Qwen2
# (int4-cpu 8.9, fp32-cpu 4.3, int4-rtn-cpu 4.4, int8-cpu 21, int4-gptq-cpu 10.6 bytes/parameter
# above 0.6 GB); with them a 242M-parameter Qwen2 predicts 3.0 GB for int4-cpu, where the field
# notes measured 2.7 GB.
COMPILE_OVERHEAD_BYTES = 800_000_000
RUN_OVERHEAD_BYTES = 300_000_000

CALIBRATION_DATA_NAME = "calibration"
DEFAULT_RECIPE = "int4-cpu"  # compile's and onboard's recipe when none is given (issue 25)


@dataclass(frozen=True)
class RecipePass:
    """One Olive pass: its name in the workflow, its Olive type and its settings."""

    name: str
    type: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    device: str
    execution_provider: str
    precision: str
    variant: str
    passes: tuple[RecipePass, ...]
    needs: tuple[str, ...]
    ram_factor: float
    run_bytes_per_parameter: float
    sha256: str
    path: Path

    @property
    def needs_gpu(self) -> bool:
        return self.device == "gpu"

    @property
    def needs_calibration(self) -> bool:
        return "calibration" in self.needs


def recipes_dir() -> Path:
    return data_dir("recipes")


def load_recipe_file(path: Path) -> Recipe:
    """Parse and check one recipe file; RecipeError names every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}", hint="check the file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {path} is not UTF-8", hint="re-save it as UTF-8") from None
    data = parse_json(text, str(path), "recipe")
    problems = schema_problems(data, "recipe")
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise RecipeError(
            f"recipe {path.name} does not match schemas/recipe.schema.json: {listed}",
            hint="fix the recipe file",
        )
    if data["name"] != path.stem:
        raise RecipeError(
            f"recipe {path.name} is named {data['name']!r}; the file must be {data['name']}.json",
            hint="rename the file or the recipe",
        )
    names = [p["name"] for p in data["passes"]]
    if len(set(names)) != len(names):
        raise RecipeError(f"recipe {path.name} repeats a pass name", hint="name each pass once")
    for step in data["passes"]:
        if step["type"] != "CuratorModelBuilder":
            continue
        problem = config_problem(step["config"])
        if problem:
            raise RecipeError(
                f"recipe {path.name}, pass {step['name']}: {problem}",
                hint="see recipes/README.md for the CuratorModelBuilder options",
            )
        if step["config"].get("importance"):
            step["config"]["importance"] = str(_importance_file(path, step["config"]["importance"]))
    uses_data = any(p["config"].get("data_config") for p in data["passes"])
    if uses_data and "calibration" not in data["needs"]:
        raise RecipeError(
            f"recipe {path.name} has a pass that reads data_config but does not need calibration",
            hint='add "calibration" to "needs"',
        )
    return Recipe(
        name=data["name"],
        description=data["description"],
        device=data["device"],
        execution_provider=data["execution_provider"],
        precision=data["precision"],
        variant=data["variant"],
        passes=tuple(RecipePass(p["name"], p["type"], dict(p["config"])) for p in data["passes"]),
        needs=tuple(data["needs"]),
        ram_factor=float(data["ram_factor"]),
        run_bytes_per_parameter=float(data["run_bytes_per_parameter"]),
        sha256=hashlib.sha256(raw).hexdigest(),
        path=path,
    )


def _importance_file(recipe: Path, name: str) -> Path:
    """The importance file a recipe names, relative to the recipe's own directory and read
    (untrusted) before any compile starts; a one-line RecipeError when it is missing or
    malformed."""
    from curator.quant.importance import load_importance  # start-up: numpy

    found = (recipe.parent / name).resolve()
    if not found.is_file():
        raise RecipeError(
            f"recipe {recipe.name} names the importance file {name}, which is not beside it "
            f"({found})",
            hint="keep the recipe and its .importance.safetensors file in one directory",
        )
    try:
        load_importance(found)
    except PlanError as exc:
        raise RecipeError(
            f"recipe {recipe.name}: {exc}",
            hint="make the recipe again with `curator compile SOURCE --max-kl X`, or drop its "
            "importance option",
        ) from None
    return found


@cache
def _load_all(directory: Path) -> tuple[Recipe, ...]:
    recipes = (load_recipe_file(p) for p in directory.glob("*.json"))
    return tuple(sorted(recipes, key=lambda recipe: recipe.name))


def load_recipes(directory: Path | None = None) -> tuple[Recipe, ...]:
    """Every recipe in ``recipes/`` (or ``directory``), sorted by name."""
    return _load_all((directory or recipes_dir()).resolve())


def get_recipe(name: str, directory: Path | None = None) -> Recipe:
    """The recipe called ``name``; UsageProblem lists the known ones."""
    recipes = load_recipes(directory)
    for recipe in recipes:
        if recipe.name == name:
            return recipe
    known = ", ".join(r.name for r in recipes)
    raise UsageProblem(f"unknown recipe {name!r}; known: {known}", hint="curator recipes list")


def predict_run_bytes(recipe: Recipe, parameter_count: int) -> int:
    """Predicted memory to load and run the compiled model."""
    return int(RUN_OVERHEAD_BYTES + recipe.run_bytes_per_parameter * parameter_count)


def render_olive_config(
    recipe: Recipe,
    *,
    model_path: Path,
    output_dir: Path,
    cache_dir: Path,
    calibration: Path | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """The Olive workflow (``olive run --config``) that applies ``recipe`` to ``model_path``."""
    if recipe.needs_calibration and calibration is None:
        raise UsageProblem(
            f"recipe {recipe.name} needs calibration data",
            hint=f"curator compile SOURCE --recipe {recipe.name} --calibration FILE.jsonl",
        )
    input_model: dict[str, Any] = {"type": "HfModel", "model_path": str(model_path)}
    if trust_remote_code:
        input_model["load_kwargs"] = {"trust_remote_code": True}
    config: dict[str, Any] = {
        "input_model": input_model,
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [
                    {"device": recipe.device, "execution_providers": [recipe.execution_provider]}
                ],
            }
        },
        "passes": {p.name: {"type": p.type, **copy.deepcopy(p.config)} for p in recipe.passes},
        "host": "local_system",
        "target": "local_system",
        "cache_dir": str(cache_dir),
        "output_dir": str(output_dir),
        "log_severity_level": 1,
        "evaluate_input_model": False,
    }
    if recipe.needs_calibration and calibration is not None:
        config["data_configs"] = [
            {
                "name": CALIBRATION_DATA_NAME,
                "type": "HuggingfaceContainer",
                "load_dataset_config": {
                    "data_name": "json",
                    "data_files": str(calibration),
                    "split": "train",
                },
                "pre_process_data_config": {
                    "text_cols": ["text"],
                    "max_seq_len": 512,
                    "max_samples": 128,
                },
            }
        ]
    return config
