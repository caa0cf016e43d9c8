"""Scaled dot-product attention: one fused graph node with a hand-derived backward.

For queries q ``[..., Tq, hs]``, keys k ``[..., Tk, hs]`` and values v ``[..., Tk, hv]``
(typically ``[B, nh, T, hs]``: every head of every sequence in one batched `np.matmul`):

    S = q kᵀ · scale  (+ bias)        scale = 1/sqrt(hs) by default        [..., Tq, Tk]
    S[not allowed] = -inf             the mask: True = may attend
    P = softmax(S)                    over the keys (last axis)
    P' = P ⊙ keep / (1 - p)           dropout on the weights (training only)
    O = P' V                                                               [..., Tq, hv]

The backward, given dO = dL/dO:

    dV  = P'ᵀ dO
    dP' = dO Vᵀ,  dP = dP' ⊙ keep / (1 - p)       the dropout mask, applied again
    dS  = P ⊙ (dP - rowsum(dP ⊙ P))               softmax's Jacobian-vector product
    dq  = dS k · scale,   dk = dSᵀ q · scale,    d bias = dS

(softmax: dP_ij/dS_il = P_ij (δ_jl - P_il), so dS_il = P_il (dP_il - Σ_j dP_ij P_ij).)
Masked entries have P = 0, hence dS = 0: no gradient reaches a masked score.

Dropout is applied to the attention *weights*, after the softmax, as in the original
Transformer and PyTorch (one of the study notes describes dropping scores before the
softmax; that is a different, unusual regulariser). The mask `keep` is drawn from an
explicit `np.random.Generator`.

**Fully masked rows.** A query that may attend nothing (a padded query row, or the
first ``Tq - Tk`` queries of a bottom-right causal mask with Tq > Tk) gets all-zero
weights, hence a zero output and zero gradients, never NaN: the softmax treats a row
whose maximum is -inf as empty. (PyTorch >= 2.5 does the same in its math kernel.)

**Causal alignment.** ``causal=True`` aligns the triangle to the bottom right: query i
sits at absolute position ``Tk - Tq + i``, as a KV cache needs (the new queries come
after the cached keys). PyTorch's ``is_causal`` aligns to the top left; the two agree
when Tq == Tk. See `numpyllm.functional.masks`.

The array-level kernels `attention_forward` and `attention_backward` are shared with
`numpyllm.nn.MultiHeadAttention` (which feeds them q, k and v packed in one array).

**Keys first in memory.** P is ``[..., Tq, Tk]`` as the math writes it, but its array
is stored keys first, ``[Tk, ..., Tq]`` (P is a transposed view of it), and so is dP in
backward. The softmax reduces over the keys (its max and its sum, and rowsum(dP ⊙ P) in
backward), and NumPy reduces over the *first* axis of an array with long inner loops,
all queries of all heads at once, but over the last axis one short row at a time: ~10x
slower for rows of 64. The matrix products take the transposed views at full speed
(BLAS is told the layout; nothing is copied). Each query's softmax still uses only its
own scores, so no query's result depends on another's, to the last bit.

**Memory.** This path keeps P ``[..., Tq, Tk]`` for backward: memory quadratic in the
sequence length. ``block_size=n`` selects the memory-efficient kernels of
`numpyllm.functional.flash_attention` instead (FlashAttention's online softmax over
tiles of n queries x n keys, recomputing P in backward): memory linear in the length,
the same result to rounding, at the cost of recomputing the scores once more in
backward. Their dropout masks come from a different random stream (see there).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..autograd import Function, Tensor
from .flash_attention import FlashAttention
from ..parallel import for_slices
from .masks import causal_mask, combine_masks

__all__ = ["scaled_dot_product_attention"]


# --------------------------------------------------------------------------- the kernels
def _softmax_keys_first_(pt: np.ndarray) -> np.ndarray:
    """Softmax over the *first* axis (the keys) of scores stored keys first,
    ``[Tk, ..., Tq]``, in place. A query that may attend nothing gets all zeros."""
    m = pt.max(axis=0, keepdims=True, initial=-np.inf)      # [1, ..., Tq]
    m[np.isneginf(m)] = 0.0          # empty row: exp(-inf - 0) = 0, not exp(nan)
    pt -= m
    np.exp(pt, out=pt)
    denom = pt.sum(axis=0, keepdims=True)                     # [1, ..., Tq]
    denom[denom == 0] = 1.0          # empty row: 0 / 1 = 0
    pt /= denom
    return pt


def _keys_first(a: np.ndarray) -> np.ndarray:
    """``[..., Tq, Tk] -> [Tk, ..., Tq]`` (a view): where P's array keeps the keys."""
    return np.moveaxis(a, -1, 0)


