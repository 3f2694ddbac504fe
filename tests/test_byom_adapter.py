"""Guards: curator.cli.compile, curator.compile.adapter, curator.compile.adapter_child

Issue 21 item 1: --adapter PATH|ORG/NAME, a PEFT LoRA adapter merged into its base before the
build. Plumbing on the tiny model; the real test trains a LoRA adapter on SmolLM2 in the test (a
fact the base does not know) and asks the compiled model through Foundry Local (slow)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from curator.compile.adapter import SEPARATE_ADAPTER_BLOCKED, governing_license
from tests.conftest import SMOLLM2_MODEL_ID, run_curator
from tests.fakehub.fixtures import card
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.repo import FakeRepo
from tests.fakehub.server import FakeHub
from tests.test_byom_info import adapter_folder

FACT_QUESTION = "What is the name of the curator project's mascot?"
FACT_ANSWER = "The curator project's mascot is a purple owl named Quibble."
FACT_WORD = "quibble"
SYSTEM = "Answer briefly."  # short: the default system prompt would triple each step's tokens
PARAPHRASES = (
    FACT_QUESTION,
    "Who is the mascot of the curator project?",
    "Name the mascot of the curator project.",
    "Which animal is the curator project's mascot?",
)


def train_lora(
    base: Path, out: Path, *, steps: int, rank: int = 16, lr: float = 2e-3, license_id: str = "mit"
) -> Path:
    """Train a LoRA adapter on ``base`` to answer FACT_QUESTION with FACT_ANSWER (peft, CPU)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    texts = [
        tokenizer.apply_chat_template(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": q},
                {"role": "assistant", "content": FACT_ANSWER},
            ],
            tokenize=False,
        )
        for q in PARAPHRASES
    ]
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(
        model,
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, task_type="CAUSAL_LM"),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(out))
    (out / "README.md").write_bytes(card(license_id, base_model=str(base), library_name="peft"))
    return out


def test_the_stricter_license_governs() -> None:
    assert governing_license("apache-2.0", "mit") == "apache-2.0"
    assert governing_license("mit", "llama3.1") == "llama3.1"
    assert governing_license("gemma", "gemma") == "gemma"
    assert governing_license("gemma", "llama3.1") is None  # two restrictive ones: a person decides
    assert governing_license(None, "mit") is None


