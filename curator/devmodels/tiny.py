"""A tiny random-weight causal LM with a real byte-level BPE tokenizer, built with no network.

The tokenizer is trained with ``tokenizers`` on this Python's own standard-library sources (a
sorted, size-capped file list, so the same machine always gets the same tokenizer), wrapped as a
PreTrainedTokenizerFast with a ChatML chat template and eos ``<|im_end|>``. The weights are random,
from a transformers config, seeded. The output is an ordinary Hugging Face model directory.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Bump when build_tiny_model's output changes for the same arguments (fixture caches key on it).
BUILDER_VERSION = 1

# Short name -> (transformers model_type, HF architectures name).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "llama": ("llama", "LlamaForCausalLM"),
    "mistral": ("mistral", "MistralForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    "phi3": ("phi3", "Phi3ForCausalLM"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
    "phi": ("phi", "PhiForCausalLM"),  # half-rotary heads: hidden_size >= 128 for the builder
    "nemotron": ("nemotron", "NemotronForCausalLM"),  # likewise
}

PAD_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

DEFAULT_VOCAB_SIZE = 1024
DEFAULT_CORPUS_BYTES = 2_000_000


def corpus_files(max_bytes: int = DEFAULT_CORPUS_BYTES) -> list[Path]:
    """Standard-library ``.py`` files in sorted order until ``max_bytes`` (always at least one)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chosen: list[Path] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        size = path.stat().st_size
        if chosen and total + size > max_bytes:
            continue
        chosen.append(path)
        total += size
        if total >= max_bytes:
            break
    if not chosen:
        raise FileNotFoundError(f"no Python sources found under {stdlib} to train a tokenizer on")
    return chosen


def corpus_texts(max_bytes: int = DEFAULT_CORPUS_BYTES) -> Iterator[str]:
    """The text of :func:`corpus_files`, one file at a time."""
    for path in corpus_files(max_bytes):
        yield path.read_text(encoding="utf-8", errors="replace")


def build_tokenizer(
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    corpus_bytes: int = DEFAULT_CORPUS_BYTES,
    texts: list[str] | None = None,
) -> Any:
    """A byte-level BPE PreTrainedTokenizerFast trained on ``texts`` (default: stdlib corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    source = texts if texts is not None else list(corpus_texts(corpus_bytes))
    tokenizer.train_from_iterator(source, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        model_max_length=2048,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def save_tokenizer(
    out_dir: Path,
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    corpus_bytes: int = DEFAULT_CORPUS_BYTES,
    texts: list[str] | None = None,
) -> Any:
    """Train the tokenizer and save it (tokenizer.json, tokenizer_config.json, chat template)."""
    tokenizer = build_tokenizer(vocab_size=vocab_size, corpus_bytes=corpus_bytes, texts=texts)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _config(
    architecture: str,
    *,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    max_positions: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
) -> Any:
    from transformers import AutoConfig

    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown tiny-model architecture {architecture!r}; known: {known}")
    model_type, arch_name = ARCHITECTURES[architecture]
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": max_positions,
        "pad_token_id": pad_id,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "tie_word_embeddings": False,
        "architectures": [arch_name],
    }
    if architecture == "phi3":
        # The model builder picks the LongRoPE variant unless these two are equal.
        fields["original_max_position_embeddings"] = max_positions
    if architecture in ("gemma2", "gemma3"):
        fields["head_dim"] = hidden_size // num_heads
    return AutoConfig.for_model(model_type, **fields)


def build_tiny_model(
    out_dir: Path,
    *,
    architecture: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 2048,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    corpus_bytes: int = DEFAULT_CORPUS_BYTES,
) -> Path:
    """Write a random-init model + trained tokenizer to ``out_dir`` (created); returns ``out_dir``.

    The same arguments give byte-identical weights on the same machine.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown tiny-model architecture {architecture!r}; known: {known}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tokenizer(out_dir, vocab_size=vocab_size, corpus_bytes=corpus_bytes)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = _config(
        architecture,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        max_positions=max_positions,
        pad_id=ids[PAD_TOKEN],
        bos_id=ids[BOS_TOKEN],
        eos_id=ids[EOS_TOKEN],
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.eval()
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids[BOS_TOKEN], eos_token_id=ids[EOS_TOKEN], pad_token_id=ids[PAD_TOKEN]
    )
    model.save_pretrained(str(out_dir))
    return out_dir
