"""What a fidelity measurement is asked and what it reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ReferenceKind = Literal["transformers", "onnx"]


@dataclass(frozen=True)
class Reference:
    """The fp32 model the compiled one is compared with.

    ``transformers``: a Hugging Face checkpoint directory run in fp32 with PyTorch;
    ``onnx``: a compiled model directory (e.g. the ``fp32-cpu`` compile) run with onnxruntime-genai.
    """

    kind: ReferenceKind
    path: Path
    label: str

    def describe(self) -> str:
        """``transformers-fp32:<label>`` or ``onnx:<label>`` (the registry's ``reference``)."""
        prefix = "transformers-fp32" if self.kind == "transformers" else "onnx"
        return f"{prefix}:{self.label}"[:300]


@dataclass(frozen=True)
class TokenStats:
    """Per scored position: KL(ref || model), top-1 agreement, and each model's NLL of the truth."""

    kl: tuple[float, ...]
    agree: tuple[bool, ...]
    nll_model: tuple[float, ...]
    nll_reference: tuple[float, ...]
    windows: int
    vocab_size: int
    window: int = 0  # tokens per forward pass actually used (0: as requested)
    reference_dtype: str | None = None  # how a transformers reference held its weights
    peak_rss_bytes: int = 0  # the worker process's peak resident memory (0: not measured)
    # The reference cache (curator.fidelity.refcache): None when not used (both models in one
    # process); else whether the reference's side was read from it, the seconds computing it took
    # (now or when it was stored) and that process's peak.
    reference_cached: bool | None = None
    reference_seconds: float = 0.0
    reference_peak_rss_bytes: int = 0


@dataclass(frozen=True)
class FidelityResult:
    """Teacher-forced comparison of a compiled model with its fp32 reference on one text."""

    model: str
    model_path: Path
    reference: str
    text: str
    text_sha256: str
    tokens: int
    windows: int
    window: int
    kl_mean: float
    kl_p99: float
    kl_max: float
    top1_agreement: float
    perplexity: float
    reference_perplexity: float
    date: str
    seconds: float
    # How a transformers reference held its weights ("bfloat16": computed in fp32 all the same);
    # None for a compiled (onnx) reference.
    reference_dtype: str | None = None
    # Peak resident memory of the measuring process (both models and the logits; 0: unknown); with
    # the reference cache, the largest of its processes' (one model each).
    peak_rss_bytes: int = 0
    # "reference: cached": True when the reference's side came from the cache (the reference did
    # not run), False when it ran now and was stored, None without the cache.
    reference_cached: bool | None = None
    reference_seconds: float = 0.0  # what computing the reference took (now or when stored)
    reference_peak_rss_bytes: int = 0  # the reference process's own peak (when it ran)

    def to_record(self) -> dict[str, Any]:
        """The registry's ``fidelity`` object (schemas/models.schema.json ``$defs/fidelity``)."""
        return {
            "reference": self.reference,
            "textSha256": self.text_sha256,
            "tokens": self.tokens,
            "klMean": round(self.kl_mean, 6),
            "klP99": round(self.kl_p99, 6),
            "top1Agreement": round(self.top1_agreement, 6),
            "perplexity": round(self.perplexity, 4),
            "referencePerplexity": round(self.reference_perplexity, 4),
            "date": self.date,
        }


@dataclass(frozen=True)
class Thresholds:
    """Limits a result must meet (None: not checked)."""

    max_kl: float | None = None
    min_top1: float | None = None

    def violations(self, result: FidelityResult) -> tuple[str, ...]:
        """One line per limit the result breaks."""
        found: list[str] = []
        if self.max_kl is not None and result.kl_mean > self.max_kl:
            found.append(f"mean KL {result.kl_mean:.4g} nats exceeds the limit {self.max_kl:.4g}")
        if self.min_top1 is not None and result.top1_agreement < self.min_top1:
            found.append(
                f"top-1 agreement {result.top1_agreement:.2%} is below the limit {self.min_top1:.2%}"
            )
        return tuple(found)
