"""Memory-efficient attention: FlashAttention's tiling, online softmax and recomputation.

The standard kernels of `numpyllm.functional.attention` build the weights
P ``[..., Tq, Tk]`` and keep them for backward: memory quadratic in the sequence
length. These kernels compute the same thing tile by tile -- a block of queries
against a block of keys -- and never hold more than a few ``[..., bq, bk]`` tiles.
Only q, k, v, the output O and one number per query row, the log-sum-exp of its
scores, are kept for backward. Selected by ``scaled_dot_product_attention(...,
block_size=n)`` (Dao et al., "FlashAttention", 2022; the loop order of FlashAttention-2).

**Forward: the online softmax.** For one block of queries, visit the key blocks in turn,
keeping per row a running maximum m, a running sum l of exp(S - m) and an unnormalised
output acc. A new tile S_j (scores against key block j) updates them as

    m' = max(m, rowmax S_j)            α = exp(m - m')    (rescales what was summed so far)
    l' = α l + rowsum exp(S_j - m')
    acc' = α acc + exp(S_j - m') V_j

and at the end O = acc / l, logsumexp L = m + log l. Every exp is of a number <= 0, as
in the usual max-shifted softmax, so nothing overflows.

**Backward: recompute P tile by tile.** P_j = exp(S_j - L) exactly (L is the row's
normaliser). Softmax's backward needs rowsum(dP ⊙ P), which here is known before any
tile is seen: D = rowsum(dO ⊙ O), because Σ_j P_ij (dO_i · v_j) = dO_i · O_i. Then per
tile, with dP = dO V_jᵀ:

    dV_j += P_jᵀ dO      dS = P_j ⊙ (dP - D)      dQ += dS K_j · scale      dK_j += dSᵀ Q · scale

Forward and backward each do the matmuls of the standard path once more -- the price of
not storing P -- and backward recomputes S and exp. (Everything else is the
standard path's math; the derivation is in `numpyllm.functional.attention`.)

**Masks.** A boolean `mask` (True = may attend, broadcastable to the scores) is sliced
per tile; a size-1 axis (a key padding mask ``[B, 1, 1, Tk]``) is not sliced. The causal
mask is never built: it is computed per tile on the diagonal, and tiles wholly above the
diagonal are skipped, so causal attention does about half the work. Tiles the mask
forbids entirely (far from a sliding window's band) are skipped too. A query row that
may attend nothing gets l = 0: its output is zero and L = +inf, so its recomputed P is
zero and so is every gradient through it.

**Bias.** An additive bias (ALiBi) is sliced per tile like the mask. When the bias
requires grad, its gradient is dS summed to the bias's own shape: a bias of the full
``[..., Tq, Tk]`` shape gets a full-sized gradient (quadratic memory, unavoidably); a
broadcast bias (``[nh, Tq, Tk]`` for every sequence of the batch) gets one of its own
smaller size.

**Dropout** (on the weights after the softmax) needs the same mask in backward as in
forward, without storing it. Each tile draws its mask from its own generator, seeded by
``(seed, first query, first key)``, where `seed` is one number drawn from the caller's
rng: backward regenerates every tile's mask from it. The random stream therefore
differs from the standard path's (which draws one ``[..., Tq, Tk]`` mask from the rng),
and from one block size to another: with dropout the two paths give different outputs,
each a valid dropout of the same attention. Without dropout they agree to rounding.
The dropout affects only acc, not l: it drops normalised weights.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> q, k, v = (rng.standard_normal((2, 5, 3)) for _ in range(3))
>>> out, lse = flash_attention_forward(q, k, v, scale=0.5, block_size=2, causal=True)
>>> s = np.where(np.tri(5, dtype=bool), 0.5 * q @ k.swapaxes(-1, -2), -np.inf)
>>> p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
>>> bool(np.allclose(out, p @ v))
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd import Function
from ..autograd.engine import sum_to

__all__ = ["Tiling", "flash_attention_forward", "flash_attention_backward"]


def _tile(a, rows: slice, cols: slice):
    """The part of `a` (broadcastable to the scores ``[..., Tq, Tk]``, at least 2-D) over
    query rows `rows` and key columns `cols`, as a view; an axis of size 1 broadcasts,
    so it is not sliced."""
    if a is None:
        return None
    return a[..., rows if a.shape[-2] != 1 else slice(None),
             cols if a.shape[-1] != 1 else slice(None)]


@dataclass(frozen=True)
class Tiling:
    """How the scores ``[..., Tq, Tk]`` are cut into tiles, and what each tile holds.

    `mask` and `bias` are at least 2-D and broadcast to the scores; `causal` is the
    bottom-right aligned causal mask (query i at absolute position ``Tk - Tq + i``),
    never materialised; `seed` makes each tile's dropout mask (when ``dropout_p > 0``).
    """

    Tq: int
    Tk: int
    block_size: int
    scale: float
    causal: bool = False
    mask: np.ndarray | None = None
    bias: np.ndarray | None = None
    dropout_p: float = 0.0
    seed: int = 0

    def query_blocks(self):
        for i in range(0, self.Tq, self.block_size):
            yield slice(i, min(i + self.block_size, self.Tq))

    def key_blocks(self, rows: slice):
        """``(cols, allowed)`` for each key block that query block `rows` may attend at
        all: `allowed` is the tile's boolean mask, or None when it allows everything."""
        offset = self.Tk - self.Tq           # query i sits at absolute position offset + i
        # causal: keys after the last query of the block are masked for all its queries
        end = min(self.Tk, offset + rows.stop) if self.causal else self.Tk
        for j in range(0, end, self.block_size):
            cols = slice(j, min(j + self.block_size, self.Tk))
            allowed = _tile(self.mask, rows, cols)
            if self.causal and cols.stop - 1 > offset + rows.start:   # the diagonal crosses it
                below = np.arange(cols.start, cols.stop) <= \
                    np.arange(offset + rows.start, offset + rows.stop)[:, None]   # [bq, bk]
                allowed = below if allowed is None else allowed & below
            if allowed is not None and not allowed.any():
                continue
            yield cols, allowed

    def queries(self, q, rows: slice) -> np.ndarray:
        """The block of queries times the scale ``[..., bq, hs]``: scaled once per block
        rather than every tile of scores once per tile."""
        return q[..., rows, :] * self.scale

    def scores(self, q_rows, k, rows: slice, cols: slice, allowed) -> np.ndarray:
        """The tile S = (q · scale) kᵀ + bias, -inf where not allowed: ``[..., bq, bk]``,
        for `q_rows` from `queries`."""
        s = np.matmul(q_rows, np.swapaxes(k[..., cols, :], -1, -2))  # [.., bq, hs] @ [.., hs, bk]
        if self.bias is not None:
            s += _tile(self.bias, rows, cols)
        if allowed is not None:
            np.copyto(s, -np.inf, where=~allowed)
        return s

    def drop_(self, p: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        """Inverted dropout of the tile `p`, in place, with the tile's own mask: the same
        mask every time for the same seed, tile and shape."""
        if self.dropout_p > 0.0:
            tile_rng = np.random.default_rng((self.seed, rows.start, cols.start))
            p *= tile_rng.random(p.shape, dtype=np.float32) >= self.dropout_p
            p *= 1.0 / (1.0 - self.dropout_p)
        return p


def _batch(q, k, v) -> tuple:
    return tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))


