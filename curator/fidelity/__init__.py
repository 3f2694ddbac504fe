"""How much a compiled (e.g. int4) model's next-token distributions drift from its fp32 source.

Teacher-forced over a fixed text: per-token KL(reference || model), top-1 agreement and the
perplexity of both, measured in subprocesses (onnxruntime-genai never loads in the caller): the
reference alone, its side stored once per source, text and window (curator.fidelity.refcache),
then the compiled model alone against it.
"""

from __future__ import annotations

from curator.fidelity.locate import (
    default_reference,
    find_compiled,
    model_label,
    reference_from_dir,
    resolve_reference,
)
from curator.fidelity.measure import DEFAULT_WINDOW, FidelityError, measure_fidelity, summarize
from curator.fidelity.record import record_in_manifest, record_in_registry
from curator.fidelity.text import FidelityText, default_text_path, load_text
from curator.fidelity.types import FidelityResult, Reference, Thresholds, TokenStats

__all__ = [
    "DEFAULT_WINDOW",
    "FidelityError",
    "FidelityResult",
    "FidelityText",
    "Reference",
    "Thresholds",
    "TokenStats",
    "default_reference",
    "default_text_path",
    "find_compiled",
    "load_text",
    "measure_fidelity",
    "model_label",
    "record_in_manifest",
    "record_in_registry",
    "reference_from_dir",
    "resolve_reference",
    "summarize",
]
