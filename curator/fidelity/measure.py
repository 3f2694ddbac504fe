"""Run the fidelity worker in a subprocess and summarise what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from curator.errors import CuratorError
from curator.fidelity.refcache import (
    default_cache_dir,
    discard,
    entry_for,
    evict,
    ids_digest,
    read_meta,
    read_tokens,
    reference_digest,
    tokenizer_digest,
    tokens_path,
    touch,
)
from curator.fidelity.stats import mean, percentile, perplexity
from curator.fidelity.text import FidelityText
from curator.fidelity.types import FidelityResult, Reference, ReferenceKind, TokenStats
from curator.fidelity.worker import context_length, cut_windows, hold_dtype

T = TypeVar("T")
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


def _check(result: dict[str, Any]) -> None:
    if not result.get("ok"):
        raise FidelityError(
            f"fidelity run failed: {result.get('error')}",
            hint="pass the model's own fp32 source with `--reference DIR`",
        )


def _run_mode(request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """One of the worker's single-model steps (see curator.fidelity.worker), in its own process."""
    with tempfile.TemporaryDirectory(prefix="curator-fidelity-") as tmp:
        result = run_json_worker(
            "curator.fidelity.worker",
            request,
            Path(tmp),
            timeout=timeout,
            error=FidelityError,
            timed_out=f"fidelity run ({request['mode']}) timed out",
            timed_out_hint="measure fewer tokens with `curator fidelity ID --max-tokens N`",
            failed=f"fidelity worker ({request['mode']}) failed",
            failed_hint="rerun with CURATOR_DEBUG=1; check the model with `curator smoke ID`",
        )
    _check(result)
    return result


