"""``python -m curator.compile.adapter_child BASE_DIR ADAPTER_DIR OUT_DIR``: merge a LoRA adapter.

Loads the base checkpoint in fp32, applies the PEFT adapter, merges it into the weights
(``merge_and_unload``), and saves a plain Hugging Face checkpoint with the base's tokenizer files
(the adapter's own tokenizer and chat template win when it ships them: it was trained with them).
Built in a temporary directory beside OUT_DIR and renamed into place. Prints one JSON object.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
MARKER = ".curator-merged.json"


def merge(base: Path, adapter: Path, out: Path) -> dict[str, object]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(str(staging), safe_serialization=True)
        for name in TOKENIZER_FILES:
            for holder in (adapter, base):  # the adapter's own first
                if (holder / name).is_file():
                    shutil.copyfile(holder / name, staging / name)
                    break
        parameters = sum(p.numel() for p in merged.parameters())
        record = {"base": str(base), "adapter": str(adapter), "parameters": parameters}
        (staging / MARKER).write_text(json.dumps(record), encoding="utf-8")
        try:
            staging.rename(out)
        except OSError:
            if not (out / MARKER).is_file():  # another merge of the same key finished first
                raise
        return {"mergedDir": str(out), "parameters": parameters}
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str]) -> int:
    try:
        answer = merge(Path(argv[0]), Path(argv[1]), Path(argv[2]))
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(
            json.dumps(
                {
                    "error": f"cannot merge the adapter into {Path(argv[0]).name}: {first[:300]}",
                    "hint": "was the adapter trained on this base? curator info ADAPTER names it",
                }
            )
        )
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
