"""Tensor groups: the units a budget gives bits to (per layer: qkv, o, gate-up, down; the
embedding, and lm_head when it is not tied to the embedding).

Grouping follows the Hugging Face parameter names of the decoder families the model builder
supports (Llama, Qwen, Mistral, Phi, Gemma, SmolLM ...). Tensors a group holds are quantized
alike. The sensitivity pass measures a tied lm_head as a group of its own (the embedding and the
lm_head perturb the model in different places); the search then weighs the tied table as ONE
group, :data:`TIED_TABLE` (:func:`tied_table_options`): one format, stored once (the compile's
``share_tied_embedding``: the embedding gather reads the lm_head MatMul's quantized table), whose
cost is the lm_head's plus the embedding's at that format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
TIED_TABLE = "tied_table"  # a tied embedding and lm_head as one group, stored once


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


def tied_table_options(
    embedding_cost: Mapping[str, float],
    head_cost: Mapping[str, float],
    head_proxy: Mapping[str, float],
    head_bytes: Mapping[str, int],
    shareable: Callable[[str], bool],
) -> tuple[dict[str, float], dict[str, int]]:
    """(cost, bytes) of the tied table at every lm_head format it can be shared in.

    Bytes: the lm_head's, once. Cost: the lm_head's at that format plus the embedding's. The
    sensitivity pass weighs the embedding at the gather's own formats (RTN) only; at an lm_head
    format it did not weigh, the embedding's cost is scaled from a format both tables have, by the
    ratio of the lm_head's proxy energies (the same table, so the error energy changes between
    formats alike): ``emb[A] * head_proxy[F] / head_proxy[A]``. Empty when no format is in both
    tables (nothing to scale from)."""
    anchors = [
        name
        for name in sorted(embedding_cost)
        if name in head_cost and head_proxy.get(name, 0.0) > 0.0
    ]
    if not anchors:
        return {}, {}
    anchor = anchors[0]
    cost: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name, head in head_cost.items():
        if name not in head_bytes or not shareable(name):
            continue
        if name in embedding_cost:
            embedding = embedding_cost[name]
        elif name in head_proxy:
            embedding = embedding_cost[anchor] * head_proxy[name] / head_proxy[anchor]
        else:
            continue
        cost[name] = max(head, 0.0) + max(embedding, 0.0)
        sizes[name] = int(head_bytes[name])
    return cost, sizes
