"""A GGUF file as a compile source: a local ``.gguf`` or one file of a Hub repo (``--gguf-file``).

The file is dequantized once (curator.formats.gguf, keyed by its sha256 under ``$CURATOR_HOME/gguf``) into
an fp32 Hugging Face checkpoint, and the recipe runs on that. The weights keep the GGUF's
quantization error: the output says so, the manifest records the GGUF's sha256 and quantization
types, and fidelity's default reference is the dequantized checkpoint (the best fp32 there is).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator import errors
from curator.compile.child import child_answer
from curator.errors import PreflightError
from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.download import record_ref
from curator.hub.endpoint import hf_cache_dir
from curator.hub.errors import HubOffline, HubStalled, HubUnavailable
from curator.hub.transport import body_limit, hub_deadline, plain_http

GGUF_SUFFIX = ".gguf"
# A quantization tag at the end of a GGUF file name: .Q4_1, -Q4_K_M, .f16, -IQ3_XS, .BF16 ...
_QUANT_TAG = re.compile(r"[.\-_](i?q\d[a-z0-9_]*|f16|f32|bf16|fp16|fp32)$", re.IGNORECASE)


@dataclass(frozen=True)
class GgufOrigin:
    """The GGUF file a compile started from (recorded in the manifest as ``gguf``)."""

    path: Path
    file: str
    sha256: str
    quantization_types: tuple[str, ...]

    def manifest_record(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": str(self.path),
            "sha256": self.sha256,
            "quantizationTypes": list(self.quantization_types),
        }

    def note(self) -> str:
        return already_quantized_note(self.file, self.quantization_types)


def already_quantized_note(file: str, quantization_types: tuple[str, ...] = ()) -> str:
    """The plain statement every GGUF compile prints."""
    types = f" ({', '.join(quantization_types)})" if quantization_types else ""
    return (
        f"the source {file} was already quantized{types}: the compile starts from its dequantized "
        "fp32 weights and cannot restore what that quantization lost; fidelity compares with the "
        "dequantized checkpoint, not with the original model"
    )


def is_gguf_file(path: Path) -> bool:
    """A regular file named ``*.gguf`` or starting with the GGUF magic bytes."""
    if not path.is_file():
        return False
    if path.suffix.lower() == GGUF_SUFFIX:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"GGUF"
    except OSError:
        return False


def model_name(file_name: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``SmolLM2-135M-Instruct`` (before slugging)."""
    stem = file_name[: -len(GGUF_SUFFIX)] if file_name.lower().endswith(GGUF_SUFFIX) else file_name
    stem = Path(stem).name
    return _QUANT_TAG.sub("", stem) or stem


def repo_model_name(repo_name: str) -> str:
    """``SmolLM2-135M-Instruct-GGUF`` -> ``SmolLM2-135M-Instruct``."""
    return re.sub(r"[-_.]gguf$", "", repo_name, flags=re.IGNORECASE) or repo_name


def dequantize(path: Path) -> tuple[Path, GgufOrigin]:
    """The dequantized checkpoint directory and the file's origin record (built once per sha256,
    in a child process: see :mod:`curator.compile.gguf_child`)."""
    from curator.formats.gguf import read_gguf_facts  # start-up: kept off --help

    # the file against its own tensor table (a truncated download is one line naming its sizes),
    # before a child process and torch start on it
    read_gguf_facts(path)
    answer = child_answer(
        "curator.compile.gguf_child",
        str(path.absolute()),
        failed=f"dequantizing {path.name} failed",
        hint=f"check the file with curator info {path}",
    )
    if "error" in answer:
        kinds = {"InputFileError": errors.InputFileError, "UsageProblem": errors.UsageProblem}
        kind = kinds.get(str(answer.get("kind")), errors.PreflightError)
        raise kind(str(answer["error"]), hint=answer.get("hint"))
    origin = GgufOrigin(
        path=path.absolute(),
        file=path.name,
        sha256=str(answer["ggufSha256"]),
        quantization_types=tuple(str(t) for t in answer["quantizationTypes"]),
    )
    return Path(answer["checkpointDir"]), origin


def parameter_count(path: Path) -> tuple[int | None, int | None]:
    """(parameters, context length) from the GGUF header alone (no tensor data read)."""
    from curator.formats.gguf import read_gguf_facts  # start-up: kept off --help

    facts = read_gguf_facts(path)
    return facts.parameter_count or None, facts.context_length


def has_chat_template(path: Path) -> bool:
    """Whether the GGUF header carries ``tokenizer.chat_template``."""
    from curator.formats.gguf import read_gguf_facts  # start-up: kept off --help

    return read_gguf_facts(path).has_chat_template


def download_gguf(repo_id: str, filename: str, revision: str | None) -> tuple[Path, str]:
    """One GGUF file of a Hub repo into the Hugging Face cache: (local path, commit sha).

    Offline, or with the Hub unreachable, a copy already in the cache is used when there is one.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    check_repo_id(repo_id)
    cache = hf_cache_dir()
    try:
        api = make_api()
        # one transfer: it ends one deadline after its last progress; the file may not be larger
        # than the Hub's file metadata says (refused on the announced length, before the body)
        with hub_errors(repo_id, revision), plain_http(), hub_deadline(progress=True):
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
            repo_id = info.id or repo_id
            sha = info.sha or revision or "main"
            names = sorted(s.rfilename for s in info.siblings or [])
            if filename not in names:
                ggufs = [n for n in names if n.lower().endswith(GGUF_SUFFIX)]
                raise PreflightError(
                    f"{repo_id} has no file {filename}",
                    hint=f"its GGUF files: {', '.join(ggufs)}" if ggufs else "it has no GGUF file",
                )
            listed = next((s.size for s in info.siblings or [] if s.rfilename == filename), None)
            with body_limit(listed) if listed is not None else contextlib.nullcontext():
                local = hf_hub_download(
                    repo_id, filename, revision=sha, cache_dir=cache, endpoint=api.endpoint
                )
        # downloading by sha writes no ref: record revision -> sha so that offline finds it
        record_ref(cache, repo_id, revision or "main", sha)
        return Path(local), sha
    except (HubOffline, HubStalled, HubUnavailable):
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache, revision=revision)
        if not isinstance(cached, str):
            raise
        found = Path(cached)
        snapshot = found.parents[len(Path(filename).parts) - 1]  # .../snapshots/<sha>
        return found, snapshot.name
