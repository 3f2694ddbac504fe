"""A small Qwen2 model actually trained for a minute or so on local text, so that its next-token
distributions are peaked enough for quantization fidelity to mean something (random weights give
near-flat distributions where any rounding flips the top token).

Training text: the Python documentation that ships inside every CPython (``pydoc_data.topics``:
about 465 KB of English prose with code examples). The tokenizer is the devmodels byte-level BPE
trainer run on that same text. Everything is seeded and the batch order is fixed, so the same
arguments on the same machine and library versions give the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from curator.devmodels.cache import cached_build
from curator.devmodels.tiny import BOS_TOKEN, BUILDER_VERSION, EOS_TOKEN, PAD_TOKEN, build_tokenizer

# Bump when build_trained_model's output changes for the same arguments (fixture caches key on it).
TRAINER_VERSION = 2
TRAINING_RECORD = "training.json"


def training_text() -> str:
    """The training corpus: every pydoc topic of this Python, in sorted order."""
    from pydoc_data.topics import topics

    return "\n\n".join(str(topics[name]) for name in sorted(topics))


def training_text_sha256() -> str:
    return hashlib.sha256(training_text().encode("utf-8")).hexdigest()


def _lr(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_trained_model(
    out_dir: Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 1024,
    steps: int = 300,
    batch_size: int = 16,
    seq_len: int = 128,
    learning_rate: float = 3e-3,
    seed: int = 0,
    threads: int = 2,
    max_positions: int = 2048,
) -> Path:
    """Train a Qwen2 model from scratch and ``save_pretrained`` it (+ tokenizer) to ``out_dir``.

    Writes ``training.json`` beside the weights (arguments, first/last loss, seconds).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.monotonic()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    text = training_text()
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = build_tokenizer(vocab_size=vocab_size, texts=[text])
    ids = {
        token: trained.convert_tokens_to_ids(token) for token in (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)
    }
    config = AutoConfig.for_model(
        "qwen2",
        vocab_size=len(trained),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        pad_token_id=ids[PAD_TOKEN],
        bos_token_id=ids[BOS_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        tie_word_embeddings=False,
        architectures=["Qwen2ForCausalLM"],
    )
    # Train on the tokenization the model will be served with: transformers 5 loads a qwen2
    # directory's tokenizer as Qwen2Tokenizer (its own pre-tokenizer and NFC normalizer), and the
    # model builder saves that one into the compiled model.
    trained.save_pretrained(str(out_dir))
    config.save_pretrained(str(out_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    data = torch.tensor(tokenizer.backend_tokenizer.encode(text).ids, dtype=torch.long)
    if len(data) <= seq_len + 1:
        raise ValueError(f"training text gives only {len(data)} tokens")

    model: Any = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    order = torch.Generator().manual_seed(seed)
    warmup = max(1, steps // 20)
    losses: list[float] = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, steps, learning_rate, warmup)
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=order)
        batch = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids[BOS_TOKEN], eos_token_id=ids[EOS_TOKEN], pad_token_id=ids[PAD_TOKEN]
    )
    model.save_pretrained(str(out_dir))
    record = {
        "trainer": TRAINER_VERSION,
        "corpus": "pydoc_data.topics",
        "corpusSha256": training_text_sha256(),
        "corpusTokens": len(data),
        "parameters": sum(p.numel() for p in model.parameters()),
        "arguments": {
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "num_kv_heads": num_kv_heads,
            "intermediate_size": intermediate_size,
            "vocab_size": vocab_size,
            "steps": steps,
            "batch_size": batch_size,
            "seq_len": seq_len,
            "learning_rate": learning_rate,
            "seed": seed,
            "threads": threads,
        },
        "lossFirst": round(sum(losses[:10]) / len(losses[:10]), 4),
        "lossLast": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out_dir


def cached_trained_model(root: Path, **params: Any) -> Path:
    """A :func:`build_trained_model` directory under ``root``, built once per argument set."""
    import sys

    import torch
    import transformers

    key = {
        "kind": "trained-model",
        "trainer": TRAINER_VERSION,
        "tokenizer": BUILDER_VERSION,
        "params": params,
        "python": sys.version.split()[0],
        "corpus": training_text_sha256(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }

    def build(out: Path) -> None:
        build_trained_model(out, **params)

    return cached_build(root, "trained-qwen2", key, build)
