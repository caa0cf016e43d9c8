"""`Tensor`: a NumPy array that remembers how it was made, so gradients can flow back.

A Tensor wraps ``data`` (an `np.ndarray`). When ``requires_grad`` is True, every
operation on it records a node of the graph (see engine.py), and ``backward()`` fills
``.grad`` (an `np.ndarray` of the same shape and dtype) on every leaf tensor that
requires grad.

The operators and methods here are one-line calls to the primitives in ops.py, which
is where each derivative is written.

>>> import numpyllm as nl
>>> x = nl.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> y = (x * x).sum()              # y = sum of squares
>>> y.backward()
>>> x.grad.tolist()                # dy/dx = 2x
[[2.0, 4.0], [6.0, 8.0]]
"""
from __future__ import annotations

import numpy as np

from . import engine, ops

__all__ = ["Tensor", "concat", "stack", "split", "where"]


def _data(x):
    return x.data if isinstance(x, Tensor) else x


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    `data` may be anything `np.asarray` accepts; `dtype` converts it. The array is not
    copied when it already has the requested dtype. Only floating-point tensors may
    require grad.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    # numpy defers to us: `array + tensor` calls Tensor.__radd__ instead of looping over
    # the tensor as an object array
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        data = np.asarray(_data(data), dtype=dtype)
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad; got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None

    # ------------------------------------------------------------------ array facts
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={type(self._ctx).__name__}" if self._ctx is not None else ""
        body = np.array2string(self.data, prefix="Tensor(", separator=", ")
        return f"Tensor({body}, dtype={self.dtype}{grad}{op})"

    def numpy(self) -> np.ndarray:
        """The data array (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; shape is {self.shape}")
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (no grad flows through it)."""
        return Tensor(self.data)

    def astype(self, dtype) -> "Tensor":
        """A copy in another floating dtype (the gradient is cast back)."""
        return _Cast.apply(self, np.dtype(dtype))

    # ------------------------------------------------------------------ gradients
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that
        requires grad. `grad` is required unless the tensor has one element. The
        graph's saved buffers are freed afterwards unless ``retain_graph=True``."""
        engine.backward(self, grad, retain_graph=retain_graph)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set whether this leaf gets a gradient (False freezes a Parameter: backward
        then skips the products that would compute it); returns self."""
        if self._ctx is not None:
            raise ValueError("requires_grad_ applies to leaf tensors (parameters, inputs); "
                             "this one is the result of an operation")
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        if not requires_grad:
            self.grad = None
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``.grad`` becomes None)."""
        self.grad = None

    def to_dot(self, **kwargs) -> str:
        """The graph that computed this tensor, as Graphviz DOT text (`autograd.dot.to_dot`)."""
        from .dot import to_dot
        return to_dot(self, **kwargs)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    __hash__ = object.__hash__   # == is elementwise, so hash by identity

    def __bool__(self) -> bool:
        return bool(self.data)   # numpy's rule: only for one element

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(self, other)

    def __radd__(self, other):
        return ops.Add.apply(other, self)

    def __sub__(self, other):
        return ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return ops.Sub.apply(other, self)

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return ops.Div.apply(other, self)

    def __pow__(self, other):
        return ops.Pow.apply(self, other)

    def __rpow__(self, other):
        return ops.Pow.apply(other, self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return ops.MatMul.apply(other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    # comparisons give boolean tensors that are not differentiable
    def __lt__(self, other):
        return Tensor(self.data < _data(other))

    def __le__(self, other):
        return Tensor(self.data <= _data(other))

    def __gt__(self, other):
        return Tensor(self.data > _data(other))

    def __ge__(self, other):
        return Tensor(self.data >= _data(other))

    def __eq__(self, other):
        return Tensor(self.data == _data(other))

    def __ne__(self, other):
        return Tensor(self.data != _data(other))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims: bool = False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims: bool = False, ddof: int = 0):
        """Variance (divides by n - ddof; ddof=0, the population variance, by default)."""
        return ops.Var.apply(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis=None, keepdims: bool = False):
        """Maximum. The gradient goes to the maximal element; ties share it evenly."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, tuple(shape))

    def transpose(self, *axes):
        """Permute axes (all reversed when none are given), like `np.transpose`."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ops.Transpose.apply(self, tuple(axes) if axes else None)

    def swapaxes(self, axis1: int, axis2: int):
        axes = list(range(self.ndim))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return ops.Transpose.apply(self, tuple(axes))

    @property
    def T(self):
        return ops.Transpose.apply(self, None)

    def broadcast_to(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.BroadcastTo.apply(self, tuple(shape))

    expand = broadcast_to

    def squeeze(self, axis=None):
        return ops.Reshape.apply(self, np.squeeze(self.data, axis=axis).shape)

    def unsqueeze(self, axis: int):
        return ops.Reshape.apply(self, np.expand_dims(self.data, axis).shape)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, list):
            index = np.asarray(index)
        return ops.GetItem.apply(self, index)

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    __abs__ = abs

    def clip(self, min=None, max=None):
        return ops.Clip.apply(self, min, max)

    def maximum(self, other):
        """Elementwise maximum; on a tie the gradient is split half and half."""
        return ops.Maximum.apply(self, other)

    def minimum(self, other):
        """Elementwise minimum; on a tie the gradient is split half and half."""
        return ops.Minimum.apply(self, other)

    def masked_fill(self, mask, value):
        """`value` where `mask` is True, this tensor elsewhere (mask broadcasts)."""
        return ops.Where.apply(_data(mask), value, self)


class _Cast(ops.Function):
    # a dtype change moves no value: the gradient is cast back by the engine
    @staticmethod
    def forward(ctx, a, dtype):
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None


# ---------------------------------------------------------------------- module functions
def concat(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (`np.concatenate`)."""
    return ops.Concat.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors along a new axis (`np.stack`)."""
    return ops.Stack.apply(*tensors, axis=axis)


def split(tensor: Tensor, indices_or_sections, axis: int = 0) -> list:
    """Split like `np.split`: a number of equal sections, or the indices to cut at."""
    n = tensor.shape[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of length {n} does not divide into "
                             f"{indices_or_sections} equal sections")
        step = n // indices_or_sections
        cuts = list(range(step, n, step))
    else:
        cuts = list(indices_or_sections)
    bounds = [0] + cuts + [n]
    prefix = (slice(None),) * (axis % tensor.ndim)
    return [tensor[prefix + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:])]


def where(cond, a, b) -> Tensor:
    """`a` where `cond` is True, else `b` (all three broadcast); no gradient to `cond`."""
    return ops.Where.apply(_data(cond), a, b)
