"""The DPO loss (Rafailov et al. 2023) of preference pairs, as one node.

Each pair has a prompt x, a chosen response y_w and a rejected one y_l, scored by their
log-probabilities under the policy π (being trained) and a frozen reference π_ref:

    Δ    = (log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))
    loss = -log σ(βΔ)                                     mean over the pairs

With label smoothing ε (conservative DPO: the preference label is wrong with
probability ε) the loss is ``-(1-ε) log σ(βΔ) - ε log σ(-βΔ)``.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["dpo_loss", "log_sigmoid", "sigmoid"]


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    """log σ(z) = -log(1 + e^-z), stable for any finite z (no overflow, no log 0)."""
    return -np.logaddexp(0.0, -z)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^-z), without overflow: exp(log σ(z))."""
    return np.exp(log_sigmoid(z))


class DPOLoss(Function):
    # With z_i = β Δ_i and per-pair loss ℓ_i = -(1-ε) log σ(z_i) - ε log σ(-z_i):
    #   d ℓ_i / d z_i = -(1-ε) σ(-z_i) + ε σ(z_i)         (d/dz log σ(z) = σ(-z))
    #   d z_i / d log π(y_w) = β,   d z_i / d log π(y_l) = -β
    # so the chosen response's log-probability is pushed up and the rejected one's down,
    # each by β σ(-z_i) (ε = 0): most for the pairs the policy still gets wrong.
    @staticmethod
    def forward(ctx, chosen, rejected, ref_chosen, ref_rejected, beta, smoothing, reduction):
        z = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))       # [B]
        losses = -(1.0 - smoothing) * log_sigmoid(z) - smoothing * log_sigmoid(-z)
        ctx.z, ctx.beta, ctx.smoothing, ctx.reduction = z, beta, smoothing, reduction
        if reduction == "none":
            return losses.astype(chosen.dtype)
        return np.asarray(losses.mean() if reduction == "mean" else losses.sum(),
                          dtype=chosen.dtype)

    @staticmethod
    def backward(ctx, g):
        z, eps = ctx.z, ctx.smoothing
        dz = -(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z)                   # [B]
        if ctx.reduction == "mean":
            dz = dz * (g / len(z))
        else:
            dz = dz * g                  # "sum": g a scalar; "none": g [B]
        d_chosen = ctx.beta * dz
        return d_chosen, -d_chosen, None, None, None, None, None


def dpo_loss(chosen: Tensor, rejected: Tensor, ref_chosen, ref_rejected, *,
             beta: float = 0.1, label_smoothing: float = 0.0,
             reduction: str = "mean") -> Tensor:
    """The DPO loss of B pairs from their log-probabilities: `chosen` and `rejected`
    (``[B]`` Tensors, the policy's log π(y_w|x) and log π(y_l|x), with gradients) and
    `ref_chosen`, `ref_rejected` (``[B]`` arrays, the reference's, constants).
    `reduction` "mean" (default), "sum", or "none" (the ``[B]`` per-pair losses).

    When the policy equals the reference, Δ = 0 and the loss is log 2 whatever β:

    >>> c, r = Tensor([-3.0, -5.0], requires_grad=True), Tensor([-4.0, -2.0], requires_grad=True)
    >>> loss = dpo_loss(c, r, c.data, r.data, beta=0.5)
    >>> round(loss.item(), 6) == round(float(np.log(2)), 6)
    True
    >>> loss.backward()                 # -β σ(0) / B = -0.125: chosen up, rejected down
    >>> c.grad.tolist(), r.grad.tolist()
    ([-0.125, -0.125], [0.125, 0.125])
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"dpo_loss: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")
    if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta > 0):
        raise ValueError(f"dpo_loss: beta must be a finite number > 0, got {beta!r}")
    if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 0.5):
        raise ValueError(f"dpo_loss: label_smoothing must be in [0, 0.5), got "
                         f"{label_smoothing!r}")
    arrays = [np.asarray(a.data if isinstance(a, Tensor) else a)
              for a in (chosen, rejected, ref_chosen, ref_rejected)]
    shapes = [a.shape for a in arrays]
    if len(shapes[0]) != 1 or shapes[0][0] == 0 or any(s != shapes[0] for s in shapes):
        raise ValueError("dpo_loss: chosen, rejected, ref_chosen and ref_rejected must be "
                         f"non-empty [B] arrays of one shape, got {shapes}")
    dtype = arrays[0].dtype
    ref_c, ref_r = (a.astype(dtype, copy=False) for a in arrays[2:])
    return DPOLoss.apply(chosen, rejected, ref_c, ref_r, float(beta),
                         float(label_smoothing), reduction)
