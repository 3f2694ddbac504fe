"""Guards: curator.compile.preflight, curator.compile.source, curator.compile.api,
  curator.onboard.pipeline

Tests that bite (issue 17), the trust gates of compile and onboard: each one is a small deliberate bug in the guarding code that
the rest of the suite let through, written as the bug it catches. All in process and fast, so
that `make mutation` can run them against every mutant (split from test_guards_bite.py).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from curator.errors import PreflightError


def sparse_safetensors(path: Path, elements: int) -> None:
    """A valid safetensors file of one BF16 tensor of ``elements`` values, sparse (no data is
    written): the strict header reader checks that the offsets span dtype x shape and that the
    file holds them, so a header alone (offsets [0, 0]) is refused and counted by its bytes."""
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [elements], "data_offsets": [0, 2 * elements]}}
    )
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header.encode())
        out.truncate(8 + len(header) + 2 * elements)


# What refuses the custom-code model once it is trusted: its size (RAM first, then disk).
PAST_THE_GATE = r"(recipe int4-cpu is predicted to need [\d.]+ GiB of RAM at peak|not enough disk)"


def custom_code_model(root: Path) -> Path:
    """A Qwen2 config with a chat template that ships its own code, with weights claiming as
    many parameters as the disk has free bytes: past the trust gate, the size checks (RAM, then
    disk) refuse it before anything runs."""
    model = root / "custom"
    model.mkdir()
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "auto_map": {"AutoModelForCausalLM": "modeling_custom.Custom", "AutoConfig": "c.C"},
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_custom.py").write_text("raise SystemExit('must not run')\n")
    (model / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    sparse_safetensors(model / "model.safetensors", shutil.disk_usage(root).free)
    return model


def test_compile_refuses_repository_code_unless_trusted(tmp_path: Path) -> None:
    from curator.compile import CompileRequest, compile_model

    model = custom_code_model(tmp_path)
    request = CompileRequest(source=str(model), recipe="int4-cpu", dry_run=True)
    with pytest.raises(PreflightError) as refused:
        compile_model(request)
    assert refused.value.message == (
        "the model ships its own code (auto_map AutoConfig, auto_map AutoModelForCausalLM, "
        "modeling_custom.py); it would run during the compile"
    )
    assert refused.value.hint == "read that code, then add --trust-remote-code"
    trusted = CompileRequest(
        source=str(model), recipe="int4-cpu", dry_run=True, trust_remote_code=True
    )
    with pytest.raises(PreflightError, match=PAST_THE_GATE):
        compile_model(trusted)


def test_repository_code_is_refused_before_a_missing_chat_template(tmp_path: Path) -> None:
    """The trust gate is the first refusal: a user told to add a chat template would come back
    to be told the repository's code runs too."""
    from curator.compile import CompileRequest, compile_model

    model = custom_code_model(tmp_path)
    (model / "chat_template.jinja").unlink()
    request = CompileRequest(source=str(model), recipe="int4-cpu", dry_run=True)
    with pytest.raises(PreflightError, match="ships its own code"):
        compile_model(request)
    trusted = CompileRequest(
        source=str(model), recipe="int4-cpu", dry_run=True, trust_remote_code=True
    )
    with pytest.raises(PreflightError, match="has no chat template"):
        compile_model(trusted)


def test_a_malformed_auto_map_is_still_repository_code(tmp_path: Path) -> None:
    from curator.compile.source import custom_code_files

    assert custom_code_files(tmp_path, {"auto_map": "modeling.X"}) == ["auto_map (malformed)"]
    assert custom_code_files(tmp_path, {"auto_map": {}}) == []
    (tmp_path / "b.py").write_text("")
    (tmp_path / "a.py").write_text("")
    assert custom_code_files(tmp_path, {}) == ["a.py", "b.py"]


def test_the_trusted_olive_workflow_is_told_to_trust_and_the_untrusted_is_not(
    tmp_path: Path,
) -> None:
    from curator.compile import CompileRequest, compile_model

    model = tmp_path / "plain"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    )
    (model / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    for trust in (False, True):
        request = CompileRequest(
            source=str(model), recipe="int4-cpu", dry_run=True, trust_remote_code=trust
        )
        plan = compile_model(request).plan
        assert plan is not None
        loaded = plan.olive_config["input_model"].get("load_kwargs", {})
        assert loaded.get("trust_remote_code", False) is trust
        assert plan.olive_config["input_model"]["model_path"] == str(model.resolve())


def test_onboard_refuses_repository_code_unless_trusted(tmp_path: Path) -> None:
    """Bug: `onboard` always trusts repository code (--trust-remote-code forced on): only compile
    had a test for the gate. Nothing is written to the registry either way."""
    from curator.onboard.pipeline import OnboardRequest, OnboardStepFailed, onboard

    model = custom_code_model(tmp_path)
    registry = tmp_path / "registry" / "models.json"
    common: dict[str, Any] = {
        "source": str(model),
        "registry": registry,
        "cache_dir": tmp_path / "cache",
        "out_dir": tmp_path / "out",
    }
    with pytest.raises(OnboardStepFailed) as refused:
        onboard(OnboardRequest(**common))
    assert refused.value.message.startswith("compile failed: the model ships its own code")
    assert refused.value.hint == "read that code, then add --trust-remote-code"
    with pytest.raises(OnboardStepFailed) as trusted:
        onboard(OnboardRequest(**common, trust_remote_code=True))
    assert re.match(f"compile failed: {PAST_THE_GATE}", trusted.value.message)
    assert not registry.exists()
