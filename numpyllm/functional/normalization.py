"""Layer normalisation and RMS normalisation over the last axis, each one node with a
hand-derived backward."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

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
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        C = x.shape[-1]
        ones = np.ones(C, dtype=x.dtype)
        mu = np.matmul(x, ones)[..., None]                  # [..., 1] row sums,
        mu /= C                                             # then / C (exact for constant rows)
        xhat = x - mu                                       # [..., C]
        sq = np.multiply(xhat, xhat)                        # [..., C] scratch
        var = np.matmul(sq, ones)[..., None]                # [..., 1]
        var /= C
        rstd = 1.0 / np.sqrt(var + eps)                     # [..., 1]
        xhat *= rstd
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(xhat, rstd, weight)
        out = sq                                            # reuse the scratch: never xhat,
        if weight is not None:                              # which backward keeps
            np.multiply(xhat, weight, out=out)
            if bias is not None:
                out += bias
        elif bias is not None:
            np.add(xhat, bias, out=out)
        else:
            np.copyto(out, xhat)
        return out

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        C = xhat.shape[-1]
        g2 = g.reshape(-1, C)                               # [N, C]
        ones = np.ones(g2.shape[0], dtype=g.dtype) if need_w or need_b else None
        dx = dw = db = None
        gx = g * xhat if need_x or need_w else None         # [..., C]
        if need_w:
            dw = ones @ gx.reshape(-1, C)                   # sum over rows -> [C]
        if need_b:
            db = ones @ g2
        if need_x:
            if weight is None:
                mean_h = np.expand_dims(g.sum(axis=-1), -1) / C         # [..., 1]
                mean_hx = np.expand_dims(gx.sum(axis=-1), -1) / C
                dx = g - mean_h
            else:
                # mean(g w) and mean(g w xhat) as (g @ w) / C and (gx @ w) / C: a BLAS
                # call each, and no [..., C] temporary for g w and g w xhat
                mean_h = np.expand_dims(g @ weight, -1) / C         # [..., 1]
                mean_hx = np.expand_dims(gx @ weight, -1) / C
                dx = g * weight
                dx -= mean_h
            dx -= np.multiply(xhat, mean_hx, out=gx)        # gx is no longer needed
            dx *= rstd
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
    @staticmethod
    def forward(ctx, x, weight, eps):
        if not any(ctx.needs_input_grad):
            return rms_norm_forward(x, weight, eps)
        xhat, rstd = _rms_normalize(x, eps)
        ctx.save_for_backward(xhat, rstd, weight)
        return xhat if weight is None else xhat * weight

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved
        need_x, need_w = ctx.needs_input_grad[:2]
        C = xhat.shape[-1]
        dx = dw = None
        gx = g * xhat if need_x or need_w else None          # [..., C]
        if need_w:
            dw = np.ones(gx.size // C, dtype=g.dtype) @ gx.reshape(-1, C)    # [C]
        if need_x:
            if weight is None:
                h = g                                       # [..., C]
                mean_hx = gx.sum(axis=-1, keepdims=True) / C
            else:
                h = g * weight
                mean_hx = np.expand_dims(gx @ weight, -1) / C    # mean(g w xhat): one BLAS call
            dx = h - xhat * mean_hx
            dx *= rstd
        return dx, dw, None


def _rms_normalize(x: np.ndarray, eps: float) -> tuple:
    """``(xhat, rstd)``: ``x · rstd`` [..., C] and ``rstd = 1 / sqrt(mean(x²) + eps)``
    [..., 1], in x's dtype."""
    C = x.shape[-1]
    sq = np.multiply(x, x)                                  # [..., C]
    ms = np.matmul(sq, np.ones(C, dtype=x.dtype))[..., None] / C    # [..., 1]: one BLAS call
    rstd = 1.0 / np.sqrt(ms + eps)                          # [..., 1]
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
