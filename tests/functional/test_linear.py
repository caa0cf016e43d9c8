"""The fused linear node: gradients, equality with its composition, dtype, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.autograd import Tensor, gradcheck
from numpyllm.functional import linear


@given(lead=st.lists(st.integers(1, 3), max_size=3), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 99))
def test_gradcheck_and_composition(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((*lead, n_in)), requires_grad=True)
    w = Tensor(rng.standard_normal((n_in, n_out)), requires_grad=True)
    b = Tensor(rng.standard_normal(n_out), requires_grad=True) if bias else None
    inputs = (x, w, b) if bias else (x, w)
    assert gradcheck(lambda *t: linear(*t), *inputs)

    fused = linear(*inputs)
    g = rng.standard_normal(fused.shape)
    fused.backward(g)
    grads = [t.grad.copy() for t in inputs]
    for t in inputs:
        t.grad = None
    composed = x @ w + b if bias else x @ w
    composed.backward(g)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-12, atol=1e-12)
    for got, t in zip(grads, inputs):
        np.testing.assert_allclose(got, t.grad, rtol=1e-12, atol=1e-12)


def test_keeps_float32():
    x = Tensor(np.ones((2, 3, 4), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 5), np.float32), requires_grad=True)
    b = Tensor(np.ones(5, np.float32), requires_grad=True)
    y = linear(x, w, b)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5))))
    with pytest.raises(ValueError, match=r"bias has shape \(4,\), expected \(5,\)"):
        linear(Tensor(np.ones((2, 4))), Tensor(np.ones((4, 5))), Tensor(np.ones(4)))
