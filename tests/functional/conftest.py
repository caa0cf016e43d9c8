"""Fixtures shared by the tests of the fused functions (softmax, cross_entropy, ...).

Session-scoped, so they can be used inside hypothesis tests.
"""
import numpy as np
import pytest


def _grads_of(fn, inputs, cotangent):
    """Run fn(*inputs), backward with `cotangent`; return (value, [grad of each input])."""
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward(cotangent)
    return out.data.copy(), [None if t.grad is None else t.grad.copy() for t in inputs]


def _assert_same_values_and_grads(fused, composed, *inputs, rtol=1e-10, atol=1e-12, seed=0):
    """`fused` and `composed` give the same value and the same gradient for every input
    that requires grad, under one random cotangent."""
    shape = fused(*inputs).shape
    v = np.random.default_rng(seed).standard_normal(shape).astype(inputs[0].dtype)
    val_f, grads_f = _grads_of(fused, inputs, v)
    val_c, grads_c = _grads_of(composed, inputs, v)
    np.testing.assert_allclose(val_f, val_c, rtol=rtol, atol=atol)
    for i, (gf, gc) in enumerate(zip(grads_f, grads_c)):
        np.testing.assert_allclose(gf, gc, rtol=rtol, atol=atol, err_msg=f"input {i}")


def _assert_float32_kept(fn, *inputs):
    """float32 inputs give a float32 output and float32 gradients of their shapes."""
    out = fn(*inputs)
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, dtype=np.float32))
    for t in inputs:
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


@pytest.fixture(scope="session")
def same_values_and_grads():
    return _assert_same_values_and_grads


@pytest.fixture(scope="session")
def float32_kept():
    return _assert_float32_kept
