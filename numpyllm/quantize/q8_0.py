"""ggml's Q8_0: blocks of 32 weights, one float16 scale and 32 int8 values each.

A row of a weight (ggml's layout ``[out, in]``: a row is one output channel, its
blocks run along the input axis, the axis a dot product sums over) is cut into blocks
of 32. ``quantize_row_q8_0_ref`` in ggml-quants.c computes, in float32,

    amax = max_j |x_j|
    d    = amax / 127                     stored as float16 (round to nearest even)
    id   = d ? 1/d : 0                    from the float32 d, not the rounded one
    q_j  = roundf(x_j * id)               int8, halves away from zero

and dequantizes as ``q_j * float(d16)``. A ggml block is 34 bytes: the 2 bytes of the
float16 d, then the 32 int8 values (`to_ggml` / `from_ggml`); 8.5 bits per weight.
Here the values and the scales are two arrays (``q [rows, cols]`` int8, ``d [rows,
cols/32]`` float16), which is how a checkpoint stores them.

The round-trip error: q_j is within 1/2 of x_j/d, so |x_j - q_j d| <= d/2; the stored
scale is d16, not d, which adds |q_j| |d - d16| (at most 127 · 2^-11 d ≈ 0.062 d for a
normal float16). So |x_j - q_j d16| <= d/2 + |q_j| |d - d16|, exactly (docs/quantization.md).

>>> import numpy as np
>>> x = np.arange(32, dtype=np.float32) - 16           # -16 .. 15
>>> q, d = quantize(x[None])
>>> float(d[0, 0]), q[0, :3].tolist(), q[0, -1].tolist()
(0.1259765625, [-127, -119, -111], 119)
"""
from __future__ import annotations

import numpy as np

from .rounding import float16_scale, roundf

NAME = "q8_0"
QK = 32                                      # weights per block
BLOCK = QK
Q_DTYPE, SCALE_DTYPE = np.dtype(np.int8), np.dtype(np.float16)
BLOCK_BYTES = 2 + QK                         # float16 d, then 32 int8


def q_shape(rows: int, cols: int) -> tuple:
    return (rows, cols)


def scale_shape(rows: int, cols: int) -> tuple:
    return (rows, cols // QK)


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x [rows, cols]`` (cols a multiple of 32) -> ``(q int8 [rows, cols], d float16
    [rows, cols/32])``, bit for bit as ggml's reference quantizer."""
    rows, cols = x.shape
    b = np.asarray(x, dtype=np.float32).reshape(rows, cols // QK, QK)   # [rows, nb, 32]
    amax = np.abs(b).max(axis=-1)                                       # [rows, nb]
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d)       # float32, as C
    q = roundf(b * inv[..., None])                                      # float32 products
    return q.astype(np.int8).reshape(rows, cols), float16_scale(d, "Q8_0")


def dequantize(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``q [rows, cols]``, ``d [rows, cols/32]`` -> float32 ``[rows, cols]``."""
    rows, cols = q.shape
    b = q.reshape(rows, cols // QK, QK).astype(np.float32)
    b *= d.astype(np.float32)[..., None]
    return b.reshape(rows, cols)


def to_ggml(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The ggml bytes: ``[rows, nb * 34]`` uint8, each block d (2 bytes, little-endian)
    then its 32 values (what gguf's ``quants.quantize(x, Q8_0)`` returns)."""
    rows, nb = d.shape
    scale = d.astype("<f2").view(np.uint8).reshape(rows, nb, 2)
    values = q.view(np.uint8).reshape(rows, nb, QK)
    return np.concatenate([scale, values], axis=-1).reshape(rows, nb * BLOCK_BYTES)


def from_ggml(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `to_ggml`."""
    rows = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(rows, -1, BLOCK_BYTES)
    d = blocks[..., :2].copy().view("<f2").reshape(rows, -1).astype(np.float16)
    q = blocks[..., 2:].copy().view(np.int8).reshape(rows, -1)
    return q, d
