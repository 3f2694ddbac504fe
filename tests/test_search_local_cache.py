"""Guards: curator.cli.search, curator.hub.local

`curator search --local --cache-dir DIR` (issue 25): the models of that Foundry cache by id,
with their parameter count and size in MiB."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TINY_MODEL_ID, run_curator


def test_search_local_names_ids_in_the_given_cache(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    cache = tmp_path / "elsewhere"
    model_dir = install_compiled(cache_dir=cache)
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    done = run_curator("search", "--local", "--cache-dir", str(cache), "tiny", "--json")
    assert done.returncode == 0, done.stderr
    (found,) = [m for m in json.loads(done.stdout) if m["source"] == "foundry"]
    assert found["name"] == TINY_MODEL_ID
    assert found["parameters"] == manifest["source"]["parameters"] > 0
    table = run_curator("search", "--local", "--cache-dir", str(cache), "tiny").stdout
    row = next(line for line in table.splitlines() if line.startswith("foundry"))
    assert TINY_MODEL_ID in row and " KiB " in row  # binary units, as every size curator prints
    assert (
        run_curator("search", "--local", "tiny", "--json").stdout.strip() == "[]"
    )  # default cache
