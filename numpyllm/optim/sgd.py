"""Stochastic gradient descent, with optional momentum (heavy-ball or Nesterov) and L2
weight decay, in PyTorch's formulation.

For each parameter p with gradient g, at every step::

    d = g + weight_decay * p                 # L2 penalty, folded into the gradient
    b = d              (first step)          # momentum buffer
    b = momentum * b + d                     # later steps
    d = d + momentum * b   if nesterov  else  b
    p = p - lr * d
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False)``.

    `params`: Parameters, or param-group dicts such as
    ``{"params": [...], "weight_decay": 0.0}``. The update is made in place on each
    ``p.data``; the momentum buffer has the parameter's dtype.

    >>> import numpy as np
    >>> from numpyllm.nn import Parameter
    >>> p = Parameter(np.array([1.0, 2.0]))
    >>> p.grad = np.array([0.5, -1.0])
    >>> SGD([p], lr=0.1).step()
    >>> p.data.tolist()
    [0.95, 2.1]
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    optional_state = ("momentum_buffer",)

    def _check_hyperparameters(self, group: dict) -> None:
        super()._check_hyperparameters(group)
        if group["momentum"] < 0:
            raise ValueError(f"momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")

    def _update(self, data, grad, state, group):
        lr, momentum = float(group["lr"]), float(group["momentum"])
        wd = float(group["weight_decay"])
        work = self._work(data)
        d = grad
        if wd:
            d = np.multiply(data, wd, out=work)
            d += grad
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(d, dtype=data.dtype, copy=True)
            else:
                buf *= momentum
                buf += d
            if group["nesterov"]:
                # d + momentum * buf, into the work buffer (d may already be it)
                d = np.add(d, np.multiply(buf, momentum, out=self._work(data, 1)), out=work)
            else:
                d = buf
        step = np.multiply(d, lr, out=work)          # d is grad, buf or work: never written
        data -= step
