"""Runtime settings curator writes into a compiled model's genai_config.json.

The model builder writes no ``intra_op_num_threads``; onnxruntime-genai then decodes at about half
speed on a 2-core machine (80 vs 156-179 tok/s for SmolLM2 int4, Foundry Local and the plain loop
alike). ``0`` is onnxruntime's own default, "all cores": Foundry Local and ``curator serve`` then
use the machine's cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.jsonio import write_json_atomic

GENAI_CONFIG_NAME = "genai_config.json"
THREADS_KEY = "intra_op_num_threads"
ALL_CORES = 0


def _session_options(config: Any) -> dict[str, Any] | None:
    try:
        decoder = config["model"]["decoder"]
    except (KeyError, TypeError):
        return None
    if not isinstance(decoder, dict):
        return None
    options = decoder.setdefault("session_options", {})
    return options if isinstance(options, dict) else None


def use_all_cores(model_dir: Path) -> int | None:
    """Set ``session_options.intra_op_num_threads`` to 0 (all cores) unless the recipe set one.

    Returns the setting the model now runs with (None when genai_config.json has no decoder).
    """
    path = model_dir / GENAI_CONFIG_NAME
    config = json.loads(path.read_text(encoding="utf-8"))
    options = _session_options(config)
    if options is None:
        return None
    if THREADS_KEY not in options:
        options[THREADS_KEY] = ALL_CORES
        write_json_atomic(path, config)
    value = options[THREADS_KEY]
    return value if isinstance(value, int) else None


def session_threads(model_dir: Path) -> int | None:
    """The ``intra_op_num_threads`` a compiled model asks for (None: not set, or unreadable)."""
    try:
        config = json.loads((model_dir / GENAI_CONFIG_NAME).read_text(encoding="utf-8"))
        value = config["model"]["decoder"]["session_options"][THREADS_KEY]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
