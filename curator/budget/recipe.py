"""A plan as a recipe file anyone can rerun: ``curator compile SOURCE --recipe budget-....json``.

The recipe is an ordinary ``CuratorModelBuilder`` recipe (curator.quant.plan): 4-bit k-quant block
32 as the base, float16 MatMulNBits scales (``half_scales``), the embedding gather's format in
``embedding_quant``, and one ``tensor_overrides`` entry per group naming the model builder's
node(s) of that group with the group's format. A tied table
(:data:`~curator.budget.groups.TIED_TABLE`) is the lm_head's override plus
``share_tied_embedding``: the compile stores it once and the embedding gather reads it
(``embedding_quant`` then only serves a model that turns out not to be tied). The 4-bit formats
are weighted k-quant (``wk_quant``), weighted by the importance file the sensitivity pass measured,
written beside the recipe under the recipe's node patterns (:func:`write_plan_importance`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator.budget.formats import parse_format, tensor_quant
from curator.budget.groups import EMBEDDING, LM_HEAD, TIED_TABLE, Group, tied_table_options
from curator.budget.search import Plan
from curator.budget.sensitivity import IMPORTANCE_SUFFIX, Sensitivity, tensor_shapes
from curator.jsonio import write_json_atomic
from curator.quant.plan import TensorQuant, share_blocker

_PATTERNS = {
    "qkv": r"re:/model/layers\.{i}/attn/(qkv|q|k|v)_proj/MatMul",
    "o": "/model/layers.{i}/attn/o_proj/MatMul",
    "gate_up": r"re:/model/layers\.{i}/mlp/(gate_up|gate|up)_proj/MatMul",
    "down": "/model/layers.{i}/mlp/down_proj/MatMul",
}
_LAYER_GROUP = re.compile(r"^layers\.(\d+)\.(\w+)$")


def node_pattern(group: str) -> str | None:
    """The ``tensor_overrides`` match of the builder node(s) holding ``group`` (None: embedding)."""
    if group == EMBEDDING:
        return None
    if group in (LM_HEAD, TIED_TABLE):
        return "/lm_head/MatMul"
    found = _LAYER_GROUP.match(group)
    if not found or found.group(2) not in _PATTERNS:
        raise ValueError(f"no model builder node is known for tensor group {group!r}")
    return _PATTERNS[found.group(2)].format(i=int(found.group(1)))


def recipe_name(max_kl: float | None, min_top1: float | None) -> str:
    """``budget-kl0.1`` style, but within the recipe name pattern: ``budget-kl-0-1-top1-80``."""
    parts = ["budget"]
    if max_kl is not None:
        parts.append("kl-" + f"{max_kl:g}".replace(".", "-").replace("e-0", "e-"))
    if min_top1 is not None:
        parts.append("top1-" + f"{100 * min_top1:g}".replace(".", "-"))
    return "-".join(parts).lower()


def plan_recipe(
    plan: Plan,
    *,
    name: str,
    summary: str,
    importance: str | None = None,
) -> dict[str, Any]:
    """The recipe document of ``plan`` (schemas/recipe.schema.json); ``importance``: the name of
    its importance file, beside it."""
    overrides: list[dict[str, Any]] = []
    embedding: dict[str, Any] | None = None
    shared = False
    for choice in plan.choices:
        fields = tensor_quant(parse_format(choice.format))
        pattern = node_pattern(choice.group)
        if pattern is None:
            embedding = {k: v for k, v in fields.items() if k != "algo"}
            continue
        overrides.append({"match": pattern, **fields})
        if choice.group == TIED_TABLE:
            shared = True
            embedding = {k: v for k, v in fields.items() if k != "algo"}
    config: dict[str, Any] = {
        "precision": "int4",
        "int4_block_size": 32,
        "int4_accuracy_level": 4,
        "int4_is_symmetric": False,
        "int4_algo_config": "k_quant",
        "tensor_overrides": overrides,
        "half_scales": True,
    }
    if embedding is not None:
        config["embedding_quant"] = embedding
    if shared:
        config["share_tied_embedding"] = True
    if importance:
        config["importance"] = importance
    return {
        "name": name,
        "description": summary[:300],
        "device": "cpu",
        "execution_provider": "CPUExecutionProvider",
        "precision": "int4",
        "variant": "generic-cpu",
        "passes": [{"name": "builder", "type": "CuratorModelBuilder", "config": config}],
        "needs": [],
        "ram_factor": 9.0,
        "run_bytes_per_parameter": 1.2,
    }


def write_recipe(document: dict[str, Any], directory: Path) -> Path:
    """``<directory>/<name>.json`` (atomic); the file name is the recipe's name, as recipes need."""
    path = directory / f"{document['name']}.json"
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, document)
    return path


