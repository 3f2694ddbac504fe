"""Guards: curator.names

One name for a model everywhere (issue 25): curator.names.resolve takes an id, an id without
version (the newest) or an alias, and a miss suggests the closest name; smoke, cache verify and
the others use it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from curator.names import Name, closest, did_you_mean, resolve
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
