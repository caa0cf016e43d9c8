"""`clip_grad_norm_`: rescale all gradients together when their global norm is too large."""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor

__all__ = ["clip_grad_norm_", "grad_norm", "scale_to_norm_"]


def clip_grad_norm_(params, max_norm: float) -> float:
    """Scale the gradients of `params` in place so that their global L2 norm (the norm
    of all gradients concatenated into one vector) is at most `max_norm`; return the
    norm measured before clipping.

    The norm is accumulated in float64 whatever the gradients' dtype. Parameters whose
    ``.grad`` is None are skipped. As in PyTorch, the scale is
    ``max_norm / (norm + 1e-6)``, applied only when it is below 1.

    A non-finite norm (an inf or nan gradient) is returned as it is and the gradients are
    left untouched, so the caller can see it and skip the step::

        norm = clip_grad_norm_(model.parameters(), 1.0)
        if math.isfinite(norm):
            opt.step()

    >>> import numpy as np
    >>> from numpyllm.nn import Parameter
    >>> p = Parameter(np.zeros(2)); p.grad = np.array([3.0, 4.0])
    >>> clip_grad_norm_([p], 1.0)
    5.0
    >>> np.round(p.grad, 6).tolist()
    [0.6, 0.8]
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if isinstance(params, Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]
    norm = _norm(grads)
    scale_to_norm_(grads, norm, max_norm)
    return norm


def scale_to_norm_(grads, norm: float, max_norm: float) -> None:
    """The clipping step of `clip_grad_norm_` for a norm measured elsewhere (across MPI
    ranks, say): scale the arrays `grads` in place by ``max_norm / (norm + 1e-6)`` when
    that is below 1; a non-finite norm leaves them untouched."""
    if not math.isfinite(norm):
        return
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= scale


def grad_norm(params) -> float:
    """The global L2 norm of the gradients of `params` (None grads skipped), in float64."""
    if isinstance(params, Tensor):
        params = [params]
    return _norm([p.grad for p in params if p.grad is not None])


def _norm(grads) -> float:
    total = 0.0
    for g in grads:
        flat = g.reshape(-1).astype(np.float64)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)
