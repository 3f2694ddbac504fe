"""Helpers shared by the tests that bite (tests/test_bites_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.cache.modeldir import MANIFEST_NAME, sha256_file

MIB = 2**20


def fidelity(kl: float, top1: float) -> dict[str, Any]:
    return {
        "reference": "org/model0",
        "tokens": 1000,
        "klMean": kl,
        "klP99": kl * 5,
        "top1Agreement": top1,
        "perplexity": 12.0,
        "referencePerplexity": 11.0,
    }


def compiled_dir(root: Path, name: str = "tiny-generic-cpu-1") -> Path:
    model = root / "curator-test" / name
    model.mkdir(parents=True)
    (model / "genai_config.json").write_text("{}")
    (model / "model.onnx").write_bytes(b"weights" * 100)
    listed = [
        {"path": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(model.iterdir())
    ]
    manifest = {"id": name[:-2] + ":1", "build": {"artifacts": listed}}
    (model / MANIFEST_NAME).write_text(json.dumps(manifest))
    return model
