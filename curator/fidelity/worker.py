"""The fidelity subprocess: ``python -m curator.fidelity.worker REQUEST.json RESULT.json``.

Runs in its own process because onnxruntime_genai must never load where foundry_local_sdk was
initialised. Tokenizes the text with the compiled model's own tokenizer, cuts the ids into
windows, runs each window through the compiled model (onnxruntime-genai, one teacher-forced
forward pass giving logits at every position) and through the reference (transformers computing in
fp32, or another compiled model), and writes per-position figures as JSON.

The transformers reference computes in fp32 but need not hold an fp32 copy of the model: with
``reference_dtype`` "bfloat16" (or "auto" on a 16-bit checkpoint, or on one too big to hold in
fp32) its matrices stay in 16 bits and each module's are widened to fp32 just while it runs, then
narrowed back (exact: they came from 16 bits). On a bf16 checkpoint, as Hub checkpoints are, that
is the same arithmetic as the fp32 reference at half its memory (plus the largest single matrix in
fp32, e.g. the lm_head); an fp32 checkpoint held in bf16 has its weights rounded to bf16 first.

``request["mode"]``: "both" (the default) holds both models in this one process. With the reference
cache (curator.fidelity.refcache) the parent runs up to three processes one after another, so the
peak is the largest of them, not the sum: "tokenize" (the compiled model's tokenizer cuts the text
into ids, stored), "reference" (the reference alone, its log-probabilities stored window by window)
and "score" (the compiled model alone, scored against the stored reference window by window).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.fidelity.refcache import (
    EXACT,
    EXACT_COLUMNS,
    LOGPROBS,
    Entry,
    RowReader,
    RowWriter,
    finish_entry,
    write_tokens,
    writing,
)
from curator.formats.safetensors import read_safetensors_header
from curator.portable import peak_rss_bytes

# Positions scored per block when comparing distributions (bounds memory for large vocabularies).
_ROWS = 64
# "auto" holds an fp32 checkpoint in fp32 up to this size (exact, and small); above, in bf16.
FP32_HOLD_LIMIT_BYTES = 4 * 2**30
_STORED_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float32"}


class WorkerError(Exception):
    """A problem the parent reports as a CompileError-like user message."""


def _genai_logits(og: Any, model: Any, ids: Any) -> Any:
    import numpy as np

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    generator = og.Generator(model, params)
    generator.append_tokens(np.asarray(ids, dtype=np.int32))
    logits = np.asarray(generator.get_output("logits"))
    if logits.ndim != 3 or logits.shape[1] != len(ids):
        raise WorkerError(
            f"onnxruntime-genai returned logits of shape {tuple(logits.shape)} for a prompt of "
            f"{len(ids)} tokens (expected one row per position)"
        )
    return logits[0].astype(np.float32, copy=False)


class _GenaiRunner:
    def __init__(self, path: Path) -> None:
        import onnxruntime_genai as og

        self._og = og
        self.model = og.Model(str(path))

    def logits(self, ids: Any) -> Any:
        return _genai_logits(self._og, self.model, ids)


def _safetensors_facts(path: Path) -> tuple[str | None, int]:
    """(the dtype most of the checkpoint's weights are stored in, in torch's spelling; its size in
    bytes) from the safetensors headers alone; (None, 0) when there are none."""
    sizes: dict[str, int] = {}
    for file in sorted(path.glob("*.safetensors")):
        try:  # a header checked against its file: a hostile one is skipped, not a traceback
            header = read_safetensors_header(file)
        except InputFileError:
            continue
        for entry in header.tensors:
            dtype = _STORED_DTYPES.get(entry.dtype)
            if dtype:
                sizes[dtype] = sizes.get(dtype, 0) + entry.end - entry.begin
    if not sizes:
        return None, 0
    return max(sizes, key=lambda d: sizes[d]), sum(sizes.values())


def hold_dtype(path: Path, requested: str) -> str:
    """The dtype the reference's weights are held in: "float32", "bfloat16" or "float16".

    "auto": a 16-bit checkpoint stays in its 16 bits (exact); an fp32 one stays fp32 up to
    FP32_HOLD_LIMIT_BYTES and is held in bf16 above (a 3B model: 6 GiB instead of 12)."""
    if requested in ("float32", "bfloat16"):
        return requested
    stored, size = _safetensors_facts(path)
    if stored in ("bfloat16", "float16"):
        return stored
    return "bfloat16" if size > FP32_HOLD_LIMIT_BYTES else "float32"


def compute_in_fp32(model: Any) -> None:
    """Make a model held in 16 bits compute in fp32: small tensors (norms, biases, buffers) become
    fp32 for good; each module's matrices are widened to fp32 before it runs and narrowed back
    after, so only one module's matrices are ever held in fp32."""
    import torch

    for buffer in model.buffers():
        if buffer.is_floating_point():
            buffer.data = buffer.data.float()
    for param in model.parameters():
        if param.dim() < 2:
            param.data = param.data.float()
    held = {p.dtype for p in model.parameters() if p.dim() >= 2}
    if not held - {torch.float32}:
        return
    narrow = next(iter(held - {torch.float32}))

    def widen(module: Any, _args: Any) -> None:
        for param in module.parameters(recurse=False):
            if param.dim() >= 2:
                param.data = param.data.float()

    def restore(module: Any, _args: Any, _output: Any) -> None:
        for param in module.parameters(recurse=False):
            if param.dim() >= 2:
                param.data = param.data.to(narrow)

    for module in model.modules():
        if any(p.dim() >= 2 for p in module.parameters(recurse=False)):
            module.register_forward_pre_hook(widen)
            module.register_forward_hook(restore)


