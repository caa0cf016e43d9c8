"""The engine's contract: order, accumulation, broadcasting, freeing, dtype, errors."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyllm as nl
from numpyllm.autograd import Function, Tensor, no_grad, sum_to


def leaf(*shape, dtype=np.float64, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


# ------------------------------------------------------------------ order and depth
def test_chain_of_10000_ops_has_no_recursion_limit():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 1.0001 ** 10_000))


def test_nodes_run_after_every_consumer():
    # y feeds both z1 and z2, and z2 also consumes z1: y's node must wait for both
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = x * 3
    z1 = y * y
    z2 = z1 + y
    z2.sum().backward()
    # d/dx (9x^2 + 3x) = 18x + 3
    np.testing.assert_allclose(x.grad, [39.0])


# ------------------------------------------------------------------ accumulation
def test_x_times_x_gives_2x():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_a_plus_a_gives_2():
    a = Tensor(np.array([1.0, 5.0]), requires_grad=True)
    (a + a).sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_diamond_sums_both_paths():
    x = Tensor(np.array([0.5]), requires_grad=True)
    left, right = x.exp(), x.tanh()
    (left * right).sum().backward()
    e, t = np.exp(0.5), np.tanh(0.5)
    np.testing.assert_allclose(x.grad, [e * t + e * (1 - t * t)])


def test_backward_twice_accumulates_and_zero_grad_resets():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_leaf_grad_is_writable_and_not_shared():
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()            # Add hands the same array to both inputs
    a.grad *= 10                        # in-place on one must not touch the other
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_intermediate_used_many_times():
    x = leaf(4)
    h = x.tanh()
    total = h + h + h * 2 + h.sum()     # four uses of one intermediate node
    total.sum().backward()
    expected = (1 + 1 + 2 + 4) * (1 - np.tanh(x.data) ** 2)
    np.testing.assert_allclose(x.grad, expected)


# ------------------------------------------------------------------ broadcasting
@given(st.lists(st.integers(1, 3), max_size=3), st.data())
def test_sum_to_undoes_broadcasting(shape, data):
    shape = tuple(shape)
    target = tuple(1 if data.draw(st.booleans()) else n for n in shape)
    target = target[data.draw(st.integers(0, len(target))):]
    g = np.random.default_rng(0).standard_normal(shape)
    expected = g
    while expected.ndim > len(target):
        expected = expected.sum(axis=0)
    for i, n in enumerate(target):
        if n == 1:
            expected = expected.sum(axis=i, keepdims=True)
    np.testing.assert_allclose(sum_to(g, target), expected)


def test_sum_to_refuses_incompatible_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        sum_to(np.ones((2, 3)), (4,))


def test_broadcast_gradient_has_input_shape():
    w = Tensor(np.ones((3, 1)), requires_grad=True)
    x = Tensor(np.ones((2, 3, 4)))
    (x * w).sum().backward()
    assert w.grad.shape == (3, 1)
    np.testing.assert_array_equal(w.grad, np.full((3, 1), 8.0))


# ------------------------------------------------------------------ freeing
def test_second_backward_raises_unless_retain_graph():
    x = leaf(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()

    x2 = leaf(3)
    y2 = (x2 * x2).sum()
    y2.backward(retain_graph=True)
    y2.backward()
    np.testing.assert_allclose(x2.grad, 4 * x2.data)


def test_saved_buffers_released_after_backward():
    x = leaf(5)
    h = x.exp()
    node = h._ctx
    y = h.sum()
    assert node.saved
    y.backward()
    assert node.saved == () and node.parents is None and node.freed


def test_graph_is_freed_without_the_cycle_collector():
    gc.disable()
    try:
        x = leaf(100)
        h = (x * 2).tanh()
        saved = weakref.ref(h._ctx)
        y = (h * h).sum()
        del h
        assert saved() is not None   # y's graph keeps it alive
        del y
        assert saved() is None       # refcounting alone freed it: no reference cycles
        z = (x.exp() * x).sum()
        node = weakref.ref(z._ctx)
        z.backward()
        del z
        assert node() is None
    finally:
        gc.enable()


# ------------------------------------------------------------------ dtype
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_through_a_network(dtype):
    x = leaf(4, 3, dtype=dtype)
    w = leaf(3, 5, dtype=dtype, seed=1)
    b = leaf(5, dtype=dtype, seed=2)
    y = ((x @ w + b).tanh() * 0.5 + 1.0).log().mean()
    assert y.dtype == dtype
    y.backward()
    for t in (x, w, b):
        assert t.grad.dtype == dtype


def test_cast_gradient_comes_back_in_the_input_dtype():
    x = leaf(3, dtype=np.float32)
    y = x.astype(np.float64) * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, np.full(3, 2.0, dtype=np.float32))


def test_mixed_precision_gradient_is_cast_to_each_input():
    a, b = leaf(3, dtype=np.float32), leaf(3, dtype=np.float64)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_integer_tensors_never_require_grad():
    with pytest.raises(TypeError, match="floating"):
        Tensor(np.arange(3), requires_grad=True)
    i = Tensor(np.arange(3))
    assert not (i * 2).requires_grad


def test_comparisons_are_not_differentiable():
    x = leaf(3)
    for c in (x < 0, x <= 0, x > 0, x >= 0, x == 0, x != 0):
        assert c.dtype == bool and not c.requires_grad


# ------------------------------------------------------------------ errors
def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add.*\(2, 3\).*\(4,\)"):
        leaf(2, 3) + leaf(4)


def test_matmul_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"MatMul.*\(2, 3\).*\(4, 5\)"):
        leaf(2, 3) @ leaf(4, 5)


def test_backward_of_non_scalar_needs_grad():
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*grad"):
        (leaf(2, 3) * 2).backward()


def test_backward_grad_shape_checked():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        (leaf(2, 3) * 2).backward(np.ones(3))


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()


def test_function_returning_wrong_shape_is_named():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return np.ones(7)

    with pytest.raises(RuntimeError, match=r"Bad.*\(7,\).*\(3,\)"):
        Bad.apply(leaf(3)).sum().backward()


# ------------------------------------------------------------------ no_grad
def test_no_grad_records_nothing_and_restores_on_error():
    x = leaf(3)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert nl.is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_nests_and_decorates():
    @no_grad()
    def f(t):
        return t * 2

    x = leaf(2)
    assert not f(x).requires_grad
    with no_grad():
        with nl.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert nl.is_grad_enabled()


# ------------------------------------------------------------------ misc API
def test_tensor_api_basics():
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    assert x.shape == (1, 2) and x.ndim == 2 and x.dtype == np.float64 and x.size == 2
    assert Tensor(3.5).item() == 3.5
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    assert x.numpy() is x.data
    assert "requires_grad=True" in repr(x)
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_numpy_array_on_the_left_defers_to_tensor():
    x = leaf(3)
    y = np.ones(3) + x
    assert isinstance(y, Tensor) and y.requires_grad
    z = np.full(3, 2.0) * x
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 2.0))


def test_repeated_integer_index_accumulates():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 0.0, 1.0])


def test_max_splits_ties_evenly():
    x = Tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5, 0.0])


def test_split_pieces():
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    a, b = nl.split(x, 2, axis=1)
    assert a.shape == (3, 1) and b.shape == (3, 1)
    (a * 2 + b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, np.tile([2.0, 3.0], (3, 1)))
    with pytest.raises(ValueError, match="equal sections"):
        nl.split(x, 4, axis=0)
