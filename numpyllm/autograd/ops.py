"""The primitive operations: each forward beside its backward, with its derivative.

Every class here is a `Function`. Forward receives NumPy arrays (or plain Python
values for non-tensor arguments) and returns one array; backward receives ``g``, the
gradient of the loss with respect to the output, and returns one gradient per
argument. Backward may return a gradient in the broadcast shape of the output: the
engine's `sum_to` folds it back to each input's shape, so no op here does that itself.

Each op saves only what its backward needs: a shape, a mask, or the output when the
derivative is cheaper from the output (exp, tanh, sigmoid, sqrt).

`Tensor`'s operators and methods (tensor.py) are thin calls to these classes, and the
op table (optable.py) gradient-checks every one of them.
"""
from __future__ import annotations

import numpy as np

from .engine import Function


# ----------------------------------------------------------------------------- arithmetic
class Add(Function):
    # d(a+b)/da = 1, d(a+b)/db = 1
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    # d(a-b)/da = 1, d(a-b)/db = -1
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Neg(Function):
    # d(-a)/da = -1
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Mul(Function):
    # d(ab)/da = b, d(ab)/db = a
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -(a/b)/b
    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        ga = g / b
        return (ga if need_a else None), (-ga * out if need_b else None)


class Pow(Function):
    # d(a^p)/da = p a^(p-1);  d(a^p)/dp = a^p ln(a)
    @staticmethod
    def forward(ctx, a, p):
        out = a ** p
        ctx.save_for_backward(a, p, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, p, out = ctx.saved
        need_a, need_p = ctx.needs_input_grad
        ga = g * p * a ** (p - 1) if need_a else None
        gp = g * out * np.log(a) if need_p else None
        return ga, gp


class MatMul(Function):
    # C = A @ B:  dL/dA = G @ B^T,  dL/dB = A^T @ G  (over the last two axes; batch axes
    # broadcast like any elementwise op, and sum_to folds them back).
    # A 1-D operand is a row (left) or a column (right), as in np.matmul; its extra axis
    # is added for the products and removed from its gradient.
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim > 2 and b.ndim == 2:
            # [..., n, k] @ [k, m]: fold the batch axes into one 2-D GEMM, which BLAS runs
            # faster than a loop of small ones (and dB becomes one GEMM, not a sum of many)
            return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        if a.ndim > 2 and b.ndim == 2:                      # the folded case, as in forward
            g2 = g.reshape(-1, g.shape[-1])                 # [N, m]
            ga = np.matmul(g2, b.T).reshape(a.shape) if need_a else None     # [N, m] @ [m, k]
            gb = np.matmul(a.reshape(-1, a.shape[-1]).T, g2) if need_b else None  # [k, N] @ [N, m]
            return ga, gb
        if a.ndim == 1 and b.ndim == 1:                     # a dot product: g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        a2 = a[None, :] if a.ndim == 1 else a               # [k] -> [1, k]
        b2 = b[:, None] if b.ndim == 1 else b               # [k] -> [k, 1]
        if a.ndim == 1:
            g = np.expand_dims(g, -2)                       # [..., m] -> [..., 1, m]
        if b.ndim == 1:
            g = g[..., None]                                # [..., n] -> [..., n, 1]
        ga = gb = None
        if need_a:
            ga = np.matmul(g, np.swapaxes(b2, -1, -2))      # [..., n, m] @ [..., m, k]
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if need_b:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g)      # [..., k, n] @ [..., n, m]
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


# ----------------------------------------------------------------------------- elementwise
class Exp(Function):
    # d exp(a) = exp(a): save the output, not the input
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        return g * out


class Log(Function):
    # d ln(a)/da = 1/a
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        a, = ctx.saved
        return g / a


class Sqrt(Function):
    # d sqrt(a)/da = 1 / (2 sqrt(a))
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        return g / (2 * out)


class Tanh(Function):
    # d tanh(a)/da = 1 - tanh(a)^2
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        return g * (1 - out * out)


class Sigmoid(Function):
    # d sigma(a)/da = sigma(a) (1 - sigma(a)); sigma(a) = (1 + tanh(a/2)) / 2 never overflows
    @staticmethod
    def forward(ctx, a):
        out = 0.5 * (1 + np.tanh(0.5 * a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        return g * out * (1 - out)


class Relu(Function):
    # d relu(a)/da = 1 where a > 0, else 0 (0 at a == 0)
    @staticmethod
    def forward(ctx, a):
        out = np.maximum(a, 0)
        ctx.save_for_backward(out > 0)
        return out

    @staticmethod
    def backward(ctx, g):
        mask, = ctx.saved
        return g * mask


class Abs(Function):
    # d|a|/da = sign(a) (0 at a == 0)
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(np.sign(a))
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        sign, = ctx.saved
        return g * sign


class Clip(Function):
    # d clip(a, lo, hi)/da = 1 where lo <= a <= hi, else 0
    @staticmethod
    def forward(ctx, a, lo, hi):
        inside = np.ones(a.shape, dtype=bool)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        ctx.save_for_backward(inside)
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx, g):
        inside, = ctx.saved
        return g * inside, None, None


class _Extremum(Function):
    # the gradient goes to the input that was picked; on a tie it is split half and half
    pick = staticmethod(np.maximum)
    wins = staticmethod(np.greater)           # a wins where wins(a, b)

    @classmethod
    def forward(cls, ctx, a, b):
        out = cls.pick(a, b)
        share_a = np.where(cls.wins(a, b), 1.0, np.where(a == b, 0.5, 0.0)).astype(out.dtype)
        ctx.save_for_backward(share_a)
        return out

    @staticmethod
    def backward(ctx, g):
        share_a, = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * share_a if need_a else None), (g * (1 - share_a) if need_b else None)


