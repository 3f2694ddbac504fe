"""The streaming compile: the model builder fed one tensor at a time, each MatMul weight quantized
as it is made and every initializer written to the external data file at once.

- :mod:`.checkpoint`: safetensors read tensor by tensor (no whole-file map, bf16 kept bf16).
- :mod:`.builder_patch`: the model builder (onnxruntime-genai 0.14.1) taught to stream, active only
  while a :class:`~.builder_patch.StreamSession` is open, falling back to the builder's own path for
  what it cannot stream (and saying so in the log).
- :mod:`.olive_pass`: ``CuratorModelBuilder``, the Olive pass recipes name (registered in the
  compile's child process by ``curator.compile.olive_child``).
"""
