"""GGUF files dequantized into an fp32 Hugging Face checkpoint (a GGUF as a compile source).

``dequantize_gguf(path)``: transformers' GGUF loader dequantizes every tensor to fp32; a fresh
model is built from the GGUF's config, given that state dict and saved (the loaded model itself
refuses ``save_pretrained``), with the tokenizer and chat template from the GGUF metadata. The
checkpoint is written atomically (temp dir + rename) under ``$CURATOR_HOME/gguf/<sha256>/`` and
reused when present, so a second call costs one sha256 of the file. The header facts come from
:func:`curator.formats.gguf.read_gguf_facts`.

The dequantized weights still sit on the GGUF's quantization grid: the source was already
quantized, and nothing recovers what that lost. Callers should say so to the user.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from curator.cache.modeldir import sha256_file
from curator.errors import InputFileError, PreflightError, first_line
from curator.formats.gguf import read_gguf_facts
from curator.jsonio import dumps_stable, parse_json, write_text_atomic
from curator.paths import curator_home

MARKER = "curator-gguf.json"  # written last into a finished checkpoint directory


@dataclass(frozen=True)
class GgufCheckpoint:
    """An fp32 Hugging Face checkpoint dequantized from a GGUF file.

    ``checkpoint_dir`` holds config.json, model.safetensors, tokenizer files and chat_template.jinja;
    ``architecture`` is the transformers class (e.g. ``LlamaForCausalLM``), ``gguf_architecture``
    the GGUF's name for it; ``reused`` is True when an earlier dequantization of the same bytes
    (same sha256) was found and nothing was rebuilt.
    """

    checkpoint_dir: Path
    gguf_path: Path
    gguf_sha256: str
    quantization_types: tuple[str, ...]
    architecture: str
    gguf_architecture: str
    parameter_count: int
    reused: bool


def gguf_work_dir(home: Path | None = None) -> Path:
    """Where dequantized checkpoints live: ``<curator home>/gguf``."""
    return (home or curator_home()) / "gguf"


def _from_marker(directory: Path, gguf_path: Path) -> GgufCheckpoint | None:
    marker = directory / MARKER
    if not marker.is_file():
        return None
    try:
        data = parse_json(marker.read_text(encoding="utf-8"), str(marker))
        return GgufCheckpoint(
            checkpoint_dir=directory,
            gguf_path=gguf_path,
            gguf_sha256=str(data["ggufSha256"]),
            quantization_types=tuple(str(t) for t in data["quantizationTypes"]),
            architecture=str(data["architecture"]),
            gguf_architecture=str(data["ggufArchitecture"]),
            parameter_count=int(data["parameterCount"]),
            reused=True,
        )
    except (InputFileError, KeyError, TypeError, ValueError, OSError):
        return None  # an unreadable marker: rebuild


def dequantize_gguf(path: Path | str, home: Path | None = None) -> GgufCheckpoint:
    """The fp32 Hugging Face checkpoint of a GGUF file, built once per file content (sha256).

    ``home`` overrides the curator home (default ``$CURATOR_HOME``). Raises InputFileError for a
    missing or malformed file and PreflightError when transformers cannot load its architecture.
    """
    path = Path(path).absolute()
    facts = read_gguf_facts(path)
    sha = sha256_file(path)
    target = gguf_work_dir(home) / sha
    found = _from_marker(target, path)
    if found is not None:
        return found
    if target.exists():  # an unfinished or broken directory from an interrupted run
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha[:16]}.", suffix=".tmp", dir=target.parent))
    try:
        architecture, parameters = _write_checkpoint(path, staging)
        marker = {
            "architecture": architecture,
            "ggufArchitecture": facts.architecture,
            "ggufFile": path.name,
            "ggufSha256": sha,
            "parameterCount": parameters,
            "quantizationTypes": list(facts.quantization_types),
        }
        write_text_atomic(staging / MARKER, dumps_stable(marker, sort_keys=True))
        try:
            staging.rename(target)
        except OSError:
            # another process finished the same file first: use its copy
            done = _from_marker(target, path)
            if done is None:
                raise
            return done
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return GgufCheckpoint(
        checkpoint_dir=target,
        gguf_path=path,
        gguf_sha256=sha,
        quantization_types=facts.quantization_types,
        architecture=architecture,
        gguf_architecture=facts.architecture,
        parameter_count=parameters,
        reused=False,
    )


def _write_checkpoint(path: Path, out: Path) -> tuple[str, int]:
    """Dequantize with transformers, save a fresh fp32 model + tokenizer; (architecture, params)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        folder, name = str(path.parent), path.name
        try:
            # transformers' GGUF loader draws its own progress bar: keep it off the user's terminal
            with contextlib.redirect_stderr(io.StringIO()):
                loaded = AutoModelForCausalLM.from_pretrained(
                    folder, gguf_file=name, dtype=torch.float32
                )
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
            # RuntimeError: tensors missing or of the wrong shape for the architecture it names
            raise PreflightError(
                f"transformers cannot dequantize {path.name}: {first_line(exc, limit=300)}",
                hint="use a GGUF of an architecture transformers' GGUF loader supports "
                "(llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3, ...)",
            ) from None
        config = copy.deepcopy(loaded.config)
        config.dtype = torch.float32
        # the weights are plain fp32 now: a "gguf" quantization_config would make every consumer
        # (transformers, Olive's model builder) treat the checkpoint as quantized
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        try:
            fresh.load_state_dict(loaded.state_dict(), strict=True)
        except RuntimeError as exc:
            raise PreflightError(
                f"{path.name} does not hold the weights its metadata describes: {first_line(exc, limit=300)}",
                hint="check the file with curator info; download it again if it is truncated",
            ) from None
        del loaded
        fresh.eval()
        fresh.save_pretrained(out)
        tokenizer.save_pretrained(out)
        architecture = (config.architectures or [type(fresh).__name__])[0]
        return str(architecture), int(fresh.num_parameters())
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