def write_plan_importance(sensitivity: Sensitivity, directory: Path, name: str) -> str | None:
    """The sensitivity pass's importance vectors keyed by the recipe's node patterns (a tied
    table by the lm_head's, whose input it weighs), written as
    ``<directory>/<name>.importance.safetensors``: its file name, or None when the pass wrote
    none."""
    from curator.quant.importance import load_importance, write_importance  # start-up: numpy

    if sensitivity.importance is None or not sensitivity.importance.is_file():
        return None
    by_tensor = load_importance(sensitivity.importance)
    vectors = {}
    for group in sensitivity.groups:
        pattern = node_pattern(group.name)
        if pattern is None or not group.tensors:
            continue
        tensor = "lm_head.weight" if group.name in (LM_HEAD, TIED_TABLE) else group.tensors[0]
        vector = by_tensor.for_node(tensor)
        if vector is not None:
            vectors[pattern] = vector
    if not vectors:
        return None
    path = directory / f"{name}{IMPORTANCE_SUFFIX}"
    write_importance(path, vectors)
    return path.name


def _shareable(hidden: int) -> Callable[[str], bool]:
    def shareable(name: str) -> bool:
        fmt = parse_format(name)
        quant = TensorQuant(fmt.bits, fmt.block, fmt.symmetric, fmt.algorithm)
        return share_blocker(quant, hidden) is None

    return shareable


def share_tied_table(sensitivity: Sensitivity, source_dir: Path) -> Sensitivity:
    """``sensitivity`` with a tied source's embedding and lm_head groups made one
    :data:`TIED_TABLE` group (one format, its bytes counted once: see
    :func:`~curator.budget.groups.tied_table_options`); unchanged for an untied source, or when
    no lm_head format can be shared."""
    by_name = {g.name: g for g in sensitivity.groups}
    embedding, head = by_name.get(EMBEDDING), by_name.get(LM_HEAD)
    if embedding is None or head is None or not embedding.shapes:
        return sensitivity
    if not tensor_shapes(source_dir)[2]:  # untied: two tables, two groups
        return sensitivity
    hidden = embedding.shapes[0][1]
    cost, sizes = tied_table_options(
        sensitivity.cost.get(EMBEDDING, {}),
        sensitivity.cost.get(LM_HEAD, {}),
        sensitivity.proxy.get(LM_HEAD, {}),
        sensitivity.sizes.get(LM_HEAD, {}),
        _shareable(hidden),
    )
    if not cost:
        return sensitivity
    tied = Group(TIED_TABLE, TIED_TABLE, embedding.tensors, embedding.shapes)
    groups = tuple(
        tied if g.name == EMBEDDING else g for g in sensitivity.groups if g.name != LM_HEAD
    )
    keep = {g.name for g in groups}
    return dataclasses.replace(
        sensitivity,
        groups=groups,
        cost={**{k: v for k, v in sensitivity.cost.items() if k in keep}, TIED_TABLE: cost},
        sizes={**{k: v for k, v in sensitivity.sizes.items() if k in keep}, TIED_TABLE: sizes},
    )