class _TransformersRunner:
    def __init__(self, path: Path, threads: int | None, dtype: str = "float32") -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.dtype = hold_dtype(path, dtype)
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, self.dtype)
        )
        model.eval()
        compute_in_fp32(model)
        self.model = model

    def logits(self, ids: Any) -> Any:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.tensor([list(map(int, ids))], dtype=torch.long))
        return out.logits[0].float().numpy()


def _log_softmax(x: Any) -> Any:
    import numpy as np

    x = x.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _score(model_logits: Any, ref_logits: Any, targets: Any) -> dict[str, list[Any]]:
    """Per position i < n-1: KL(ref || model), argmax agreement, NLL of token i+1 under each."""
    import numpy as np

    out: dict[str, list[Any]] = {"kl": [], "agree": [], "nll_model": [], "nll_reference": []}
    count = len(targets)
    for start in range(0, count, _ROWS):
        stop = min(start + _ROWS, count)
        lm = _log_softmax(model_logits[start:stop])
        lr = _log_softmax(ref_logits[start:stop])
        kl = np.maximum((np.exp(lr) * (lr - lm)).sum(axis=-1), 0.0)
        rows = np.arange(stop - start)
        tgt = np.asarray(targets[start:stop])
        out["kl"].extend(float(v) for v in kl)
        out["agree"].extend(bool(a == b) for a, b in zip(lm.argmax(-1), lr.argmax(-1), strict=True))
        out["nll_model"].extend(float(v) for v in -lm[rows, tgt])
        out["nll_reference"].extend(float(v) for v in -lr[rows, tgt])
    return out