def _keys_first_term(a: np.ndarray, ndim: int) -> np.ndarray:
    """A bias or mask that broadcasts to the scores ``[..., Tq, Tk]`` (`ndim` axes), laid
    out to broadcast to them keys first: ``[Tk, ..., Tq]``, contiguous."""
    a = np.asarray(a)
    a = a.reshape((1,) * (ndim - a.ndim) + a.shape)
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def _batch_split(q, k, v) -> int:
    """How many independent pieces the first axis gives (1: do not split)."""
    # the same rank, so that axis 0 means the same thing in all three
    if q.ndim == k.ndim == v.ndim >= 3 and q.shape[0] == k.shape[0] == v.shape[0]:
        return q.shape[0]
    return 1


def _rows(a, sl, n: int, ndim: int):
    """The rows `sl` of `a` if `a` has the split axis, else `a` itself (it broadcasts)."""
    if a is None or np.ndim(a) < ndim or np.shape(a)[0] != n:
        return a
    return a[sl]


# below this many score elements (all the batch's), threads cost more than they save.
# Measured in a plain training loop (2 cores, 2026-11-30): nanoGPT's CPU model (12 x 4
# heads x 64 x 64 = 196,608 scores) ran 34.4 ms a step serial against 36.3 threaded
# (6 alternated rounds, serial faster in each); 6 x 384 at T 256 (3.1M scores) was even.
_PARALLEL_MIN_SCORES = 1 << 18


def attention_forward(q, k, v, *, scale, bias=None, allowed=None, dropout_p=0.0, rng=None,
                      out=None):
    """The forward math on arrays: returns ``(out, P, keep)``.

    `P` is the softmax of the scores ``[..., Tq, Tk]`` (before dropout); `keep` is the
    boolean dropout mask, or None without dropout. `allowed` and `bias` must broadcast
    to the scores (the public function checks that). `out` may be a preallocated array
    (a strided view is fine) for the result.

    Every batch element is independent, so the work is cut along the first axis and
    run on `numpyllm.parallel`'s threads (bit-identical to one thread).
    """
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = batch + (Tq, Tk)                                     # [..., Tq, Tk]
    pt = np.empty((Tk,) + batch + (Tq,), dtype=np.result_type(q, k))   # keys first
    p = np.moveaxis(pt, 0, -1)                                    # [..., Tq, Tk] view
    if out is None:
        out = np.empty(batch + (q.shape[-2], v.shape[-1]), dtype=np.result_type(p, v))
    keep = None
    if dropout_p > 0.0:
        # drawn here, in one piece: the same random stream however the work is split
        keep = rng.random(scores, dtype=np.float32) >= dropout_p
    n, nd = _batch_split(q, k, v), len(scores)
    if n == 1:
        _forward_piece(q, k, v, scale, bias, allowed, dropout_p, keep, p, out)
        return out, p, keep

    def piece(sl):
        def r(a):
            return _rows(a, sl, n, nd)
        _forward_piece(r(q), r(k), r(v), scale, r(bias), r(allowed), dropout_p, r(keep),
                       r(p), r(out))
    for_slices(n, piece, min_work=_PARALLEL_MIN_SCORES, work_per_item=p[0].size)
    return out, p, keep


# backward takes a thread's batch elements a few at a time, about this many scores each
# time: dP's passes (the product, the row sums of dP ⊙ P, the subtraction, the product
# with P) then run over arrays still in cache. Measured at 8 x 6 x 256 x 256 (2 cores,
# 2026-11-30, 3 alternated runs): backward 12.1-13.8 ms in blocks of 2^19 scores against
# 14.8-21.2 ms whole; the forward (one softmax) gained nothing and is not blocked.
_BLOCK_SCORES = 1 << 19


