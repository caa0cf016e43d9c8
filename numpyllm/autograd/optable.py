"""The op table: every differentiable operation of `Tensor`, with how to check it.

One row per public operation. A row says how to call it on Tensors (`fn`), what NumPy
computes for the same call (`ref`), which kind of input shapes it takes (`shapes`),
what values its inputs may hold (`domain`), how to pick its other arguments for given
shapes (`params`), and a few example shapes (`examples`).

Two users read this table:
- the test suite (tests/autograd/test_ops.py) draws shapes of each kind with hypothesis,
  gradient-checks every row in float64 and compares the forward value with `ref`; it also
  fails when Tensor gains an operation that has no row here;
- ``numpyllm gradcheck`` runs every row on its `examples` and prints a table.

Adding an op is three steps: write the Function in ops.py, add its method to Tensor,
add a row here. Then run the tests.

Shape kinds: "unary" (one shape), "binary" and "ternary" (shapes that broadcast
together, possibly of different ranks), "matmul" (two matmul-compatible shapes, 1-D
and batched included), "nary" (three equal shapes, for concat/stack).
Domains: "real" (standard normal), "positive" (in [0.5, 2]), "nonzero" (|x| >= 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .tensor import Tensor, concat, split, stack, where

__all__ = ["OpCase", "OP_CASES", "make_inputs", "run_case"]


def _no_params(rng, shapes):
    return {}


@dataclass(frozen=True)
class OpCase:
    name: str                               # the public name: a Tensor method or a function
    fn: Callable                            # fn(*tensors, **params) -> Tensor
    ref: Callable                           # ref(*arrays, **params) -> np.ndarray
    shapes: str = "unary"                   # the kind of input shapes (see the module doc)
    domain: tuple = ("real",)               # per input; the last entry repeats
    params: Callable = _no_params           # params(rng, shapes) -> dict of other arguments
    examples: tuple = ((3, 4),)             # shapes for `numpyllm gradcheck`; one tuple per
                                            # input (a bare shape for one input)
    smooth: bool = field(default=True)      # False: has kinks (finite differences are only
                                            # valid away from them; the domain keeps them)
    min_ndim: int = 0                       # the fewest dimensions its inputs may have
    variant: str = ""                       # tells apart rows of one op (other arguments)


# ------------------------------------------------------------------ parameter choosers
def _axis_params(rng, shapes):
    """A random reduction: over everything, one axis (maybe negative) or a tuple."""
    ndim = len(shapes[0])
    choice = rng.integers(3) if ndim else 0
    if choice == 0:
        axis = None
    elif choice == 1:
        axis = int(rng.integers(-ndim, ndim))
    else:
        k = int(rng.integers(1, ndim + 1))
        axis = tuple(int(a) for a in sorted(rng.choice(ndim, size=k, replace=False)))
    return {"axis": axis, "keepdims": bool(rng.integers(2))}


def _transpose_params(rng, shapes):
    return {"axes": tuple(int(a) for a in rng.permutation(len(shapes[0])))}


def _swapaxes_params(rng, shapes):
    ndim = len(shapes[0])
    return {"axis1": int(rng.integers(-ndim, ndim)), "axis2": int(rng.integers(ndim))}


def _reshape_params(rng, shapes):
    shape = shapes[0]
    size = int(np.prod(shape, dtype=np.int64))
    options = [(-1,), tuple(reversed(shape)), (1,) + tuple(shape), (size, 1)]
    return {"shape": options[int(rng.integers(len(options)))]}


def _broadcast_params(rng, shapes):
    """A target shape that `shapes[0]` broadcasts to: stretch size-1 dims, add leading ones."""
    shape = tuple(int(rng.integers(2, 4)) if n == 1 else n for n in shapes[0])
    return {"shape": tuple(int(n) for n in rng.integers(1, 4, size=int(rng.integers(3)))) + shape}


def _squeeze_params(rng, shapes):
    ones = [i for i, n in enumerate(shapes[0]) if n == 1]
    return {"axis": int(rng.choice(ones)) if ones and rng.integers(2) else None}


def _unsqueeze_params(rng, shapes):
    ndim = len(shapes[0])
    return {"axis": int(rng.integers(-ndim - 1, ndim + 1))}


def _index_params(rng, shapes):
    """A basic slice, an integer array with repeats, or a boolean mask."""
    shape = shapes[0]
    if not shape:
        return {"index": ()}
    kind = int(rng.integers(3))
    if kind == 0:   # basic: a slice with a step on axis 0, an int or ellipsis after it
        index = (slice(int(rng.integers(shape[0])), None, int(rng.integers(1, 3))),)
        if len(shape) > 1:
            index += (int(rng.integers(-shape[1], shape[1])),)
        return {"index": index}
    if kind == 1:   # integer array on axis 0 with repeated entries (backward must add them)
        idx = rng.integers(0, shape[0], size=int(rng.integers(1, 6)))
        return {"index": (idx,)}
    return {"index": rng.random(shape) > 0.4}      # boolean mask over the whole array


def _split_params(rng, shapes):
    shape = shapes[0]
    axis = int(rng.integers(len(shape))) if shape else 0
    n = shape[axis] if shape else 1
    cuts = sorted(int(c) for c in rng.integers(0, n + 1, size=int(rng.integers(1, 3))))
    return {"cuts": cuts, "axis": axis}


def _nary_axis(rng, shapes, extra=0):
    ndim = len(shapes[0]) + extra
    return {"axis": int(rng.integers(-ndim, ndim)) if ndim else 0}


def _where_params(rng, shapes):
    # the condition broadcasts against the output: pick the shape of one of the inputs
    return {"cond": rng.random(shapes[int(rng.integers(len(shapes)))]) > 0.5}


def _clip_params(rng, shapes):
    return {"min": -0.5, "max": 0.7}


def _clip_min_params(rng, shapes):
    return {"min": -0.5, "max": None}


def _clip_max_params(rng, shapes):
    return {"min": None, "max": 0.7}


# ------------------------------------------------------------------ the table
def _left_matrix(b):
    """A constant NumPy matrix [3, k] to multiply b [..., k, m] from the left."""
    k = b.shape[-2] if b.ndim > 1 else b.shape[0]
    return np.linspace(-1, 1, 3 * k, dtype=b.dtype).reshape(3, k)


def _split_sum(a, cuts, axis):
    # split's outputs are a list: weight each piece differently so the check sees them all
    return sum((piece * float(i + 1)).sum() for i, piece in enumerate(split(a, cuts, axis)))


def _np_split_sum(a, cuts, axis):
    return sum((piece * float(i + 1)).sum() for i, piece in enumerate(np.split(a, cuts, axis)))


OP_CASES: tuple = (
    # arithmetic, Tensor with Tensor (broadcasting) and with Python scalars (reflected forms)
    OpCase("__add__", lambda a, b: a + b, np.add, "binary", examples=(((3, 4), (4,)), ((2, 1, 3), (5, 1)))),
    OpCase("__radd__", lambda a: 1.5 + a, lambda a: 1.5 + a),
    OpCase("__sub__", lambda a, b: a - b, np.subtract, "binary", examples=(((3, 4), (3, 1)),)),
    OpCase("__rsub__", lambda a: 1.5 - a, lambda a: 1.5 - a),
    OpCase("__mul__", lambda a, b: a * b, np.multiply, "binary", examples=(((3, 4), (4,)),)),
    OpCase("__rmul__", lambda a: 2.5 * a, lambda a: 2.5 * a),
    OpCase("__truediv__", lambda a, b: a / b, np.divide, "binary", ("real", "nonzero"),
           examples=(((3, 4), (1, 4)),)),
    OpCase("__rtruediv__", lambda a: 2.0 / a, lambda a: 2.0 / a, domain=("nonzero",)),
    OpCase("__pow__", lambda a, b: a ** b, np.power, "binary", ("positive",),
           examples=(((3, 4), (4,)),)),
    OpCase("__rpow__", lambda a: 1.7 ** a, lambda a: 1.7 ** a),
    OpCase("__neg__", lambda a: -a, np.negative),
    OpCase("__matmul__", lambda a, b: a @ b, np.matmul, "matmul",
           examples=(((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)))),
    OpCase("__rmatmul__", lambda b: _left_matrix(b) @ b, lambda b: _left_matrix(b) @ b,
           min_ndim=1, examples=((4, 2),)),
    # elementwise functions
    OpCase("exp", lambda a: a.exp(), np.exp),
    OpCase("log", lambda a: a.log(), np.log, domain=("positive",)),
    OpCase("sqrt", lambda a: a.sqrt(), np.sqrt, domain=("positive",)),
    OpCase("tanh", lambda a: a.tanh(), np.tanh),
    OpCase("sigmoid", lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    OpCase("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0), domain=("nonzero",), smooth=False),
    OpCase("abs", lambda a: a.abs(), np.abs, domain=("nonzero",), smooth=False),
    OpCase("__abs__", lambda a: abs(a), np.abs, domain=("nonzero",), smooth=False),
    OpCase("clip", lambda a, min, max: a.clip(min, max), np.clip, params=_clip_params, smooth=False),
    OpCase("clip", lambda a, min, max: a.clip(min, max), np.clip, params=_clip_min_params,
           smooth=False, variant="min only"),
    OpCase("clip", lambda a, min, max: a.clip(min, max), np.clip, params=_clip_max_params,
           smooth=False, variant="max only"),
    OpCase("maximum", lambda a, b: a.maximum(b), np.maximum, "binary", smooth=False,
           examples=(((3, 4), (4,)),)),
    OpCase("minimum", lambda a, b: a.minimum(b), np.minimum, "binary", smooth=False,
           examples=(((3, 4), (3, 1)),)),
    OpCase("where", lambda a, b, cond: where(cond, a, b), lambda a, b, cond: np.where(cond, a, b),
           "binary", params=_where_params, examples=(((3, 4), (4,)),)),
    OpCase("masked_fill", lambda a, cond: a.masked_fill(cond, -2.0),
           lambda a, cond: np.where(cond, -2.0, a), params=_where_params),
    # float64 -> float64 here: a float32 round trip is below the finite-difference step
    # (the float32 cast's gradient dtype is tested in tests/autograd/test_engine.py)
    OpCase("astype", lambda a: a.astype(np.float64) * a, lambda a: a.astype(np.float64) * a),
    # reductions
    OpCase("sum", lambda a, **p: a.sum(**p), lambda a, **p: np.sum(a, **p), params=_axis_params,
           examples=((2, 3, 4),)),
    OpCase("mean", lambda a, **p: a.mean(**p), lambda a, **p: np.mean(a, **p), params=_axis_params,
           examples=((2, 3, 4),)),
    OpCase("var", lambda a, **p: a.var(**p), lambda a, **p: np.var(a, **p), params=_axis_params,
           examples=((2, 3, 4),)),
    OpCase("max", lambda a, **p: a.max(**p), lambda a, **p: np.max(a, **p), params=_axis_params,
           smooth=False, examples=((2, 3, 4),)),
    # shapes and indexing
    OpCase("reshape", lambda a, shape: a.reshape(shape), lambda a, shape: np.reshape(a, shape),
           params=_reshape_params, examples=((2, 3, 4),)),
    OpCase("transpose", lambda a, axes: a.transpose(*axes), lambda a, axes: np.transpose(a, axes),
           params=_transpose_params, examples=((2, 3, 4),)),
    OpCase("swapaxes", lambda a, axis1, axis2: a.swapaxes(axis1, axis2),
           lambda a, axis1, axis2: np.swapaxes(a, axis1, axis2),
           params=_swapaxes_params, min_ndim=1, examples=((2, 3, 4),)),
    OpCase("T", lambda a: a.T, np.transpose, examples=((2, 3, 4),)),
    OpCase("broadcast_to", lambda a, shape: a.broadcast_to(shape), np.broadcast_to,
           params=_broadcast_params, examples=((3, 1),)),
    OpCase("expand", lambda a, shape: a.expand(shape), np.broadcast_to,
           params=_broadcast_params, examples=((1, 4),)),
    OpCase("squeeze", lambda a, axis: a.squeeze(axis), lambda a, axis: np.squeeze(a, axis),
           params=_squeeze_params, examples=((3, 1, 4),)),
    OpCase("unsqueeze", lambda a, axis: a.unsqueeze(axis), lambda a, axis: np.expand_dims(a, axis),
           params=_unsqueeze_params, examples=((3, 4),)),
    OpCase("__getitem__", lambda a, index: a[index], lambda a, index: a[index],
           params=_index_params, examples=((5, 3),)),
    OpCase("concat", lambda *ts, axis: concat(ts, axis=axis),
           lambda *xs, axis: np.concatenate(xs, axis=axis), "nary",
           params=_nary_axis, min_ndim=1, examples=(((2, 3), (2, 3), (2, 3)),)),
    OpCase("stack", lambda *ts, axis: stack(ts, axis=axis), lambda *xs, axis: np.stack(xs, axis=axis),
           "nary", params=lambda rng, shapes: _nary_axis(rng, shapes, extra=1),
           examples=(((2, 3), (2, 3), (2, 3)),)),
    OpCase("split", _split_sum, _np_split_sum, params=_split_params, min_ndim=1, examples=((5, 3),)),
)


# ------------------------------------------------------------------ running a row
def _draw_values(rng, shape, domain):
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "nonzero":
        return rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return rng.standard_normal(shape)


def make_inputs(case: OpCase, shapes, rng: np.random.Generator, dtype=np.float64) -> list:
    """Random input arrays for `case`, one per shape, drawn from the case's domain."""
    arrays = []
    for i, shape in enumerate(shapes):
        domain = case.domain[min(i, len(case.domain) - 1)]
        arrays.append(np.asarray(_draw_values(rng, shape, domain), dtype=dtype))
    return arrays


def normalize_shapes(case: OpCase, example) -> tuple:
    """An example as a tuple of shapes, one per input."""
    return (example,) if all(isinstance(n, int) for n in example) else tuple(example)


def run_case(case: OpCase, shapes, rng: np.random.Generator):
    """(fn, tensors, params, arrays) for one example: fn(*tensors) is what gets checked."""
    arrays = make_inputs(case, shapes, rng)
    params = case.params(rng, shapes)
    tensors = [Tensor(a, requires_grad=True) for a in arrays]

    def fn(*ts):
        return case.fn(*ts, **params)
    return fn, tensors, params, arrays
