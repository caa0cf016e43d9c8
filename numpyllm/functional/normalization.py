"""Layer normalisation and RMS normalisation over the last axis, each one node with a
hand-derived backward."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..parallel import rowwise

__all__ = ["layer_norm", "rms_norm"]


class LayerNorm(Function):
    # Per row of C features:  mu = mean(x),  var = mean((x - mu)^2),
    #   r = 1 / sqrt(var + eps),  xhat = (x - mu) r,  y = xhat * w + b.
    # Backward, with h = g * w (the gradient reaching xhat):
    #   dxhat_i/dx_j = r (delta_ij - 1/C - xhat_i xhat_j / C)
    # (the 1/C from mu; the xhat xhat / C from r, since dr/dx_j = -r^2 xhat_j / C), so
    #   dx = r (h - mean(h) - xhat * mean(h * xhat))
    #   dw = sum of g * xhat and db = sum of g, over every leading axis.
    # Saved: xhat [..., C] and r [..., 1] (and a reference to w); nothing else.
    # The sums along a row (for the means) and over rows (for dw and db) are
    # matrix-vector products with a vector of ones: one BLAS call each, several times
    # faster than np.mean / np.sum over the same axis.
    #
    # Every row is its own: the rows are done in blocks (`numpyllm.parallel.rowwise`), all
    # the steps on one block while it is in cache, the blocks on the threads; only dw and
    # db, sums over the rows, are taken over the whole array.
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        C = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, C)         # [N, C]
        N = x2.shape[0]
        ones = np.ones(C, dtype=x.dtype)
        xhat, out = np.empty_like(x2), np.empty_like(x2)    # [N, C]
        rstd = np.empty((N, 1), dtype=x.dtype)              # [N, 1]

        def block(rows):
            xb, xh, ob = x2[rows], xhat[rows], out[rows]
            mu = np.matmul(xb, ones)[:, None]               # [r, 1] row sums,
            mu /= C                                         # then / C (exact for constant rows)
            np.subtract(xb, mu, out=xh)
            sq = np.multiply(xh, xh, out=ob)                # out's block as scratch
            var = np.matmul(sq, ones)[:, None]              # [r, 1]
            var /= C
            r = rstd[rows]
            np.divide(1.0, np.sqrt(var + eps), out=r)
            xh *= r
            if weight is not None:                          # never written over xhat,
                np.multiply(xh, weight, out=ob)             # which backward keeps
                if bias is not None:
                    ob += bias
            elif bias is not None:
                np.add(xh, bias, out=ob)
            else:
                np.copyto(ob, xh)
        rowwise(block, N, C)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(xhat, rstd, weight)
            ctx.shape = x.shape
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved                      # [N, C], [N, 1]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        N, C = xhat.shape
        g2 = np.ascontiguousarray(g).reshape(N, C)          # [N, C]
        dx = dw = db = None
        gx = np.empty_like(g2) if need_x or need_w else None

        def product(rows):                                  # gx = g xhat
            np.multiply(g2[rows], xhat[rows], out=gx[rows])
        if gx is not None:
            rowwise(product, N, C)
        ones = np.ones(N, dtype=g.dtype) if need_w or need_b else None
        if need_w:
            dw = ones @ gx                                  # sum over rows -> [C]
        if need_b:
            db = ones @ g2
        if need_x:
            dx = np.empty_like(g2)

            def block(rows):
                gb, gxb, d = g2[rows], gx[rows], dx[rows]
                if weight is None:
                    mean_h = gb.sum(axis=-1, keepdims=True) / C         # [r, 1]
                    mean_hx = gxb.sum(axis=-1, keepdims=True) / C
                    np.subtract(gb, mean_h, out=d)
                else:
                    # mean(g w) and mean(g w xhat) as (g @ w) / C and (gx @ w) / C: a BLAS
                    # call each, and no [r, C] temporary for g w and g w xhat
                    mean_h = (gb @ weight)[:, None] / C                 # [r, 1]
                    mean_hx = (gxb @ weight)[:, None] / C
                    np.multiply(gb, weight, out=d)
                    d -= mean_h
                d -= np.multiply(xhat[rows], mean_hx, out=gxb)  # gx's block is spent
                d *= rstd[rows]
            rowwise(block, N, C)
            dx = dx.reshape(ctx.shape)
        return dx, dw, db, None


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each vector along the last axis to mean 0 and variance 1, then scale by
    `weight` and shift by `bias` (both [C], optional), as one node:
    ``(x - mean) / sqrt(var + eps) * weight + bias``, with the biased variance (divide by
    C), as in PyTorch and GPT-2.

    >>> x = Tensor([[1.0, 2.0, 3.0]])
    >>> np.round(layer_norm(x).data, 4).tolist()
    [[-1.2247, 0.0, 1.2247]]
    >>> w, b = Tensor([1.0, 1.0, 2.0]), Tensor([0.0, 0.5, 0.0])
    >>> np.round(layer_norm(x, w, b).data, 4).tolist()
    [[-1.2247, 0.5, 2.4495]]
    """
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(shape) == 0:
        raise ValueError("layer_norm: x must have at least one axis (the features)")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and np.shape(p.data if isinstance(p, Tensor) else p) != shape[-1:]:
            raise ValueError(f"layer_norm: {name} must have shape {shape[-1:]} to match the "
                             f"last axis of x {shape}, got "
                             f"{np.shape(p.data if isinstance(p, Tensor) else p)}")
    return LayerNorm.apply(x, weight, bias, float(eps))


