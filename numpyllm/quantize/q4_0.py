"""ggml's Q4_0: blocks of 32 weights, one float16 scale and 32 4-bit values each.

``quantize_row_q4_0_ref`` in ggml-quants.c, per block of 32 (float32 arithmetic):

    max  = the x_j of largest |x_j|, with its sign (the first one, on a tie; 0.0 if
           every |x_j| is 0: the C loop only replaces it when |x_j| > amax, from 0)
    d    = max / -8                        stored as float16 (round to nearest even)
    id   = d ? 1/d : 0
    q_j  = min(15, trunc(x_j * id + 8.5))  in 0..15; the value is (q_j - 8) · d16

Dividing by -8 (not +7 or +8) maps the largest-magnitude weight to code 0, i.e. to
-8 · d = max: it is represented exactly, and the asymmetric side (+7) takes the others.
A value of the opposite sign whose magnitude is above 15/16 of |max| would need code 16:
the clamp at 15 gives it (15 - 8) d = 7d instead.

Packing: 16 bytes per block; byte j holds q_j in its low nibble and q_{j+16} in its high
nibble (the first 16 values in the low nibbles, the last 16 in the high ones). A ggml
block is 18 bytes: the 2 bytes of d, then the 16 packed bytes; 4.5 bits per weight.

Round-trip error (t = x/d in [-8, 8]; derived in docs/quantization.md):
    |x - (q - 8) d16| <= |d| · max(1/2, t - 7) + |q - 8| · |d - d16|
that is |d|/2 except in the clamped range t in [7.5, 8], where it grows to |d|.

>>> import numpy as np
>>> x = np.linspace(-1, 1, 32, dtype=np.float32)
>>> p, d = quantize(x[None])
>>> float(d[0, 0]), unpack(p)[0, [0, 1, 31]].tolist(), hex(int(p[0, 0]))
(0.125, [0, 1, 15], '0x80')
>>> dequantize(p, d)[0, [0, 31]].tolist()      # -1 exact; +1 clamped to 7 d
[-1.0, 0.875]
"""
from __future__ import annotations

import numpy as np

from .rounding import float16_scale

NAME = "q4_0"
QK = 32
BLOCK = QK
Q_DTYPE, SCALE_DTYPE = np.dtype(np.uint8), np.dtype(np.float16)
BLOCK_BYTES = 2 + QK // 2                   # float16 d, then 16 bytes of two nibbles


def q_shape(rows: int, cols: int) -> tuple:
    return (rows, cols // 2)


def scale_shape(rows: int, cols: int) -> tuple:
    return (rows, cols // QK)


def pack(codes: np.ndarray) -> np.ndarray:
    """4-bit codes ``[rows, cols]`` (uint8 in 0..15) -> ``[rows, cols/2]`` bytes: in each
    block of 32, byte j = code j | code (j + 16) << 4."""
    rows, cols = codes.shape
    b = codes.reshape(rows, cols // QK, QK)
    return (b[..., :QK // 2] | (b[..., QK // 2:] << np.uint8(4))).reshape(rows, cols // 2)


def unpack(packed: np.ndarray) -> np.ndarray:
    """The inverse of `pack`: ``[rows, cols/2]`` bytes -> ``[rows, cols]`` codes 0..15."""
    rows, half = packed.shape
    b = packed.reshape(rows, half // (QK // 2), QK // 2)
    return np.concatenate([b & np.uint8(0x0F), b >> np.uint8(4)], axis=-1).reshape(rows, 2 * half)


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x [rows, cols]`` (cols a multiple of 32) -> ``(packed uint8 [rows, cols/2],
    d float16 [rows, cols/32])``, bit for bit as ggml's reference quantizer."""
    rows, cols = x.shape
    b = np.asarray(x, dtype=np.float32).reshape(rows, cols // QK, QK)   # [rows, nb, 32]
    a = np.abs(b)
    first = a.argmax(axis=-1)[..., None]                                # first largest |x|
    mx = np.take_along_axis(b, first, axis=-1)[..., 0]                  # [rows, nb], signed
    mx = np.where(a.max(axis=-1) > 0, mx, np.float32(0))               # C starts max at +0.0
    d = mx / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d)
    t = b * inv[..., None] + np.float32(8.5)                            # in [0.5, 16.5]
    codes = np.minimum(np.trunc(t), 15).astype(np.uint8)                # C: (int8_t) truncates
    return pack(codes.reshape(rows, cols)), float16_scale(d, "Q4_0")


def dequantize(packed: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``packed [rows, cols/2]``, ``d [rows, cols/32]`` -> float32 ``[rows, cols]``."""
    codes = unpack(packed)
    rows, cols = codes.shape
    b = (codes.astype(np.int8) - np.int8(8)).reshape(rows, cols // QK, QK).astype(np.float32)
    b *= d.astype(np.float32)[..., None]
    return b.reshape(rows, cols)


def to_ggml(packed: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The ggml bytes ``[rows, nb * 18]``: each block's d (2 bytes), then its 16 bytes."""
    rows, nb = d.shape
    scale = d.astype("<f2").view(np.uint8).reshape(rows, nb, 2)
    return np.concatenate([scale, packed.reshape(rows, nb, QK // 2)],
                          axis=-1).reshape(rows, nb * BLOCK_BYTES)


def from_ggml(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `to_ggml`."""
    rows = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(rows, -1, BLOCK_BYTES)
    d = blocks[..., :2].copy().view("<f2").reshape(rows, -1).astype(np.float16)
    return blocks[..., 2:].reshape(rows, -1).copy(), d
