"""A narrow shim between the ONNX Runtime GenAI model builder (0.14.1) and transformers 5 configs.

transformers 5 keeps Gemma 3's rotary settings in ``rope_parameters``, one set per attention kind
(``full_attention`` and ``sliding_attention``), and no longer has ``rope_theta`` or
``rope_local_base_freq``. The builder still reads the old names:

- ``Gemma3ForCausalLM`` (the gemma-3-270m family) fails with ``'Gemma3TextConfig' object has no
  attribute 'rope_local_base_freq'``;
- with that fixed alone it would build silently wrong: without ``rope_theta`` the builder looks for
  a ``rope_theta`` key in ``rope_scaling`` (now an alias of the nested ``rope_parameters``), finds
  none and uses 10000 for the global layers (Gemma 3 uses 1000000), and it never sees the global
  layers' linear scaling (factor 8 in the larger Gemma 3 models).

:func:`adapt_config` gives the builder's own copy of the config the shape it expects: the global
(full-attention) rope parameters as ``rope_parameters`` (so ``rope_scaling`` reads as before) and
the local theta as ``rope_local_base_freq``. The builder hard-codes Gemma 3's layer pattern (every
sixth layer global); a config whose ``layer_types`` say otherwise is refused rather than built
wrong.

Phi and Nemotron build without an error but silently wrong, the same way: transformers 5 moved
``partial_rotary_factor`` into ``rope_parameters`` (the builder would rotate whole heads instead of
half of each), and the builder reads the norm epsilon only as ``rms_norm_eps`` (1e-6 otherwise,
where these models say 1e-5 as ``layer_norm_eps`` / ``norm_eps``); both are copied over. Nothing else is touched: the weights are read from disk by transformers as usual, and no
installed package is edited. :func:`install` applies it inside the Olive child process
(``curator.compile.olive_child``), the only place the builder runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GEMMA3_GLOBAL_EVERY = 6  # onnxruntime_genai 0.14.1 Gemma3Model.is_local: bool((layer_id + 1) % 6)
_PER_LAYER_KINDS = ("full_attention", "sliding_attention")


def builder_layer_types(num_layers: int) -> list[str]:
    """The attention kind of each layer as the builder's Gemma3Model assumes it."""
    return [
        "sliding_attention" if (i + 1) % GEMMA3_GLOBAL_EVERY else "full_attention"
        for i in range(num_layers)
    ]


def adapt_config(config: Any) -> list[str]:
    """Rewrite per-attention-kind rope parameters (transformers 5) into the fields the builder
    reads, on ``config`` and on its ``text_config`` if it has one; returns what was changed."""
    changed: list[str] = []
    text_config = getattr(config, "text_config", None)
    for target, where in ((config, ""), (text_config, "text_config.")):
        if target is not None:
            changed += [where + name for name in _adapt_one(target)]
    return changed


def _adapt_one(config: Any) -> list[str]:
    params = getattr(config, "rope_parameters", None)
    changed = _partial_rotary(config, params) + _norm_epsilon(config)
    if not isinstance(params, Mapping) or not all(
        isinstance(params.get(kind), Mapping) for kind in _PER_LAYER_KINDS
    ):
        return changed  # flat rope parameters: the builder reads the rest as they are
    full, local = dict(params["full_attention"]), dict(params["sliding_attention"])
    layer_types = getattr(config, "layer_types", None)
    layers = getattr(config, "num_hidden_layers", None)
    expected = builder_layer_types(layers) if isinstance(layers, int) else None
    if isinstance(layer_types, list) and expected is not None and list(layer_types) != expected:
        raise ValueError(
            "the model builder assumes every sixth layer uses global attention; this config's "
            f"layer_types are {layer_types}: it cannot be built correctly"
        )
    changed.append("rope_parameters")
    config.rope_parameters = full  # the global layers' theta and scaling, read via rope_scaling
    if not hasattr(config, "rope_local_base_freq") and "rope_theta" in local:
        config.rope_local_base_freq = local["rope_theta"]
        changed.append("rope_local_base_freq")
    return changed


def _partial_rotary(config: Any, params: Any) -> list[str]:
    """Phi and Nemotron rotate only part of each head (factor 0.5); transformers 5 keeps the factor
    in ``rope_parameters`` and the builder, reading ``config.partial_rotary_factor``, would rotate
    the whole head."""
    if not isinstance(params, Mapping) or hasattr(config, "partial_rotary_factor"):
        return []
    factor = params.get("partial_rotary_factor")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool):
        return []
    config.partial_rotary_factor = float(factor)
    return ["partial_rotary_factor"]


def _norm_epsilon(config: Any) -> list[str]:
    """The builder takes every norm's epsilon from ``rms_norm_eps`` and otherwise uses 1e-6; Phi
    (``layer_norm_eps``) and Nemotron (``norm_eps``) name theirs differently (1e-5)."""
    if hasattr(config, "rms_norm_eps"):
        return []
    for name in ("layer_norm_eps", "norm_eps"):
        value = getattr(config, name, None)
        if isinstance(value, float):
            config.rms_norm_eps = value
            return ["rms_norm_eps"]
    return []


def install() -> None:
    """Make the builder load configs through :func:`adapt_config` (in this process only)."""
    from onnxruntime_genai.models import builder

    original = builder.AutoConfig
    if getattr(original, "_curator_compat", False):
        return

    class CompatAutoConfig:
        _curator_compat = True

        @staticmethod
        def from_pretrained(*args: Any, **kwargs: Any) -> Any:
            config = original.from_pretrained(*args, **kwargs)
            adapt_config(config)
            return config

    builder.AutoConfig = CompatAutoConfig
