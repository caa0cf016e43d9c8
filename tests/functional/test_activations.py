"""softmax, log_softmax, gelu (tanh and exact), relu, erf: gradients, compositions,
stability, dtype."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.functional import gelu, log_softmax, relu, softmax
from numpyllm.functional.activations import erf

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)   # size-1 dims too
elementwise_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)  # and 0-d
seeds = st.integers(0, 2**16)


def leaf(rng, shape, dtype=np.float64, scale=1.0):
    return Tensor((rng.standard_normal(shape) * scale).astype(dtype), requires_grad=True)


def axis_for(data, shape):
    return data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")


def softmax_composed(x, axis=-1):
    e = (x - x.max(axis=axis, keepdims=True)).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_composed(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - z.exp().sum(axis=axis, keepdims=True).log()


def gelu_tanh_composed(x):
    return 0.5 * x * (1.0 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("fn", [softmax, log_softmax])
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_gradcheck(fn, shape, seed, data):
    axis = axis_for(data, shape)
    x = leaf(np.random.default_rng(seed), shape, scale=2.0)
    assert gradcheck(lambda t: fn(t, axis=axis), x)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@given(shape=elementwise_shapes, seed=seeds)
def test_gelu_gradcheck(approximate, shape, seed):
    x = leaf(np.random.default_rng(seed), shape, scale=2.0)
    assert gradcheck(lambda t: gelu(t, approximate=approximate), x)


def test_gelu_exact_gradcheck_across_erf_intervals():
    # Cody's erf switches formula at |x/sqrt2| = 0.46875 and 4: the derivative must be
    # right on both sides of each switch
    edges = np.array([0.46875, 4.0]) * math.sqrt(2)
    x = Tensor(np.concatenate([edges - 1e-3, edges + 1e-3, -edges, [0.0, 7.0, -7.0]]),
               requires_grad=True)
    assert gradcheck(lambda t: gelu(t, approximate="none"), x)


def test_relu_gradcheck_and_value():
    x = Tensor(np.array([-2.0, -0.5, 0.3, 1.5]), requires_grad=True)
    assert gradcheck(relu, x)
    np.testing.assert_array_equal(relu(x).data, [0.0, 0.0, 0.3, 1.5])


# ----------------------------------------------------------------------------- compositions
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_and_log_softmax_equal_their_compositions(shape, seed, data,
                                                         same_values_and_grads):
    axis = axis_for(data, shape)
    x = leaf(np.random.default_rng(seed), shape, scale=3.0)
    same_values_and_grads(lambda t: softmax(t, axis), lambda t: softmax_composed(t, axis), x)
    same_values_and_grads(lambda t: log_softmax(t, axis), lambda t: log_softmax_composed(t, axis),
                          x)


@given(shape=shapes, seed=seeds)
def test_gelu_tanh_equals_its_composition(shape, seed, same_values_and_grads):
    x = leaf(np.random.default_rng(seed), shape, scale=3.0)
    same_values_and_grads(gelu, gelu_tanh_composed, x)


def test_gelu_exact_matches_math_erf():
    xs = np.linspace(-8, 8, 1601)
    x = Tensor(xs, requires_grad=True)
    y = gelu(x, approximate="none")
    y.backward(np.ones_like(xs))
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in xs])
    pdf = np.exp(-xs ** 2 / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(y.data, xs * cdf, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(x.grad, cdf + xs * pdf, rtol=1e-14, atol=1e-15)
    # the tanh form is an approximation of this one, close everywhere
    assert np.abs(gelu(x).data - y.data).max() < 1e-3


# ----------------------------------------------------------------------------- erf
def test_erf_matches_math_erf_to_1e_15():
    xs = np.concatenate([
        np.linspace(-10, 10, 40001),
        np.geomspace(1e-300, 1, 2000), -np.geomspace(1e-300, 1, 2000),
        # the interval edges of Cody's approximation, and around them
        np.nextafter([0.46875, 0.46875, 4.0, 4.0], [0, 1, 0, 5]), [0.46875, 4.0],
        np.random.default_rng(0).standard_normal(20000) * 3,
        [26.0, 27.0, 30.0, 1e10, 1e300, 0.0, -0.0],
    ])
    expected = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(erf(xs), expected, rtol=1e-15, atol=1e-16)


def test_erf_special_values_and_dtypes():
    out = erf(np.array([np.inf, -np.inf, np.nan, -0.0]))
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2])
    assert math.copysign(1, out[3]) == -1            # erf(-0) = -0, as math.erf
    assert erf(np.array([1, 2])).dtype == np.float64
    x32 = np.linspace(-5, 5, 1001, dtype=np.float32)
    out32 = erf(x32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, [math.erf(v) for v in x32.astype(float)], atol=3e-7)


def test_erf_is_odd_and_monotonic():
    xs = np.linspace(0, 6, 6001)
    np.testing.assert_array_equal(erf(-xs), -erf(xs))
    assert np.all(np.diff(erf(xs)) >= 0)


# ----------------------------------------------------------------------------- properties
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_sums_to_one_and_log_softmax_is_its_log(shape, seed, data):
    axis = axis_for(data, shape)
    x = Tensor(np.random.default_rng(seed).standard_normal(shape) * 10)
    y = softmax(x, axis=axis).data
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)
    assert np.all(y >= 0)
    np.testing.assert_allclose(np.exp(log_softmax(x, axis=axis).data), y, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_logits_of_magnitude_1e4(dtype):
    x = Tensor(np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4]], dtype=dtype),
               requires_grad=True)
    y = softmax(x)
    np.testing.assert_allclose(y.data, [[0.5, 0, 0, 0.5], [0.25] * 4], atol=1e-7)
    y.backward(np.arange(8, dtype=dtype).reshape(2, 4))
    assert np.all(np.isfinite(x.grad))
    x.grad = None
    ls = log_softmax(x)
    assert np.all(np.isfinite(ls.data))
    np.testing.assert_allclose(ls.data[0, [0, 1]], [np.log(0.5), -2e4 - np.log(2)], rtol=1e-6)
    ls.backward(np.ones((2, 4), dtype=dtype))
    assert np.all(np.isfinite(x.grad))


def test_softmax_is_invariant_to_a_constant_shift():
    x = np.random.default_rng(3).standard_normal((4, 5))
    np.testing.assert_allclose(softmax(Tensor(x + 123.0)).data, softmax(Tensor(x)).data,
                               rtol=1e-12)


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        gelu(Tensor([1.0]), approximate="erf")


# ----------------------------------------------------------------------------- dtype, inputs
@pytest.mark.parametrize("fn", [softmax, log_softmax, gelu, relu,
                                lambda t: gelu(t, approximate="none"),
                                lambda t: softmax(t, axis=0)])
def test_activations_keep_float32(fn, float32_kept):
    float32_kept(fn, leaf(np.random.default_rng(0), (3, 5), dtype=np.float32))


@pytest.mark.parametrize("fn", [softmax, log_softmax, gelu, lambda t: gelu(t, approximate="none")])
def test_activations_do_not_mutate_the_input(fn):
    x = leaf(np.random.default_rng(1), (3, 4))
    before = x.data.copy()
    fn(x).backward(np.ones((3, 4)))
    np.testing.assert_array_equal(x.data, before)


def test_softmax_and_log_softmax_are_single_nodes():
    x = leaf(np.random.default_rng(2), (2, 3))
    for fn in (softmax, log_softmax, gelu):
        out = fn(x)
        assert out._ctx.parents == (x,)


@pytest.mark.parametrize("keep_bytes", [0, 1 << 30])
def test_gelu_tanh_recomputes_or_keeps_t_to_the_same_bits(monkeypatch, keep_bytes):
    """Backward recomputes tanh(u) for large inputs (memory) and keeps it for small ones
    (speed): both give the same bits, and both are gradient-checked."""
    import importlib
    acts = importlib.import_module("numpyllm.functional.activations")
    from numpyllm.autograd import gradcheck
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7)) * 2
    g = rng.standard_normal((3, 7))
    results = []
    for limit in (keep_bytes, (1 << 30) - keep_bytes):
        monkeypatch.setattr(acts, "_KEEP_T_BYTES", limit)
        t = Tensor(x.copy(), requires_grad=True)
        y = acts.gelu(t, approximate="tanh")
        y.backward(g)
        results.append((y.data, t.grad))
        assert gradcheck(lambda a: acts.gelu(a, approximate="tanh"),
                         Tensor(x.copy(), requires_grad=True))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
