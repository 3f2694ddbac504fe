"""Small local models for tests, demos and benchmarks: built offline, deterministic from a seed."""

from __future__ import annotations

from curator.devmodels.tiny import (
    ARCHITECTURES,
    BUILDER_VERSION,
    CHATML_TEMPLATE,
    build_tiny_model,
    build_tokenizer,
    corpus_files,
    corpus_texts,
    save_tokenizer,
)

__all__ = [
    "ARCHITECTURES",
    "BUILDER_VERSION",
    "CHATML_TEMPLATE",
    "build_tiny_model",
    "build_tokenizer",
    "corpus_files",
    "corpus_texts",
    "save_tokenizer",
]
