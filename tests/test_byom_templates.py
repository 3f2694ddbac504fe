"""Guards: curator.cli.compile, curator.cli.foundry, curator.compile.chat_templates,
  curator.compile.manifest

Issue 21 item 4: --chat-template NAME|FILE (templates shipped as data) and --completion-only
(registered for text-generation, smoke-tested with continuations, served on /v1/completions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import LIVENESS_PROMPTS, run_curator

MESSAGES = [
    {"role": "system", "content": "SYSTEM-TEXT"},
    {"role": "user", "content": "USER-TEXT"},
    {"role": "assistant", "content": "ASSISTANT-TEXT"},
    {"role": "user", "content": "SECOND-USER"},
]
MARKERS = {
    "chatml": "<|im_start|>assistant\n",
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "gemma": "<start_of_turn>model\n",
    "phi3": "<|assistant|>\n",
    "zephyr": "<|assistant|>\n",
    "mistral": "[INST] SECOND-USER [/INST]",
}


def without_template(model: Path, destination: Path) -> Path:
    """A copy of a model directory with its chat template removed (a base model)."""
    base = shutil.copytree(model, destination)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    return base


def test_every_shipped_template_renders_with_transformers(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from curator.compile.chat_templates import resolve_chat_template, shipped_names

    assert set(shipped_names()) == set(MARKERS)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    for name in shipped_names():
        template = resolve_chat_template(name)
        text = tokenizer.apply_chat_template(
            MESSAGES, chat_template=template.text, tokenize=False, add_generation_prompt=True
        )
        for content in ("SYSTEM-TEXT", "USER-TEXT", "ASSISTANT-TEXT", "SECOND-USER"):
            assert content in text, (name, text)
        assert text.index("USER-TEXT") < text.index("ASSISTANT-TEXT") < text.index("SECOND-USER")
        assert MARKERS[name] in text, (name, text)


def test_installed_template_gives_foundry_a_prompt_template(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from curator.compile.chat_templates import install, resolve_chat_template
    from curator.compile.manifest import prompt_template

    base = without_template(tiny_model_dir, tmp_path / "base")
    assert prompt_template(base) == {}
    for name in MARKERS:
        install(resolve_chat_template(name), base)
        rendered = prompt_template(base)
        assert "{Content}" in rendered["prompt"], (name, rendered)
        assert (
            json.loads((base / "tokenizer_config.json").read_text())["chat_template"]
            == (base / "chat_template.jinja").read_text()
        )


def test_unknown_template_and_unusable_file_are_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    base = without_template(tiny_model_dir, tmp_path / "base")
    unknown = run_curator("compile", str(base), "--recipe", "int4-cpu", "--chat-template", "vicuna")
    assert unknown.returncode == 2
    assert "unknown chat template 'vicuna'; shipped: chatml, gemma, llama3" in unknown.stderr
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}")
    done = run_curator("compile", str(base), "--recipe", "int4-cpu", "--chat-template", str(broken))
    assert done.returncode == 1 and "does not render" in done.stderr
    both = run_curator(
        "compile", str(base), "--recipe", "int4-cpu", "--chat-template", "chatml",
        "--completion-only", "--dry-run",
    )  # fmt: skip
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_dry_run_plans_the_template_and_warns_about_unknown_markers(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    base = without_template(tiny_model_dir, tmp_path / "base")
    chatml = run_curator(
        "compile", str(base), "--recipe", "int4-cpu", "--chat-template", "chatml", "--dry-run",
        "--json",
    )  # fmt: skip
    assert chatml.returncode == 0, chatml.stderr
    plan = json.loads(chatml.stdout)["plan"]
    assert plan["chat_template"]["name"] == "chatml"
    assert not any("has no token for" in n for n in plan["notes"])  # the tiny vocab has ChatML's
    llama3 = run_curator(
        "compile", str(base), "--recipe", "int4-cpu", "--chat-template", "llama3", "--dry-run",
        "--json",
    )  # fmt: skip
    notes = json.loads(llama3.stdout)["plan"]["notes"]
    assert any("<|start_header_id|>" in n and "has no token for" in n for n in notes), notes


def test_compile_with_a_chat_template_installs_and_records_it(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    from curator.compile.chat_templates import resolve_chat_template

    base = without_template(tiny_model_dir, tmp_path / "base-model")
    done = run_curator(
        "compile", str(base), "--recipe", "int4-cpu", "--chat-template", "chatml",
        "--id", "base-model-generic-cpu:1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    model_dir = Path(json.loads(done.stdout)["path"])
    chatml = resolve_chat_template("chatml")
    assert (model_dir / "chat_template.jinja").read_text() == chatml.text
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    assert manifest["chatTemplate"] == {
        "name": "chatml",
        "origin": "shipped",
        "sha256": chatml.sha256,
    }
    assert "completionOnly" not in manifest
    inference = json.loads((model_dir / "inference_model.json").read_text())
    assert inference["PromptTemplate"]["prompt"].startswith("<|im_start|>user\n{Content}")


@pytest.mark.slow
def test_completion_only_registers_smokes_and_serves_as_a_base_model(
    tiny_model_dir: Path, tmp_path: Path, install_compiled: object, isolated_env: Path
) -> None:
    """End to end through Foundry Local: text-generation entry, continuation smoke prompts,
    /v1/completions answers and chat is refused (a chat model the other way round)."""
    from tests.serve_helpers import client, env_for, running_server

    base = without_template(tiny_model_dir, tmp_path / "base-model")
    done = run_curator(
        "compile", str(base), "--recipe", "int4-cpu", "--completion-only", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    model_dir = Path(json.loads(done.stdout)["path"])
    model_id = json.loads(done.stdout)["model_id"]
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    assert manifest["completionOnly"] is True and manifest["chatTemplate"]["name"] == "completion"
    registered = run_curator("register", str(model_dir), "--license", "mit", "--json")
    assert registered.returncode == 0, registered.stderr
    registry = json.loads(Path(isolated_env / "registry" / "models.json").read_text())
    (entry,) = registry["models"]
    assert entry["task"] == "text-generation" and entry["capabilities"] == []
    smoke = run_curator("smoke", model_id, "--json")
    report = json.loads(smoke.stdout)
    assert Path(report["prompt_set"]).name == "completion.json"  # continuations, not chat
    liveness = run_curator("smoke", model_id, "--prompts", str(LIVENESS_PROMPTS), "--json")
    # Every prompt is answered through Foundry Local. The tiny model's weights are random: an
    # answer that repeats itself is refused as degenerate (issue 25), and is all it may fail on.
    outcomes = json.loads(liveness.stdout)["outcomes"]
    assert [o["id"] for o in outcomes] == ["greeting", "capital", "follow-up"]
    for outcome in outcomes:
        assert outcome["answer"].strip() and outcome["completion_tokens"] > 0, outcome
        assert outcome["ok"] or outcome["error"].startswith("degenerate answer: "), outcome
    assert liveness.returncode == (0 if all(o["ok"] for o in outcomes) else 1)
    chat_dir = install_compiled()  # type: ignore[operator]
    assert run_curator("register", str(chat_dir), "--license", "mit").returncode == 0
    env = env_for(isolated_env)
    env["FOUNDRY_CACHE_DIR"] = str(isolated_env / "foundry-cache")
    env["CURATOR_HOME"] = str(isolated_env / "home")
    with running_server(env) as (url, _pid):
        import openai

        api = client(url)
        text = api.completions.create(model=model_id, prompt="def add(a, b):", max_tokens=8)
        assert text.object == "text_completion" and text.usage.completion_tokens > 0
        assert text.choices[0].text
        with pytest.raises(openai.BadRequestError, match="/v1/completions"):
            api.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        with pytest.raises(openai.BadRequestError, match="is a chat model"):
            api.completions.create(model="tiny-qwen2-generic-cpu:1", prompt="x", max_tokens=4)
