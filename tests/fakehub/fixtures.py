"""The fixture set the fake Hub serves, built from real files.

- ``fixture/tiny-qwen2``: the real tiny test model (``build_tiny_model``), one safetensors file.
- ``fixture/tiny-qwen2-sharded``: the same weights split into two shards with an index.
- ``fixture/gated-tiny``: the tiny model behind a manual gate (``GRANTED_TOKEN`` may read it).
- ``fixture/custom-code``: config.json with ``auto_map`` and repository code, small real weights.
- ``fixture/bert-tiny``: a BERT (architecture the model builder does not support).
- ``acme/*``, ``other/*``: listing-only repositories (config, card; weights stated, not held).
- ``fixture/qwen2-tiny-old-name``: renamed to ``fixture/tiny-qwen2`` (307 to the new URLs).
- the real answers in ``recorded/`` (see its README): model info of meta-llama, zephyr, gpt2 ...
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tests.fakehub.replay import load_recordings
from tests.fakehub.repo import FakeRepo, files_from_dir, safetensors_header
from tests.fakehub.server import FakeHub

GRANTED_TOKEN = "hf_fake_granted"  # may read every gated repository
PLAIN_TOKEN = "hf_fake_plain"  # a valid token without access to gated repositories

TINY = "fixture/tiny-qwen2"
SHARDED = "fixture/tiny-qwen2-sharded"
GATED = "fixture/gated-tiny"
CUSTOM = "fixture/custom-code"
BERT = "fixture/bert-tiny"
OLD_TINY = "fixture/qwen2-tiny-old-name"  # renamed to TINY: the Hub answers 307 to TINY's URLs

CHAT_TAGS = ("transformers", "safetensors", "text-generation", "conversational")


def card(license_id: str, **extra: Any) -> bytes:
    lines = ["---", f"license: {license_id}"] + [f"{k}: {v}" for k, v in extra.items()]
    return ("\n".join([*lines, "---", "", "# Fixture model", ""])).encode()


def write_safetensors(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    """A safetensors file from ``name -> (dtype, shape, raw bytes)``, in name order."""
    header: dict[str, Any] = {}
    offset = 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    body = b"".join(tensors[name][2] for name in sorted(tensors))
    return struct.pack("<Q", len(encoded)) + encoded + body


def split_safetensors(content: bytes, parts: int) -> tuple[list[bytes], dict[str, str]]:
    """Split one safetensors file into ``parts`` shards; returns (shards, weight_map)."""
    header = safetensors_header(content)
    (size,) = struct.unpack("<Q", content[:8])
    data = content[8 + size :]
    names = sorted(n for n in header if n != "__metadata__")
    shards: list[bytes] = []
    weight_map: dict[str, str] = {}
    per = -(-len(names) // parts)
    for i in range(parts):
        chosen = names[i * per : (i + 1) * per]
        shard_name = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        tensors = {}
        for name in chosen:
            begin, end = header[name]["data_offsets"]
            tensors[name] = (header[name]["dtype"], header[name]["shape"], data[begin:end])
            weight_map[name] = shard_name
        shards.append(write_safetensors(tensors))
    return shards, weight_map


def _f32(count: int) -> bytes:
    return struct.pack(f"<{count}f", *(((i % 7) - 3) / 10 for i in range(count)))


def tiny_files(tiny_model_dir: Path) -> dict[str, bytes]:
    files = files_from_dir(tiny_model_dir)
    files["README.md"] = card("apache-2.0")
    files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    return files


def sharded_files(tiny_model_dir: Path) -> dict[str, bytes]:
    files = tiny_files(tiny_model_dir)
    single = files.pop("model.safetensors")
    shards, weight_map = split_safetensors(single, 2)
    for index, shard in enumerate(shards, start=1):
        files[f"model-{index:05d}-of-{len(shards):05d}.safetensors"] = shard
    total = sum(len(s) for s in shards)
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index_doc, indent=2).encode()
    return files


def custom_code_files() -> dict[str, bytes]:
    config = {
        "architectures": ["FancyForCausalLM"],
        "model_type": "fancy",
        "auto_map": {
            "AutoConfig": "configuration_fancy.FancyConfig",
            "AutoModelForCausalLM": "modeling_fancy.FancyForCausalLM",
        },
        "hidden_size": 8,
        "vocab_size": 16,
    }
    tokenizer_config = {"chat_template": "{{ messages[0]['content'] }}", "eos_token": "</s>"}
    return {
        "config.json": json.dumps(config, indent=2).encode(),
        "configuration_fancy.py": b"# repository code: a custom configuration class\n",
        "modeling_fancy.py": b"# repository code: a custom model class\n",
        "tokenizer_config.json": json.dumps(tokenizer_config).encode(),
        "model.safetensors": write_safetensors(
            {
                "embed.weight": ("F32", [16, 8], _f32(128)),
                "head.weight": ("F32", [16, 8], _f32(128)),
                "norm.weight": ("F32", [8], _f32(8)),
            }
        ),
        "README.md": card("mit"),
    }


def bert_files() -> dict[str, bytes]:
    config = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 4}
    vocab = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "!"])
    return {
        "config.json": json.dumps(config, indent=2).encode(),
        "vocab.txt": (vocab + "\n").encode(),
        "tokenizer_config.json": json.dumps({"do_lower_case": True}).encode(),
        "model.safetensors": write_safetensors(
            {
                "bert.embeddings.word_embeddings.weight": ("F32", [8, 4], _f32(32)),
                "cls.predictions.bias": ("F32", [8], _f32(8)),
            }
        ),
        "pytorch_model.bin": b"\x80\x02legacy pickle weights that a compile must not fetch",
        "README.md": card("apache-2.0"),
        "LICENSE": b"Apache License 2.0 (fixture)\n",
    }


def listing_only(
    repo_id: str, architecture: str, params: int, dtype: str = "BF16", **meta: Any
) -> FakeRepo:
    config = {"architectures": [architecture], "model_type": architecture.lower()}
    return FakeRepo(
        repo_id=repo_id,
        files={
            "config.json": json.dumps(config).encode(),
            "README.md": card(str(meta.pop("license", "apache-2.0"))),
        },
        listed_safetensors={dtype: params},
        **meta,
    )


def build_hub(tiny_model_dir: Path) -> FakeHub:
    """The whole fixture set on a FakeHub (not started)."""
    hub = FakeHub(
        tokens={GRANTED_TOKEN: frozenset({"*"}), PLAIN_TOKEN: frozenset()},
        recordings=load_recordings(),
        renames={OLD_TINY: TINY},
    )
    lic = "license:apache-2.0"
    hub.add(
        FakeRepo(
            TINY,
            tiny_files(tiny_model_dir),
            downloads=1500,
            likes=12,
            trending_score=30,
            last_modified="2026-03-01T10:00:00.000Z",
            tags=(*CHAT_TAGS, "qwen2", lic),
            pipeline_tag="text-generation",
            card_data={"license": "apache-2.0"},
        )
    )
    hub.add(
        FakeRepo(
            SHARDED,
            sharded_files(tiny_model_dir),
            downloads=300,
            likes=2,
            trending_score=1,
            last_modified="2026-02-01T10:00:00.000Z",
            tags=(*CHAT_TAGS, "qwen2", lic),
            pipeline_tag="text-generation",
            card_data={"license": "apache-2.0"},
        )
    )
    hub.add(
        FakeRepo(
            GATED,
            tiny_files(tiny_model_dir),
            downloads=800,
            likes=40,
            trending_score=5,
            last_modified="2026-01-15T10:00:00.000Z",
            tags=(*CHAT_TAGS, "qwen2", "license:other"),
            pipeline_tag="text-generation",
            gated="manual",
            card_data={"license": "other", "license_link": "LICENSE.txt"},
        )
    )
    hub.add(
        FakeRepo(
            CUSTOM,
            custom_code_files(),
            downloads=90,
            likes=1,
            trending_score=0,
            last_modified="2025-12-01T10:00:00.000Z",
            tags=("transformers", "safetensors", "text-generation", "custom_code", "license:mit"),
            pipeline_tag="text-generation",
            card_data={"license": "mit"},
        )
    )
    hub.add(
        FakeRepo(
            BERT,
            bert_files(),
            downloads=5000,
            likes=8,
            trending_score=2,
            last_modified="2025-06-01T10:00:00.000Z",
            tags=("transformers", "safetensors", "fill-mask", "bert", lic),
            pipeline_tag="fill-mask",
            card_data={"license": "apache-2.0"},
        )
    )
    hub.add(
        listing_only(
            "acme/chat-7b",
            "LlamaForCausalLM",
            7_241_732_096,
            downloads=90_000,
            likes=300,
            trending_score=80,
            last_modified="2026-01-05T00:00:00.000Z",
            tags=(*CHAT_TAGS, "llama", lic),
            pipeline_tag="text-generation",
        )
    )
    hub.add(
        listing_only(
            "acme/chat-70b",
            "LlamaForCausalLM",
            70_553_706_496,
            downloads=5_000,
            likes=900,
            trending_score=120,
            last_modified="2025-11-20T00:00:00.000Z",
            tags=(*CHAT_TAGS, "llama", "license:llama3"),
            gated="manual",
            pipeline_tag="text-generation",
            license="llama3",
        )
    )
    hub.add(
        listing_only(
            "acme/coder-1.5b",
            "Qwen2ForCausalLM",
            1_543_714_304,
            downloads=40_000,
            likes=50,
            trending_score=200,
            last_modified="2026-03-10T00:00:00.000Z",
            tags=(*CHAT_TAGS, "qwen2", "code", lic),
            pipeline_tag="text-generation",
        )
    )
    hub.add(
        listing_only(
            "other/embedder-small",
            "BertModel",
            109_482_240,
            dtype="F32",
            downloads=1_000_000,
            likes=150,
            trending_score=10,
            last_modified="2024-05-01T00:00:00.000Z",
            tags=("transformers", "safetensors", "feature-extraction", "bert", lic),
            pipeline_tag="feature-extraction",
        )
    )
    hub.add(
        listing_only(
            "other/vision-qwen-8b",
            "Qwen2_5_VLForConditionalGeneration",
            8_292_166_656,
            downloads=20_000,
            likes=600,
            trending_score=90,
            last_modified="2026-02-20T00:00:00.000Z",
            tags=("transformers", "safetensors", "image-text-to-text", lic),
            pipeline_tag="image-text-to-text",
        )
    )
    return hub  # fmt: skip