def _usable(cache_dir: Path) -> bool:
    """The reference cache can be written (else the measurement holds both models in one process,
    as without a cache, rather than fail)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(cache_dir, os.W_OK)


def _store_and_read_back(
    request: dict[str, Any],
    read_back: Callable[[], T | None],
    unreadable: str,
    *,
    cache_dir: Path,
    timeout: float | None,
    peaks: list[int],
) -> T:
    """One worker process that stores something in the cache (its peak kept in ``peaks``), then
    what it stored, read back; FidelityError ``unreadable`` when it does not read back."""
    done = _run_mode(request, timeout)
    peaks.append(int(done.get("peak_rss_bytes") or 0))
    stored = read_back()
    if stored is None:
        raise FidelityError(
            unreadable, hint=f"check the disk, or remove {cache_dir} and rerun `curator fidelity`"
        )
    return stored


def _run_cached(
    model_dir: Path,
    reference: Reference,
    text: FidelityText,
    *,
    cache_dir: Path,
    window: int,
    max_tokens: int | None,
    threads: int | None,
    timeout: float | None,
    model_kind: ReferenceKind,
    tokens_from: Path | None,
    reference_dtype: ReferenceDtype,
    reference_sha256: str | None,
) -> TokenStats:
    """The measurement in up to three processes, one model in each (see curator.fidelity.refcache):
    the text's ids and the reference's side come from the cache when it holds them whole."""
    source = tokens_from or model_dir
    context = context_length(source)
    window = min(window, context) if context else window
    common = {"threads": threads, "window": window, "max_tokens": max_tokens}
    tokens_file = tokens_path(cache_dir, tokenizer_digest(source), text.sha256)
    peaks: list[int] = []
    ids = read_tokens(tokens_file)
    if ids is None:
        ids = _store_and_read_back(
            {
                **common,
                "mode": "tokenize",
                "text_file": str(text.path),
                "tokens_from": str(source),
                "tokens_file": str(tokens_file),
            },
            lambda: read_tokens(tokens_file),
            f"the token ids just stored in {tokens_file} do not read back",
            cache_dir=cache_dir,
            timeout=timeout,
            peaks=peaks,
        )
    windows = cut_windows(ids, window, max_tokens)
    if not windows:
        raise FidelityError(
            f"the text gives only {len(ids)} token(s); at least 2 are needed",
            hint="pass a longer `--text FILE`",
        )
    kept = ids[: int(max_tokens)] if max_tokens else ids
    held = (
        hold_dtype(reference.path, reference_dtype) if reference.kind == "transformers" else "onnx"
    )
    entry = entry_for(
        cache_dir,
        reference_sha=reference_sha256 or reference_digest(reference.kind, reference.path),
        reference_kind=reference.kind,
        reference_dtype=held,
        ids_sha=ids_digest(kept),
        window=window,
        positions=sum(len(w) - 1 for w in windows),
    )
    located = {
        **common,
        "tokens_file": str(tokens_file),
        "entry_dir": str(entry.directory),
    }
    meta = read_meta(entry)
    cached = meta is not None
    if meta is None:
        discard(entry)  # whatever is there is not a whole entry: never trusted
        meta = _store_and_read_back(
            {
                **located,
                "mode": "reference",
                "reference_kind": reference.kind,
                "reference_path": str(reference.path),
                "reference_dtype": reference_dtype,
                "entry_key": entry.key,
                "positions": entry.positions,
            },
            lambda: read_meta(entry),
            f"the reference just stored in {entry.directory} does not read back",
            cache_dir=cache_dir,
            timeout=timeout,
            peaks=peaks,
        )
        evict(cache_dir)
    else:
        touch(entry)
    result = _run_mode(
        {**located, "mode": "score", "model": str(model_dir), "model_kind": model_kind},
        timeout,
    )
    peaks.append(int(result.get("peak_rss_bytes") or 0))
    return _token_stats(
        result,
        window,
        reference_dtype=meta.get("referenceDtype"),
        peak_rss_bytes=max(peaks),
        reference_cached=cached,
        reference_seconds=float(meta.get("seconds") or 0.0),
        reference_peak_rss_bytes=int(meta.get("peakRssBytes") or 0),
    )


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
    reference_cache: Path | bool = True,
    reference_sha256: str | None = None,
) -> TokenStats:
    """Per-position figures from ``curator.fidelity.worker`` run in fresh Python processes.

    ``model_kind="transformers"`` scores an fp32 Hugging Face checkpoint as the candidate (e.g. a
    dequantized GGUF); ``tokens_from`` is then the compiled model whose tokenizer cuts the text.
    ``reference_dtype``: how a transformers reference holds its weights (see ReferenceDtype).
    ``reference_cache``: True (``$CURATOR_HOME/fidelity/reference``) or a directory: the reference
    runs alone and its side is kept (curator.fidelity.refcache), the compiled model is scored in
    another process; False (or a directory that cannot be written): both models in one process,
    nothing kept (the peak is their sum; the result's ``reference_cached`` is None).
    ``reference_sha256``: the reference's content digest when the caller has it
    (refcache.reference_digest; computed otherwise).
    """
    if window < 2:
        raise FidelityError(f"window {window} is too small", hint="use `--window 64` or more")
    cache_dir = default_cache_dir() if reference_cache is True else Path(reference_cache or ".")
    if reference_cache is not False and _usable(cache_dir):
        return _run_cached(
            model_dir,
            reference,
            text,
            cache_dir=cache_dir,
            window=window,
            max_tokens=max_tokens,
            threads=threads,
            timeout=timeout,
            model_kind=model_kind,
            tokens_from=tokens_from,
            reference_dtype=reference_dtype,
            reference_sha256=reference_sha256,
        )
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
    _check(result)
    return _token_stats(
        result,
        window,
        reference_dtype=result.get("reference_dtype"),
        peak_rss_bytes=int(result.get("peak_rss_bytes") or 0),
    )


def _token_stats(result: dict[str, Any], window: int, **held: Any) -> TokenStats:
    """The per-position figures of a worker's ``result``; ``held``: how the models were held
    (reference dtype, peak, cache figures)."""
    return TokenStats(
        kl=tuple(result["kl"]),
        agree=tuple(result["agree"]),
        nll_model=tuple(result["nll_model"]),
        nll_reference=tuple(result["nll_reference"]),
        windows=int(result["windows"]),
        vocab_size=int(result["vocab_size"]),
        window=int(result.get("window", window)),
        **held,
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
        reference_cached=stats.reference_cached,
        reference_seconds=stats.reference_seconds,
        reference_peak_rss_bytes=stats.reference_peak_rss_bytes,
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
    reference_cache: Path | bool = True,
    reference_sha256: str | None = None,
) -> FidelityResult:
    """Teacher-forced KL, top-1 agreement and perplexities of ``model_dir`` against ``reference``
    (``model_kind``, ``tokens_from``, ``reference_cache``: see :func:`run_worker`)."""
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
        reference_cache=reference_cache,
        reference_sha256=reference_sha256,
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
