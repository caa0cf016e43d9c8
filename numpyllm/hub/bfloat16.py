"""bfloat16 with NumPy alone: the top half of a float32.

NumPy has no bfloat16 dtype, yet many Hugging Face models are stored in it. The format
is simple: a bfloat16 is a float32 with the low 16 bits of its mantissa cut off.

    float32    s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm     1 + 8 + 23 bits
    bfloat16   s eeeeeeee mmmmmmm                     1 + 8 + 7 bits

Same sign, same 8-bit exponent (so the same range as float32, unlike float16's 5 bits),
a 7-bit mantissa (about 3 significant decimal digits). So

- **reading** is exact and needs no arithmetic: put the 16 bits in the high half of a
  32-bit word (``bits.astype(uint32) << 16``) and view that word as a float32;
- **writing** rounds the float32 to the nearest bfloat16, ties to the one whose last
  mantissa bit is 0 ("round half to even", the rounding IEEE arithmetic and PyTorch use):
  add ``0x7FFF`` plus the lowest kept bit, then drop the low 16 bits. A NaN becomes the
  quiet NaN ``0x7FC0`` with its sign (rounding could carry a NaN's mantissa into the sign
  bit); a finite value too large for bfloat16 rounds to infinity, as in PyTorch.

>>> import numpy as np
>>> bits = float32_to_bfloat16(np.array([1.0, -2.5, 1 + 2**-8, 1 + 3 * 2**-8], np.float32))
>>> [hex(b) for b in bits]                    # 1 + 2**-8 is a tie: rounds to even (1.0)
['0x3f80', '0xc020', '0x3f80', '0x3f82']
>>> bfloat16_to_float32(bits).tolist()
[1.0, -2.5, 1.0, 1.015625]

A float64 is first rounded to float32 and then to bfloat16, as PyTorch's ``.to(bfloat16)``
does (so the two agree bit for bit, double rounding included).
"""
from __future__ import annotations

import numpy as np

__all__ = ["bfloat16_to_float32", "float32_to_bfloat16"]


def bfloat16_to_float32(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The float32 values of bfloat16 `bits` (uint16, any shape). Exact. With `out` (a
    float32 array of the same shape) the result is written there."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bfloat16_to_float32: expected uint16 bit patterns, got {bits.dtype}")
    if out is None:
        out = np.empty(bits.shape, np.float32)
    np.left_shift(bits, 16, out=out.view(np.uint32), dtype=np.uint32)   # high half of a word
    return out


def float32_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) nearest to `values` (any float dtype; float64 is
    rounded to float32 first), ties to even."""
    x = np.asarray(values)
    if x.dtype.kind != "f":
        raise TypeError(f"float32_to_bfloat16: expected floating-point values, got {x.dtype}")
    with np.errstate(over="ignore"):                   # a float64 beyond float32: inf
        bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lowest_kept = (bits >> 16) & 1                     # 1 if rounding up would make it odd
    rounded = ((bits + (lowest_kept + 0x7FFF)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000             # exponent all ones, mantissa not 0
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) & 0x8000 | 0x7FC0).astype(np.uint16)
    return rounded
