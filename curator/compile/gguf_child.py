"""``python -m curator.compile.gguf_child FILE.gguf``: dequantize in a child process.

torch, transformers and the fp32 weights (about 4 bytes per parameter, twice over while the fresh
model takes the state dict) stay out of the process that goes on to register, smoke and bench the
model: `curator onboard` measured its bench's peak memory at 2.3 GB after an in-process
dequantization of SmolLM2, against about 0.6 GB for the model itself. Prints one JSON object:
the checkpoint, or the CuratorError the conversion raised.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from curator.errors import CuratorError
from curator.formats.gguf_checkpoint import dequantize_gguf


def main(argv: list[str]) -> int:
    try:
        checkpoint = dequantize_gguf(Path(argv[0]))
    except CuratorError as exc:
        print(json.dumps({"error": exc.message, "hint": exc.hint, "kind": type(exc).__name__}))
        return 1
    print(
        json.dumps(
            {
                "checkpointDir": str(checkpoint.checkpoint_dir),
                "ggufSha256": checkpoint.gguf_sha256,
                "quantizationTypes": list(checkpoint.quantization_types),
                "reused": checkpoint.reused,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
