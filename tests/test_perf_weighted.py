"""Guards: perf.weighted

The three plans the weighted k-quant harness builds differ in the 4-bit quantizer alone (and the
importance file the third names), and the table prints each row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curator.quant.plan import LM_HEAD_NODE, TensorQuant, plan_for
from perf.weighted import VARIANTS, Row, markdown, variant_recipe


def test_the_variants_differ_in_the_quantizer_alone(tmp_path: Path) -> None:
    from curator.quant.importance import write_importance
    from curator.recipes import load_recipe_file

    write_importance(
        tmp_path / "w.importance.safetensors", {"/lm_head/MatMul": np.ones(4, np.float32)}
    )
    plans = {}
    for label, algo, weighted in VARIANTS:
        document = variant_recipe(label, algo, "w.importance.safetensors" if weighted else None)
        config = document["passes"][0]["config"]
        plan = plan_for(config, 2)
        for node in ("/model/layers.0/attn/qkv_proj/MatMul", "/model/layers.1/mlp/up_proj/MatMul"):
            assert plan.for_node(node) == TensorQuant(4, 32, False, algo), (label, node)
        assert plan.for_node(LM_HEAD_NODE) == TensorQuant(8, 64, True, "rtn")
        assert config["share_tied_embedding"] is True and config["half_scales"] is True
        assert plan.importance == ("w.importance.safetensors" if weighted else None)
        plans[label] = document["name"]
        path = tmp_path / f"{document['name']}.json"  # a recipe the compile reads (schema, name)
        path.write_text(json.dumps(document), encoding="utf-8")
        assert load_recipe_file(path).name == document["name"]
    assert len(set(plans.values())) == len(VARIANTS)  # one model directory each


def test_the_table_has_a_row_per_build() -> None:
    rows = [Row("k_quant", 110.0, 0.3, 0.66, 100.0), Row("wk_quant", 110.0, 0.2, 0.7, 99.5)]
    table = markdown(rows).splitlines()
    assert len(table) == 2 + 2
    assert "| k_quant | 110.0 | 0.3000 | 66.0% | 100.0 |" in table