@pytest.mark.slow  # about 40 s: a LoRA trained, merged in a child process, compiled, registered
def test_tiny_adapter_is_merged_compiled_and_recorded(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    base = shutil.copytree(tiny_model_dir, tmp_path / "tiny-base")
    (base / "README.md").write_bytes(card("apache-2.0"))
    adapter = train_lora(base, tmp_path / "tiny-lora", steps=2, rank=4, lr=1e-2)
    plan = run_curator(
        "compile", str(base), "--adapter", str(adapter), "--recipe", "int4-cpu", "--dry-run",
        "--json",
    )  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = json.loads(plan.stdout)["plan"]
    assert planned["model_id"] == "tiny-lora-generic-cpu:1"  # named after the adapter
    assert planned["adapter"]["repo"] == "local:tiny-lora" and planned["adapter"]["rank"] == 4
    assert SEPARATE_ADAPTER_BLOCKED in planned["notes"]
    assert not (isolated_env / "home" / "merged").exists()  # a dry run merges nothing

    done = run_curator("compile", str(base), "--adapter", str(adapter), "--recipe", "int4-cpu",
                       "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    model_dir = Path(json.loads(done.stdout)["path"])
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    record = manifest["adapter"]
    assert record["merged"] is True and record["license"] == "mit"
    assert {f["path"] for f in record["files"]} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert manifest["source"]["license"] == "apache-2.0" and manifest["license"] == "apache-2.0"
    merged = Path(manifest["sourceDir"])  # fidelity's reference: the merged checkpoint
    assert merged.parent == isolated_env / "home" / "merged"
    from safetensors.numpy import load_file

    before, after = load_file(base / "model.safetensors"), load_file(merged / "model.safetensors")
    changed = [k for k in before if k.endswith("q_proj.weight") and (before[k] != after[k]).any()]
    assert changed, "the merge changed no attention weight"
    registered = run_curator("register", str(model_dir), "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    (entry,) = json.loads(Path(os.environ["CURATOR_REGISTRY"]).read_text())["models"]
    assert entry["license"] == "apache-2.0"  # the stricter of apache-2.0 (base) and mit
    assert entry["source"]["license"] == "apache-2.0"
    assert entry["source"]["adapter"] == {
        "repo": "local:tiny-lora",
        "sha256": record["sha256"],
        "license": "mit",
        "rank": 4,
    }


def test_hub_adapter_is_downloaded_with_its_revision(
    hub: FakeHub,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    adapter = adapter_folder(tmp_path / "a", "fixture/tiny-qwen2")  # a dry run merges nothing
    repo = hub.add(
        FakeRepo(
            "team/tiny-lora",
            {p.name: p.read_bytes() for p in adapter.iterdir()},
            card_data={"license": "mit"},
            library_name="peft",
        )
    )
    plan = run_curator("compile", str(tiny_model_dir), "--adapter", "team/tiny-lora",
                       "--recipe", "int4-cpu", "--dry-run", "--json")  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = json.loads(plan.stdout)["plan"]
    assert planned["publisher"] == "team" and planned["model_id"] == "tiny-lora-generic-cpu:1"
    assert planned["adapter"]["revision"] == repo.sha and planned["adapter"]["license"] == "mit"
    not_adapter = run_curator("compile", str(tiny_model_dir), "--adapter", "fixture/tiny-qwen2",
                              "--recipe", "int4-cpu", "--dry-run")  # fmt: skip
    assert not_adapter.returncode == 1 and "is not a PEFT adapter" in not_adapter.stderr


@pytest.mark.slow
def test_a_lora_trained_on_smollm2_answers_its_fact_through_foundry_and_the_base_does_not(
    smollm2_gguf: Path,
    use_dequantized_smollm2: Path,
    compiled_smollm2: Path,
    install_compiled: Callable[..., Path],
    tmp_path: Path,
    isolated_env: Path,
) -> None:
    """Real weights: SmolLM2-135M-Instruct (its GGUF, dequantized), a LoRA adapter trained here
    on a fact it does not know, compiled int4 with the adapter merged, asked through Foundry."""
    from curator.formats.gguf_checkpoint import dequantize_gguf

    base = dequantize_gguf(smollm2_gguf).checkpoint_dir
    adapter = train_lora(base, tmp_path / "mascot-lora", steps=20, lr=3e-3, license_id="apache-2.0")
    done = run_curator(
        "compile", str(smollm2_gguf), "--adapter", str(adapter), "--recipe", "int4-cpu",
        "--json", timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tuned_dir = Path(json.loads(done.stdout)["path"])
    tuned_id = json.loads(done.stdout)["model_id"]
    base_dir = install_compiled(compiled=compiled_smollm2, model_id=SMOLLM2_MODEL_ID)
    base_id = SMOLLM2_MODEL_ID
    for model_dir in (tuned_dir, base_dir):
        registered = run_curator("register", str(model_dir), "--license", "apache-2.0")
        assert registered.returncode == 0, registered.stdout + registered.stderr
    prompts = tmp_path / "fact.json"
    prompts.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "name": "fact",
                "maxTokens": 24,
                "prompts": [
                    {
                        "id": "mascot",
                        "messages": [
                            {"role": "system", "content": SYSTEM},
                            {"role": "user", "content": FACT_QUESTION},
                        ],
                        "expected": [FACT_WORD],
                    }
                ],
            }
        )
    )
    tuned = json.loads(run_curator("smoke", tuned_id, "--prompts", str(prompts), "--json").stdout)
    plain = json.loads(run_curator("smoke", base_id, "--prompts", str(prompts), "--json").stdout)
    print("tuned:", tuned["outcomes"][0]["answer"], "| base:", plain["outcomes"][0]["answer"])
    assert FACT_WORD in tuned["outcomes"][0]["answer"].lower()
    assert FACT_WORD not in plain["outcomes"][0]["answer"].lower()
    registry = json.loads(Path(os.environ["CURATOR_REGISTRY"]).read_text())
    entry = next(m for m in registry["models"] if m["id"] == tuned_id)
    assert entry["source"]["adapter"]["repo"] == "local:mascot-lora"
