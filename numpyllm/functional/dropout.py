"""Inverted dropout with an explicit random generator, as one node."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["dropout"]


class Dropout(Function):
    # y = x * m, with m = 1/(1-p) where kept and 0 where dropped: dy/dx = m.
    # The scale makes E[m] = (1-p) * 1/(1-p) = 1, so E[y] = x and nothing needs
    # rescaling at evaluation time ("inverted" dropout). Saved: the scaled mask m.
    @staticmethod
    def forward(ctx, x, p, rng):
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        keep = rng.random(x.shape, dtype=dtype) >= p          # P(keep) = 1 - p
        mask = np.multiply(keep, dtype.type(1.0 / (1.0 - p)))  # bool * scale -> dtype
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        mask, = ctx.saved
        return g * mask, None, None


def dropout(x: Tensor, p: float, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability `p` and scale the rest by 1/(1-p), so the
    expected value is unchanged. Randomness comes only from `rng`, an
    `np.random.Generator`, which is required when ``p > 0`` and `training`.

    When ``p == 0`` or not `training`, returns `x` itself (no node, no random draw).
    p must be in [0, 1).

    >>> x = Tensor(np.ones(8))
    >>> dropout(x, 0.5, training=False) is x
    True
    >>> y = dropout(x, 0.5, rng=np.random.default_rng(0))
    >>> sorted(set(y.data.tolist()))              # dropped, or kept and doubled
    [0.0, 2.0]
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    if not isinstance(rng, np.random.Generator):
        raise TypeError("dropout: p > 0 in training mode needs rng=np.random.Generator "
                        f"(e.g. np.random.default_rng(seed)); got {type(rng).__name__}")
    return Dropout.apply(x, float(p), rng)
