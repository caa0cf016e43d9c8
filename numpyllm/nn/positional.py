"""Positions: sinusoidal tables, rotary embeddings (RoPE), ALiBi biases.

Attention by itself does not know the order of its keys; each scheme here tells it.

- **Sinusoidal** ("Attention Is All You Need", §3.5): a fixed table added to the token
  embeddings, ``PE[pos, 2i] = sin(pos / base^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``.
  No parameters, any length.
- **Learned absolute**: an `nn.Embedding` of positions (GPT-2's ``wpe``); no class here.
- **RoPE** (Su et al., RoFormer): rotate each pair of query and key features by an
  angle proportional to the position, so ``q_m · k_n`` depends only on ``m - n``.
- **ALiBi** (Press et al., "Train Short, Test Long"): no embedding at all; each head adds
  ``-slope · distance`` to its attention scores, so a model runs on sequences longer
  than it was trained on.

Every function takes an ``offset`` (or aligns Tq queries after Tk - Tq cached keys), so
decoding with a KV cache sees the same positions as a full forward pass.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..functional.masks import _length, _query_key_positions
from .module import Module

__all__ = ["sinusoidal_table", "SinusoidalPositions", "RotaryEmbedding", "apply_rope",
           "alibi_slopes", "alibi_bias", "ALiBi"]


def _angles(T: int, offset: int, inv_freq: np.ndarray) -> np.ndarray:
    """``[T, len(inv_freq)]`` float64: position (offset .. offset+T-1) times frequency."""
    pos = np.arange(offset, offset + T, dtype=np.float64)
    return pos[:, None] * inv_freq[None, :]


def _inv_freq(d: int, base: float) -> np.ndarray:
    """``base^(-2i/d)`` for i = 0 .. ceil(d/2) - 1: one frequency per pair of features."""
    return float(base) ** (-np.arange(0, d, 2, dtype=np.float64) / d)


# ------------------------------------------------------------------------- sinusoidal
def sinusoidal_table(T: int, d: int, base: float = 10000.0, dtype=np.float32, *,
                     offset: int = 0) -> np.ndarray:
    """``[T, d]``: ``PE[pos, 2i] = sin(pos / base^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``
    for pos = offset .. offset+T-1. Computed in float64, then cast. For odd d the last
    column is a sine (it has no cosine partner).

    >>> sinusoidal_table(2, 4, dtype=np.float64).round(4).tolist()
    [[0.0, 1.0, 0.0, 1.0], [0.8415, 0.5403, 0.01, 1.0]]
    """
    T, d, offset = _length("T", T), _length("d", d, minimum=1), _length("offset", offset)
    theta = _angles(T, offset, _inv_freq(d, base))      # [T, ceil(d/2)]
    table = np.empty((T, d), dtype=np.float64)
    table[:, 0::2] = np.sin(theta)
    table[:, 1::2] = np.cos(theta[:, : d // 2])
    return table.astype(dtype, copy=False)


class SinusoidalPositions(Module):
    """The fixed sinusoidal table as a parameterless module: ``forward(T, offset=0)``
    returns rows offset .. offset+T-1 as a ``[T, n_embd]`` Tensor that does not require
    grad, to be added to the token embeddings (it broadcasts over the batch).

    `dtype` (float32 by default) is the table's dtype; pass ``dtype=`` to forward to
    override it (after ``model.to(np.float64)``, say: this module keeps no array for
    `Module.to` to convert).
    """

    def __init__(self, n_embd: int, base: float = 10000.0, dtype=np.float32):
        super().__init__()
        self.n_embd = _length("n_embd", n_embd, minimum=1)
        self.base = float(base)
        self.dtype = np.dtype(dtype)

    def forward(self, T: int, offset: int = 0, dtype=None) -> Tensor:
        return Tensor(sinusoidal_table(T, self.n_embd, self.base, dtype or self.dtype,
                                       offset=offset))

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, base={self.base:g}"


# ------------------------------------------------------------------------- RoPE
ROPE_LAYOUTS = ("interleaved", "half")


def _pair_halves(a: np.ndarray, layout: str) -> tuple:
    """The two members of every pair: ``(a[..., 2i], a[..., 2i+1])`` interleaved, or
    ``(a[..., i], a[..., i + hs/2])`` half-split (views)."""
    if layout == "interleaved":
        return a[..., 0::2], a[..., 1::2]
    h = a.shape[-1] // 2
    return a[..., :h], a[..., h:]


def rotate_pairs(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, *, inverse: bool = False,
                 out: np.ndarray | None = None, layout: str = "interleaved") -> np.ndarray:
    """Rotate each pair of features by the angle whose cosine and sine are
    ``cos[..., i]``, ``sin[..., i]`` (broadcast against one half of ``x``); by minus that
    angle when `inverse`. The array kernel behind `apply_rope`. Pair i is
    ``(x[2i], x[2i+1])`` with ``layout="interleaved"`` (the paper, GPT-J) or
    ``(x[i], x[i + hs/2])`` with ``layout="half"`` (GPT-NeoX, Hugging Face's LLaMA:
    ``x cos + rotate_half(x) sin``).

        [y0]   [cos  -sin] [x0]              inverse (the transpose):  [ cos  sin]
        [y1] = [sin   cos] [x1]                                        [-sin  cos]
    """
    x0, x1 = _pair_halves(x, layout)
    if inverse:
        sin = -sin
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    if out is None:
        out = np.empty(x.shape, dtype=y0.dtype)
    o0, o1 = _pair_halves(out, layout)
    o0[...] = y0
    o1[...] = y1
    return out


class _ApplyRope(Function):
    # y = R(θ) x per pair, R orthogonal, so dL/dx = R(θ)ᵀ g = R(-θ) g: the inverse
    # rotation (the written-out "g·cos + rotate_halfᵀ(g·sin)" of the half-split form)
    @staticmethod
    def forward(ctx, x, cos, sin, layout):
        ctx.cos, ctx.sin, ctx.layout = cos, sin, layout
        return rotate_pairs(x, cos, sin, layout=layout)

    @staticmethod
    def backward(ctx, g):
        return rotate_pairs(g, ctx.cos, ctx.sin, inverse=True, layout=ctx.layout), None, None, None


def apply_rope(x, cos, sin, layout: str = "interleaved") -> Tensor:
    """Rotary position embedding of `x` ``[..., T, hs]`` (typically q or k, ``[B, nh, T,
    hs]``), one fused node. `cos` and `sin` are ``[T, hs/2]`` from
    `RotaryEmbedding.cos_sin` (any shape that broadcasts to ``x[..., ::2]`` works).

    Convention: by default the paper's **interleaved pairs** ``(x[2i], x[2i+1])`` are
    rotated by ``pos · base^(-2i/hs)``; ``layout="half"`` rotates the half-split pairs
    ``(x[i], x[i + hs/2])`` by the same angles, as GPT-NeoX and Hugging Face's LLaMA do
    (the two are the same rotation up to a fixed permutation of the head's features).

    >>> rope = RotaryEmbedding(2)
    >>> cos, sin = rope.cos_sin(2, dtype=np.float64)
    >>> apply_rope(Tensor(np.ones((2, 2))), cos, sin).data.round(4).tolist()   # 0 and 1 rad
    [[1.0, 1.0], [-0.3012, 1.3818]]
    """
    xd = x.data if isinstance(x, Tensor) else np.asarray(x)
    cos, sin = np.asarray(cos), np.asarray(sin)
    if xd.ndim < 1 or xd.shape[-1] % 2:
        raise ValueError(f"apply_rope: the last axis of x must be even (pairs), got x {xd.shape}")
    half = xd.shape[:-1] + (xd.shape[-1] // 2,)
    if cos.shape != sin.shape or np.broadcast_shapes(cos.shape, half) != half:
        raise ValueError(f"apply_rope: cos {cos.shape} and sin {sin.shape} must be one shape "
                         f"that broadcasts to x[..., ::2] {half} (x is {xd.shape})")
    if layout not in ROPE_LAYOUTS:
        raise ValueError(f"apply_rope: layout must be one of {ROPE_LAYOUTS}, got {layout!r}")
    return _ApplyRope.apply(x, cos.astype(xd.dtype, copy=False), sin.astype(xd.dtype, copy=False),
                            layout)


class RotaryEmbedding(Module):
    """RoPE for heads of size `head_dim` (even): `cos_sin` gives the angles' cosines and
    sines for positions offset .. offset+T-1, and `apply_rope` rotates q or k with them.

    >>> rope = RotaryEmbedding(4)
    >>> cos, sin = rope.cos_sin(3, offset=5)          # positions 5, 6, 7
    >>> cos.shape, cos.dtype
    ((3, 2), dtype('float32'))
    """

    def __init__(self, head_dim: int, base: float = 10000.0, layout: str = "interleaved"):
        super().__init__()
        head_dim = _length("head_dim", head_dim, minimum=2)
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even (features rotate in "
                             f"pairs), got {head_dim}")
        if layout not in ROPE_LAYOUTS:
            raise ValueError(f"RotaryEmbedding: layout must be one of {ROPE_LAYOUTS}, "
                             f"got {layout!r}")
        self.head_dim, self.base, self.layout = head_dim, float(base), layout

    def cos_sin(self, T: int, offset: int = 0, dtype=np.float32) -> tuple:
        """``(cos, sin)``, each ``[T, head_dim/2]``: angle ``pos · base^(-2i/head_dim)``."""
        T, offset = _length("T", T), _length("offset", offset)
        theta = _angles(T, offset, _inv_freq(self.head_dim, self.base))
        return np.cos(theta).astype(dtype, copy=False), np.sin(theta).astype(dtype, copy=False)

    def forward(self, x, offset: int = 0) -> Tensor:
        """Rotate `x` ``[..., T, head_dim]`` whose rows are positions offset .. offset+T-1."""
        cos, sin = self.cos_sin(x.shape[-2], offset, x.dtype)
        return apply_rope(x, cos, sin, self.layout)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}, layout={self.layout}"


# ------------------------------------------------------------------------- ALiBi
def _power_of_2_slopes(n: int) -> list:
    start = 2.0 ** (-8.0 / n)                       # 2^(-8/n), 2^(-16/n), ..., 2^(-8)
    return [start ** (i + 1) for i in range(n)]


def alibi_slopes(n_head: int) -> np.ndarray:
    """The per-head slopes ``[n_head]`` (float64) of ALiBi.

    For n a power of 2: the geometric sequence ``2^(-8i/n)``, i = 1..n. Otherwise, the
    paper's rule: the slopes of the largest power of 2 below n, then every other slope
    of twice that power, until there are n.

    >>> (1 / alibi_slopes(8)).tolist()
    [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    """
    n_head = _length("n_head", n_head, minimum=1)
    closest = 2 ** int(np.floor(np.log2(n_head)))
    slopes = _power_of_2_slopes(closest)
    if closest < n_head:
        slopes += _power_of_2_slopes(2 * closest)[0::2][: n_head - closest]
    return np.array(slopes, dtype=np.float64)


def alibi_bias(n_head: int, Tq: int, Tk: int | None = None, dtype=np.float32) -> np.ndarray:
    """``[n_head, Tq, Tk]``: ``-slope[h] · |p_q - j|``, the distance between the query's
    absolute position ``p_q = Tk - Tq + i`` (bottom-right aligned, as for a KV cache)
    and key j. Any length. Keys after the query (masked anyway in a causal model) get
    the same penalty by distance, so the bias also serves a bidirectional encoder.

    >>> alibi_bias(2, 3, dtype=np.float64)[:, -1].tolist()   # last query; slopes 1/16, 1/256
    [[-0.125, -0.0625, 0.0], [-0.0078125, -0.00390625, 0.0]]
    """
    q_pos, k_pos = _query_key_positions(Tq, Tk)
    neg_distance = (-np.abs(q_pos - k_pos)).astype(np.float64)     # [Tq, Tk], 0 on the diagonal
    return (alibi_slopes(n_head)[:, None, None] * neg_distance).astype(dtype, copy=False)


class ALiBi(Module):
    """ALiBi for `n_head` heads: ``bias(Tq, Tk, dtype)`` is the ``[n_head, Tq, Tk]``
    score bias of `alibi_bias` (bottom-right aligned), added by attention."""

    def __init__(self, n_head: int):
        super().__init__()
        self.n_head = _length("n_head", n_head, minimum=1)

    def bias(self, Tq: int, Tk: int | None = None, dtype=np.float32) -> np.ndarray:
        return alibi_bias(self.n_head, Tq, Tk, dtype)

    forward = bias

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}"
