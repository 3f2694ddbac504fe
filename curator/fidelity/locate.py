"""Find the compiled model to measure and the fp32 reference to measure it against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.cache.modeldir import find_model_dir, is_model_dir, read_manifest, sha256_file
from curator.errors import CuratorError, NotFound, UsageProblem
from curator.fidelity.types import Reference


def find_compiled(cache_root: Path, model_id: str) -> Path:
    """The directory of compiled model ``model_id`` (``<cache>/<publisher>/<id>``), or a path."""
    as_path = Path(model_id).expanduser()
    if is_model_dir(as_path):
        return as_path.resolve()
    found = find_model_dir(cache_root, model_id)
    if found is None:
        raise NotFound(
            f"no compiled model {model_id!r} in {cache_root}",
            hint="compile it with `curator compile SOURCE`, or pass `--cache-dir DIR`",
        )
    return found


def model_label(model_dir: Path) -> str:
    """The compiled model's id from its manifest, else the directory name."""
    manifest = read_manifest(model_dir)
    label = manifest.get("id") if manifest else None
    return str(label) if label else model_dir.name


def reference_from_dir(path: Path, label: str | None = None) -> Reference:
    """A directory holding a compiled model (genai_config.json) or a Hugging Face checkpoint."""
    if (path / "genai_config.json").is_file():
        return Reference("onnx", path.resolve(), label or model_label(path))
    if (path / "config.json").is_file():
        return Reference("transformers", path.resolve(), label or path.name)
    raise UsageProblem(
        f"{path} is neither a compiled model (genai_config.json) nor a Hugging Face checkpoint "
        "(config.json)",
        hint="pass `--reference DIR` with the fp32 checkpoint or the fp32-cpu compile",
    )


def _hub_snapshot(repo: str, revision: str | None) -> Path | None:
    """The Hub checkpoint through the compile's own download path (the Hugging Face cache when
    it holds the files, else a download); None when it cannot be had."""
    from curator.hub import download_for_compile  # start-up: loads curator.hub

    try:
        found, _sha = download_for_compile(repo, revision)
    except CuratorError:
        return None
    return found


def _gguf_reference(gguf: dict[str, Any], repo: Any) -> Reference | None:
    """A GGUF source's reference: its dequantized checkpoint (the best fp32 there is), rebuilt
    from the file the manifest names when the work area no longer has it and the bytes match."""
    from curator.compile.gguf_source import dequantize  # start-up: loads curator.compile

    path = Path(str(gguf.get("path", "")))
    if not path.is_file() or sha256_file(path) != gguf.get("sha256"):
        return None  # another file now: never dequantize it only to throw the result away
    checkpoint, _ = dequantize(path)
    return Reference("transformers", checkpoint, _gguf_label(gguf, repo))


def _gguf_label(gguf: dict[str, Any], repo: Any) -> str:
    return f"{repo} (dequantized {gguf.get('file')})" if repo else f"dequantized {gguf.get('file')}"


def default_reference(model_dir: Path) -> Reference:
    """The source recorded in the manifest: a local directory, or a cached Hub snapshot; for a
    GGUF source, the checkpoint dequantized from it."""
    manifest = read_manifest(model_dir) or {}
    raw_source = manifest.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    repo = source.get("repo")
    gguf = manifest.get("gguf")
    source_dir = manifest.get("sourceDir")  # written by curator compile
    if isinstance(source_dir, str) and Path(source_dir).is_dir():
        label = _gguf_label(gguf, repo) if isinstance(gguf, dict) else None
        return reference_from_dir(
            Path(source_dir), label=label or str(repo or Path(source_dir).name)
        )
    if isinstance(gguf, dict):
        found = _gguf_reference(gguf, repo)
        if found is not None:
            return found
    if (
        isinstance(repo, str)
        and "/" in repo
        and not repo.startswith("local:")
        and not isinstance(gguf, dict)  # a GGUF's reference is its dequantized checkpoint only
    ):
        snapshot = _hub_snapshot(repo, source.get("revision"))
        if snapshot is not None and (snapshot / "config.json").is_file():
            return Reference("transformers", snapshot, repo)
    raise UsageProblem(
        f"no fp32 reference found for {model_dir.name}: its manifest records no local source "
        "directory, and its Hub checkpoint cannot be had",
        hint="pass `curator fidelity ID --reference DIR` (the fp32 checkpoint or fp32-cpu compile)",
    )


def resolve_reference(source: str | None, model_dir: Path, cache_root: Path) -> Reference:
    """``--reference``: a directory, or a compiled model id in the cache; default: the manifest."""
    if source is None:
        return default_reference(model_dir)
    path = Path(source).expanduser()
    if path.is_dir():
        return reference_from_dir(path)
    try:
        compiled = find_compiled(cache_root, source)
    except NotFound:
        raise NotFound(
            f"reference {source!r} is neither a directory nor a compiled model in {cache_root}",
            hint="pass `--reference DIR` (fp32 checkpoint or fp32-cpu compile) or a compiled id",
        ) from None
    return Reference("onnx", compiled, source)
