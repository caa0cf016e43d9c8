"""linear: y = x W + b, one node (the most frequent operation of a transformer).

x [..., in] @ W [in, out] + b [out] -> y [..., out]. As a single node it folds the
leading axes into one 2-D GEMM for the forward pass and for each gradient, adds the
bias in place, and sums the bias gradient directly; built from primitives it would be
a reshape, a matmul, a broadcast add and a reshape, each with its own backward.

Backward (G = dL/dy flattened to [N, out], X = x flattened to [N, in]):
    dL/dx = G Wᵀ            [N, out] @ [out, in]
    dL/dW = Xᵀ G            [in, N] @ [N, out]: every position's outer product, summed
    dL/db = Σ_rows G        the bias is added at every position
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["linear"]


class Linear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])                  # [..., in] -> [N, in] (a view)
        y = x2 @ weight                                   # [N, out], a fresh array
        if bias is not None:
            y += bias                                     # in place: no temporary
        ctx.save_for_backward(x2, weight)
        ctx.lead = lead
        return y.reshape(*lead, weight.shape[1])

    @staticmethod
    def backward(ctx, g):
        x2, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])                   # [N, out]
        gx = (g2 @ weight.T).reshape(*ctx.lead, weight.shape[0]) if need_x else None
        gw = x2.T @ g2 if need_w else None                # [in, out]
        gb = g2.sum(axis=0) if need_b else None           # [out]
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight + bias`` over the last axis of `x`; `weight` is ``[in, out]``.

    >>> import numpy as np, numpyllm as nl
    >>> from numpyllm.functional import linear
    >>> x = nl.Tensor(np.ones((2, 3, 4)))
    >>> linear(x, nl.Tensor(np.ones((4, 5))), nl.Tensor(np.arange(5.0))).shape
    (2, 3, 5)
    """
    w_shape = np.shape(weight.data if isinstance(weight, Tensor) else weight)
    x_shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[0]:
        raise ValueError(f"linear: x of shape {x_shape} does not fit weight of shape {w_shape} "
                         "(x's last axis must equal weight's first, weight is [in, out])")
    if bias is not None:
        b_shape = np.shape(bias.data if isinstance(bias, Tensor) else bias)
        if b_shape != (w_shape[1],):
            raise ValueError(f"linear: bias has shape {b_shape}, expected ({w_shape[1]},)")
    return Linear.apply(x, weight, bias)