# --------------------------------------------------------------------------- the kernels
def flash_attention_forward(q, k, v, *, scale, block_size, causal=False, mask=None,
                            bias=None, dropout_p=0.0, seed=0):
    """The forward math on arrays, tile by tile: returns ``(out, lse)``.

    out ``[..., Tq, hv]`` as `attention_forward` gives it; lse ``[..., Tq, 1]``, the
    log-sum-exp of each query's (masked) scores, +inf for a query that may attend
    nothing. `mask` and `bias` broadcast to the scores ``[..., Tq, Tk]`` (the public
    function checks that); the batch of q and k together must be the full batch.
    """
    tiling = _tiling(q, k, scale, block_size, causal, mask, bias, dropout_p, seed)
    batch, dtype = _batch(q, k, v), q.dtype
    out = np.empty(batch + (tiling.Tq, v.shape[-1]), dtype=dtype)
    lse = np.empty(batch + (tiling.Tq, 1), dtype=dtype)
    for rows in tiling.query_blocks():
        q_rows = tiling.queries(q, rows)
        n = rows.stop - rows.start
        m = np.full(batch + (n, 1), -np.inf, dtype=dtype)       # running max of the scores
        l = np.zeros(batch + (n, 1), dtype=dtype)               # running sum of exp(S - m)
        acc = np.zeros(batch + (n, v.shape[-1]), dtype=dtype)   # running exp(S - m) V
        for cols, allowed in tiling.key_blocks(rows):
            s = tiling.scores(q_rows, k, rows, cols, allowed)   # [.., bq, bk]
            m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
            shift = np.where(np.isneginf(m_new), 0.0, m_new)     # a row empty so far: no NaN
            alpha = np.exp(m - shift)                           # rescales the old sums
            s -= shift
            p = np.exp(s, out=s)                                # unnormalised weights
            l *= alpha
            l += p.sum(axis=-1, keepdims=True)
            acc *= alpha
            acc += np.matmul(tiling.drop_(p, rows, cols), v[..., cols, :])  # [.., bq, bk] @ [.., bk, hv]
            m = m_new
        empty = l == 0                                          # nothing allowed in the row
        l[empty] = 1.0
        np.divide(acc, l, out=out[..., rows, :])                # empty rows: acc = 0
        np.log(l, out=l)
        l += m
        l[empty] = np.inf                                       # backward: P = exp(S - inf) = 0
        lse[..., rows, :] = l
    return out, lse


