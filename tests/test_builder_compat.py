"""Guards: curator.compile.builder_compat, curator.compile.olive_child, curator.compile.olive_run

The model-builder shim for transformers 5 configs (issue 11 item 6), on real config classes.

The compile of a tiny Gemma 3 through the builder, checked against transformers' own logits, is
in tests/test_compile_slow.py."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from curator.compile.builder_compat import adapt_config, builder_layer_types
from curator.compile.olive_run import olive_command


def gemma3_text(**extra: Any) -> Any:
    from transformers import Gemma3TextConfig

    fields: dict[str, Any] = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 7,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "vocab_size": 512,
        **extra,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Gemma3TextConfig(**fields)


def test_gemma3_gets_the_fields_the_builder_reads() -> None:
    """Bug: the builder reads rope_local_base_freq (gone in transformers 5) and, finding no
    rope_theta, would build the global layers with theta 10000 instead of 1000000."""
    config = gemma3_text(rope_local_base_freq=12_345.0)
    assert not hasattr(config, "rope_local_base_freq")
    assert adapt_config(config) == ["rope_parameters", "rope_local_base_freq"]
    assert config.rope_local_base_freq == 12_345.0
    assert config.rope_scaling["rope_theta"] == 1_000_000.0  # what the builder reads for theta
    assert config.rope_scaling["rope_type"] == "default"


def test_gemma3_global_scaling_reaches_the_builder() -> None:
    """Bug: the larger Gemma 3 models scale the global layers' rope linearly (factor 8); nested per
    attention kind, the builder never sees it and builds unscaled rope."""
    config = gemma3_text(rope_scaling={"rope_type": "linear", "factor": 8.0})
    adapt_config(config)
    assert config.rope_scaling["rope_type"] == "linear" and config.rope_scaling["factor"] == 8.0
    assert config.rope_local_base_freq == 10_000.0


def test_a_layer_pattern_the_builder_cannot_express_is_refused() -> None:
    assert builder_layer_types(7) == ["sliding_attention"] * 5 + ["full_attention"] * 1 + [
        "sliding_attention"
    ]
    config = gemma3_text(layer_types=["full_attention"] * 7)
    with pytest.raises(ValueError, match="every sixth layer uses global attention"):
        adapt_config(config)


def test_the_multimodal_gemma3_text_config_is_adapted_too() -> None:
    from transformers import Gemma3Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = Gemma3Config(text_config=gemma3_text().to_dict())
    changed = adapt_config(config)
    assert "text_config.rope_local_base_freq" in changed
    assert config.text_config.rope_local_base_freq == 10_000.0


@pytest.mark.parametrize(
    ("model_type", "eps_field"), [("phi", "layer_norm_eps"), ("nemotron", "norm_eps")]
)
def test_half_rotary_models_keep_their_factor_and_epsilon(model_type: str, eps_field: str) -> None:
    """Bug: under transformers 5 the builder rotates Phi's and Nemotron's whole heads (the factor
    0.5 moved into rope_parameters) and normalises with epsilon 1e-6 instead of their 1e-5."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(
        model_type, hidden_size=128, num_attention_heads=4, num_hidden_layers=2
    )
    assert not hasattr(config, "partial_rotary_factor") and not hasattr(config, "rms_norm_eps")
    assert adapt_config(config) == ["partial_rotary_factor", "rms_norm_eps"]
    assert config.partial_rotary_factor == 0.5
    assert config.rms_norm_eps == getattr(config, eps_field) == 1e-5


def test_configs_with_flat_rope_parameters_are_left_alone() -> None:
    from transformers import Qwen2Config

    config = Qwen2Config(hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
    before = config.to_dict()
    assert adapt_config(config) == []
    assert config.to_dict() == before


def test_olive_runs_through_the_shim() -> None:
    command = olive_command(Path("/x/olive-config.json"))
    assert command[1:] == [
        "-m",
        "curator.compile.olive_child",
        "run",
        "--config",
        "/x/olive-config.json",
    ]


def test_olive_identifies_the_input_without_reading_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from olive.model.config.model_config import ModelConfig

    from curator.compile.olive_child import fingerprint_input_by_metadata

    # restored after the test: the shim replaces a method on Olive's class
    monkeypatch.setattr(ModelConfig, "_get_model_files_hash", ModelConfig._get_model_files_hash)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    weights = model / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    (model / "sub" / "config.json").write_text("{}", encoding="utf-8")
    config = ModelConfig.model_validate({"type": "HfModel", "config": {"model_path": str(model)}})
    by_content = config.get_model_id()

    fingerprint_input_by_metadata()
    first = config.get_model_id()
    assert first != by_content  # the shim is what answers now
    assert config.get_model_id() == first  # and stably

    stat = weights.stat()
    weights.write_bytes(b"b" * 64)  # other bytes, same size and time: not read, same key
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.get_model_id() == first

    weights.write_bytes(b"b" * 65)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.get_model_id() != first  # a size change is seen
    weights.write_bytes(b"b" * 64)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert config.get_model_id() != first  # so is a new modification time
    (model / "sub" / "extra.txt").write_text("x", encoding="utf-8")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.get_model_id() != first  # and a new file anywhere under the input


def test_the_olive_child_parses_only_the_run_command() -> None:
    from curator.compile.olive_child import _arguments

    args = _arguments(["run", "--config", "/x/olive-config.json"])
    assert (args.command, args.config) == ("run", Path("/x/olive-config.json"))
    with pytest.raises(SystemExit):
        _arguments(["optimize", "--config", "/x/olive-config.json"])
