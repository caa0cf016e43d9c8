"""Adam and AdamW, in PyTorch's formulation (bias-corrected moments, eps outside the
square root).

For each parameter p with gradient g, at step t = 1, 2, ...::

    g = g + weight_decay * p                  # Adam: L2 penalty in the gradient
    p = p - lr * weight_decay * p             # AdamW instead: decoupled decay, before the step
    m = beta1 * m + (1 - beta1) * g           # first moment
    v = beta2 * v + (1 - beta2) * g * g       # second moment
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

The moments have the parameter's dtype (float32 for a float32 model). Every line is an
in-place NumPy ufunc into the moments, the parameter or a work buffer, run over blocks of
2^16 elements (`numpyllm.parallel.elementwise`): the eleven passes of a block while it is in
the core's cache, the blocks on the threads.
"""
from __future__ import annotations

import math

import numpy as np

from ..parallel import elementwise
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``, with
    weight decay as an L2 penalty added to the gradient (see `AdamW` for the decoupled
    form that transformers are trained with).

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    >>> import numpy as np
    >>> from numpyllm.nn import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> p.grad = np.array([3.0, -0.5])
    >>> Adam([p], lr=0.1).step()            # first step: lr * sign(g), nearly
    >>> np.round(p.data, 6).tolist()
    [0.9, -0.9]
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _check_hyperparameters(self, group: dict) -> None:
        super()._check_hyperparameters(group)
        beta1, beta2 = group["betas"]
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0:
            raise ValueError(f"eps must be >= 0, got {group['eps']}")

    def _init_state(self, p) -> dict:
        return {"step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data)}

    def _update(self, data, grad, state, group):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        step_size = lr / (1.0 - beta1 ** t)
        sqrt_bc2 = math.sqrt(1.0 - beta2 ** t)
        if not (data.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
            self._adam(data, grad, m, v, self._work(data), self._work(data, 1), lr, eps, wd,
                       beta1, beta2, step_size, sqrt_bc2)   # (never our own parameters)
            return
        # every element's update is its own: the eleven passes run block by block, each
        # block in cache, the blocks on numpyllm.parallel's threads (the same bits); the
        # scratch is a block's, not a parameter's (GPT-2's embedding: 154 MB less)
        def piece(data, grad, m, v):
            work = np.empty_like(data)
            work2 = np.empty_like(data) if wd and not self.decoupled_weight_decay else None
            self._adam(data, grad, m, v, work, work2, lr, eps, wd, beta1, beta2,
                       step_size, sqrt_bc2)
        elementwise(piece, data, np.ascontiguousarray(grad), m, v)

    def _adam(self, data, grad, m, v, work, work2, lr, eps, wd, beta1, beta2, step_size,
              sqrt_bc2):
        """One step on (a piece of) a parameter, in place; `work`, `work2`: scratch."""
        if wd and self.decoupled_weight_decay:
            data *= 1.0 - lr * wd
        elif wd:
            grad = np.add(grad, np.multiply(data, wd, out=work2), out=work2)
        # m += (1 - beta1) * (g - m): torch's lerp, the same value as beta1*m + (1-beta1)*g
        np.subtract(grad, m, out=work)
        work *= 1.0 - beta1
        m += work
        # v = beta2 * v + (1 - beta2) * g^2
        v *= beta2
        np.multiply(grad, grad, out=work)
        work *= 1.0 - beta2
        v += work
        # p -= step_size * m / (sqrt(v) / sqrt(bias_correction2) + eps)
        np.sqrt(v, out=work)
        work /= sqrt_bc2
        work += eps
        np.divide(m, work, out=work)
        work *= step_size
        data -= work


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``: Adam
    with decoupled weight decay (Loshchilov & Hutter): ``p -= lr * weight_decay * p``
    before the Adam step, as PyTorch does. Use `configure_param_groups` to exempt biases
    and LayerNorm weights from the decay.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
