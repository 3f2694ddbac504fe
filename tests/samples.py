"""Well-formed registry entries for tests and benchmarks (figures are synthetic, never shipped)."""

from __future__ import annotations

import hashlib
from typing import Any


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_entry(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid entry; ``n`` makes id, alias and hashes distinct."""
    artifacts = [
        {"path": "model.onnx", "sha256": sha(f"onnx{n}"), "bytes": 1_000_000},
        {"path": "model.onnx.data", "sha256": sha(f"data{n}"), "bytes": 99_000_000},
        {"path": "genai_config.json", "sha256": sha(f"cfg{n}"), "bytes": 2_000},
    ]
    entry: dict[str, Any] = {
        "id": f"model{n}-generic-cpu:1",
        "alias": f"model{n}",
        "displayName": f"Model {n}",
        "variant": "generic-cpu",
        "task": "chat-completion",
        "license": "apache-2.0",
        "publisher": "curator-test",
        "capabilities": ["chat"],
        "fileSizeMb": round(sum(a["bytes"] for a in artifacts) / 2**20, 2),
        "minRamGb": 1.0,
        "contextLength": 4096,
        "runtime": {"deviceType": "CPU", "executionProvider": "CPUExecutionProvider"},
        "source": {
            "repo": f"org/model{n}",
            "revision": sha(f"rev{n}")[:40],
            "architecture": "Qwen2ForCausalLM",
            "parameters": 50_000_000,
        },
        "build": {
            "recipe": "int4-cpu",
            "recipeSha256": sha("int4-cpu"),
            "tools": {"olive-ai": "0.13.0", "onnxruntime-genai": "0.14.1"},
            "artifacts": artifacts,
        },
    }
    entry.update(overrides)
    return entry


def make_benchmark(
    date: str = "2026-11-01T10:00:00Z",
    decode: float = 50.0,
    ttft: float = 100.0,
    peak_mb: float = 600.0,
) -> dict[str, Any]:
    return {
        "date": date,
        "machine": {
            "fingerprint": sha("machine")[:16],
            "cpu": "Test CPU",
            "cores": 2,
            "ramGb": 24.0,
            "os": "Linux",
        },
        "decodeTokensPerSec": {"mean": decode, "p95": decode * 0.9},
        "ttftMs": {"mean": ttft, "p95": ttft * 1.5},
        "latencyMs": {"mean": ttft * 10, "p95": ttft * 12},
        "peakMemoryMb": peak_mb,
    }


def make_document(entries: list[dict[str, Any]], **policy: Any) -> dict[str, Any]:
    return {
        "$schema": "../schemas/models.schema.json",
        "schemaVersion": 1,
        "policy": {"allowedLicenses": ["apache-2.0", "mit"], "maxRegressionPct": 10, **policy},
        "models": entries,
    }
