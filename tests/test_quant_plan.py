"""Guards: curator.quant.plan, curator.quant.weights

The per-tensor plan: the builder's presets expanded as the builder expands them, overrides in
order, recipe JSON checked."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from curator.quant.plan import (
    EMBEDDING_NODE,
    LM_HEAD_NODE,
    PlanError,
    QuantPlan,
    TensorOverride,
    TensorQuant,
    plan_for,
)

PROJECTIONS = (
    "attn/qkv_proj",
    "attn/v_proj",
    "attn/o_proj",
    "mlp/gate_proj",
    "mlp/up_proj",
    "mlp/down_proj",
)


LAYERS = (2, 16, 24, 30, 36)
PRESETS = ("k_quant_mixed", "k_quant", "k_quant_last", "rtn_last", "rtn")
# The model builder's own expansion, read in a fresh process: onnxruntime_genai must not share a
# process with foundry_local_sdk, which other test files load into this pytest worker (the
# import then fails on an undefined symbol).
BUILDER_EIGHT_BIT = """
import json, sys
from types import SimpleNamespace
from onnxruntime_genai.models.builders.base import Model
out = {}
for preset in sys.argv[1].split(","):
    for layers in map(int, sys.argv[2].split(",")):
        cfg = Model.make_int4_algo_config(SimpleNamespace(num_layers=layers), preset)
        weights = cfg.customized_weight_config or {}
        out[f"{preset}/{layers}"] = sorted(n for n, c in weights.items() if c.get("bits") == 8)
print(json.dumps(out))
"""


@functools.cache
def builder_eight_bit() -> dict[str, list[str]]:
    """Per ``PRESET/LAYERS``: the nodes the model builder quantizes to 8 bits."""
    done = subprocess.run(
        [sys.executable, "-c", BUILDER_EIGHT_BIT, ",".join(PRESETS), ",".join(map(str, LAYERS))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("layers", LAYERS)
@pytest.mark.parametrize("preset", PRESETS)
def test_presets_match_the_model_builder(layers: int, preset: str) -> None:
    eight_bit = set(builder_eight_bit()[f"{preset}/{layers}"])
    plan = plan_for(
        {"precision": "int4", "int4_algo_config": preset, "int4_is_symmetric": False}, layers
    )
    nodes = [f"/model/layers.{i}/{p}/MatMul" for i in range(layers) for p in PROJECTIONS] + [
        LM_HEAD_NODE
    ]
    ours = {name for name in nodes if (q := plan.for_node(name)) is not None and q.bits == 8}
    assert ours == eight_bit & set(nodes)
    assert plan.for_node("/model/layers.0/mlp/up_proj/MatMul") == TensorQuant(
        bits=4,
        block_size=32,
        symmetric=False,
        algo="rtn_inc" if preset.startswith("rtn") else "k_quant",
    )


def test_overrides_apply_in_order_and_keep_float() -> None:
    plan = plan_for(
        {
            "precision": "int4",
            "int4_block_size": 64,
            "int4_is_symmetric": True,
            "embedding_quant": {"bits": 4, "block_size": 32, "symmetric": False},
            "tensor_overrides": [
                {"match": "/model/layers.*/mlp/*/MatMul", "bits": 8, "algo": "k_quant"},
                {"match": "re:/model/layers\\.1/mlp/down_proj/MatMul", "keep_float": True},
                {"match": EMBEDDING_NODE, "bits": 8},
            ],
        },
        num_layers=2,
    )
    assert plan.for_node("/model/layers.0/attn/o_proj/MatMul") == TensorQuant(
        bits=4, block_size=64, symmetric=True, algo="rtn"
    )
    assert plan.for_node("/model/layers.0/mlp/down_proj/MatMul") == TensorQuant(
        bits=8, block_size=64, symmetric=True, algo="k_quant"
    )
    assert plan.for_node("/model/layers.1/mlp/down_proj/MatMul") is None
    assert plan.for_node(EMBEDDING_NODE) == TensorQuant(bits=8, block_size=32, symmetric=False)
    assert TensorOverride.from_json(plan.overrides[0].to_json()) == plan.overrides[0]


def test_float_recipes_keep_matmuls_float() -> None:
    plan = plan_for({"precision": "fp32"}, 4)
    assert plan.for_node("/model/layers.0/mlp/up_proj/MatMul") is None
    assert plan.for_node(EMBEDDING_NODE) is None
    assert QuantPlan(matmul=None).describe([LM_HEAD_NODE]) == {LM_HEAD_NODE: None}


@pytest.mark.parametrize(
    "bad",
    [
        {"match": "x", "bits": 3},
        {"match": "x", "algo": "gptq"},
        {"match": "x", "block_size": 48},
        {"match": "x", "bitz": 4},
        {"bits": 4},
        {"match": "re:(", "bits": 4},
        {"match": "x", "symmetric": "yes"},
    ],
)
def test_bad_overrides_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(PlanError):
        plan_for({"precision": "int4", "tensor_overrides": [bad]}, 2)


def test_the_tied_table_option_is_read_and_checked() -> None:
    assert not plan_for({"precision": "int4"}, 2).share_tied_embedding
    assert plan_for({"precision": "int4", "share_tied_embedding": True}, 2).share_tied_embedding
    with pytest.raises(PlanError, match="share_tied_embedding"):
        plan_for({"precision": "int4", "share_tied_embedding": "yes"}, 2)


@pytest.mark.parametrize(
    ("quant", "cols", "says"),
    [
        (TensorQuant(8, 64, True, "rtn"), 576, None),
        (TensorQuant(4, 32, False, "k_quant"), 576, None),
        (TensorQuant(4, 16, False, "rtn_inc"), 64, None),
        (None, 576, "kept float"),
        (TensorQuant(4, 64, False, "hqq"), 576, "float zero points"),
        (TensorQuant(4, 128, False, "rtn"), 576, "block 128 does not divide the hidden size 576"),
    ],
)
def test_share_blocker_names_what_the_gather_cannot_read(
    quant: TensorQuant | None, cols: int, says: str | None
) -> None:
    from curator.quant.plan import share_blocker

    found = share_blocker(quant, cols)
    assert found is None if says is None else (found is not None and says in found)


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(PlanError, match="int4_algo_config"):
        plan_for({"precision": "int4", "int4_algo_config": "awq"}, 2)


def test_a_nodes_weight_reads_from_the_checkpoint_as_the_build_packs_it(tmp_path: Path) -> None:
    """BUDGET re-quantizes single tensors: the weight behind a builder node, without a compile."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    from curator.quant.weights import checkpoint_names, node_weight

    rng = np.random.default_rng(0)
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((10, 8)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.layers.0.self_attn.k_proj.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "model.layers.0.self_attn.v_proj.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "model.layers.0.mlp.down_proj.weight": rng.standard_normal((8, 16)).astype(np.float32),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    qkv = node_weight(tmp_path, "/model/layers.0/attn/qkv_proj/MatMul")
    assert qkv.shape == (16, 8)
    np.testing.assert_array_equal(qkv[8:12], tensors["model.layers.0.self_attn.k_proj.weight"])
    np.testing.assert_array_equal(
        node_weight(tmp_path, LM_HEAD_NODE), tensors["model.embed_tokens.weight"]
    )
    assert node_weight(tmp_path, "/model/layers.0/mlp/down_proj/MatMul").shape == (8, 16)
    assert checkpoint_names(LM_HEAD_NODE) == ["lm_head.weight"]
    with pytest.raises(ValueError):
        checkpoint_names("/model/layers.0/attn/rotary/MatMul")