def context_length(model_dir: Path) -> int | None:
    try:
        config = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
        return int(config["model"]["context_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cut_windows(ids: Any, window: int, max_tokens: int | None) -> list[Any]:
    """The text's ids (the first ``max_tokens``) in windows of ``window``; a last window of one
    token (nothing to score) is dropped."""
    if max_tokens:
        ids = ids[: int(max_tokens)]
    windows = [ids[i : i + window] for i in range(0, len(ids), window)]
    return [w for w in windows if len(w) >= 2]


def _reference_rows(ref_logits: Any, targets: Any) -> tuple[Any, Any]:
    """(uint16 log-probabilities, fp64 [argmax, NLL of the target, row min, row max]) per position.

    Each row's log-probabilities are stored linearly between its minimum and maximum in 65,536
    steps (as llama.cpp's ``--kl-divergence-base`` does): an absolute error of at most
    (max - min) / 131,070, 2.3e-4 nats on a row spanning 30 nats; fp16 would round a
    log-probability of -10 by up to 4e-3."""
    import numpy as np

    lr = _log_softmax(ref_logits)
    rows = np.arange(len(targets))
    low, high = lr.min(axis=-1), lr.max(axis=-1)
    step = np.maximum(high - low, 1e-12) / 65535.0
    levels = np.rint((lr - low[:, None]) / step[:, None])
    exact = np.stack(
        [lr.argmax(-1).astype(np.float64), -lr[rows, np.asarray(targets)], low, high], axis=1
    )
    return np.clip(levels, 0, 65535).astype(np.uint16), exact


def stored_log_probs(levels: Any, exact: Any) -> Any:
    """The reference's log-probabilities (fp64, renormalised) from their stored uint16 levels."""
    import numpy as np

    low, high = exact[:, 2:3], exact[:, 3:4]
    step = np.maximum(high - low, 1e-12) / 65535.0
    return _log_softmax(low + levels.astype(np.float64) * step)


def _score_stored(
    model_logits: Any, levels: Any, exact: Any, targets: Any, ref_vocab: int
) -> dict[str, list[Any]]:
    """:func:`_score` against a stored reference: KL of the stored (renormalised) distribution,
    which differs from the reference's by the rounding of its log-probabilities (second order for
    a model identical to the reference); the reference's argmax and NLL are stored exactly. A
    candidate with fewer logits than the reference is scored as :func:`_score` does, over the
    shared vocabulary (the stored reference renormalised over it)."""
    import numpy as np

    vocab = model_logits.shape[-1]
    lr = stored_log_probs(levels, exact)
    if vocab < ref_vocab:
        return _score(model_logits, lr[:, :vocab], targets)
    lm = _log_softmax(model_logits)
    kl = np.maximum((np.exp(lr) * (lr - lm)).sum(axis=-1), 0.0)
    rows = np.arange(len(targets))
    return {
        "kl": [float(v) for v in kl],
        "agree": [
            bool(a == b) for a, b in zip(lm.argmax(-1), exact[:, 0].astype(np.int64), strict=True)
        ],
        "nll_model": [float(v) for v in -lm[rows, np.asarray(targets)]],
        "nll_reference": [float(v) for v in exact[:, 1]],
    }


def _load_reference(request: dict[str, Any]) -> _GenaiRunner | _TransformersRunner:
    ref_path = Path(request["reference_path"])
    if request["reference_kind"] == "onnx":
        return _GenaiRunner(ref_path)
    return _TransformersRunner(
        ref_path, request.get("threads"), str(request.get("reference_dtype") or "auto")
    )


def _load_candidate(request: dict[str, Any]) -> _GenaiRunner | _TransformersRunner:
    model_dir = Path(request["model"])
    if request.get("model_kind", "onnx") == "transformers":
        return _TransformersRunner(model_dir, request.get("threads"))
    return _GenaiRunner(model_dir)


def _windows_from_cache(request: dict[str, Any]) -> list[Any]:
    import numpy as np

    ids = np.load(Path(request["tokens_file"]), allow_pickle=False)
    return cut_windows(ids, int(request["window"]), request.get("max_tokens"))


def run_tokenize(request: dict[str, Any]) -> dict[str, Any]:
    """Cut the text into ids with the compiled model's tokenizer and store them."""
    import numpy as np
    import onnxruntime_genai as og

    text = Path(request["text_file"]).read_text(encoding="utf-8")
    tokenizing = _GenaiRunner(Path(request["tokens_from"]))
    ids = np.asarray(og.Tokenizer(tokenizing.model).encode(text), dtype=np.int64).reshape(-1)
    write_tokens(Path(request["tokens_file"]), ids)
    return {"count": int(ids.size), "peak_rss_bytes": peak_rss_bytes()}


def run_reference(request: dict[str, Any]) -> dict[str, Any]:
    """The reference alone over the stored ids: its stored side, written window by window."""
    import time

    started = time.monotonic()
    windows = _windows_from_cache(request)
    if not windows:
        raise WorkerError("the text gives fewer than 2 tokens")
    reference = _load_reference(request)
    entry = Entry(Path(request["entry_dir"]), dict(request["entry_key"]), int(request["positions"]))
    entry.directory.mkdir(parents=True, exist_ok=True)
    logprobs: RowWriter | None = None
    exact = RowWriter(
        writing(entry.exact),
        "<f8",
        (entry.positions, EXACT_COLUMNS),
    )
    vocab = 0
    for chunk in windows:
        ref = reference.logits(chunk)
        if logprobs is None:
            vocab = int(ref.shape[-1])
            logprobs = RowWriter(
                writing(entry.logprobs),
                "<u2",
                (entry.positions, vocab),
            )
        for start in range(0, len(chunk) - 1, _ROWS):
            stop = min(start + _ROWS, len(chunk) - 1)
            levels, rows = _reference_rows(ref[start:stop], chunk[start + 1 : stop + 1])
            logprobs.write(levels)
            exact.write(rows)
    assert logprobs is not None
    logprobs.close()
    exact.close()
    held = reference.dtype if isinstance(reference, _TransformersRunner) else None
    peak = peak_rss_bytes()
    finish_entry(
        entry,
        {
            "vocab": vocab,
            "referenceDtype": held,
            "seconds": round(time.monotonic() - started, 3),
            "peakRssBytes": peak,
        },
    )
    return {"vocab_size": vocab, "reference_dtype": held, "peak_rss_bytes": peak}


def run_score(request: dict[str, Any]) -> dict[str, Any]:
    """The compiled model alone, scored window by window against the stored reference."""
    windows = _windows_from_cache(request)
    candidate = _load_candidate(request)
    entry_dir = Path(request["entry_dir"])
    logprobs = RowReader(entry_dir / LOGPROBS)
    exact = RowReader(entry_dir / EXACT)
    ref_vocab = int(logprobs.shape[1])
    totals: dict[str, list[Any]] = {"kl": [], "agree": [], "nll_model": [], "nll_reference": []}
    offset = 0
    vocab = 0
    try:
        for chunk in windows:
            got = candidate.logits(chunk)
            vocab = min(int(got.shape[-1]), ref_vocab)
            if vocab != got.shape[-1] or vocab != ref_vocab:
                if int(chunk.max()) >= vocab:
                    raise WorkerError(
                        f"vocabulary sizes differ (model {got.shape[-1]}, reference "
                        f"{ref_vocab}): is the reference the model this was compiled from?"
                    )
                got = got[:, :vocab]
            for start in range(0, len(chunk) - 1, _ROWS):
                stop = min(start + _ROWS, len(chunk) - 1)
                rows = (offset + start, offset + stop)
                scored = _score_stored(
                    got[start:stop],
                    logprobs.rows(*rows),
                    exact.rows(*rows),
                    chunk[start + 1 : stop + 1],
                    ref_vocab,
                )
                for key, values in scored.items():
                    totals[key].extend(values)
            offset += len(chunk) - 1
    finally:
        logprobs.close()
        exact.close()
    return {
        **totals,
        "windows": len(windows),
        "window": int(request["window"]),
        "vocab_size": int(vocab),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Do the measurement described by ``request`` (see curator.fidelity.measure)."""
    import numpy as np
    import onnxruntime_genai as og

    model_dir = Path(request["model"])
    text = Path(request["text_file"]).read_text(encoding="utf-8")
    window = int(request["window"])
    max_tokens = request.get("max_tokens")
    threads = request.get("threads")

    # The candidate is a compiled model, or (model_kind "transformers") an fp32 checkpoint such as
    # a dequantized GGUF; the text is always tokenized by a compiled model's own tokenizer
    # (tokens_from, default the candidate) so that every comparison scores the same tokens.
    tokens_from = Path(request.get("tokens_from") or model_dir)
    context = context_length(tokens_from)
    if context:
        window = min(window, context)
    tokenizing = _GenaiRunner(tokens_from)
    ids = np.asarray(og.Tokenizer(tokenizing.model).encode(text), dtype=np.int64).reshape(-1)
    candidate: _GenaiRunner | _TransformersRunner
    if request.get("model_kind", "onnx") == "transformers":
        candidate = _TransformersRunner(model_dir, threads)
    elif tokens_from == model_dir:
        candidate = tokenizing
    else:
        candidate = _GenaiRunner(model_dir)
    windows = cut_windows(ids, window, max_tokens)
    if not windows:
        raise WorkerError(f"the text gives only {len(ids)} token(s); at least 2 are needed")

    reference = _load_reference(request)

    totals: dict[str, list[Any]] = {"kl": [], "agree": [], "nll_model": [], "nll_reference": []}
    vocab = 0
    for chunk in windows:
        got = candidate.logits(chunk)
        ref = reference.logits(chunk)
        if got.shape[-1] != ref.shape[-1]:
            vocab = min(got.shape[-1], ref.shape[-1])
            if int(chunk.max()) >= vocab:
                raise WorkerError(
                    f"vocabulary sizes differ (model {got.shape[-1]}, reference "
                    f"{ref.shape[-1]}): is the reference the model this was compiled from?"
                )
            got, ref = got[:, :vocab], ref[:, :vocab]
        vocab = got.shape[-1]
        scored = _score(got[:-1], ref[:-1], chunk[1:])
        for key, values in scored.items():
            totals[key].extend(values)
    held = reference.dtype if isinstance(reference, _TransformersRunner) else None
    return {
        **totals,
        "windows": len(windows),
        "window": window,
        "vocab_size": int(vocab),
        "reference_dtype": held,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text(encoding="utf-8"))
    modes = {"tokenize": run_tokenize, "reference": run_reference, "score": run_score}
    try:
        result: dict[str, Any] = {"ok": True, **modes.get(request.get("mode", ""), run)(request)}
    except WorkerError as exc:
        result = {"ok": False, "error": str(exc)}
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
