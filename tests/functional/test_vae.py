"""gaussian_kl and reparameterize: the closed-form KL against a Monte-Carlo estimate, its
gradient against the formula and finite differences, the free-bits floor, the
reparameterised sample's distribution and its gradient with the noise fixed, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from numpyllm import Tensor, gradcheck
from numpyllm.functional import gaussian_kl, kl_per_dimension, reparameterize


def _log_normal(z, mu, logvar):
    """log N(z; mu, exp(logvar)), elementwise."""
    return -0.5 * (np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar))


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated from 200,000 samples of z ~ q per
    example: the closed form lies within 4 standard errors of each estimate."""
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 1.5, size=(4, 3))
    logvar = rng.normal(0, 1.0, size=(4, 3))
    closed = gaussian_kl(Tensor(mu), Tensor(logvar), reduction="none").data      # [4]
    n = 200_000
    z = mu + np.exp(logvar / 2) * rng.standard_normal((n, 4, 3))                # [n, 4, 3]
    log_ratio = (_log_normal(z, mu, logvar) - _log_normal(z, 0.0, 0.0)).sum(axis=2)  # [n, 4]
    estimate = log_ratio.mean(axis=0)
    stderr = log_ratio.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(closed - estimate) < 4 * stderr), (closed, estimate, stderr)
    assert np.all(stderr < 0.05)        # the estimate is sharp enough to tell a wrong formula


def test_the_monte_carlo_check_can_fail():
    """A KL off by 2% (a wrong constant) is outside the Monte-Carlo interval."""
    rng = np.random.default_rng(1)
    mu, logvar = np.array([[1.0, -2.0]]), np.array([[0.5, -1.0]])
    closed = gaussian_kl(mu, logvar, reduction="none").data[0]
    z = mu + np.exp(logvar / 2) * rng.standard_normal((200_000, 1, 2))
    ratio = (_log_normal(z, mu, logvar) - _log_normal(z, 0.0, 0.0)).sum(axis=2)[:, 0]
    assert abs(1.02 * closed - ratio.mean()) > 4 * ratio.std() / np.sqrt(len(ratio))


finite = st.floats(-3, 3, allow_nan=False, width=64)


@settings(max_examples=25, deadline=None)
@given(mu=arrays(np.float64, (3, 4), elements=finite),
       logvar=arrays(np.float64, (3, 4), elements=finite))
def test_kl_is_the_formula_nonnegative_and_zero_only_at_the_prior(mu, logvar):
    m, v = Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)
    kl = gaussian_kl(m, v)
    expected = (0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar)).sum(axis=1).mean()
    np.testing.assert_allclose(kl.item(), expected, rtol=1e-12, atol=1e-12)
    assert kl.item() >= 0
    kl.backward()
    np.testing.assert_allclose(m.grad, mu / 3, rtol=1e-12, atol=1e-15)          # mu / B
    np.testing.assert_allclose(v.grad, 0.5 * (np.exp(logvar) - 1) / 3, rtol=1e-12, atol=1e-15)
    assert gaussian_kl(np.zeros((3, 4)), np.zeros((3, 4))).item() == 0.0


@settings(max_examples=25, deadline=None)
@given(mu=arrays(np.float64, (5, 6), elements=finite),
       logvar=arrays(np.float64, (5, 6), elements=finite),
       free_bits=st.floats(0.01, 2.0))
def test_free_bits_floor_each_dimension_and_stop_its_gradient(mu, logvar, free_bits):
    """Σ_j max(λ, mean_b KL_bj): never below the plain KL, never below Z λ; a dimension
    under the floor gets no gradient, one above it the plain KL's."""
    per_dim = kl_per_dimension(mu, logvar).mean(axis=0)                          # [6]
    m, v = Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)
    loss = gaussian_kl(m, v, free_bits=free_bits)
    np.testing.assert_allclose(loss.item(), np.maximum(per_dim, free_bits).sum(), rtol=1e-12)
    assert loss.item() >= gaussian_kl(mu, logvar).item() - 1e-12
    assert loss.item() >= 6 * free_bits - 1e-12
    loss.backward()
    held = per_dim <= free_bits
    assert np.all(m.grad[:, held] == 0) and np.all(v.grad[:, held] == 0)
    np.testing.assert_allclose(m.grad[:, ~held], mu[:, ~held] / 5, rtol=1e-12, atol=1e-15)


def test_free_bits_gradient_checks_on_both_sides_of_the_floor():
    rng = np.random.default_rng(2)
    mu = np.concatenate([0.05 * rng.standard_normal((4, 2)), 3 + rng.random((4, 2))], axis=1)
    logvar = np.concatenate([0.05 * rng.standard_normal((4, 2)), rng.standard_normal((4, 2))],
                            axis=1)
    assert gradcheck(lambda m, v: gaussian_kl(m, v, free_bits=0.3),
                     Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True))


def test_reparameterized_gradient_with_the_noise_fixed():
    rng = np.random.default_rng(3)
    eps = rng.standard_normal((3, 4))
    mu, logvar = (Tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(2))
    assert gradcheck(lambda m, v: reparameterize(m, v, eps), mu, logvar)
    z = reparameterize(mu, logvar, eps)
    z.backward(np.ones((3, 4)))
    np.testing.assert_array_equal(mu.grad, np.ones((3, 4)))                    # dz/dmu = 1
    np.testing.assert_allclose(logvar.grad, 0.5 * (z.data - mu.data), rtol=1e-12)


def test_reparameterized_samples_follow_the_posterior():
    """z = mu + sigma eps with eps ~ N(0, 1) has mean mu and variance exp(logvar)."""
    rng = np.random.default_rng(4)
    mu, logvar = np.array([[1.5, -0.5]]), np.array([[0.7, -1.2]])
    eps = rng.standard_normal((100_000, 2))
    z = reparameterize(np.repeat(mu, len(eps), 0), np.repeat(logvar, len(eps), 0), eps).data
    np.testing.assert_allclose(z.mean(axis=0), mu[0], atol=4 * np.exp(0.35) / np.sqrt(1e5))
    np.testing.assert_allclose(z.var(axis=0), np.exp(logvar[0]), rtol=0.02)
    assert np.array_equal(reparameterize(mu, logvar, np.zeros((1, 2))).data, mu)   # eps 0: mu


def test_float32_stays_float32():
    mu = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    lv = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    out = reparameterize(mu, lv, np.ones((2, 3))).sum() + gaussian_kl(mu, lv, free_bits=0.1)
    assert out.dtype == np.float32
    out.backward()
    assert mu.grad.dtype == np.float32 and lv.grad.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: gaussian_kl(np.zeros((2, 3)), np.zeros((2, 4))), "one shape"),
    (lambda: gaussian_kl(np.zeros(3), np.zeros(3)), "[B, Z]"),
    (lambda: gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)), free_bits=-1), "free_bits"),
    (lambda: gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)), free_bits=float("nan")),
     "free_bits"),
    (lambda: gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)), free_bits=0.5,
                         reduction="none"), "reduction='mean'"),
    (lambda: gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)), reduction="sum"), "reduction"),
    (lambda: reparameterize(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2))), "eps"),
])
def test_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_reparameterize_refuses_integer_noise():
    with pytest.raises(TypeError, match="eps must be floats"):
        reparameterize(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2), dtype=int))