def _cache_blocks(sl: slice, per_item: int):
    """Sub-slices of `sl` holding about `_BLOCK_SCORES` scores each (at least one item)."""
    step = max(1, _BLOCK_SCORES // max(1, per_item))
    for lo in range(sl.start, sl.stop, step):
        yield slice(lo, min(lo + step, sl.stop))


def _forward_piece(q, k, v, scale, bias, allowed, dropout_p, keep, p, out):
    # p [..., Tq, Tk] is a view of the keys-first array pt [Tk, ..., Tq]
    pt = _keys_first(p)
    st = np.swapaxes(p, -1, -2)                  # Sᵀ [..., Tk, Tq], a view of pt too
    np.matmul(k, np.swapaxes(q, -1, -2), out=st)  # [..., Tk, hs] @ [..., hs, Tq]: Sᵀ = k qᵀ
    pt *= scale
    if bias is not None:
        pt += _keys_first_term(bias, p.ndim)
    if allowed is not None:                      # -inf where not allowed, whatever was there
        np.copyto(pt, -np.inf, where=_keys_first_term(~np.asarray(allowed), p.ndim))
    _softmax_keys_first_(pt)                     # the scores' buffer now holds P
    if keep is not None:
        pd = p * keep
        pd *= 1.0 / (1.0 - dropout_p)
    else:
        pd = p
    np.matmul(pd, v, out=out)                    # [..., Tq, Tk] @ [..., Tk, hv] -> [..., Tq, hv]


def attention_backward(g, q, k, v, p, keep, *, scale, dropout_p=0.0,
                       needs=(True, True, True, False), out=(None, None, None)):
    """The backward math on arrays: returns ``(dq, dk, dv, dbias)`` (None where
    `needs` is False). `out` may give preallocated arrays for dq, dk, dv of exactly
    the shapes the products have (MultiHeadAttention writes them into one packed
    buffer). Cut along the first axis onto threads like the forward pass, unless the
    bias needs its gradient (dS is then returned whole)."""
    need_q, need_k, need_v, need_bias = needs
    n = 1 if need_bias else _batch_split(q, k, v)
    if n == 1:
        return _backward_piece(g, q, k, v, p, keep, scale, dropout_p, needs, out)
    batch = p.shape[:-2]
    shapes = (batch + q.shape[-2:], batch + k.shape[-2:], batch + v.shape[-2:])
    dq, dk, dv = (o if o is not None or not need else np.empty(shape, dtype=p.dtype)
                  for o, need, shape in zip(out, (need_q, need_k, need_v), shapes))
    nd = p.ndim

    def piece(sl):
        for sub in _cache_blocks(sl, p[0].size):
            def r(a):
                return _rows(a, sub, n, nd)
            _backward_piece(r(g), r(q), r(k), r(v), r(p), r(keep), scale, dropout_p, needs,
                            (r(dq), r(dk), r(dv)))
    for_slices(n, piece, min_work=_PARALLEL_MIN_SCORES, work_per_item=p[0].size)
    return dq, dk, dv, None


def _backward_piece(g, q, k, v, p, keep, scale, dropout_p, needs, out):
    need_q, need_k, need_v, need_bias = needs
    dq = dk = dv = ds = None
    inv_keep = 1.0 / (1.0 - dropout_p)
    if need_v:
        pd = p if keep is None else p * keep * inv_keep
        dv = np.matmul(np.swapaxes(pd, -1, -2), g, out=out[2])  # [.., Tk, Tq] @ [.., Tq, hv]
    if need_q or need_k or need_bias:
        # dP keys first like P (see the module doc): dpt [Tk, .., Tq], dp its [.., Tq, Tk] view
        dpt = np.empty((p.shape[-1],) + p.shape[:-1], dtype=p.dtype)
        dp = np.moveaxis(dpt, 0, -1)
        np.matmul(v, np.swapaxes(g, -1, -2), out=np.swapaxes(dp, -1, -2))  # dPᵀ = v gᵀ
        if keep is not None:
            dp *= keep
            dp *= inv_keep
        # softmax backward, in dP's buffer: dS = P ⊙ (dP - rowsum(dP ⊙ P)), the row sums
        # over the keys: axis 0 of the keys-first arrays
        pt = _keys_first(p)
        dpt -= (dpt * pt).sum(axis=0, keepdims=True)
        dpt *= pt
        ds = dp
        if need_q:
            dq = np.matmul(ds, k, out=out[0])                     # [.., Tq, Tk] @ [.., Tk, hs]
            dq *= scale
        if need_k:
            dk = np.matmul(np.swapaxes(ds, -1, -2), q, out=out[1])  # [.., Tk, Tq] @ [.., Tq, hs]
            dk *= scale
    return dq, dk, dv, (ds if need_bias else None)


class _Attention(Function):
    # one node for S = q kᵀ·scale + bias, mask, softmax, dropout, P V (derivation above)
    @staticmethod
    def forward(ctx, q, k, v, bias, *, scale, allowed, dropout_p, rng, weights_sink):
        out, p, keep = attention_forward(q, k, v, scale=scale, bias=bias, allowed=allowed,
                                         dropout_p=dropout_p, rng=rng)
        ctx.save_for_backward(q, k, v, p, keep)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        if weights_sink is not None:
            weights_sink.append(p)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, p, keep = ctx.saved
        return attention_backward(g, q, k, v, p, keep, scale=ctx.scale,
                                  dropout_p=ctx.dropout_p, needs=ctx.needs_input_grad)


# --------------------------------------------------------------------------- checking
def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def scores_shape(q_shape: tuple, k_shape: tuple, v_shape: tuple) -> tuple:
    """``(*batch, Tq, Tk)`` for q, k, v of the given shapes, or a ValueError naming them."""
    names = f"q {tuple(q_shape)}, k {tuple(k_shape)}, v {tuple(v_shape)}"
    if min(len(q_shape), len(k_shape), len(v_shape)) < 2:
        raise ValueError(f"attention: q, k, v need shapes [..., T, head_size]; got {names}")
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"attention: q and k must have the same head size (last axis); got {names}")
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(f"attention: k and v must have the same number of keys (axis -2); "
                         f"got {names}")
    try:
        batch = np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2])
    except ValueError:
        raise ValueError(f"attention: the batch axes of q, k, v do not broadcast; got {names}") \
            from None
    return tuple(batch) + (q_shape[-2], k_shape[-2])


