"""Guards: curator.cli.cache

A cache with a broken or hostile manifest: the other models stay usable, nothing outside a model
directory is read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import run_curator


def test_broken_and_hostile_manifests(install_compiled: Callable[..., Path]) -> None:
    good = install_compiled(model_id="good-generic-cpu:1")
    broken = install_compiled(model_id="broken-generic-cpu:1")
    hostile = install_compiled(model_id="hostile-generic-cpu:1")
    (broken / "curator-manifest.json").write_text("{ not json")
    manifest = json.loads((hostile / "curator-manifest.json").read_text())
    manifest["build"]["artifacts"].append(
        {"path": "../good-generic-cpu-1/model.onnx", "sha256": "0" * 64, "bytes": 1}
    )
    (hostile / "curator-manifest.json").write_text(json.dumps(manifest))

    result = run_curator("cache", "verify", "--json")
    assert result.returncode == 1
    by_id = {r["id"]: r for r in json.loads(result.stdout)}
    assert by_id["good-generic-cpu:1"]["ok"] is True
    assert "invalid JSON" in by_id["broken-generic-cpu:1"]["problem"]
    assert "must not contain '..'" in by_id["hostile-generic-cpu:1"]["problem"]
    assert good.is_dir()
