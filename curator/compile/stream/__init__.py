"""The streaming compile: the model builder fed one tensor at a time, each MatMul weight quantized
as it is made and every initializer written to the external data file at once.

- :mod:`.checkpoint`: safetensors read tensor by tensor (no whole-file map, bf16 kept bf16).
- :mod:`.builder_patch`: the model builder (onnxruntime-genai 0.14.1) taught to stream, active only
  while a :class:`~.builder_patch.StreamSession` is open, falling back to the builder's own path for
  what it cannot stream (and saying so in the log).
- :mod:`.olive_pass`: ``CuratorModelBuilder``, the Olive pass recipes name (registered in the
  compile's child process by ``curator.compile.olive_child``).
"""

# The builder classes (config.json ``architectures[0]``) whose weights stream, each checked on a
# tiny model against the builder's own path (tests/test_stream_compile.py). Other architectures
# are built the builder's own way. Kept here (no heavy import) for preflight.
STREAMING_ARCHITECTURES: frozenset[str] = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Phi3ForCausalLM",
        "PhiForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "GraniteForCausalLM",
        "NemotronForCausalLM",
    }
)
