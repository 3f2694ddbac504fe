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
from curator.cache.modeldir import MANIFEST_NAME, sha256_file
from curator.devmodels.tiny import BUILDER_VERSION, build_tiny_model
from curator.formats.gguf_checkpoint import dequantize_gguf
from curator.recipes import get_recipe

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
    """A digest of all the code a compile runs (curator/compile/**, curator/quant/**,
    curator/formats/gguf.py, curator/recipes.py), so cached compiles follow every change to it (issue 17)."""
    package = Path(__file__).resolve().parent.parent
    files = [
        *sorted((package / "compile").rglob("*.py")),
        *sorted((package / "quant").rglob("*.py")),
        package / "formats" / "gguf.py",
        package / "recipes.py",
    ]
    digest = hashlib.sha256(__version__.encode())
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
    return digest.hexdigest()[:16]


def cached_compile(
    root: Path,
    source: Path,
    recipe: str,
    model_id: str,
    *,
    home: Path | None = None,
    key: dict[str, Any] | None = None,
) -> Path:
    """``curator compile source --recipe recipe --id model_id`` once; the compiled directory.

    ``home`` is the curator home the compile runs with (a GGUF source finds its dequantized
    checkpoint there); ``key`` adds what else the output depends on (e.g. the GGUF's sha256).
    """
    full_key = {
        "kind": "compiled",
        "model": source.name,
        "recipe": recipe,
        "recipe_sha256": get_recipe(recipe).sha256,
        "model_id": model_id,
        "code": compile_code_digest(),
        **(key or {}),
    }
    return cached_build(
        root,
        model_id.replace(":", "-"),
        full_key,
        lambda out: _compile_into(out, source, recipe, model_id, home),
    )


def _compile_into(
    out: Path, source: Path, recipe: str, model_id: str, home: Path | None = None
) -> None:
    from curator.compile import CompileRequest, compile_model  # start-up: loads curator.compile

    saved = os.environ.get("CURATOR_HOME")
    if home is not None:
        os.environ["CURATOR_HOME"] = str(home)
    try:
        with tempfile.TemporaryDirectory(prefix="curator-fixture-cache-") as cache:
            result = compile_model(
                CompileRequest(
                    source=str(source), recipe=recipe, model_id=model_id, cache_dir=Path(cache)
                )
            )
            assert result.path is not None
            shutil.move(str(result.path), str(out))
    finally:
        if home is not None:
            if saved is None:
                os.environ.pop("CURATOR_HOME", None)
            else:
                os.environ["CURATOR_HOME"] = saved


def cached_gguf_home(root: Path, gguf_path: Path) -> Path:
    """A curator home whose ``gguf/`` holds ``gguf_path`` dequantized (built once per file
    content, curator/formats/gguf.py and transformers version)."""
    import transformers

    code = Path(__file__).resolve().parent.parent / "formats" / "gguf.py"
    key = {
        "kind": "gguf-home",
        "gguf_sha256": sha256_file(gguf_path),
        "code": hashlib.sha256(code.read_bytes()).hexdigest()[:16],
        "transformers": transformers.__version__,
    }

    def build(out: Path) -> None:
        dequantize_gguf(gguf_path, home=out)

    return cached_build(root, "gguf-home", key, build)


def install_compiled(
    compiled: Path, cache_dir: Path, model_id: str | None = None, publisher: str = "local"
) -> Path:
    """Copy a compiled directory into a Foundry cache at ``<cache>/<publisher>/<id>``.

    With a different ``model_id`` the copy's inference_model.json and manifest are renamed to it.
    """
    from curator.compile import manifest as compile_manifest  # start-up: loads curator.compile

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
