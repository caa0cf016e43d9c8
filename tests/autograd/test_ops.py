"""Every row of the op table, on hypothesis-drawn shapes: gradcheck in float64, forward
equal to NumPy's, dtype kept in float32. And the table must cover every op we export."""
import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyllm
from numpyllm.autograd import Tensor, gradcheck, ops
from numpyllm.autograd.optable import OP_CASES, normalize_shapes, run_case

dims = st.integers(1, 4)


@st.composite
def shape(draw, min_ndim=0, max_ndim=3):
    return tuple(draw(st.lists(dims, min_size=min_ndim, max_size=max_ndim)))


@st.composite
def broadcast_pair(draw, min_ndim=0):
    """Two shapes that broadcast together: size-1 dims and a rank change included."""
    full = draw(shape(min_ndim=max(min_ndim, 0)))
    def variant():
        cut = draw(st.integers(0, len(full)))          # drop leading axes (rank change)
        return tuple(1 if draw(st.booleans()) and draw(st.booleans()) else n for n in full[cut:])
    a, b = variant(), variant()
    if len(a) < min_ndim:
        a = full
    return (a, b) if draw(st.booleans()) else (b, a)


@st.composite
def matmul_pair(draw):
    """[..., n, k] @ [..., k, m] with broadcast batch dims, and the 1-D cases."""
    n, k, m = draw(dims), draw(dims), draw(dims)
    kind = draw(st.sampled_from(["1d1d", "1d", "d1", "2d", "batched"]))
    if kind == "1d1d":
        return (k,), (k,)
    if kind == "1d":
        return (k,), draw(st.sampled_from([(k, m), (2, k, m)]))
    if kind == "d1":
        return draw(st.sampled_from([(n, k), (2, n, k)])), (k,)
    if kind == "2d":
        return (n, k), (k, m)
    batch = draw(shape(min_ndim=1, max_ndim=2))
    other = tuple(1 if draw(st.booleans()) else b for b in batch)[draw(st.integers(0, len(batch))):]
    a, b = batch + (n, k), other + (k, m)
    return (a, b) if draw(st.booleans()) else (b[:-2] + (n, k), a[:-2] + (k, m))


def shapes_for(case):
    if case.shapes == "binary":
        return broadcast_pair(min_ndim=case.min_ndim)
    if case.shapes == "matmul":
        return matmul_pair()
    if case.shapes == "nary":
        return shape(min_ndim=max(case.min_ndim, 1)).map(lambda s: (s, s, s))
    return shape(min_ndim=case.min_ndim).map(lambda s: (s,))


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: f"{c.name} ({c.variant})" if c.variant else c.name)
@given(data=st.data())
def test_op_gradient_and_forward(case, data):
    shapes = data.draw(shapes_for(case), label="shapes")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    fn, tensors, params, arrays = run_case(case, shapes, np.random.default_rng(seed))
    out = fn(*tensors)
    expected = case.ref(*arrays, **params)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert out.shape == np.shape(expected)
    gradcheck(fn, *tensors)


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: f"{c.name} ({c.variant})" if c.variant else c.name)
def test_op_keeps_float32(case):
    for example in case.examples:
        shapes = normalize_shapes(case, example)
        fn, tensors, _, arrays = run_case(case, shapes, np.random.default_rng(1))
        tensors = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
        out = fn(*tensors)
        if case.name == "astype":
            continue   # casts to float64 on purpose
        assert out.dtype == np.float32, case.name
        out.backward(np.ones(out.shape, dtype=np.float32))
        for t in tensors:
            assert t.grad is not None and t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_op_does_not_mutate_its_inputs():
    for case in OP_CASES:
        for example in case.examples:
            fn, tensors, _, arrays = run_case(case, normalize_shapes(case, example),
                                              np.random.default_rng(2))
            before = [a.copy() for a in arrays]
            out = fn(*tensors)
            out.backward(np.ones(out.shape))
            for a, b in zip(arrays, before):
                np.testing.assert_array_equal(a, b, err_msg=case.name)


# --------------------------------------------------------------------- coverage of the table
NOT_OPS = {"data", "grad", "requires_grad", "shape", "ndim", "dtype", "size", "numpy", "item",
           "detach", "backward", "zero_grad", "is_leaf", "to_dot", "requires_grad_"}
COMPARISONS = {"__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"}   # not differentiable


def _public_ops():
    names = set()
    for name, value in vars(Tensor).items():
        if name in NOT_OPS or name in COMPARISONS:
            continue
        dunder_op = name.startswith("__") and name.endswith("__") and callable(value) and name not in {
            "__init__", "__repr__", "__len__", "__hash__", "__bool__", "__getattribute__"}
        if not name.startswith("_") or dunder_op:
            names.add(name)
    for name in numpyllm.autograd.__all__:
        if name in {"concat", "stack", "split", "where"}:
            names.add(name)
    return names


def test_op_table_covers_every_exported_op():
    listed = {case.name for case in OP_CASES}
    missing = _public_ops() - listed
    assert not missing, f"ops with no row in the op table (autograd/optable.py): {sorted(missing)}"


def _node_types(tensor):
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if t is None or t._ctx is None:
            continue
        seen.add(type(t._ctx))
        stack.extend(p for p in t._ctx.parents if p is not None)
    return seen


def test_op_table_reaches_every_primitive():
    reached = set()
    for case in OP_CASES:
        for example in case.examples:
            fn, tensors, _, _ = run_case(case, normalize_shapes(case, example),
                                         np.random.default_rng(3))
            reached |= _node_types(fn(*tensors))
    primitives = {cls for _, cls in inspect.getmembers(ops, inspect.isclass)
                  if issubclass(cls, ops.Function) and not cls.__name__.startswith("_")
                  and cls.__module__ == ops.__name__}
    missing = {cls.__name__ for cls in primitives - reached}
    assert not missing, f"primitives that no op-table row exercises: {sorted(missing)}"
