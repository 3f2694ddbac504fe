"""The sensitivity subprocess: ``python -m curator.budget.sensitivity_worker REQUEST.json RESULT.json``.

Loads the fp32 checkpoint with transformers, runs a calibration text through it once (keeping the
reference next-token distributions, each decoder layer's input, and each Linear's input
covariance), then for every tensor group and every candidate format:

- **measured** (``measure`` formats): the group alone is quantized and dequantized in place with
  onnxruntime's own quantizer functions (the arithmetic the compile uses), its layer is re-run on
  that layer's captured input, and the mean KL(reference || quantized) over the calibration tokens
  is the group's cost. The layers after it are not re-run once per group: every group's perturbed
  hidden state joins one batch that flows through the remaining layers together (a variant from
  layer 3 joins at layer 4), so the model's tail runs as a few wide matrix products instead of a
  hundred narrow passes (the same figures: tests/test_budget.py checks the batch against a
  one-group-at-a-time replay);
- **proxy** (every format): the output error energy ``tr(dW C dW^T)`` with ``C`` the input
  covariance of the calibration pass (llama.cpp's importance matrix keeps only C's diagonal).

The parent (curator.budget.sensitivity) turns both into one cost table. Torch, numpy and
onnxruntime are imported here only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from curator.budget.formats import ACTIVATION_BITS, parse_format
from curator.quant.importance import importance_of, write_importance
from curator.quant.plan import TensorQuant


def fake_quantize(
    weight: Any, fmt: Any, gather: bool = False, importance: Any = None
) -> tuple[Any, int]:
    """``weight`` (rows x cols, blocks along cols) quantized to ``fmt`` with the compile's own
    kernels (curator.quant.kernels) and dequantized: (fp32 array, bytes on disk). A MatMul's
    scales are float16, as a budget's compile stores them (``half_scales``); the gather's float32.
    ``importance`` (one value per column) weighs wk_quant's error, as the compile's importance
    file does. ValueError when the format cannot hold a tensor of this shape."""
    import numpy as np

    from curator.quant.kernels import quantize_gather, quantize_matmul  # start-up: numpy

    quant = TensorQuant(
        bits=fmt.bits, block_size=fmt.block, symmetric=fmt.symmetric, algo=fmt.algorithm
    )
    w = np.ascontiguousarray(weight, dtype=np.float32)
    half = np.float16 if fmt.algorithm != "hqq" else None
    if gather:
        packed = quantize_gather(w, quant)
    else:
        packed = quantize_matmul(w, quant, scales_as=half, importance=importance)
    return packed.dequantize(), int(packed.nbytes)


SAMPLE_ROWS = 64  # rows per tensor a proxy-only format is weighed on


def _format(name: str) -> Any:
    return parse_format(name)


class _Model:
    """The checkpoint plus what replaying it from one decoder layer needs."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        model.eval()
        self.model = model
        self.layers: Any = model.model.layers
        self.norm: Any = model.model.norm
        self.head: Any = model.get_output_embeddings()
        embed = model.get_input_embeddings()
        if self.head is not None and self.head.weight is embed.weight:
            # the compile stores the tied table twice (a Gather and the lm_head MatMul), each
            # quantized on its own: so are they here
            self.head.weight = torch.nn.Parameter(embed.weight.detach().clone())
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.inputs: list[Any] = []
        self.kwargs: list[dict[str, Any]] = []

    def parameter(self, name: str) -> Any:
        return self.model.get_parameter(name)

    def capture(self, ids: Any) -> Any:
        """Full forward pass keeping every decoder layer's input; returns the logits."""
        torch = self.torch
        handles = []
        self.inputs, self.kwargs = [], []

        def keep(_module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            self.inputs.append(hidden.detach().clone())
            rest = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            rest["past_key_values"] = None
            rest["use_cache"] = False
            self.kwargs.append(rest)

        for layer in self.layers:
            handles.append(layer.register_forward_pre_hook(keep, with_kwargs=True))
        try:
            with torch.inference_mode():
                out = self.model(ids, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return out.logits[0].float()

    def full(self, ids: Any) -> Any:
        with self.torch.inference_mode():
            return self.model(ids, use_cache=False).logits[0].float()

    def replay(self, start: int) -> Any:
        """Logits from decoder layer ``start`` onwards, fed the captured input of that layer."""
        torch = self.torch
        with torch.inference_mode():
            hidden = self.inputs[start]
            for index in range(start, len(self.layers)):
                out = self.layers[index](hidden, **self.kwargs[index])
                hidden = out[0] if isinstance(out, tuple) else out
            logits = self.head(self.norm(hidden))
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits[0].float()

    def layer_output(self, index: int, hidden: Any | None = None) -> Any:
        """Decoder layer ``index`` run on its captured input (or on ``hidden``)."""
        with self.torch.inference_mode():
            out = self.layers[index](
                self.inputs[index] if hidden is None else hidden, **self.kwargs[index]
            )
        return out[0] if isinstance(out, tuple) else out

    def first_input(self, ids: Any) -> Any:
        """The input of decoder layer 0 for ``ids`` (the embedding's output, scaled as the model
        scales it), without running any layer."""
        torch = self.torch
        seen: list[Any] = []

        class _Stop(Exception):
            pass

        def stop(_module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())
            raise _Stop

        handle = self.layers[0].register_forward_pre_hook(stop, with_kwargs=True)
        try:
            with torch.inference_mode():
                self.model(ids, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        return seen[0]

    def final_hidden(self) -> Any:
        """The normed output of the last decoder layer for the captured input (the lm_head's
        input)."""
        with self.torch.inference_mode():
            return self.norm(self.layer_output(len(self.layers) - 1))

    def logits_of(self, normed: Any) -> Any:
        """The lm_head (softcapped as the model does) on a normed hidden state."""
        torch = self.torch
        with torch.inference_mode():
            logits = self.head(normed)
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def propagate(self, variants: list[tuple[int, Any]], reference: _Reference) -> list[float]:
        """KL of each variant ``(start, hidden)``: ``hidden`` [1, T, H] is the input of decoder
        layer ``start`` (``len(layers)``: the last layer's output). All variants run through the
        remaining layers as one batch (in chunks that bound memory), joining it at their layer."""
        torch = self.torch
        tokens, width = variants[0][1].shape[-2], variants[0][1].shape[-1]
        inner = max(width, int(getattr(self.model.config, "intermediate_size", 0) or 0))
        vocab = int(self.head.weight.shape[0])
        layer_chunk = max(1, BATCH_BYTES // max(1, 16 * tokens * inner))
        head_chunk = max(1, BATCH_BYTES // max(1, 16 * tokens * vocab))
        order = sorted(range(len(variants)), key=lambda i: variants[i][0])
        flowing: list[int] = []  # variant indices, in the batch's row order
        batch: Any = None
        at = 0
        with torch.inference_mode():
            for index in range(len(self.layers) + 1):
                joining: list[Any] = []
                while at < len(order) and variants[order[at]][0] == index:
                    flowing.append(order[at])
                    joining.append(variants[order[at]][1])
                    at += 1
                if joining:
                    batch = torch.cat([batch, *joining] if batch is not None else joining, dim=0)
                if index == len(self.layers) or batch is None:
                    continue
                outs = [
                    self.layer_output(index, batch[lo : lo + layer_chunk])
                    for lo in range(0, batch.shape[0], layer_chunk)
                ]
                batch = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
            kls = [0.0] * len(variants)
            for lo in range(0, len(flowing), head_chunk):
                logits = self.logits_of(self.norm(batch[lo : lo + head_chunk]))
                for row, i in enumerate(flowing[lo : lo + head_chunk]):
                    kls[i] = reference.kl(logits[row])
        return kls


BATCH_BYTES = 1 << 29  # about what a chunk of the batched replay may hold at once


class _Reference:
    """The reference's next-token distributions, kept in the form a KL against them needs:
    KL(p || softmax(z)) = sum p log p - p . z + logsumexp(z) per position (float64)."""

    def __init__(self, torch: Any, logits: Any) -> None:
        self.torch = torch
        logp = torch.log_softmax(logits.double(), dim=-1)
        self.p = logp.exp()
        self.neg_entropy = (self.p * logp).sum(-1)

    def kl(self, logits: Any) -> float:
        """Mean KL(reference || model) over the positions that predict a next token."""
        z = logits.double()
        kl = (self.neg_entropy - (self.p * z).sum(-1) + self.torch.logsumexp(z, dim=-1)).clamp(
            min=0
        )
        return float(kl[:-1].mean())


def int8_activation_error(x: Any, block: int) -> Any:
    """``Q(x) - x`` for the rows of ``x`` ([n, K]) quantized as MatMulNBits quantizes its input at
    accuracy level 4: int8, one symmetric scale (absolute maximum / 127) per ``block`` values along
    K, round to nearest even (float64 in, float64 out)."""
    import torch

    rows, cols = x.shape
    pad = (-cols) % block
    padded = torch.nn.functional.pad(x, (0, pad)) if pad else x
    blocks = padded.reshape(rows, -1, block)
    limit = float((1 << (ACTIVATION_BITS - 1)) - 1)
    scale = blocks.abs().amax(dim=-1, keepdim=True) / limit
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    quantized = torch.round(blocks / safe).clamp(-limit, limit) * safe
    return (quantized - blocks).reshape(rows, -1)[:, :cols]


def _covariances(
    model: _Model, groups: list[dict[str, Any]], ids: Any, blocks: tuple[int, ...] = ()
) -> tuple[dict[str, Any], dict[str, dict[int, float]]]:
    """Input covariance X^T X / n of every tensor in ``groups`` (float64, cols x cols), and the
    output error energy ``||dX W^T||^2 / n`` of each tensor's input quantized to int8 in each of
    ``blocks`` (:func:`int8_activation_error`), from the same calibration pass."""
    torch = model.torch
    by_param: dict[str, Any] = {}
    modules = dict(model.model.named_modules())
    wanted: dict[int, list[str]] = {}
    for group in groups:
        for tensor in group["tensors"]:
            owner = tensor[: -len(".weight")]
            module = modules.get(owner)
            if isinstance(module, torch.nn.Linear):
                wanted.setdefault(id(module), []).append(tensor)
    sums: dict[int, Any] = {}
    counts: dict[int, int] = {}
    errors: dict[int, dict[int, float]] = {}

    def hook(module: Any, args: Any) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        key = id(module)
        sums[key] = sums.get(key, 0) + x.T @ x
        counts[key] = counts.get(key, 0) + x.shape[0]
        weight = module.weight.detach()  # in its own dtype: no float64 copy of a big lm_head
        energy = errors.setdefault(key, {})
        for block in blocks:
            out = (int8_activation_error(x, block).to(weight.dtype) @ weight.T).double()
            energy[block] = energy.get(block, 0.0) + float((out * out).sum())

    handles = [m.register_forward_pre_hook(hook) for m in model.model.modules() if id(m) in wanted]
    try:
        with torch.inference_mode():
            model.model(ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    activation: dict[str, dict[int, float]] = {}
    for key, names in wanted.items():
        if key in sums:
            for name in names:
                by_param[name] = sums[key] / counts[key]
                activation[name] = {b: e / counts[key] for b, e in errors.get(key, {}).items()}
    return by_param, activation


def run(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    started = time.monotonic()
    source = Path(request["source"])
    model = _Model(source, request.get("threads"))
    tokenizer: Any = AutoTokenizer.from_pretrained(str(source))
    text = Path(request["text_file"]).read_text(encoding="utf-8")
    ids_all = tokenizer(text, return_tensors="pt")["input_ids"][0]
    tokens = int(request["tokens"])
    ids = ids_all[:tokens].reshape(1, -1)
    groups: list[dict[str, Any]] = request["groups"]
    measure = [_format(n) for n in request["measure"]]
    proxy_formats = [_format(n) for n in request["proxy"]]
    embedding_formats = [_format(n) for n in request["embedding_formats"]]
    validate_formats = [_format(n) for n in request.get("validate_formats", [])]
    validate_groups = set(request.get("validate_groups", []))

    reference = model.capture(ids)
    ref = _Reference(torch, reference)
    replay_ok = bool((model.replay(0) - reference).abs().max() < 1e-3)
    blocks = tuple(int(b) for b in request.get("activation_blocks", []))
    covariance, activation_error = _covariances(model, groups, ids, blocks)
    importance = {t: importance_of(torch.diagonal(c).numpy()) for t, c in covariance.items()}
    if request.get("importance_file"):
        write_importance(Path(request["importance_file"]), importance)
    # the embedding's error enters once per occurrence of each token
    counts = torch.bincount(
        ids[0], minlength=int(model.model.get_input_embeddings().weight.shape[0])
    )
    final = model.final_hidden() if replay_ok else None
    measured: dict[str, dict[str, float]] = {}
    proxy: dict[str, dict[str, float]] = {}
    sizes: dict[str, dict[str, int]] = {}
    pending: list[tuple[str, str]] = []  # (group, format) of each variant, in order
    variants: list[tuple[int, Any]] = []  # (layer it enters, its hidden state there)
    for group in groups:
        params = {t: model.parameter(t) for t in group["tensors"]}
        originals = {t: p.detach().clone() for t, p in params.items()}
        layer = group.get("layer")
        proxy[group["name"]] = {}
        sizes[group["name"]] = {}
        measured[group["name"]] = {}
        extra = validate_formats if group["name"] in validate_groups else []
        is_embedding = group["kind"] == "embedding"
        if is_embedding:
            candidates = set(embedding_formats)
            wanted = {embedding_formats[1]} | (set(embedding_formats) if extra else set())
        else:
            candidates = set(proxy_formats)
            wanted = set(measure) | set(extra)
        if group["kind"] == "lm_head":
            # the gather's formats too (proxy only): a tied table's embedding cost is scaled from
            # a format both tables were weighed at (curator.budget.groups.tied_table_options)
            candidates |= set(embedding_formats)
        for fmt in sorted(wanted | candidates):
            full = fmt in wanted
            energy, size = 0.0, 0
            try:
                for tensor, original in originals.items():
                    rows, cols = original.shape
                    size += fmt.bytes_for(rows, cols, half_scales=not is_embedding)
                    # the proxy weighs every format on the same sample of rows (each row's blocks
                    # are quantized on their own), scaled back up; a measured format is quantized
                    # whole, to be put in the model
                    step = max(1, rows // SAMPLE_ROWS)
                    keep = 2 * (rows // step // 2) if step > 1 else rows
                    sample = original[::step][:keep]
                    weigh = importance.get(tensor)
                    if full:
                        whole, _ = fake_quantize(original.numpy(), fmt, is_embedding, weigh)
                        quantized = torch.from_numpy(whole)
                        delta = quantized[::step][:keep].double() - sample.double()
                    else:
                        part_q, _ = fake_quantize(sample.numpy(), fmt, is_embedding, weigh)
                        delta = torch.from_numpy(part_q).double() - sample.double()
                    cov = covariance.get(tensor)
                    if is_embedding:
                        weights = counts.double()[::step][: delta.shape[0]] + 1.0
                        part = float((weights * (delta * delta).sum(-1)).sum() / len(ids[0]))
                    elif cov is not None:
                        part = float(((delta @ cov) * delta).sum())
                    else:
                        part = float((delta * delta).sum())
                    energy += part * rows / delta.shape[0]
                    if full:
                        with torch.no_grad():
                            params[tensor].copy_(quantized)
            except ValueError:  # this format cannot hold the group's shapes
                with torch.no_grad():
                    for tensor, original in originals.items():
                        params[tensor].copy_(original)
                continue
            proxy[group["name"]][fmt.name] = energy
            sizes[group["name"]][fmt.name] = size
            if full:
                if replay_ok and layer is not None:
                    pending.append((group["name"], fmt.name))
                    variants.append((int(layer) + 1, model.layer_output(int(layer))))
                elif replay_ok and is_embedding:
                    pending.append((group["name"], fmt.name))
                    variants.append((0, model.first_input(ids)))
                elif replay_ok and group["kind"] == "lm_head":
                    logits = model.logits_of(final)[0].float()
                    measured[group["name"]][fmt.name] = ref.kl(logits)
                else:
                    logits = model.full(ids)
                    measured[group["name"]][fmt.name] = ref.kl(logits)
                with torch.no_grad():
                    for tensor, original in originals.items():
                        params[tensor].copy_(original)
    if variants:
        for (name, fmt_name), kl in zip(pending, model.propagate(variants, ref), strict=True):
            measured[name][fmt_name] = kl
    anchors = [*measure, embedding_formats[1]]
    joint = _joint(model, groups, measured, ids, ref, anchors, importance)
    activation: dict[str, dict[str, float]] = {}
    for group in groups:
        # a Linear's tensors only: the embedding's Gather has no int8 input
        per_tensor = [activation_error[t] for t in group["tensors"] if t in activation_error]
        if per_tensor:
            activation[group["name"]] = {str(b): sum(e[b] for e in per_tensor) for b in blocks}
    return {
        "joint": joint,
        "activation": activation,
        "measured": measured,
        "proxy": proxy,
        "bytes": sizes,
        "tokens": int(ids.shape[1]),
        "replay": replay_ok,
        "seconds": round(time.monotonic() - started, 1),
    }


def _joint(
    model: _Model,
    groups: list[dict[str, Any]],
    measured: dict[str, dict[str, float]],
    ids: Any,
    reference: _Reference,
    anchors: list[Any],
    importance: dict[str, Any],
) -> dict[str, float]:
    """Every group at once at its measured anchor format (one whole forward pass): the KL of
    that model and the sum of the groups' single costs it is predicted by. Their ratio says how
    far the sum falls from the whole on this model (errors of several groups compound)."""
    torch = model.torch
    total = 0.0
    with torch.no_grad():
        for group in groups:
            fmt = next((f for f in anchors if f.name in measured.get(group["name"], {})), None)
            if fmt is None:
                continue
            total += measured[group["name"]][fmt.name]
            for tensor in group["tensors"]:
                param = model.parameter(tensor)
                quantized, _ = fake_quantize(
                    param.detach().numpy(),
                    fmt,
                    group["kind"] == "embedding",
                    importance.get(tensor),
                )
                param.copy_(torch.from_numpy(quantized))
    return {"kl": reference.kl(model.full(ids)), "sum": total}


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = {"ok": True, **run(request)}
    Path(argv[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
