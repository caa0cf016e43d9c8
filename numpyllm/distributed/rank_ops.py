"""The two operators of Megatron's tensor parallelism, as autograd nodes, and the sum
they make: f (`CopyToRanks`: identity forward, the ranks' gradients summed backward) and
g (`SumOverRanks`: the ranks' partial outputs summed forward, identity backward). The sum
is a reduce to rank 0 and a broadcast (`sum_identical`), so every rank holds the same
bits (an allreduce may round differently on each rank, and replicated weights would
drift apart)."""
from __future__ import annotations

import numpy as np

from ..autograd import Function

__all__ = ["sum_identical", "CopyToRanks", "SumOverRanks"]


def sum_identical(comm, x: np.ndarray) -> np.ndarray:
    """Σ over ranks of `x`, the same bits on every rank (reduce to 0, then broadcast)."""
    from mpi4py import MPI
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    comm.Reduce(x, out, op=MPI.SUM, root=0)
    comm.Bcast(out, root=0)
    return out


class CopyToRanks(Function):
    """Megatron's f: identity forward, the ranks' input gradients summed backward."""

    @staticmethod
    def forward(ctx, x, *, comm):
        ctx.comm = comm
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return sum_identical(ctx.comm, g)


class SumOverRanks(Function):
    """Megatron's g: the ranks' partial outputs summed forward, identity backward."""

    @staticmethod
    def forward(ctx, x, *, comm):
        return sum_identical(comm, x)

    @staticmethod
    def backward(ctx, g):
        return g.copy()
