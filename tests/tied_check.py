"""Child process for tests/test_tied_sharing.py (the model builder must not load in pytest's
process): streamed int4 builds of one or more checkpoints, each with its own plan options.

    python -m tests.tied_check OUT_JSON BUILD [BUILD ...]

Each BUILD is a JSON object ``{"model": DIR, "out": DIR, "config": {...}}``; ``config`` is added
to the CuratorModelBuilder pass config (int4 k_quant, asymmetric, block 32, accuracy level 4, as
the budget's recipes). Writes, per output directory, whether it streamed, whether the model ties
its embedding, and the build's log lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

OPTIONS = {
    "int4_block_size": 32,
    "int4_accuracy_level": 4,
    "int4_is_symmetric": False,
    "int4_algo_config": "k_quant",
}


def build(model_dir: Path, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    from curator.compile.stream import builder_patch

    session = builder_patch.StreamSession(
        out_dir=out, plan_config={"precision": "int4", **OPTIONS, **config}
    )
    builder_patch.open_session(session)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            builder_patch.builder_module().create_model(
                model_name=str(model_dir),
                input_path=str(model_dir),
                output_dir=str(out),
                precision="int4",
                execution_provider="cpu",
                cache_dir=str(out.parent / "hf-cache"),
                filename="model.onnx",
                **OPTIONS,
            )
    finally:
        builder_patch.close_session()
    log = [
        line
        for line in captured.getvalue().splitlines()
        if line.startswith(builder_patch.LOG_PREFIX)
    ]
    return {"streamed": session.streamed, "tied": bool(session.stats.get("tied")), "log": log}


def main(argv: list[str]) -> int:
    from olive.passes.onnx.model_builder import ModelBuilder

    from curator.compile import builder_compat
    from curator.compile.stream import builder_patch

    builder_compat.install()
    ModelBuilder.maybe_patch_quant()  # as Olive's pass runs the builder (its make_embedding)
    builder_patch.install()
    results: dict[str, Any] = {}
    for raw in argv[1:]:
        spec = json.loads(raw)
        results[spec["out"]] = build(Path(spec["model"]), Path(spec["out"]), spec["config"])
    Path(argv[0]).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
