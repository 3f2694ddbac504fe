"""Weighted k-quant (``algo: wk_quant``): a block's scale and integer zero point chosen to minimise
its error weighted by how much each input matters, searched in the form the file stores them.

onnxruntime's k-quant (``quant_tensor_k_quant_cpu``, llama.cpp's ``make_qkx`` search) weighs
each weight by its block's ``rms(x) + |x|`` alone, finds a continuous scale and minimum, and only
then rounds the minimum to an integer zero point and recomputes the levels: the pair it searched
is not the pair written, and every input column counts the same. Here, for each block:

- weight ``x`` at input ``k`` counts ``importance[k] * sqrt(2 * mean(x^2) + x^2)``, where
  ``importance[k]`` is the mean squared activation of input ``k`` over a calibration text
  (llama.cpp's importance matrix, the diagonal of the input covariance the budget's sensitivity
  pass measures); without one, every input counts the same;
- candidate level grids around the block's range (``nstep`` of them, as make_qkx) each give a
  weighted least-squares scale and minimum; the minimum is rounded to the integer zero point, the
  scale refitted for that zero point and rounded to the type the scales are stored in
  (float16 with ``half_scales``), the levels recomputed from what is stored, and the weighted
  error of THAT is what picks the best candidate.

On de-gridded SmolLM2 (every decoder MatMul 4-bit block 32, float16 scales, the tied table 8-bit;
importance from the calibration text; compiled and measured by `curator fidelity` on its own
text, ``python -m perf.weighted``): onnxruntime's k-quant KL 0.402 / top-1 63.9%, this without
importance 0.371 / 65.6%, with importance 0.249 / 73.3%, at the same file size and decode speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
# candidate grids per block besides min-max, qmax - 1 ... qmax + 1. On de-gridded SmolLM2's
# tensors (4-bit block 32, with importance) 8 grids leave a weighted error 0.1-0.5% above 16's in
# 58% of the time (0.18 against 0.31 s for a 1536 x 576 weight); 4 grids, 0.4-0.9% above.
NSTEP = 8


def weighted_k_quant(
    blocks: npt.NDArray[np.float32],
    importance: npt.NDArray[np.float32] | None,
    bits: int,
    stored: npt.DTypeLike,
    nstep: int = NSTEP,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Quantize ``blocks`` (``[nb, block]`` float32) to unsigned ``bits``-bit levels: (levels
    ``[nb, block]``, scales ``[nb]`` exactly representable in ``stored``, zero points ``[nb]``),
    so that ``scale * (level - zero)`` approximates each weight. ``importance`` is ``[nb, block]``
    (each weight's input's importance) or None."""
    x: Array = np.asarray(blocks, dtype=np.float32)
    qmax = float((1 << bits) - 1)
    sigma2 = 2.0 * np.mean(x * x, axis=1, keepdims=True)
    weight = np.sqrt(sigma2 + x * x)
    if importance is not None:
        weighted = weight * np.asarray(importance, dtype=np.float32)
        # a block whose inputs were never active keeps the unweighted error, not none at all
        dead = np.sum(weighted, axis=1, keepdims=True) <= 0
        weight = np.where(dead, weight, weighted)
    rmin = np.min(x, axis=1, keepdims=True)
    rmax = np.max(x, axis=1, keepdims=True)
    span = np.where(rmax > rmin, rmax - rmin, np.float32(1.0))
    sum_w = np.sum(weight, axis=1, keepdims=True)
    sum_x = np.sum(weight * x, axis=1, keepdims=True)

    best_err = np.full(rmin.shape, np.inf, dtype=np.float32)
    best_scale = np.zeros(rmin.shape, dtype=np.float32)
    best_zero = np.zeros(rmin.shape, dtype=np.float32)
    factors = [qmax] + [qmax - 1.0 + 2.0 * i / nstep for i in range(nstep + 1)]
    for number, factor in enumerate(factors):
        scale: Array = span / np.float32(factor)
        minimum = rmin
        if number:  # a least-squares fit of scale and minimum on this candidate's levels
            levels = np.clip(np.rint((x - rmin) / scale), 0.0, qmax)
            wl = weight * levels
            sum_l = np.sum(wl, axis=1, keepdims=True)
            sum_l2 = np.sum(wl * levels, axis=1, keepdims=True)
            sum_xl = np.sum(wl * x, axis=1, keepdims=True)
            det = sum_w * sum_l2 - sum_l * sum_l
            solvable = det > 0
            safe = np.where(solvable, det, np.float32(1.0))
            fitted = (sum_w * sum_xl - sum_x * sum_l) / safe
            usable = solvable & (fitted > 0)
            minimum = np.where(usable, (sum_l2 * sum_x - sum_l * sum_xl) / safe, rmin)
            scale = np.where(usable, fitted, scale)
        zero = np.clip(np.rint(-minimum / scale), 0.0, qmax)
        scale, err = _refit(x, weight, _stored(scale, stored), zero, qmax, stored)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_zero = np.where(better, zero, best_zero)
    levels = _levels(x, best_scale, best_zero, qmax)
    return (
        levels.astype(np.uint8),
        best_scale.reshape(-1),
        best_zero.reshape(-1).astype(np.uint8),
    )


def _stored(scale: Array, stored: npt.DTypeLike) -> Array:
    """``scale`` as the file will hold it (float16 rounding and range), kept positive."""
    dtype = np.dtype(stored)
    tiny = np.float32(np.finfo(dtype).tiny if dtype.kind == "f" else 1e-30)
    held = np.asarray(np.maximum(scale, tiny), dtype=dtype).astype(np.float32)
    return np.maximum(held, tiny)


def _levels(x: Array, scale: Array, zero: Array, qmax: float) -> Array:
    safe = np.where(scale > 0, scale, np.float32(1.0))
    return np.clip(np.rint(x / safe + zero), 0.0, qmax)


def _refit(
    x: Array, weight: Array, scale: Array, zero: Array, qmax: float, stored: npt.DTypeLike
) -> tuple[Array, Array]:
    """The weighted least-squares scale for this zero point (as stored), and its weighted error
    with the levels recomputed from it."""
    offsets = _levels(x, scale, zero, qmax) - zero
    num = np.sum(weight * offsets * x, axis=1, keepdims=True)
    den = np.sum(weight * offsets * offsets, axis=1, keepdims=True)
    refit = np.where((den > 0) & (num > 0), num / np.where(den > 0, den, 1.0), scale)
    refit = _stored(refit.astype(np.float32), stored)
    error = refit * (_levels(x, refit, zero, qmax) - zero) - x
    return refit, np.sum(weight * error * error, axis=1, keepdims=True)
