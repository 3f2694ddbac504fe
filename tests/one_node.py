"""One contrib operator in a graph of its own, run by onnxruntime on the CPU (for the tests that
check a layout the runtime must read: MatMulNBits, GatherBlockQuantized)."""

from __future__ import annotations

from typing import Any

import numpy as np


def run_one_node(
    node: Any, inputs: list[Any], output: Any, initializers: list[Any], feed: dict[str, Any]
) -> np.ndarray[Any, Any]:
    """``node`` between the value infos ``inputs`` and ``output``, its constants
    ``initializers``: its output for ``feed``."""
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph([node], "g", inputs, [output], initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=9,
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result: np.ndarray[Any, Any] = session.run(None, feed)[0]
    return result
