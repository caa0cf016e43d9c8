"""dropout: gradients, the mean kept in expectation, identity in eval mode and at p=0,
explicit rng, errors, dtype."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.functional import dropout


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
       p=st.sampled_from([0.1, 0.5, 0.9]), seed=st.integers(0, 2**16))
def test_dropout_gradcheck(shape, p, seed):
    x = Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    # a fresh generator with a fixed seed inside fn: every evaluation draws the same mask
    assert gradcheck(lambda t: dropout(t, p, rng=np.random.default_rng(seed)), x)


def test_gradient_is_the_scaled_mask():
    x = Tensor(np.ones((50, 40)), requires_grad=True)
    y = dropout(x, 0.25, rng=np.random.default_rng(0))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)                 # y = x * m, x = 1
    assert set(np.unique(y.data)) == {0.0, 1 / 0.75}


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_mean_in_expectation(p):
    x = np.random.default_rng(1).uniform(1, 2, size=200_000)
    y = dropout(Tensor(x), p, rng=np.random.default_rng(2)).data
    # mean of y = mean of x up to sampling noise: sd of the estimate < 0.01 here
    assert abs(y.mean() - x.mean()) < 0.03
    assert abs((y == 0).mean() - p) < 0.01                       # drop rate ~ p


def test_identity_in_eval_mode_and_at_p_zero():
    x = Tensor(np.ones(5), requires_grad=True)
    assert dropout(x, 0.5, training=False) is x                   # no rng needed either
    assert dropout(x, 0.0, rng=np.random.default_rng(0)) is x
    assert dropout(x, 0.0) is x


def test_the_same_seed_gives_the_same_mask_and_rng_advances():
    x = Tensor(np.ones(1000))
    a = dropout(x, 0.5, rng=np.random.default_rng(7)).data
    b = dropout(x, 0.5, rng=np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    first, second = dropout(x, 0.5, rng=rng).data, dropout(x, 0.5, rng=rng).data
    assert not np.array_equal(first, second)


def test_dropout_uses_no_global_rng():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    dropout(Tensor(np.ones(10)), 0.5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_dropout_does_not_mutate_its_input():
    x = Tensor(np.arange(1.0, 11.0), requires_grad=True)
    before = x.data.copy()
    dropout(x, 0.5, rng=np.random.default_rng(0)).backward(np.ones(10))
    np.testing.assert_array_equal(x.data, before)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_p_outside_0_1_is_an_error(p):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        dropout(Tensor(np.ones(3)), p, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        dropout(Tensor(np.ones(3)), p, training=False)


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_training_with_p_needs_a_generator(rng):
    with pytest.raises(TypeError, match="rng=np.random.Generator"):
        dropout(Tensor(np.ones(3)), 0.5, rng=rng)


# ----------------------------------------------------------------------------- dtype
def test_dropout_keeps_float32(float32_kept):
    x = Tensor(np.ones((4, 5), np.float32), requires_grad=True)
    y = dropout(x, 0.3, rng=np.random.default_rng(0))
    assert set(np.unique(y.data)) <= {np.float32(0), np.float32(1 / 0.7)}
    float32_kept(lambda t: dropout(t, 0.3, rng=np.random.default_rng(0)), x)