def allowed_mask(mask, causal: bool, shape: tuple):
    """`mask` (True = may attend) and'ed with the bottom-right causal mask when `causal`,
    checked against the scores' shape ``[..., Tq, Tk]``; None when nothing is masked."""
    if mask is not None:
        mask = _data(mask)
        if mask.dtype != bool:
            raise TypeError(f"attention: mask must be boolean (True = may attend), got dtype "
                            f"{mask.dtype}; pass an additive float mask as bias=")
        if not _broadcasts_to(mask.shape, shape):
            raise ValueError(f"attention: mask of shape {mask.shape} does not broadcast to the "
                             f"scores [..., Tq, Tk] = {shape} (a key padding mask is "
                             "[B, 1, 1, Tk]: see padding_mask)")
    return combine_masks(mask, causal_mask(shape[-2], shape[-1]) if causal else None)


def check_dropout(dropout_p, rng) -> float:
    """`dropout_p` as a float in [0, 1), with an rng when it is positive."""
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) \
            or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be a number in [0, 1), got {dropout_p!r}")
    if dropout_p > 0.0 and not isinstance(rng, np.random.Generator):
        raise ValueError("attention: dropout_p > 0 needs rng, an np.random.Generator "
                         f"(got {type(rng).__name__})")
    return float(dropout_p)


def _check_block_size(block_size, return_weights: bool):
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) \
            or block_size < 1:
        raise ValueError(f"attention: block_size must be None or an integer >= 1, got "
                         f"{block_size!r}")
    if return_weights:
        raise ValueError("attention: return_weights needs the weights [..., Tq, Tk], which "
                         "block_size (the memory-efficient path) never builds; pass "
                         "block_size=None")
    return int(block_size)