class Maximum(_Extremum):
    pick, wins = staticmethod(np.maximum), staticmethod(np.greater)


class Minimum(_Extremum):
    pick, wins = staticmethod(np.minimum), staticmethod(np.less)


class Where(Function):
    # out = a where cond else b:  d/da = cond,  d/db = not cond;  cond gets no gradient
    @staticmethod
    def forward(ctx, cond, a, b):
        cond = np.asarray(cond, dtype=bool)
        ctx.save_for_backward(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        cond, = ctx.saved
        need_a, need_b = ctx.needs_input_grad[1:]
        zero = np.zeros((), dtype=g.dtype)
        return (None,
                np.where(cond, g, zero) if need_a else None,
                np.where(cond, zero, g) if need_b else None)


# ----------------------------------------------------------------------------- reductions
def _keepdims_shape(shape, axis):
    """The shape of a reduction over `axis` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    axes = {ax % len(shape) for ax in axes}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    # d sum(a)/da_i = 1: the gradient is g, broadcast back over the summed axes
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis = a.shape, axis
        return a.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        g = g.reshape(_keepdims_shape(ctx.shape, ctx.axis))
        return np.broadcast_to(g, ctx.shape)


class Mean(Function):
    # d mean(a)/da_i = 1/n, n the number of elements averaged
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = a.mean(axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axis, ctx.n = a.shape, axis, a.size // max(out.size, 1)
        return out

    @staticmethod
    def backward(ctx, g):
        g = g.reshape(_keepdims_shape(ctx.shape, ctx.axis)) / ctx.n
        return np.broadcast_to(g, ctx.shape)


class Var(Function):
    # var = sum (a - mean)^2 / (n - ddof);  d var/da_i = 2 (a_i - mean) / (n - ddof)
    # (the mean's own dependence on a_i contributes sum(a - mean) = 0)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, ddof=0):
        mean = a.mean(axis=axis, keepdims=True)
        centered = a - mean
        n = a.size // mean.size                       # elements per variance
        out = (centered * centered).sum(axis=axis, keepdims=keepdims) / (n - ddof)
        ctx.save_for_backward(centered)
        ctx.axis, ctx.denom = axis, n - ddof
        return out

    @staticmethod
    def backward(ctx, g):
        centered, = ctx.saved
        g = g.reshape(_keepdims_shape(centered.shape, ctx.axis))
        return g * centered * (2 / ctx.denom)


class Max(Function):
    # the gradient goes to the maximum; when several elements tie for the maximum it is
    # split evenly among them (so the sum of the gradient is preserved, like np.amax's
    # subgradient average)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = a.max(axis=axis, keepdims=True)
        is_max = a == out
        share = is_max / is_max.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(share.astype(a.dtype))
        ctx.axis = axis
        return out if keepdims else out.reshape(np.max(a, axis=axis).shape)

    @staticmethod
    def backward(ctx, g):
        share, = ctx.saved
        return g.reshape(_keepdims_shape(share.shape, ctx.axis)) * share


# ----------------------------------------------------------------------------- shape
class Reshape(Function):
    # a reshape moves no value: the gradient is reshaped back
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Transpose(Function):
    # permuting axes by `axes`: the gradient is permuted back by the inverse permutation
    @staticmethod
    def forward(ctx, a, axes=None):
        axes = tuple(reversed(range(a.ndim))) if axes is None else axes
        ctx.inverse = tuple(np.argsort(axes))
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse), None


class BroadcastTo(Function):
    # broadcasting reuses each element: the engine's sum_to adds the uses back up
    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return g, None


def _is_basic_index(index) -> bool:
    """True for an index of ints, slices, None and Ellipsis only (no arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
               for i in items)


class GetItem(Function):
    # out = a[index]: the gradient is scattered back into a zero array of a's shape.
    # An integer-array index may name one element several times; np.add.at adds each
    # occurrence instead of keeping only the last (a plain `grad[index] = g` would).
    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=ctx.dtype)
        index = ctx.index
        items = index if isinstance(index, tuple) else (index,)
        if _is_basic_index(index) or (
                len(items) == 1 and np.asarray(items[0]).dtype == bool):
            grad[index] = g          # each element named at most once
        else:
            np.add.at(grad, index, g)
        return grad, None


class Concat(Function):
    # concatenation along `axis`: the gradient is cut back into the inputs' pieces
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.split(g, ctx.splits, axis=ctx.axis))


class Stack(Function):
    # stacking along a new `axis`: input i receives the slice i of the gradient
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        out = np.stack(arrays, axis=axis)
        ctx.axis = axis % out.ndim
        return out

    @staticmethod
    def backward(ctx, g):
        return tuple(np.moveaxis(g, ctx.axis, 0))
