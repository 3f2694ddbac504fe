"""Judge a compile by its output files, not by Olive's exit code."""

from __future__ import annotations

import json
from pathlib import Path

REQUIRED_FILES = ("genai_config.json", "tokenizer.json", "tokenizer_config.json")
# Olive's bookkeeping beside the model: not part of the model directory.
OLIVE_BOOKKEEPING = frozenset(
    {"footprint.json", "output_footprint.json", "run_history.txt", "model_config.json"}
)


def has_chat_template(model_dir: Path) -> bool:
    if (model_dir / "chat_template.jinja").is_file() or (
        model_dir / "chat_template.json"
    ).is_file():
        return True
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


def check_output(model_dir: Path) -> list[str]:
    """Every problem with a compiled model directory (empty when usable)."""
    if not model_dir.is_dir():
        return [f"Olive wrote no output directory ({model_dir.name})"]
    problems = [f"{name} is missing" for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    genai = model_dir / "genai_config.json"
    if genai.is_file():
        try:
            config = json.loads(genai.read_text(encoding="utf-8"))
            filename = config["model"]["decoder"]["filename"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"genai_config.json is unusable: {exc!r}")
        else:
            if not (model_dir / filename).is_file():
                problems.append(f"{filename} (named by genai_config.json) is missing")
            if not any(model_dir.glob("*.onnx")):
                problems.append("no .onnx model file")
    if not has_chat_template(model_dir):
        problems.append("no chat template (chat_template.jinja or tokenizer_config.json)")
    return problems
