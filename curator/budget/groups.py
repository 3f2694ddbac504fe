"""Tensor groups: the units a budget gives bits to (per layer: qkv, o, gate-up, down; the
embedding, and lm_head when it is not tied to the embedding).

Grouping follows the Hugging Face parameter names of the decoder families the model builder
supports (Llama, Qwen, Mistral, Phi, Gemma, SmolLM ...). Tensors a group holds are quantized
alike; a tied lm_head is a group of its own all the same: the compile writes the table twice (the
embedding Gather and the lm_head MatMul), each quantized on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("qkv", ("q_proj", "k_proj", "v_proj", "qkv_proj", "query_key_value", "Wqkv")),
    ("o", ("o_proj", "out_proj", "dense")),
    ("gate_up", ("gate_proj", "up_proj", "gate_up_proj", "w1", "w3", "fc1")),
    ("down", ("down_proj", "w2", "fc2")),
)
EMBEDDING = "embedding"
LM_HEAD = "lm_head"


@dataclass(frozen=True)
class Group:
    """One unit of the plan: its name (``layers.3.qkv``), kind, tensors and their shapes."""

    name: str
    kind: str
    tensors: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]

    @property
    def weights(self) -> int:
        return sum(r * c for r, c in self.shapes)

    @property
    def layer(self) -> int | None:
        found = _LAYER.search(self.tensors[0]) if self.tensors else None
        return int(found.group(1)) if found else None


def classify(name: str) -> tuple[str, str] | None:
    """(group name, kind) of a 2-D weight called ``name``; None for what is not quantized."""
    if not name.endswith(".weight"):
        return None
    stem = name[: -len(".weight")]
    leaf = stem.rsplit(".", 1)[-1]
    if leaf == "embed_tokens" or stem.endswith("wte"):
        return EMBEDDING, EMBEDDING
    if leaf == LM_HEAD:
        return LM_HEAD, LM_HEAD
    layer = _LAYER.search(stem)
    if layer is None:
        return None
    for kind, leaves in _KINDS:
        if leaf in leaves:
            return f"layers.{int(layer.group(1))}.{kind}", kind
    return None


def group_tensors(shapes: dict[str, tuple[int, ...]]) -> tuple[Group, ...]:
    """The groups of a checkpoint from its tensor shapes (HF names, Linear layout out x in)."""
    members: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if len(shape) != 2:
            continue
        found = classify(name)
        if found is None:
            continue
        members.setdefault(found[0], []).append(name)
        kinds[found[0]] = found[1]

    def order(group: str) -> tuple[int, int, str]:
        layer = _LAYER.search(group + ".")
        if layer:
            return (1, int(layer.group(1)), group)
        return (0 if group == EMBEDDING else 2, 0, group)

    return tuple(
        Group(
            name=g,
            kind=kinds[g],
            tensors=tuple(members[g]),
            shapes=tuple((int(shapes[t][0]), int(shapes[t][1])) for t in members[g]),
        )
        for g in sorted(members, key=order)
    )
