"""Which of a repository's files a compile needs, and what they weigh."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

# Small files a compile reads besides the weights (config, tokenizer, chat template, generation).
SUPPORT_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
SAFETENSORS_WEIGHTS = ("*.safetensors", "model.safetensors.index.json")
PYTORCH_WEIGHTS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
# Repository code, needed only when config.json's auto_map points at it.
CODE_FILES = ("*.py",)

DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8,
    "F32": 4, "I32": 4, "U32": 4,
    "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


def weight_format(paths: Iterable[str]) -> str | None:
    """``safetensors`` if the top level holds safetensors weights, ``pytorch`` for .bin, else None."""
    top = [p for p in paths if "/" not in p]
    if any(fnmatch.fnmatch(p, "*.safetensors") for p in top):
        return "safetensors"
    if any(fnmatch.fnmatch(p, "pytorch_model*.bin") for p in top):
        return "pytorch"
    return None


def compile_files(paths: Iterable[str], *, with_code: bool = False) -> tuple[str, ...]:
    """The top-level files a compile downloads: support files, one weight format, and repository
    code when ``with_code`` (config.json has auto_map). Sorted."""
    top = sorted({p for p in paths if "/" not in p})
    fmt = weight_format(top)
    patterns: list[str] = list(SUPPORT_FILES)
    if fmt == "safetensors":
        patterns += SAFETENSORS_WEIGHTS
    elif fmt == "pytorch":
        patterns += PYTORCH_WEIGHTS
    if with_code:
        patterns += CODE_FILES
    return tuple(p for p in top if any(fnmatch.fnmatch(p, pat) for pat in patterns))


def bytes_from_dtype_counts(counts: dict[str, int]) -> int | None:
    """Weight bytes from parameter counts per safetensors dtype (None if a dtype is unknown)."""
    total = 0
    for dtype, count in counts.items():
        size = DTYPE_BYTES.get(dtype.upper())
        if size is None:
            return None
        total += size * count
    return total
