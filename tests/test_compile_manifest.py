"""Guards: curator.compile.manifest, curator.compile.runtime_options

inference_model.json's PromptTemplate, rendered from a model's chat template, and the
artifact list of a compiled directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curator.compile import manifest

PHI_STYLE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)
NO_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
DATED = "Today is {{ strftime_now('%Y') }}.{% for m in messages %} {{ m['content'] }}{% endfor %}"


def model_dir(tmp_path: Path, template: str, *, where: str = "jinja") -> Path:
    tokenizer_config: dict[str, object] = {"bos_token": "<s>", "eos_token": {"content": "</s>"}}
    if where == "jinja":
        (tmp_path / "chat_template.jinja").write_text(template)
    else:
        tokenizer_config["chat_template"] = template
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return tmp_path


def test_prompt_template_from_a_jinja_file_with_special_tokens(tmp_path: Path) -> None:
    template = manifest.prompt_template(model_dir(tmp_path, PHI_STYLE))
    assert template == {
        "system": "<s><|system|>\n{Content}<|end|>\n</s>",
        "user": "<s><|user|>\n{Content}<|end|>\n</s>",
        "assistant": "<s><|assistant|>\n{Content}<|end|>\n</s>",
        "prompt": "<s><|user|>\n{Content}<|end|>\n<|assistant|>\n",
    }


def test_a_role_the_template_refuses_is_left_out(tmp_path: Path) -> None:
    template = manifest.prompt_template(model_dir(tmp_path, NO_SYSTEM, where="config"))
    assert "system" not in template
    assert template["prompt"] == "[user] {Content}\n[assistant] "


def test_templates_may_ask_for_the_date(tmp_path: Path) -> None:
    template = manifest.prompt_template(model_dir(tmp_path, DATED))
    assert template["user"].startswith("Today is 20") and template["user"].endswith(" {Content}")


def test_no_chat_template_gives_an_empty_prompt_template(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{}")
    assert manifest.prompt_template(tmp_path) == {}
    path = manifest.write_inference_model(tmp_path, "x-generic-cpu:1")
    assert json.loads(path.read_text()) == {"Name": "x-generic-cpu", "PromptTemplate": {}}


def test_artifacts_cover_every_file_but_the_manifest_and_log(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    files = {"model.onnx": b"onnx", "sub/extra.bin": b"\x00" * 10, "genai_config.json": b"{}"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / manifest.MANIFEST_NAME).write_text("{}")
    (tmp_path / manifest.LOG_NAME).write_text("log")
    found = {a.path: a for a in manifest.artifacts(tmp_path)}
    assert set(found) == set(files)
    for name, data in files.items():
        assert found[name].sha256 == hashlib.sha256(data).hexdigest()
        assert found[name].bytes == len(data)


def test_threads_all_cores_unless_the_recipe_chose(tmp_path: Path) -> None:
    """The builder writes no thread count (half speed on 2 cores); one a recipe set is kept."""
    from curator.compile.runtime_options import session_threads, use_all_cores

    def genai(options: dict[str, object]) -> Path:
        path = tmp_path / "genai_config.json"
        decoder = {"filename": "model.onnx", "session_options": options}
        path.write_text(json.dumps({"model": {"decoder": decoder}}))
        return tmp_path

    assert session_threads(genai({"log_id": "x"})) is None
    assert use_all_cores(tmp_path) == 0
    assert session_threads(tmp_path) == 0
    kept = json.loads((tmp_path / "genai_config.json").read_text())
    assert kept["model"]["decoder"]["session_options"]["log_id"] == "x"
    assert use_all_cores(genai({"intra_op_num_threads": 3})) == 3
    assert session_threads(tmp_path) == 3
