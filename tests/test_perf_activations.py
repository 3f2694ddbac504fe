"""Guards: perf.activations

The uniform 8-bit plans the int8-input harness builds, and the predictions it prints beside them."""

from __future__ import annotations

import pytest

from curator.budget.groups import Group
from curator.budget.sensitivity import Sensitivity
from curator.quant.plan import LM_HEAD_NODE, TensorQuant, plan_for
from perf.activations import Row, markdown, predicted_sums, uniform_recipe


@pytest.mark.parametrize(("block", "level"), [(64, 4), (32, 1)])
def test_every_matmul_gets_the_block_and_accuracy_level_and_the_table_is_shared(
    block: int, level: int
) -> None:
    document = uniform_recipe(block, level)
    config = document["passes"][0]["config"]
    plan = plan_for(config, 2)
    expected = TensorQuant(8, block, True, "rtn", accuracy_level=level)
    for node in (
        "/model/layers.0/attn/qkv_proj/MatMul",
        "/model/layers.1/mlp/down_proj/MatMul",
        LM_HEAD_NODE,
    ):
        assert plan.for_node(node) == expected
    assert config["share_tied_embedding"] is True
    assert config["embedding_quant"] == {"bits": 8, "block_size": block, "symmetric": True}
    assert document["name"] == f"all-q8-b{block}-level{level}"


def test_the_predictions_sum_the_matmul_groups_with_and_without_the_int8_inputs() -> None:
    groups = (
        Group("embedding", "embedding", ("e",), ((10, 64),)),
        Group("layers.0.o", "o", ("w",), ((64, 64),)),
        Group("lm_head", "lm_head", ("h",), ((10, 64),)),
    )
    anchor, fmt = "q4-b64-asym-rtn", "q8-b32-sym-rtn"
    measured = {"layers.0.o": {anchor: 0.02}, "lm_head": {anchor: 0.04}}
    proxy = {"layers.0.o": {anchor: 4.0, fmt: 0.4}, "lm_head": {anchor: 2.0, fmt: 0.1}}
    weights = {"layers.0.o": {fmt: 0.002}, "lm_head": {fmt: 0.002}}
    cost = {  # what build_costs gives with the int8 inputs' error: 1.0 and 0.5 of energy
        "embedding": {"q8-b64-asym-rtn": 0.5},
        "layers.0.o": {fmt: 0.002 + 0.005 * 1.0},
        "lm_head": {fmt: 0.002 + 0.02 * 0.5},
    }
    sens = Sensitivity("0" * 64, groups, cost, measured, proxy, {}, 1, 0.0, 0)
    with_inputs, alone = predicted_sums(sens, 32)
    assert with_inputs == pytest.approx(0.002 + 0.005 + 0.002 + 0.01)
    assert alone == pytest.approx(sum(w[fmt] for w in weights.values()))
    assert predicted_sums(sens, 16) == (None, None)  # 8-bit block 16 is not a candidate
    row = Row(32, 1, 146.6, 0.002, 0.968, 3.2, with_inputs, alone)
    assert (
        "| 8-bit block 32 | fp32 (level 1) | 146.6 | 0.0020 | 96.8% | 3.2 | 0.0040 (0.0040) |"
        in (markdown([row]))
    )
