"""Embedding lookup: rows of a weight matrix picked by integer ids, as one node."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["embedding"]


def _index_array(ids, fn: str, what: str) -> np.ndarray:
    """`ids` (an int array, an int Tensor, a list) as an np.intp array; TypeError otherwise.

    Shared by embedding and cross_entropy: a float or bool array of "ids" is almost always
    a bug (logits passed as targets, a mask passed as ids), so it is refused, not cast.
    """
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: {what} must be integers, got an array of dtype {arr.dtype}")
    return arr.astype(np.intp, copy=False)


class Embedding(Function):
    # out[...] = weight[ids[...]]: out[p] is row ids[p] of the weight, so
    #   dweight[v] = sum over positions p with ids[p] == v of g[p].
    # A row that appears k times receives k gradients, which must be added. Sorting the
    # ids puts equal ids next to each other, and np.add.reduceat sums each run in one
    # call: no one-hot [N, V] matrix, and no np.add.at. Measured (numpy 2.4, 2 cores,
    # float32 / float64, ms per backward):
    #   [12*64] ids into [65, 128]:        add.at 0.71 / 0.95, bincount 0.80 / 0.20,
    #                                      sort+reduceat 0.11 / 0.15
    #   [8*256] ids into [50257, 768]:     add.at 16.6 / 23.4, bincount 36.2 / 12.1,
    #                                      sort+reduceat 10.5 / 17.4
    # (bincount over the flat index id*C + column must return float64 and build a
    # V*C-long result: 310 MB for GPT-2's table.) float32 is the training dtype, so
    # sort+reduceat.
    @staticmethod
    def forward(ctx, weight, ids):
        ctx.ids, ctx.shape = ids, weight.shape
        return np.take(weight, ids, axis=0)            # [...] -> [..., C]

    @staticmethod
    def backward(ctx, g):
        ids = ctx.ids.reshape(-1)                      # [N]
        g = g.reshape(ids.size, ctx.shape[1])          # [..., C] -> [N, C]
        grad = np.zeros(ctx.shape, dtype=g.dtype)      # [V, C]
        if ids.size:
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            # each run of equal ids summed: [n_unique, C], written once per unique id
            grad[sorted_ids[starts]] = np.add.reduceat(g[order], starts, axis=0)
        return grad, None


def embedding(ids, weight: Tensor) -> Tensor:
    """Row lookup: ``out[..., :] = weight[ids[...], :]``, as one node.

    `ids` is an integer array (or int Tensor, or list) of any shape, `weight` a Tensor
    [V, C]; the result has shape ``ids.shape + (C,)``. The gradient flows to `weight`
    only; a row used several times receives the sum of its gradients. An id outside
    [0, V) raises IndexError (negative ids are not counted from the end); float ids
    raise TypeError.

    >>> w = Tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], requires_grad=True)
    >>> out = embedding([[2, 0, 2]], w)               # [1, 3] ids -> [1, 3, 2]
    >>> out.data.tolist()
    [[[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]]
    >>> out.sum().backward()
    >>> w.grad.tolist()                               # row 2 was used twice
    [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]
    """
    ids = _index_array(ids, "embedding", "ids")
    shape = np.shape(weight.data if isinstance(weight, Tensor) else weight)
    if len(shape) != 2:
        raise ValueError(f"embedding: weight must be [V, C], got shape {shape}")
    V = shape[0]
    if ids.size:
        lo, hi = ids.min(), ids.max()
        if lo < 0 or hi >= V:
            bad = lo if lo < 0 else hi
            raise IndexError(f"embedding: id {bad} is out of range for a vocabulary of "
                             f"V={V} rows (ids must be in [0, {V}))")
    return Embedding.apply(weight, ids)
