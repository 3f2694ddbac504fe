"""Model file formats read as untrusted input: GGUF (:mod:`.gguf`) and safetensors headers
(:mod:`.safetensors`), each with one strict reader."""
