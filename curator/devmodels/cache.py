"""Build a small model (or compile one) once and reuse it: for tests, benchmarks and demos.

Entries live under a root directory (tests use ``<repo>/.cache/test-models``) named by a key that
covers everything the output depends on (builder arguments and version, recipe bytes, the compile
code). Concurrent processes (pytest-xdist workers) take a file lock; the entry is built in a
temporary directory and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator import __version__

COMPLETE_SUFFIX = ".complete"  # root/.<entry>.complete: the entry is whole


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cached_build(
    root: Path, label: str, key: dict[str, Any], build: Callable[[Path], None]
) -> Path:
    """``root/<label>-<digest(key)>``, made by ``build(tmp_dir)`` if it is not there yet."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{label}-{_digest(key)}"
    marker = root / f".{final.name}{COMPLETE_SUFFIX}"
    if marker.is_file() and final.is_dir():
        return final
    with FileLock(str(root / f".{final.name}.lock")):
        if marker.is_file() and final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
        try:
            build(tmp / "out")
            if final.exists():  # an incomplete leftover
                shutil.rmtree(final)
            os.replace(tmp / "out", final)
            marker.write_text(json.dumps(key, sort_keys=True) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def cached_tiny_model(root: Path, **params: Any) -> Path:
    """A :func:`build_tiny_model` directory, built once per argument set."""
    import transformers

    from curator.devmodels.tiny import BUILDER_VERSION, build_tiny_model

    architecture = params.get("architecture", "qwen2")
    key = {
        "kind": "tiny-model",
        "builder": BUILDER_VERSION,
        "params": params,
        "python": sys.version.split()[0],
        "transformers": transformers.__version__,
    }
    return cached_build(
        root, f"tiny-{architecture}", key, lambda out: _build_tiny(build_tiny_model, out, params)
    )


def _build_tiny(builder: Callable[..., Path], out: Path, params: dict[str, Any]) -> None:
    builder(out, **params)


def compile_code_digest() -> str:
    """A digest of curator's compile code, so cached compiles follow code changes."""
    package = Path(__file__).resolve().parent.parent / "compile"
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_compile(root: Path, model_dir: Path, recipe: str, model_id: str) -> Path:
    """``curator compile model_dir --recipe recipe --id model_id`` once; the compiled directory."""
    from curator.recipes import get_recipe

    key = {
        "kind": "compiled",
        "model": model_dir.name,
        "recipe": recipe,
        "recipe_sha256": get_recipe(recipe).sha256,
        "model_id": model_id,
        "code": compile_code_digest(),
    }
    return cached_build(
        root,
        model_id.replace(":", "-"),
        key,
        lambda out: _compile_into(out, model_dir, recipe, model_id),
    )


def _compile_into(out: Path, model_dir: Path, recipe: str, model_id: str) -> None:
    from curator.compile import CompileRequest, compile_model

    with tempfile.TemporaryDirectory(prefix="curator-fixture-cache-") as cache:
        result = compile_model(
            CompileRequest(
                source=str(model_dir), recipe=recipe, model_id=model_id, cache_dir=Path(cache)
            )
        )
        assert result.path is not None
        shutil.move(str(result.path), str(out))


def install_compiled(
    compiled: Path, cache_dir: Path, model_id: str | None = None, publisher: str = "local"
) -> Path:
    """Copy a compiled directory into a Foundry cache at ``<cache>/<publisher>/<id>``.

    With a different ``model_id`` the copy's inference_model.json and manifest are renamed to it.
    """
    from curator.compile import manifest as compile_manifest
    from curator.modeldir import MANIFEST_NAME

    document = json.loads((compiled / MANIFEST_NAME).read_text(encoding="utf-8"))
    model_id = model_id or str(document["id"])
    target = cache_dir / publisher / model_id.replace(":", "-")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(compiled, target)
    if model_id != document["id"]:
        compile_manifest.write_inference_model(target, model_id)
        document["id"] = model_id
        document["publisher"] = publisher
        document["build"]["artifacts"] = [
            {"path": a.path, "sha256": a.sha256, "bytes": a.bytes}
            for a in compile_manifest.artifacts(target)
        ]
        compile_manifest.write_manifest(target, document)
    return target
