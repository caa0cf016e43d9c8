"""layer_norm: gradients, its composition from primitives, normalisation properties,
errors, dtype."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.functional import layer_norm

AFFINE = ["none", "weight", "bias", "both"]


@st.composite
def problems(draw):
    """(x [..., C], weight [C] or None, bias [C] or None), float64 leaves."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    affine = draw(st.sampled_from(AFFINE))
    x = Tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    C = shape[-1]
    w = Tensor(rng.standard_normal(C), requires_grad=True) if affine in ("weight", "both") else None
    b = Tensor(rng.standard_normal(C), requires_grad=True) if affine in ("bias", "both") else None
    return x, w, b


def layer_norm_composed(x, w=None, b=None, eps=1e-5):
    out = (x - x.mean(axis=-1, keepdims=True)) / (x.var(axis=-1, keepdims=True) + eps).sqrt()
    if w is not None:
        out = out * w
    return out if b is None else out + b


def with_params(fn, w, b):
    """fn(x, w, b) as a function of the tensors among (x, w, b) only, for gradcheck."""
    def call(x, *params):
        it = iter(params)
        return fn(x, next(it) if w is not None else None, next(it) if b is not None else None)
    return call


@given(problem=problems())
def test_layer_norm_gradcheck(problem):
    x, w, b = problem
    params = [t for t in (w, b) if t is not None]
    assert gradcheck(with_params(layer_norm, w, b), x, *params)


@given(problem=problems(), eps=st.sampled_from([1e-5, 1e-1]))
def test_layer_norm_equals_its_composition(problem, eps, same_values_and_grads):
    x, w, b = problem
    params = [t for t in (w, b) if t is not None]
    same_values_and_grads(
        with_params(lambda *a: layer_norm(*a, eps=eps), w, b),
        with_params(lambda *a: layer_norm_composed(*a, eps=eps), w, b), x, *params)


# ----------------------------------------------------------------------------- properties
@given(shape=st.lists(st.integers(2, 6), min_size=1, max_size=3).map(tuple),
       seed=st.integers(0, 2**16))
def test_output_has_mean_0_and_variance_1(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 3 + 5
    y = layer_norm(Tensor(x), eps=0.0).data
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-12)
    # with the default eps the variance is var / (var + eps): a hair under 1
    y = layer_norm(Tensor(x)).data
    np.testing.assert_allclose(y.var(axis=-1), x.var(-1) / (x.var(-1) + 1e-5), rtol=1e-12)


def test_invariant_to_shifting_each_row_by_a_constant():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 8))
    shift = rng.standard_normal((3, 4, 1)) * 100
    w, b = Tensor(rng.standard_normal(8)), Tensor(rng.standard_normal(8))
    np.testing.assert_allclose(layer_norm(Tensor(x + shift), w, b).data,
                               layer_norm(Tensor(x), w, b).data, atol=1e-11)


def test_constant_rows_give_zeros_not_nan():
    x = Tensor(np.full((2, 5), 3.0), requires_grad=True)
    y = layer_norm(x)
    np.testing.assert_array_equal(y.data, 0)
    y.backward(np.ones((2, 5)))
    assert np.all(np.isfinite(x.grad))


def test_weight_and_bias_gradients_sum_over_every_leading_axis():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3, 4)))
    w, b = Tensor(np.ones(4), requires_grad=True), Tensor(np.zeros(4), requires_grad=True)
    g = rng.standard_normal((2, 3, 4))
    layer_norm(x, w, b).backward(g)
    xhat = layer_norm(x).data
    np.testing.assert_allclose(w.grad, (g * xhat).sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(b.grad, g.sum(axis=(0, 1)), rtol=1e-12)


def test_layer_norm_does_not_mutate_its_inputs():
    rng = np.random.default_rng(2)
    x, w, b = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 4), 4, 4))
    before = [t.data.copy() for t in (x, w, b)]
    for fn in (lambda: layer_norm(x, w, b), lambda: layer_norm(x)):
        out = fn()
        out.backward(np.ones((3, 4)))
        out.data[...] = 7.0           # the output shares no memory with what backward saved
    for t, data in zip((x, w, b), before):
        np.testing.assert_array_equal(t.data, data)


def test_backward_twice_with_retained_graph_doubles_the_gradient():
    x = Tensor(np.random.default_rng(3).standard_normal((2, 5)), requires_grad=True)
    y = layer_norm(x, Tensor(np.arange(5.0)))
    g = np.random.default_rng(4).standard_normal((2, 5))
    y.backward(g, retain_graph=True)
    first = x.grad.copy()
    y.backward(g)
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-14)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["weight", "bias"])
def test_weight_or_bias_of_the_wrong_shape_is_an_error(name):
    kwargs = {name: Tensor(np.ones(3))}
    with pytest.raises(ValueError, match=fr"{name} must have shape \(4,\).*\(3,\)"):
        layer_norm(Tensor(np.ones((2, 4))), **kwargs)


def test_scalar_input_is_an_error():
    with pytest.raises(ValueError, match="at least one axis"):
        layer_norm(Tensor(1.0))


# ----------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("affine", AFFINE)
def test_layer_norm_keeps_float32(affine, float32_kept):
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones(4, np.float32), requires_grad=True)
    b = Tensor(np.zeros(4, np.float32), requires_grad=True)
    w, b = (w if affine in ("weight", "both") else None), (b if affine in ("bias", "both") else None)
    params = [t for t in (w, b) if t is not None]
    float32_kept(with_params(layer_norm, w, b), x, *params)
