"""One node's float weight, read from a safetensors checkpoint without a compile.

For re-quantizing a few tensors (curator.quant.kernels) as the model builder lays them out: the
builder names a Llama-family weight by its node (``/model/layers.3/attn/qkv_proj/MatMul``) and
packs q, k and v into one MatMul. :func:`node_weight` gives the ``[N, K]`` float32 array the
streaming compile quantizes for that node (``N`` out features, ``K`` in features).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from curator.quant.plan import EMBEDDING_NODE, LM_HEAD_NODE

_LAYER = re.compile(r"^/model/layers\.(\d+)/(attn|mlp)/(\w+)/MatMul$")
_ATTN = {"o_proj": ["o_proj"], "q_proj": ["q_proj"], "k_proj": ["k_proj"], "v_proj": ["v_proj"]}


def checkpoint_names(node: str, tied: bool = False) -> list[str]:
    """The checkpoint tensors (Hugging Face names) behind a builder node, in packing order."""
    if node == EMBEDDING_NODE:
        return ["model.embed_tokens.weight"]
    if node == LM_HEAD_NODE:
        return ["model.embed_tokens.weight" if tied else "lm_head.weight"]
    match = _LAYER.match(node)
    if match is None:
        raise ValueError(f"{node} is not a node name of a Llama-family layer")
    layer, block, proj = match.groups()
    if block == "attn":
        parts = ["q_proj", "k_proj", "v_proj"] if proj == "qkv_proj" else _ATTN.get(proj)
        if parts is None:
            raise ValueError(f"unknown attention projection in {node}")
        return [f"model.layers.{layer}.self_attn.{p}.weight" for p in parts]
    return [f"model.layers.{layer}.mlp.{proj}.weight"]


def node_weight(model_dir: Path, node: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The float32 ``[N, K]`` weight of ``node`` (q, k and v concatenated for ``qkv_proj``)."""
    import json

    from curator.compile.stream.checkpoint import Checkpoint  # start-up: loads curator.compile

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    checkpoint = Checkpoint(model_dir)
    tied = bool(config.get("tie_word_embeddings")) and "lm_head.weight" not in checkpoint
    parts = [
        checkpoint.read_numpy(name).astype(np.float32) for name in checkpoint_names(node, tied)
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
