"""Child process for tests/test_stream_compile.py (the model builder must not load in pytest's
process): build each model the builder's own way and streamed, in one process, and compare.

    python -m tests.stream_check OUT_JSON WORK MODEL_DIR[:fp32] [MODEL_DIR[:fp32] ...]

For each model, with Olive's ModelBuilder patches (as the pass runs it): ``create_model`` int4 k_quant_mixed (asymmetric, block 32, accuracy level 4) as
the builder does it (whole model loaded, ``to_int4`` over the whole graph), then the embedding
quantized on the saved model; and the same through a StreamSession with ``embedding_quant``.
With ``:fp32``, the fp32 build instead (every weight float, cast and written in chunks: the chunk
sizes are set small here so that the tiny models' tensors span several chunks). Writes, per
model, whether it streamed, the initializers that differ, and whether the nodes match.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BUILDER_OPTIONS = {
    "int4_block_size": 32,
    "int4_accuracy_level": 4,
    "int4_is_symmetric": False,
    "int4_algo_config": "k_quant_mixed",
}
EMBEDDING = {"bits": 4, "block_size": 32, "symmetric": False}
CUDA_INT4_OPTIONS = {"int4_block_size": 32}  # recipes/int4-cuda.json


def _build(model_dir: Path, out: Path, stream: bool, precision: str) -> dict[str, Any]:
    from curator.compile.stream import builder_patch
    from curator.quant.plan import EMBEDDING_NODE, plan_for

    create_model = builder_patch.builder_module().create_model
    ep, _, precision = precision.rpartition("-")  # "cuda-int4": the int4-cuda recipe's build
    ep = ep or "cpu"
    options = BUILDER_OPTIONS if (precision, ep) == ("int4", "cpu") else CUDA_INT4_OPTIONS
    if precision != "int4":
        options = {}
    session = None
    if stream:
        plan_config: dict[str, Any] = {"precision": precision, **options}
        if ep == "cpu" and precision == "int4":
            plan_config["embedding_quant"] = EMBEDDING
        if ep == "cuda" and precision == "int4":
            plan_config["int4_accuracy_level"] = 0  # the builder's default off CPU
        session = builder_patch.StreamSession(out_dir=out, plan_config=plan_config)
        builder_patch.open_session(session)
    try:
        create_model(
            model_name=str(model_dir),
            input_path=str(model_dir),
            output_dir=str(out),
            precision=precision,
            execution_provider=ep,
            cache_dir=str(out.parent / "hf-cache"),
            filename="model.onnx",
            **options,
        )
    finally:
        builder_patch.close_session()
    if (ep, precision) == ("cpu", "int4") and (session is None or not session.streamed):
        quant = plan_for({"embedding_quant": EMBEDDING}, 0).for_node(EMBEDDING_NODE)
        assert quant is not None
        builder_patch.quantize_saved_embedding(out, quant)
    return {
        "streamed": bool(session and session.streamed),
        "fallback": session and session.fallback_reason,
    }


def _graph(model_path: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]], list[Any]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    inits = {
        t.name: numpy_helper.to_array(t, base_dir=str(model_path.parent))
        for t in model.graph.initializer
    }
    nodes = sorted(
        (
            n.name,
            n.op_type,
            n.domain,
            tuple(n.input),
            tuple(n.output),
            tuple(
                sorted((a.name, onnx.helper.get_attribute_value(a).__repr__()) for a in n.attribute)
            ),
        )
        for n in model.graph.node
    )
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    return inits, nodes, opsets


def compare(a: Path, b: Path) -> dict[str, Any]:
    import numpy as np

    ia, na, oa = _graph(a / "model.onnx")
    ib, nb, ob = _graph(b / "model.onnx")
    differing = sorted(
        name
        for name in set(ia) & set(ib)
        if ia[name].dtype != ib[name].dtype
        or ia[name].shape != ib[name].shape
        or not np.array_equal(ia[name], ib[name])
    )
    return {
        "initializers": len(ia),
        "only_reference": sorted(set(ia) - set(ib)),
        "only_streamed": sorted(set(ib) - set(ia)),
        "differing": differing,
        "nodes_equal": na == nb,
        "nodes": len(na),
        "node_diff": [str(x) for x in sorted(set(na) ^ set(nb))][:6],
        "opsets_equal": oa == ob,
        "quantized_nodes": sum(1 for n in nb if n[1] in ("MatMulNBits", "GatherBlockQuantized")),
    }


def main(argv: list[str]) -> int:
    from olive.passes.onnx.model_builder import ModelBuilder

    from curator.compile import builder_compat
    from curator.compile.stream import builder_patch
    from curator.quant import kernels

    builder_compat.install()
    ModelBuilder.maybe_patch_quant()  # as Olive's pass runs the builder (its make_embedding)
    builder_patch.install()
    builder_patch.CAST_CHUNK_ELEMENTS = 3000
    kernels.CHUNK_ELEMENTS = 5000
    kernels.MATMUL_CHUNK_ELEMENTS = 5000
    builder_patch.SLICE_ELEMENTS = 20000  # big weights quantized in several row slices
    out_json, work = Path(argv[0]), Path(argv[1])
    results: dict[str, Any] = {}
    for arg in argv[2:]:
        model, _, precision = arg.partition(":")
        precision = precision or "int4"
        model_dir = Path(model)
        label = f"{model_dir.name}:{precision}"
        reference, streamed = work / label / "reference", work / label / "streamed"
        _build(model_dir, reference, stream=False, precision=precision)
        info = _build(model_dir, streamed, stream=True, precision=precision)
        results[label] = {**info, **compare(reference, streamed)}
    out_json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
