"""The two roundings of ggml's reference quantizers, and the float16 scale they store.

C's ``roundf`` rounds halves away from zero (2.5 -> 3, -2.5 -> -3), unlike NumPy's
``np.round`` (halves to even: 2.5 -> 2). ``floor(a + 0.5)`` is not a correct way to write
it in float32 either: for a = 0.49999997 the sum a + 0.5 rounds up to 1.0. The form below
is exact: ``a - floor(a)`` and ``2 * (...)`` are computed without rounding.

ggml stores each block's scale as IEEE float16 (round to nearest even, as
``GGML_FP32_TO_FP16`` and NumPy's ``astype(float16)`` both do). A scale above float16's
largest finite value (65504) would become infinity: refused here rather than stored.
"""
from __future__ import annotations

import numpy as np

__all__ = ["roundf", "float16_scale", "check_finite"]


def roundf(x: np.ndarray) -> np.ndarray:
    """C's roundf, elementwise, in x's dtype: halves away from zero.

    >>> roundf(np.array([0.5, 1.5, 2.5, -2.5, 0.49999997], np.float32)).tolist()
    [1.0, 2.0, 3.0, -3.0, 0.0]
    """
    a = np.abs(x)
    whole = np.floor(a)
    return np.copysign(whole + np.floor(2 * (a - whole)), x)


def float16_scale(d: np.ndarray, what: str) -> np.ndarray:
    """`d` (float32) rounded to float16, or ValueError when a scale overflows it."""
    with np.errstate(over="ignore"):
        d16 = d.astype(np.float16)
    if np.isinf(d16).any():
        worst = float(np.abs(d).max())
        raise ValueError(f"{what}: a block's scale {worst:.6g} is beyond float16's largest "
                         "value (65504): the weights are too large for this format")
    return d16


def check_finite(w: np.ndarray, what: str) -> None:
    """NaN or infinity in a weight has no quantized value (ggml's C leaves it undefined)."""
    if not np.isfinite(w).all():
        bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
        raise ValueError(f"{what}: {bad} weight(s) are NaN or infinite: nothing to quantize")
