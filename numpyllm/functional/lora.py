"""lora_linear: a linear layer plus a low-rank update, y = x W + b + s · (m ⊙ x) A B, one node.

LoRA (Hu et al., 2021) freezes W [in, out] and trains two thin matrices A [in, r] and
B [r, out] (r ≪ in, out) whose product is the change of W. `s` is the scale (alpha / r,
or alpha / sqrt(r) for rank-stabilised LoRA) and `m` an optional inverted-dropout mask
on the adapter's input only (the base path sees x itself, as in PEFT).

Composed from primitives this is a linear, a dropout, two matmuls, a multiply and an add,
each a node with its own saved arrays. As one node it saves only x (a view of the
input), the mask when there is one, and the small h = s (m ⊙ x) A [N, r], and never
forms the [in, out] product A B.

Forward (X = x flattened to [N, in], Xd = m ⊙ X):
    h = s · Xd A                         [N, in] @ [in, r]  -> [N, r]
    y = X W + b + h B                    [N, out]

Backward (G = dL/dy flattened to [N, out]); let u = s · G Bᵀ   [N, r]:
    dL/dB = hᵀ G        = s (Xd A)ᵀ G    [r, N] @ [N, out]
    dL/dA = Xdᵀ u       = s Xdᵀ (G Bᵀ)   [in, N] @ [N, r]
    dL/dx = G Wᵀ + m ⊙ (u Aᵀ)           the base path plus the adapter's
    dL/dW = Xᵀ G,  dL/db = Σ_rows G      only when W and b are not frozen
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["lora_linear", "adapter_backward"]


def adapter_backward(g2, xd, h, lora_A, lora_B, scale, mask, need_x, need_A, need_B):
    """The adapter's part of the backward, whatever the base (a float W, or a quantized
    one in `numpyllm.quantize.qlora`): with u = s · G Bᵀ [N, r], returns ``(m ⊙ (u Aᵀ)
    [N, in] or None, dL/dA = Xdᵀ u [in, r] or None, dL/dB = hᵀ G [r, out] or None)``."""
    u = None
    if need_x or need_A:
        u = g2 @ lora_B.T                                 # [N, r]
        u *= scale
    gA = xd.T @ u if need_A else None                     # [in, r]
    gB = h.T @ g2 if need_B else None                     # [r, out]
    ua = None
    if need_x:
        ua = u @ lora_A.T                                 # [N, in]: the adapter's share
        if mask is not None:
            ua *= mask
    return ua, gA, gB


class LoRALinear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lora_A, lora_B, scale, mask):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])                   # [..., in] -> [N, in] (a view)
        xd = x2 if mask is None else x2 * mask.reshape(x2.shape)
        y = x2 @ weight                                   # [N, out], a fresh array
        if bias is not None:
            y += bias
        h = xd @ lora_A                                   # [N, r]
        h *= scale                                        # in place: [N, r] is small
        y += h @ lora_B                                   # [N, r] @ [r, out]
        ctx.save_for_backward(x2, xd, h, weight, lora_A, lora_B)
        ctx.lead, ctx.scale = lead, scale
        ctx.mask = None if mask is None else mask.reshape(x2.shape)
        return y.reshape(*lead, weight.shape[1])

    @staticmethod
    def backward(ctx, g):
        x2, xd, h, weight, lora_A, lora_B = ctx.saved
        need_x, need_w, need_b, need_A, need_B = ctx.needs_input_grad[:5]
        g2 = g.reshape(-1, g.shape[-1])                   # [N, out]
        ua, gA, gB = adapter_backward(g2, xd, h, lora_A, lora_B, ctx.scale, ctx.mask,
                                      need_x, need_A, need_B)
        gx = None
        if need_x:
            gx = g2 @ weight.T                            # the base path
            gx += ua                                      # plus the adapter's share
            gx = gx.reshape(*ctx.lead, weight.shape[0])
        gw = x2.T @ g2 if need_w else None                # [in, out]
        gb = g2.sum(axis=0) if need_b else None           # [out]
        return gx, gw, gb, gA, gB, None, None


def _shape(t) -> tuple:
    return np.shape(t.data if isinstance(t, Tensor) else t)


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, lora_A: Tensor, lora_B: Tensor,
                scale: float, mask: np.ndarray | None = None) -> Tensor:
    """``x @ weight + bias + scale * ((mask * x) @ lora_A) @ lora_B`` as one node.

    `weight` is ``[in, out]``, `lora_A` ``[in, r]``, `lora_B` ``[r, out]``; `mask` (an
    array of x's shape, 0 where dropped and 1/(1-p) where kept) applies to the adapter's
    input only. With ``lora_B = 0`` the result is ``linear(x, weight, bias)`` exactly.

    >>> import numpy as np, numpyllm as nl
    >>> from numpyllm.functional import linear, lora_linear
    >>> x, W = nl.Tensor(np.ones((2, 3, 4))), nl.Tensor(np.ones((4, 5)))
    >>> A, B = nl.Tensor(np.ones((4, 2))), nl.Tensor(np.zeros((2, 5)))
    >>> bool((lora_linear(x, W, None, A, B, 2.0).data == linear(x, W).data).all())
    True
    """
    x_shape, w_shape = _shape(x), _shape(weight)
    a_shape, b_shape = _shape(lora_A), _shape(lora_B)
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[0]:
        raise ValueError(f"lora_linear: x of shape {x_shape} does not fit weight of shape "
                         f"{w_shape} (weight is [in, out])")
    if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != w_shape[0] \
            or b_shape != (a_shape[1], w_shape[1]):
        raise ValueError(f"lora_linear: lora_A {a_shape} and lora_B {b_shape} must be "
                         f"[in, r] and [r, out] for weight {w_shape}")
    if bias is not None and _shape(bias) != (w_shape[1],):
        raise ValueError(f"lora_linear: bias has shape {_shape(bias)}, expected ({w_shape[1]},)")
    if mask is not None and np.shape(mask) != x_shape:
        raise ValueError(f"lora_linear: mask of shape {np.shape(mask)} must match x {x_shape}")
    return LoRALinear.apply(x, weight, bias, lora_A, lora_B, float(scale), mask)
