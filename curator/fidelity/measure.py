"""Run the fidelity worker in a subprocess and summarise what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from curator.errors import CuratorError
from curator.fidelity.stats import mean, percentile, perplexity
from curator.fidelity.text import FidelityText
from curator.fidelity.types import FidelityResult, Reference, ReferenceKind, TokenStats

DEFAULT_WINDOW = 512
# How a transformers reference holds its weights (it computes in fp32 either way; see
# curator.fidelity.worker.hold_dtype): "auto" keeps a bf16/fp16 checkpoint in 16 bits and an fp32
# one in fp32 up to 4 GiB; "bfloat16" halves an fp32 checkpoint's memory, "float32" is the old way.
ReferenceDtype = Literal["auto", "float32", "bfloat16"]


class FidelityError(CuratorError):
    """The fidelity measurement could not run (the models failed to load or disagree in shape)."""


def _worker_env(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_json_worker(
    module: str,
    request: dict[str, Any],
    workdir: Path,
    *,
    timeout: float | None,
    error: type[CuratorError],
    timed_out: str,
    timed_out_hint: str,
    failed: str,
    failed_hint: str,
) -> dict[str, Any]:
    """The answer of ``python -m MODULE REQUEST.json RESULT.json`` run in a fresh process (Hub
    offline, ``request["threads"]`` OpenMP threads), both files in ``workdir``.

    A timeout raises ``error("{timed_out} after N s")``; a non-zero exit or no result file raises
    ``error("{failed} (exit CODE): LAST STDERR LINE")``."""
    request_path, result_path = workdir / "request.json", workdir / "result.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, str(request_path), str(result_path)],
            capture_output=True,
            text=True,
            env=_worker_env(request.get("threads")),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{timed_out} after {exc.timeout:.0f} s", hint=timed_out_hint) from None
    if proc.returncode != 0 or not result_path.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise error(f"{failed} (exit {proc.returncode}): {last}", hint=failed_hint)
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result


def run_worker(
    model_dir: Path,
    reference: Reference,
    text: FidelityText,
    *,
    window: int = DEFAULT_WINDOW,
    max_tokens: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    model_kind: ReferenceKind = "onnx",
    tokens_from: Path | None = None,
    reference_dtype: ReferenceDtype = "auto",
) -> TokenStats:
    """Per-position figures from ``curator.fidelity.worker`` run in a fresh Python process.

    ``model_kind="transformers"`` scores an fp32 Hugging Face checkpoint as the candidate (e.g. a
    dequantized GGUF); ``tokens_from`` is then the compiled model whose tokenizer cuts the text.
    ``reference_dtype``: how a transformers reference holds its weights (see ReferenceDtype).
    """
    if window < 2:
        raise FidelityError(f"window {window} is too small", hint="use `--window 64` or more")
    request = {
        "model": str(model_dir),
        "reference_kind": reference.kind,
        "reference_path": str(reference.path),
        "text_file": str(text.path),
        "window": window,
        "max_tokens": max_tokens,
        "threads": threads,
        "model_kind": model_kind,
        "tokens_from": str(tokens_from) if tokens_from else None,
        "reference_dtype": reference_dtype,
    }
    with tempfile.TemporaryDirectory(prefix="curator-fidelity-") as tmp:
        result = run_json_worker(
            "curator.fidelity.worker",
            request,
            Path(tmp),
            timeout=timeout,
            error=FidelityError,
            timed_out="fidelity run timed out",
            timed_out_hint="measure fewer tokens with `curator fidelity ID --max-tokens N`",
            failed="fidelity worker failed",
            failed_hint="rerun with CURATOR_DEBUG=1; check the model with `curator smoke ID`",
        )
    if not result.get("ok"):
        raise FidelityError(
            f"fidelity run failed: {result.get('error')}",
            hint="pass the model's own fp32 source with `--reference DIR`",
        )
    return TokenStats(
        kl=tuple(result["kl"]),
        agree=tuple(result["agree"]),
        nll_model=tuple(result["nll_model"]),
        nll_reference=tuple(result["nll_reference"]),
        windows=int(result["windows"]),
        vocab_size=int(result["vocab_size"]),
        window=int(result.get("window", window)),
        reference_dtype=result.get("reference_dtype"),
        peak_rss_bytes=int(result.get("peak_rss_bytes") or 0),
    )


def summarize(
    stats: TokenStats,
    *,
    model: str,
    model_dir: Path,
    reference: Reference,
    text: FidelityText,
    window: int,
    seconds: float,
    date: str | None = None,
) -> FidelityResult:
    """Fold per-position figures into one FidelityResult."""
    if not stats.kl:
        raise FidelityError("no positions were scored", hint="pass a longer `--text FILE`")
    return FidelityResult(
        model=model,
        model_path=model_dir,
        reference=reference.describe(),
        text=text.name,
        text_sha256=text.sha256,
        tokens=len(stats.kl),
        windows=stats.windows,
        window=stats.window or window,
        kl_mean=mean(stats.kl),
        kl_p99=percentile(stats.kl, 99),
        kl_max=max(stats.kl),
        top1_agreement=sum(stats.agree) / len(stats.agree),
        perplexity=perplexity(stats.nll_model),
        reference_perplexity=perplexity(stats.nll_reference),
        date=date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=round(seconds, 3),
        reference_dtype=stats.reference_dtype,
        peak_rss_bytes=stats.peak_rss_bytes,
    )


def measure_fidelity(
    model_dir: Path,
    reference: Reference,
    text: FidelityText,
    *,
    model: str | None = None,
    window: int = DEFAULT_WINDOW,
    max_tokens: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    model_kind: ReferenceKind = "onnx",
    tokens_from: Path | None = None,
    reference_dtype: ReferenceDtype = "auto",
) -> FidelityResult:
    """Teacher-forced KL, top-1 agreement and perplexities of ``model_dir`` against ``reference``
    (``model_kind`` and ``tokens_from``: see :func:`run_worker`)."""
    start = time.monotonic()
    stats = run_worker(
        model_dir,
        reference,
        text,
        window=window,
        max_tokens=max_tokens,
        threads=threads,
        timeout=timeout,
        model_kind=model_kind,
        tokens_from=tokens_from,
        reference_dtype=reference_dtype,
    )
    return summarize(
        stats,
        model=model or model_dir.name,
        model_dir=model_dir,
        reference=reference,
        text=text,
        window=window,
        seconds=time.monotonic() - start,
    )
