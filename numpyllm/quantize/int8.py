"""int8 with one scale per output channel (symmetric absmax): the simplest weight format.

For a weight matrix in ggml's layout ``[out, in]`` (one row per output channel; a
numpyllm Linear's ``weight [in, out]`` transposed), each row r gets

    s_r = max_j |w_rj| / 127                (float32, one per output channel)
    q_rj = round(w_rj / s_r)                in [-127, 127], int8 (halves away from zero)
    w_rj ≈ q_rj · s_r

Symmetric: 0 maps to 0 exactly and -128 is never used, so q and -q are both codes. The
round-trip error of each element is at most s_r / 2 (to float rounding): the quotient
is computed in float64 against the stored float32 scale, so the bound holds for the very
scale that dequantizes.

Why float32 scales here when ggml's blocks use float16: one scale per row of thousands
of weights costs nothing (0.1% for a 768-wide row), and a float16 scale rounded below
max|w|/127 would push the largest weight past 127 and break the s/2 bound.

>>> import numpy as np
>>> q, s = quantize(np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]], np.float32))
>>> q.tolist(), s.tolist()
([[127, -64, 32], [0, 0, 0]], [0.007874015718698502, 0.0])
"""
from __future__ import annotations

import numpy as np

from .rounding import roundf

NAME = "int8"
Q_DTYPE, SCALE_DTYPE = np.dtype(np.int8), np.dtype(np.float32)
BLOCK = 1                        # any number of columns


def q_shape(rows: int, cols: int) -> tuple:
    return (rows, cols)


def scale_shape(rows: int, cols: int) -> tuple:
    return (rows,)


def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w [rows, cols]`` float -> ``(q int8 [rows, cols], s float32 [rows])``."""
    amax = np.abs(w).max(axis=1).astype(np.float32)                 # [rows]
    s = amax / np.float32(127)                                      # float32, as stored
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(s > 0, 1.0 / s.astype(np.float64), 0.0)      # [rows], float64
    q = roundf(w.astype(np.float64) * inv[:, None])                 # [rows, cols]
    # |w / s| <= 127 up to one float32 rounding of s: the clip only catches that ulp
    return np.clip(q, -127, 127).astype(np.int8), s


def dequantize(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``q [rows, cols]``, ``s [rows]`` -> float32 ``[rows, cols]``."""
    w = q.astype(np.float32)
    w *= s[:, None]                              # in place: one [rows, cols] array, not two
    return w
