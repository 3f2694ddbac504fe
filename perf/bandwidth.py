"""The memory-bandwidth ceiling of decoding: every decoded token reads the model's weights once
(all but the embedding table, of which it reads one row), so tok/s cannot exceed
bandwidth / bytes read per token. Bandwidth is measured here as a STREAM-style copy (bytes read
plus bytes written per second) with as many threads as the decode loop uses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

COPY_BYTES = 512 * 2**20  # well past any last-level cache
EMBEDDING_OPS = frozenset({"Gather", "GatherBlockQuantized"})


def copy_bandwidth(threads: int, repeats: int = 5) -> float:
    """Bytes per second (read + written) of the best of ``repeats`` parallel numpy copies."""
    import numpy as np

    source = np.ones(COPY_BYTES // 8, dtype=np.float64)
    target = np.empty_like(source)
    parts = [(i * source.size // threads, (i + 1) * source.size // threads) for i in range(threads)]

    def copy(lo: int, hi: int) -> None:
        np.copyto(target[lo:hi], source[lo:hi])  # releases the GIL

    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=copy, args=part) for part in parts]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best


def weight_bytes_per_token(model_dir: Path) -> int:
    """Bytes of initializers one decode step reads: all of them, except tables only gathered from
    (the embedding: one row per token, negligible)."""
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    sizes: dict[str, int] = {}
    for tensor in model.graph.initializer:
        external = {entry.key: entry.value for entry in tensor.external_data}
        sizes[tensor.name] = (
            int(external["length"]) if "length" in external else len(tensor.raw_data)
        )
    gathered: set[str] = set()
    read_whole: set[str] = set()
    for node in model.graph.node:
        (gathered if node.op_type in EMBEDDING_OPS else read_whole).update(node.input)
    only_gathered = (gathered - read_whole) & sizes.keys()
    return sum(size for name, size in sizes.items() if name not in only_gathered)