def flash_attention_backward(g, q, k, v, out, lse, *, scale, block_size, causal=False,
                             mask=None, bias=None, dropout_p=0.0, seed=0,
                             needs=(True, True, True, False)):
    """The backward math on arrays, recomputing P tile by tile: returns ``(dq, dk, dv,
    dbias)`` (None where `needs` is False). dq, dk, dv have the full batch of the
    scores (the engine sums a broadcast input's gradient back); dbias has the shape of
    `bias` (made at least 2-D). The keywords must be those of the forward call."""
    need_q, need_k, need_v, need_bias = needs
    tiling = _tiling(q, k, scale, block_size, causal, mask, bias, dropout_p, seed)
    batch, dtype = _batch(q, k, v), q.dtype
    dq = np.zeros(batch + q.shape[-2:], dtype=dtype) if need_q else None
    dk = np.zeros(batch + k.shape[-2:], dtype=dtype) if need_k else None
    dv = np.zeros(batch + v.shape[-2:], dtype=dtype) if need_v else None
    dbias = np.zeros(tiling.bias.shape, dtype=dtype) if need_bias else None
    need_ds = need_q or need_k or need_bias
    d = (g * out).sum(axis=-1, keepdims=True)                   # D = rowsum(dO ⊙ O) [.., Tq, 1]
    for rows in tiling.query_blocks():
        q_rows, g_rows, d_rows = tiling.queries(q, rows), g[..., rows, :], d[..., rows, :]
        for cols, allowed in tiling.key_blocks(rows):
            p = tiling.scores(q_rows, k, rows, cols, allowed)
            p -= lse[..., rows, :]
            np.exp(p, out=p)                                    # P, exactly normalised
            if need_v:                                          # [.., bk, bq] @ [.., bq, hv]
                pd = tiling.drop_(p.copy(), rows, cols) if dropout_p > 0.0 else p
                dv[..., cols, :] += np.matmul(np.swapaxes(pd, -1, -2), g_rows)
            if not need_ds:
                continue
            ds = np.matmul(g_rows, np.swapaxes(v[..., cols, :], -1, -2))  # dP [.., bq, bk]
            tiling.drop_(ds, rows, cols)                        # the same mask again
            ds -= d_rows
            ds *= p                                             # dS = P ⊙ (dP - D)
            if need_q:                                          # [.., bq, bk] @ [.., bk, hs]
                dq[..., rows, :] += np.matmul(ds, k[..., cols, :])
            if need_k:                                          # [.., bk, bq] @ [.., bq, hs]
                dk[..., cols, :] += np.matmul(np.swapaxes(ds, -1, -2), q_rows)  # q_rows: q·scale
            if need_bias:
                target = _tile(dbias, rows, cols)               # a view: += writes dbias
                target += sum_to(ds, target.shape)
    if need_q:
        dq *= scale
    return dq, dk, dv, dbias


def _tiling(q, k, scale, block_size, causal, mask, bias, dropout_p, seed) -> Tiling:
    return Tiling(Tq=q.shape[-2], Tk=k.shape[-2], block_size=block_size, scale=scale,
                  causal=causal, mask=None if mask is None else np.atleast_2d(mask),
                  bias=None if bias is None else np.atleast_2d(bias),
                  dropout_p=dropout_p, seed=seed)


class FlashAttention(Function):
    # one node, like the standard path's, saving q, k, v, O and logsumexp instead of P
    @staticmethod
    def forward(ctx, q, k, v, bias, *, scale, block_size, causal, mask, dropout_p, seed):
        ctx.options = dict(scale=scale, block_size=block_size, causal=causal, mask=mask,
                           dropout_p=dropout_p, seed=seed)
        out, lse = flash_attention_forward(q, k, v, bias=bias, **ctx.options)
        ctx.save_for_backward(q, k, v, bias, out, lse)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, bias, out, lse = ctx.saved
        return flash_attention_backward(g, q, k, v, out, lse, bias=bias,
                                        needs=ctx.needs_input_grad, **ctx.options)