class RMSNorm(Function):
    # Root-mean-square normalisation (Zhang & Sennrich 2019; LLaMA), per row of C:
    #   ms = mean(x^2),  r = 1 / sqrt(ms + eps),  y = x r w       (no mean, no bias)
    # Backward, with h = g * w (the gradient reaching x r):
    #   d(x_i r)/dx_j = r (delta_ij - x_i x_j r^2 / C)     (dr/dx_j = -r^3 x_j / C)
    # so, with xhat = x r:   dx = r (h - xhat mean(h xhat)),   dw = sum of g xhat over rows.
    # It is layer norm without the mean: the same derivation with mu = 0 and no bias.
    # Saved: xhat [..., C] and r [..., 1] (and a reference to w).
    # The rows are done in blocks, on the threads (see LayerNorm); dw over the whole.
    @staticmethod
    def forward(ctx, x, weight, eps):
        if not any(ctx.needs_input_grad):
            return rms_norm_forward(x, weight, eps)
        C = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, C)         # [N, C]
        N = x2.shape[0]
        xhat, out = np.empty_like(x2), np.empty_like(x2)
        rstd = np.empty((N, 1), dtype=x.dtype)

        def block(rows):
            _rms_normalize(x2[rows], eps, xhat=xhat[rows], rstd=rstd[rows])
            if weight is not None:
                np.multiply(xhat[rows], weight, out=out[rows])
        rowwise(block, N, C)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.shape = x.shape
        return (xhat if weight is None else out).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved                      # [N, C], [N, 1]
        need_x, need_w = ctx.needs_input_grad[:2]
        N, C = xhat.shape
        g2 = np.ascontiguousarray(g).reshape(N, C)
        dx = dw = None
        gx = np.empty_like(g2) if need_x or need_w else None    # g xhat

        def product(rows):
            np.multiply(g2[rows], xhat[rows], out=gx[rows])
        if gx is not None:
            rowwise(product, N, C)
        if need_w:
            dw = np.ones(N, dtype=g.dtype) @ gx             # [C]
        if need_x:
            dx = np.empty_like(g2)

            def block(rows):
                gb, d = g2[rows], dx[rows]
                if weight is None:
                    np.copyto(d, gb)                        # h = g
                    mean_hx = gx[rows].sum(axis=-1, keepdims=True) / C
                else:
                    np.multiply(gb, weight, out=d)          # h = g w
                    mean_hx = (gx[rows] @ weight)[:, None] / C   # mean(g w xhat): BLAS
                d -= xhat[rows] * mean_hx
                d *= rstd[rows]
            rowwise(block, N, C)
            dx = dx.reshape(ctx.shape)
        return dx, dw, None


def _rms_normalize(x: np.ndarray, eps: float, *, xhat=None, rstd=None) -> tuple:
    """``(xhat, rstd)``: ``x · rstd`` [..., C] and ``rstd = 1 / sqrt(mean(x²) + eps)``
    [..., 1], in x's dtype (written into `xhat` and `rstd` when given)."""
    C = x.shape[-1]
    sq = np.multiply(x, x, out=xhat)                        # [..., C]
    ms = np.matmul(sq, np.ones(C, dtype=x.dtype))[..., None] / C    # [..., 1]: one BLAS call
    rstd = np.divide(1.0, np.sqrt(ms + eps), out=rstd)      # [..., 1]
    return np.multiply(x, rstd, out=sq), rstd               # xhat written over x²


def rms_norm_forward(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """The forward math on arrays, keeping nothing for backward (inference, and the
    node's forward when no gradient is wanted): ``x / sqrt(mean(x²) + eps) * weight``.
    One buffer of x's shape is allocated, the result."""
    y, _ = _rms_normalize(x, eps)
    if weight is not None:
        y *= weight
    return y


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation along the last axis, then scale by `weight` ([C],
    optional), as one node: ``x / sqrt(mean(x^2) + eps) * weight`` (LLaMA's RMSNorm;
    no centring, no bias).

    >>> x = Tensor([[1.0, 2.0, 2.0]])                  # mean of squares 3
    >>> np.round(rms_norm(x, eps=0.0).data, 4).tolist()
    [[0.5774, 1.1547, 1.1547]]
    """
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(shape) == 0:
        raise ValueError("rms_norm: x must have at least one axis (the features)")
    if weight is not None and np.shape(weight.data if isinstance(weight, Tensor)
                                       else weight) != shape[-1:]:
        raise ValueError(f"rms_norm: weight must have shape {shape[-1:]} to match the last "
                         f"axis of x {shape}")
    return RMSNorm.apply(x, weight, float(eps))
