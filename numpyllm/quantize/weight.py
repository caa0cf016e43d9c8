"""`QuantizedWeight`: one weight matrix in a compact format, and the table of formats.

Every format keeps ggml's layout: the matrix a numpyllm Linear stores as ``weight [in,
out]`` is held transposed, ``[out, in]``, one row per output channel, so that a row's
blocks run along the input axis (the axis each output's dot product sums over) and one
scale serves one output channel's stretch of inputs. Two arrays hold it:

    format   q (values)                 scale                    bits per weight
    int8     int8  [out, in]            float32 [out]            8 (+ 32 per row)
    q8_0     int8  [out, in]            float16 [out, in/32]     8.5
    q4_0     uint8 [out, in/2] packed   float16 [out, in/32]     4.5

`rows(lo, hi)` dequantizes rows lo..hi only: `QuantizedLinear` multiplies tile by tile,
so a float copy of the whole matrix never exists.

>>> import numpy as np
>>> w = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
>>> qw = QuantizedWeight.from_float(w.T, "q4_0")          # [out=96, in=64]
>>> qw.shape, qw.q.shape, qw.scale.shape, qw.nbytes       # 96 * 64 * 4.5 / 8
((96, 64), (96, 32), (96, 2), 3456)
>>> bool(np.abs(qw.dequantize() - w.T).max() < 0.6)
True
"""
from __future__ import annotations

import numpy as np

from . import int8, q4_0, q8_0
from .rounding import check_finite

__all__ = ["QuantizedWeight", "FORMATS", "format_module"]

FORMATS = {m.NAME: m for m in (int8, q8_0, q4_0)}

_TILE_ELEMENTS = 1 << 20            # quantize a large matrix ~1M weights at a time


def format_module(name: str):
    """The module of a format name ('int8', 'q8_0', 'q4_0'), or ValueError."""
    if name not in FORMATS:
        raise ValueError(f"unknown quantization format {name!r}: expected one of "
                         f"{sorted(FORMATS)}")
    return FORMATS[name]


class QuantizedWeight:
    """A ``[rows, cols]`` float matrix (``[out, in]``) held as ``q`` and ``scale``."""

    __slots__ = ("format", "shape", "q", "scale")

    def __init__(self, fmt: str, shape: tuple, q: np.ndarray, scale: np.ndarray):
        self.format, self.shape, self.q, self.scale = fmt, tuple(shape), q, scale

    @classmethod
    def from_float(cls, w, fmt: str, what: str = "weight") -> "QuantizedWeight":
        """Quantize ``w [rows, cols]`` (rows = output channels). `what` names it in errors:
        cols must be a multiple of the format's block (32 for q8_0 and q4_0), and every
        value finite."""
        m = format_module(fmt)
        w = np.asarray(w)
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"{what}: expected a non-empty matrix [out, in], got shape {w.shape}")
        rows, cols = w.shape
        if cols % m.BLOCK:
            raise ValueError(f"{what}: {fmt} quantizes blocks of {m.BLOCK} along the input "
                             f"axis, and the input size {cols} is not a multiple of {m.BLOCK}")
        check_finite(w, what)
        q = np.empty(m.q_shape(rows, cols), m.Q_DTYPE)
        scale = np.empty(m.scale_shape(rows, cols), m.SCALE_DTYPE)
        step = max(1, _TILE_ELEMENTS // cols)
        for lo in range(0, rows, step):                     # a tile of rows at a time
            q[lo:lo + step], scale[lo:lo + step] = m.quantize(
                np.asarray(w[lo:lo + step], dtype=np.float32))
        return cls(fmt, (rows, cols), q, scale)

    @classmethod
    def from_arrays(cls, fmt: str, shape, q, scale, what: str = "weight") -> "QuantizedWeight":
        """From stored arrays, every property checked (a file is not trusted): the
        format, the dtypes and shapes `shape` implies, finite scales."""
        m = format_module(fmt)
        rows, cols = (int(n) for n in shape)
        if rows < 1 or cols < 1 or cols % m.BLOCK:
            raise ValueError(f"{what}: a {fmt} matrix of shape {[rows, cols]} cannot exist "
                             f"(input size a multiple of {m.BLOCK})")
        for name, a, dtype, want in (("q", q, m.Q_DTYPE, m.q_shape(rows, cols)),
                                     ("scale", scale, m.SCALE_DTYPE, m.scale_shape(rows, cols))):
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != want:
                got = (f"{a.dtype} {list(a.shape)}" if isinstance(a, np.ndarray)
                       else type(a).__name__)
                raise ValueError(f"{what}.{name}: expected {dtype} of shape {list(want)} for a "
                                 f"{fmt} matrix [{rows}, {cols}], got {got}")
        if not np.isfinite(scale).all():
            raise ValueError(f"{what}.scale: NaN or infinite scales: corrupt")
        return cls(fmt, (rows, cols), q, scale)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo..hi dequantized: float32 ``[hi - lo, cols]``."""
        return FORMATS[self.format].dequantize(self.q[lo:hi], self.scale[lo:hi])

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows `ids` (a 1-D int array, repeats allowed) dequantized: float32
        ``[len(ids), cols]``. Only those rows' codes and scales are read (gathered, then
        dequantized): an embedding lookup costs the rows it reads, never the table."""
        return FORMATS[self.format].dequantize(self.q[ids], self.scale[ids])

    def dequantize(self) -> np.ndarray:
        """The whole matrix, float32 ``[rows, cols]``."""
        return self.rows(0, self.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held: values and scales."""
        return int(self.q.nbytes + self.scale.nbytes)

    def __repr__(self) -> str:
        return f"QuantizedWeight({self.format}, shape={list(self.shape)}, {self.nbytes:,} bytes)"
