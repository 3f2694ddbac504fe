"""What Foundry Local's runtime allocates to serve a model: its ONNX files and, per request, a KV
cache for the model's whole context.

Foundry Local (SDK 2.2.1, onnxruntime-genai 0.18 with ``past_present_share_buffer``) sizes each
request's KV cache for genai_config.json's ``model.context_length`` / ``search.max_length``,
whatever the prompt and ``max_tokens``: 2 x layers x KV heads x head size x 4 bytes (fp32 on CPU)
per token, 2.25 GiB at Qwen2.5-3B's 32,768 tokens. :func:`source_kv_shape` predicts the shape from a
checkpoint's config.json (before a compile), :func:`compiled_kv_shape` reads it from a compiled
model. Pure file reading: no SDK import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENAI_CONFIG_NAME = "genai_config.json"
# bytes per KV element: onnxruntime-genai keeps the CPU cache in fp32, a GPU model's in fp16
_KV_BYTES = {"cpu": 4}
_KV_BYTES_GPU = 2
# ONNX TensorProto element types a KV cache input can have: FLOAT, FLOAT16, BFLOAT16
_ONNX_BYTES = {1: 4, 10: 2, 16: 2}


@dataclass(frozen=True)
class KvShape:
    """The KV cache's shape: per token, keys and values of every layer."""

    layers: int
    kv_heads: int
    head_size: int
    element_bytes: int

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_size * self.element_bytes

    def bytes_for(self, tokens: int) -> int:
        return self.bytes_per_token * tokens


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def kv_element_bytes(device: str) -> int:
    """Bytes per KV element on a recipe's device (``cpu``: fp32; a GPU: fp16)."""
    return _KV_BYTES.get(device.lower(), _KV_BYTES_GPU)


def source_kv_shape(config: dict[str, Any], device: str) -> KvShape | None:
    """The KV shape a checkpoint's config.json implies (None when it lacks the sizes)."""
    text = config.get("text_config")  # multimodal configs nest the language model's
    source = text if isinstance(text, dict) else config
    layers = _positive_int(source.get("num_hidden_layers"))
    heads = _positive_int(source.get("num_attention_heads"))
    hidden = _positive_int(source.get("hidden_size"))
    kv_heads = _positive_int(source.get("num_key_value_heads")) or heads
    head_size = _positive_int(source.get("head_dim")) or (
        hidden // heads if hidden and heads else None
    )
    if not (layers and kv_heads and head_size):
        return None
    return KvShape(layers, kv_heads, head_size, kv_element_bytes(device))


def _kv_input_bytes(onnx_path: Path) -> int | None:
    """Bytes per element of the graph's ``past_key_values`` inputs (None if not found)."""
    try:
        import onnx  # heavy: only when a compiled model is described
    except ImportError:
        return None
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception:  # a missing or foreign file: the caller falls back to the device's type
        return None
    for value in graph.input:
        if value.name.startswith("past_key_values"):
            return _ONNX_BYTES.get(value.type.tensor_type.elem_type)
    return None


def compiled_kv_shape(model_dir: Path, device: str = "cpu") -> KvShape | None:
    """The KV shape of a compiled model: genai_config.json's decoder sizes, the element type of
    model.onnx's past_key_values inputs (the device's when it cannot be read)."""
    try:
        config = json.loads((model_dir / GENAI_CONFIG_NAME).read_text(encoding="utf-8"))
        decoder = config["model"]["decoder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(decoder, dict):
        return None
    layers = _positive_int(decoder.get("num_hidden_layers"))
    kv_heads = _positive_int(decoder.get("num_key_value_heads"))
    head_size = _positive_int(decoder.get("head_size"))
    if not (layers and kv_heads and head_size):
        return None
    filename = decoder.get("filename")
    element = _kv_input_bytes(model_dir / filename) if isinstance(filename, str) else None
    return KvShape(layers, kv_heads, head_size, element or kv_element_bytes(device))


def kv_cache_bytes(shape: KvShape | None, context_length: int | None) -> int | None:
    """What the runtime allocates for one request at ``context_length`` (None if unknown)."""
    if shape is None or not context_length:
        return None
    return shape.bytes_for(context_length)


def onnx_files_bytes(model_dir: Path) -> int:
    """Bytes of the files the runtime loads: the decoder's model.onnx and its external data."""
    try:
        config = json.loads((model_dir / GENAI_CONFIG_NAME).read_text(encoding="utf-8"))
        name = config["model"]["decoder"]["filename"]
    except (OSError, ValueError, KeyError, TypeError):
        name = "model.onnx"
    if not isinstance(name, str) or not name:
        name = "model.onnx"
    return sum(
        p.stat().st_size for p in model_dir.iterdir() if p.is_file() and p.name.startswith(name)
    )
