"""Weight quantization, one tensor at a time.

- :mod:`curator.quant.plan`: which tensor gets which quantization (a recipe's per-tensor plan).
- :mod:`curator.quant.kernels`: the quantizers themselves, numpy in, packed MatMulNBits /
  GatherBlockQuantized arrays out, bit-identical to what onnxruntime's and Olive's whole-model
  passes produce for the same tensor.
- :mod:`curator.quant.int8`: int8-cpu's per-tensor int8 MatMul weights, chunk by chunk, the bytes
  onnxruntime's ``quantize_dynamic`` writes.

Nothing here imports torch, olive or onnx at import time.
"""