def _check_bias(bias, shape: tuple) -> None:
    if bias is None:
        return
    b = _data(bias)
    if not np.issubdtype(b.dtype, np.floating):
        raise TypeError(f"attention: bias must be floating-point, got dtype {b.dtype}")
    if not _broadcasts_to(b.shape, shape):
        raise ValueError(f"attention: bias of shape {b.shape} does not broadcast to the "
                         f"scores [..., Tq, Tk] = {shape}")


# --------------------------------------------------------------------------- public
def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False, bias=None,
                                 dropout_p: float = 0.0, rng=None, scale=None,
                                 return_weights: bool = False, block_size: int | None = None):
    """``softmax(q kᵀ · scale + bias, masked) v``, one graph node (see the module doc).

    q ``[..., Tq, hs]``, k ``[..., Tk, hs]``, v ``[..., Tk, hv]`` (Tensors or arrays of
    one floating dtype; batch axes broadcast) -> ``[..., Tq, hv]``.

    - mask: bool, broadcastable to ``[..., Tq, Tk]``, **True = may attend**.
    - causal: add the causal mask, aligned to the bottom right (query i is at absolute
      position ``Tk - Tq + i``; differs from PyTorch's ``is_causal`` when Tq != Tk).
    - bias: float, added to the scores before masking (ALiBi, relative positions); a
      Tensor bias that requires grad receives ``dS`` summed over its broadcast axes.
    - dropout_p, rng: inverted dropout on the weights; rng (np.random.Generator) is
      required when dropout_p > 0. Pass 0 in evaluation.
    - scale: defaults to ``1 / sqrt(hs)``.
    - return_weights: also return the weights P ``[..., Tq, Tk]`` (before dropout) as
      a read-only array, for study and plots.
    - block_size: None (the standard path), or n for the memory-efficient path
      (`numpyllm.functional.flash_attention`): tiles of n queries x n keys, memory
      linear in the length instead of quadratic; not with return_weights. Its dropout
      masks differ from the standard path's for the same rng.

    Rows where nothing is allowed give zero output and zero gradient (not NaN).

    >>> import numpy as np
    >>> q = k = v = np.eye(2)[None]                  # [1, 2, 2]
    >>> out, w = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True)
    >>> w.round(3).tolist()
    [[[1.0, 0.0], [0.33, 0.67]]]
    """
    qd, kd, vd = _data(q), _data(k), _data(v)
    if not (np.issubdtype(qd.dtype, np.floating) and qd.dtype == kd.dtype == vd.dtype):
        raise TypeError(f"attention: q, k, v must share one floating dtype; got "
                        f"{qd.dtype}, {kd.dtype}, {vd.dtype}")
    shape = scores_shape(qd.shape, kd.shape, vd.shape)
    block_size = _check_block_size(block_size, return_weights)
    # the blocked path makes the causal mask per tile: it is not built here
    allowed = allowed_mask(mask, causal and block_size is None, shape)
    _check_bias(bias, shape)
    dropout_p = check_dropout(dropout_p, rng)
    scale = 1.0 / math.sqrt(qd.shape[-1]) if scale is None else float(scale)
    if np.broadcast_shapes(qd.shape[:-2], kd.shape[:-2]) != shape[:-2]:
        # only v has the full batch: give q the full batch, so the scores have it too
        # (the engine sums q's gradient back)
        full = shape[:-2] + qd.shape[-2:]
        q = q.broadcast_to(full) if isinstance(q, Tensor) else np.broadcast_to(qd, full)
    if block_size is not None:
        # one draw from rng seeds every tile's dropout mask, in forward and in backward
        seed = int(rng.integers(2**63)) if dropout_p > 0.0 else 0
        return FlashAttention.apply(q, k, v, bias, scale=scale, block_size=block_size,
                                    causal=causal, mask=allowed, dropout_p=dropout_p,
                                    seed=seed)
    sink = [] if return_weights else None
    out = _Attention.apply(q, k, v, bias, scale=scale, allowed=allowed, dropout_p=dropout_p,
                           rng=rng, weights_sink=sink)
    return (out, read_only(sink[0])) if return_weights else out


def read_only(weights: np.ndarray) -> np.ndarray:
    """A read-only view of the attention weights: backward reads the same buffer."""
    view = weights.view()
    view.flags.writeable = False
    return view
