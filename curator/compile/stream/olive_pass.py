"""``CuratorModelBuilder``: Olive's ModelBuilder pass, streaming (see :mod:`.builder_patch`).

A recipe names it like ModelBuilder, with the same options, plus:

- ``embedding_quant``: the embedding gather's quantization (bits, block_size, symmetric), done in
  the same pass (was a second Olive pass, OnnxBlockWiseRtnQuantization, that loaded the whole ONNX
  model again);
- ``tensor_overrides``: per-node changes to the plan (:mod:`curator.quant.plan`);
- ``matmul_int8``: with ``precision`` fp32, every MatMul weight quantized to int8 as onnxruntime's
  ``quantize_dynamic`` does it (int8-cpu; was a second Olive pass, OnnxDynamicQuantization, that
  loaded the whole ONNX model): ``precision`` int8/uint8, ``reduce_range``, ``weight_symmetric``,
  ``nodes_to_exclude`` (:mod:`curator.quant.int8`);
- ``share_tied_embedding``: a tied embedding's gather reads the lm_head's quantized table, so the
  table is stored once (:mod:`curator.quant.plan`);
- ``half_scales``: float16 MatMulNBits scales in a float32 model, each read through a Cast that
  onnxruntime folds at load (:mod:`curator.quant.plan`);
- ``importance``: wk_quant's per-input importance file (:mod:`curator.quant.importance`);
- ``stream`` (default true): false builds the builder's own way (the reference path);
- ``quantize_threads``: threads for the quantizers (default: all cores).

Imported only inside the compile's child process, where Olive is installed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from olive.passes.olive_pass import PassConfigParam
from olive.passes.onnx.model_builder import ModelBuilder

from curator.compile.stream import builder_patch
from curator.compile.stream.int8_matmul import (
    float_matmuls_with_constant_weight,
    quantize_saved_model,
)
from curator.quant.int8 import DynamicInt8
from curator.quant.plan import EMBEDDING_NODE, config_problem, plan_for

OWN_OPTIONS = (
    "embedding_quant",
    "tensor_overrides",
    "stream",
    "quantize_threads",
    "matmul_int8",
    "share_tied_embedding",
    "half_scales",
    "importance",
)


class CuratorModelBuilder(ModelBuilder):  # type: ignore[misc]
    """Olive's ModelBuilder with the weights streamed and quantized tensor by tensor."""

    @classmethod
    def _default_config(cls, accelerator_spec: Any) -> dict[str, PassConfigParam]:
        config: dict[str, PassConfigParam] = super()._default_config(accelerator_spec)
        config.update(
            {
                "embedding_quant": PassConfigParam(
                    type_=dict[str, Any],
                    required=False,
                    description="Quantize the embedding gather: bits, block_size, symmetric.",
                ),
                "tensor_overrides": PassConfigParam(
                    type_=list[dict[str, Any]],
                    required=False,
                    description="Per-node quantization overrides (curator.quant.plan).",
                ),
                "share_tied_embedding": PassConfigParam(
                    type_=bool,
                    default_value=False,
                    description="A tied embedding reads the lm_head's quantized table.",
                ),
                "half_scales": PassConfigParam(
                    type_=bool,
                    default_value=False,
                    description="float16 MatMulNBits scales in a float32 model.",
                ),
                "importance": PassConfigParam(
                    type_=str,
                    required=False,
                    description="wk_quant's importance file (curator.quant.importance).",
                ),
                "stream": PassConfigParam(
                    type_=bool,
                    default_value=True,
                    description="Stream the weights (false: the model builder's own path).",
                ),
                "matmul_int8": PassConfigParam(
                    type_=dict[str, Any],
                    required=False,
                    description="int8 dynamic quantization of the MatMul weights (fp32 build).",
                ),
                "quantize_threads": PassConfigParam(
                    type_=int,
                    required=False,
                    description="Threads for quantizing (default: all cores).",
                ),
            }
        )
        return config

    @staticmethod
    def maybe_patch_quant() -> None:
        ModelBuilder.maybe_patch_quant()
        builder_patch.install()

    def _run_for_config(self, model: Any, config: Any, output_model_path: str) -> Any:
        values = config.model_dump()
        stripped = config.model_copy(
            update={name: (True if name == "stream" else None) for name in OWN_OPTIONS}
        )
        started = time.perf_counter()
        if values.get("matmul_int8") and values.get("precision") != "fp32":
            raise ValueError("matmul_int8 quantizes an fp32 build: set precision to fp32")
        problem = config_problem(values)  # as when the recipe was read: a config made elsewhere
        if problem:
            raise ValueError(problem)
        if not values.get("stream", True):
            builder_patch.log("stream: false, building the model builder's own way")
            result = super()._run_for_config(model, stripped, output_model_path)
            self._embedding_after(values, output_model_path, "stream is off")
            self._int8_after(values, output_model_path, "stream is off")
            return result
        session = builder_patch.StreamSession(
            out_dir=Path(output_model_path),
            plan_config=values,
            threads=values.get("quantize_threads"),
        )
        builder_patch.open_session(session)
        try:
            result = super()._run_for_config(model, stripped, output_model_path)
        finally:
            builder_patch.close_session()
        if not session.streamed:
            streamed_only = (
                "tensor_overrides",
                "share_tied_embedding",
                "half_scales",
                "importance",
            )
            if any(values.get(k) for k in streamed_only):
                raise ValueError(
                    f"{', '.join(streamed_only)} need the streaming build, which this model "
                    "cannot use: "
                    f"{session.fallback_reason}"
                )
            self._embedding_after(values, output_model_path, session.fallback_reason or "")
            self._int8_after(values, output_model_path, session.fallback_reason or "")
        elif values.get("matmul_int8"):
            self._int8_leftovers(output_model_path)
        builder_patch.log(f"pass done in {time.perf_counter() - started:.1f} s")
        return result

    @staticmethod
    def _int8_after(values: dict[str, Any], output_dir: str, why: str) -> None:
        """The MatMuls quantized to int8 after the build, on the whole saved model (today's cost)."""
        if not values.get("matmul_int8"):
            return

        builder_patch.log(f"quantizing the MatMuls to int8 on the saved model ({why})")
        quantize_saved_model(Path(output_dir), DynamicInt8.from_json(values["matmul_int8"]))

    @staticmethod
    def _int8_leftovers(output_dir: str) -> None:
        """Say so when a float MatMul with a constant weight was made outside make_matmul_float
        (quantize_dynamic would have quantized it; the streamed build keeps it float)."""
        import onnx_ir as ir

        graph = ir.load(str(Path(output_dir) / "model.onnx")).graph
        left = float_matmuls_with_constant_weight(graph)
        if left:
            builder_patch.log(f"kept float (made outside make_matmul_float): {', '.join(left)}")

    @staticmethod
    def _embedding_after(values: dict[str, Any], output_dir: str, why: str) -> None:
        """The embedding quantized after the build, on the whole saved model (today's cost)."""
        if not values.get("embedding_quant"):
            return
        plan = plan_for({"precision": "fp32", "embedding_quant": values["embedding_quant"]}, 0)
        quant = plan.for_node(EMBEDDING_NODE)
        if quant is None:
            return
        builder_patch.log(f"quantizing the embedding on the saved model ({why})")
        builder_patch.quantize_saved_embedding(Path(output_dir), quant)
