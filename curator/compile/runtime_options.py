"""Runtime settings curator writes into a compiled model's genai_config.json.

The model builder writes no ``intra_op_num_threads``; onnxruntime-genai then decodes at about half
speed on a 2-core machine (80 vs 156-179 tok/s for SmolLM2 int4, Foundry Local and the plain loop
alike). ``0`` is onnxruntime's own default, "all cores": Foundry Local and ``curator serve`` then
use the machine's cores.

The context length: Foundry Local (SDK 2.2.1, onnxruntime-genai 0.18 with
``past_present_share_buffer``) allocates every request's KV cache for the model's whole
``model.context_length`` / ``search.max_length``, whatever the prompt and ``max_tokens``: 2.25 GiB
at Qwen2.5-3B's 32,768 tokens, against 2.43 GiB of compiled weights. ``curator compile
--context-length N`` writes N there (:func:`set_context_length`), and
:func:`curator.foundry.sizing.kv_cache_bytes` is what the runtime then allocates per request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.errors import UsageProblem
from curator.jsonio import write_json_atomic

GENAI_CONFIG_NAME = "genai_config.json"
THREADS_KEY = "intra_op_num_threads"
ALL_CORES = 0
# smoke's longest prompt and answer cap take up to about 400 tokens: a context below this fails it
MIN_CONTEXT_LENGTH = 512


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


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_context_length(asked: int, model_context: int | None) -> None:
    """``--context-length``: at least MIN_CONTEXT_LENGTH, at most what the model was trained for."""
    if asked < MIN_CONTEXT_LENGTH:
        raise UsageProblem(
            f"--context-length {asked} is too short: smoke's prompts and answers take up to "
            f"about 400 tokens",
            hint=f"give at least {MIN_CONTEXT_LENGTH}",
        )
    if model_context is not None and asked > model_context:
        raise UsageProblem(
            f"--context-length {asked} is longer than the model's own {model_context} tokens",
            hint=f"give at most {model_context} (or leave it out to keep {model_context})",
        )


def set_context_length(model_dir: Path, tokens: int) -> int | None:
    """Write ``tokens`` as genai_config.json's ``model.context_length`` and ``search.max_length``
    (the length the runtime sizes each request's KV cache for). Returns the context length the
    model had (None if genai_config.json said none)."""
    path = model_dir / GENAI_CONFIG_NAME
    config = json.loads(path.read_text(encoding="utf-8"))
    model = config.get("model")
    if not isinstance(model, dict):
        raise UsageProblem(f"{path} has no model section", hint="recompile the model")
    search = config.setdefault("search", {})
    if not isinstance(search, dict):
        raise UsageProblem(f"{path} has a malformed search section", hint="recompile the model")
    before = _positive_int(model.get("context_length")) or _positive_int(search.get("max_length"))
    model["context_length"] = tokens
    search["max_length"] = tokens
    write_json_atomic(path, config)
    return before
