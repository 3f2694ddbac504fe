"""Guards: curator.names

One name for a model everywhere (issue 25): curator.names.resolve takes an id, an id without
version (the newest) or an alias, and a miss suggests the closest name; smoke, cache verify and
the others use it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from curator.names import Name, closest, did_you_mean, load_registered, resolve
from tests.conftest import LIVENESS_PROMPTS, TINY_MODEL_ID, run_curator
from tests.serve_helpers import register_models

MODELS = [
    Name("smollm2-135m-instruct-generic-cpu:1", "smollm2-135m-instruct", "CPU"),
    Name("smollm2-135m-instruct-generic-cpu:2", "smollm2-135m-instruct", "CPU"),
    Name("smollm2-135m-instruct-cuda-gpu:3", "smollm2-135m-instruct", "GPU"),
    Name("qwen2.5-0.5b-instruct-generic-cpu:10", "qwen2.5-0.5b-instruct", "CPU"),
    Name("qwen2.5-0.5b-instruct-generic-cpu:9", "qwen2.5-0.5b-instruct", "CPU"),
]


def test_resolve_id_bare_name_and_alias() -> None:
    def resolved(name: str) -> str | None:
        found = resolve(name, MODELS)
        return found.id if found else None

    assert resolved("smollm2-135m-instruct-generic-cpu:1") == "smollm2-135m-instruct-generic-cpu:1"
    assert resolved("smollm2-135m-instruct-generic-cpu") == "smollm2-135m-instruct-generic-cpu:2"
    assert resolved("smollm2-135m-instruct") == "smollm2-135m-instruct-generic-cpu:2"  # CPU first
    assert resolved("qwen2.5-0.5b-instruct") == "qwen2.5-0.5b-instruct-generic-cpu:10"  # by number
    assert resolved("smollm2") is None


def test_a_miss_suggests_the_closest_name() -> None:
    assert did_you_mean("smolm2", MODELS) == "did you mean smollm2-135m-instruct-generic-cpu:2?"
    assert did_you_mean("smollm2-135m-instruc", MODELS) == (
        "did you mean smollm2-135m-instruct-generic-cpu:2?"
    )
    assert did_you_mean("qwen2.5-0.5b-instruct-generic-cpu:11", MODELS) == (
        "did you mean qwen2.5-0.5b-instruct-generic-cpu:10?"
    )
    assert did_you_mean("llama-3", MODELS) is None
    assert closest("x", []) is None
    # a name that is itself one of the models is not a suggestion for it
    assert did_you_mean("qwen2.5-0.5b-instruct-generic-cpu:10", MODELS) is None


def test_a_compiled_model_never_registered_is_named_with_the_register_command(
    tmp_path: Path,
) -> None:
    import pytest

    from curator.errors import NotFound

    model_dir = tmp_path / "local" / "smollm2-135m-instruct-generic-cpu-1"
    model_dir.mkdir(parents=True)
    (model_dir / "genai_config.json").write_text("{}", encoding="utf-8")

    class Runtime:  # Foundry Local with nothing registered
        cache_dir = tmp_path

        def list_registered(self) -> list[Name]:
            return []

        def load(self, model_id: str) -> None:
            raise NotFound(f"{model_id} is neither registered nor downloaded", hint="curator paths")

    for name in ("smollm2-135m-instruct-generic-cpu:1", "smollm2-135m-instruct"):
        with pytest.raises(NotFound) as missed:
            load_registered(Runtime(), name)
        assert missed.value.hint == (
            "smollm2-135m-instruct-generic-cpu:1 is compiled in the cache but not registered: "
            "curator register smollm2-135m-instruct-generic-cpu:1"
        )
    with pytest.raises(NotFound) as other:  # a near miss still gets the closest name
        load_registered(Runtime(), "smollm2-135m-instruc")
    assert other.value.hint == "did you mean smollm2-135m-instruct-generic-cpu:1? curator paths"


def test_commands_take_alias_and_bare_name(
    install_compiled: Callable[..., Path], tmp_path: Path
) -> None:
    model_dir = install_compiled()
    for name in ("tiny-qwen2", "tiny-qwen2-generic-cpu", TINY_MODEL_ID):
        done = run_curator("cache", "verify", name, "--json")
        assert done.returncode == 0, done.stderr
        assert [r["id"] for r in json.loads(done.stdout)] == [TINY_MODEL_ID]
    missed = run_curator("cache", "verify", "tiny-qwen", "--json")
    assert json.loads(missed.stdout)["hint"].startswith(f"did you mean {TINY_MODEL_ID}?")

    register_models([(model_dir, TINY_MODEL_ID)])
    smoke = run_curator("smoke", "tiny-qwen2", "--prompts", str(LIVENESS_PROMPTS), "--json")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert json.loads(smoke.stdout)["model_id"] == TINY_MODEL_ID
    missed = run_curator("smoke", "tiny-qwen3", "--json")
    assert missed.returncode == 1
    assert f"did you mean {TINY_MODEL_ID}?" in json.loads(missed.stdout)["hint"]
