"""The VAE's two functions against PyTorch: `gaussian_kl` against
``torch.distributions.kl_divergence(Normal(mu, σ), Normal(0, 1))`` (summed over the latent
dimensions, averaged over the batch; with free bits, clamped per dimension after the batch
mean), and `reparameterize` against ``mu + exp(logvar / 2) * eps`` through torch's autograd:
values and gradients to 1e-10 in float64."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.functional import gaussian_kl, reparameterize

torch = pytest.importorskip("torch")
Normal = torch.distributions.Normal


def _pair(rng, shape):
    mu, logvar = rng.normal(0, 1.5, shape), rng.normal(0, 1, shape)
    return (mu, logvar, torch.tensor(mu, requires_grad=True),
            torch.tensor(logvar, requires_grad=True))


@pytest.mark.parametrize("free_bits, reduction", [(0.0, "mean"), (0.0, "none"), (0.8, "mean")])
def test_gaussian_kl_matches_torch_distributions(free_bits, reduction):
    rng = np.random.default_rng(0)
    mu, logvar, tm, tv = _pair(rng, (5, 7))
    kl = torch.distributions.kl_divergence(Normal(tm, torch.exp(tv / 2)),
                                           Normal(torch.zeros_like(tm), torch.ones_like(tm)))
    if reduction == "none":
        expected = kl.sum(-1)
    else:
        expected = torch.clamp(kl.mean(0), min=free_bits).sum()
    cotangent = rng.standard_normal(expected.shape)
    expected.backward(torch.tensor(cotangent))
    m, v = Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)
    got = gaussian_kl(m, v, free_bits=free_bits, reduction=reduction)
    got.backward(cotangent)
    np.testing.assert_allclose(got.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.grad, tm.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v.grad, tv.grad.numpy(), rtol=1e-10, atol=1e-12)
    if free_bits:
        assert (kl.mean(0) < free_bits).any() and (kl.mean(0) > free_bits).any()


def test_reparameterize_matches_torch_autograd():
    rng = np.random.default_rng(1)
    mu, logvar, tm, tv = _pair(rng, (4, 6))
    eps = rng.standard_normal((4, 6))
    expected = tm + torch.exp(tv / 2) * torch.tensor(eps)
    cotangent = rng.standard_normal((4, 6))
    expected.backward(torch.tensor(cotangent))
    m, v = Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)
    got = reparameterize(m, v, eps)
    got.backward(cotangent)
    np.testing.assert_allclose(got.data, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.grad, tm.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(v.grad, tv.grad.numpy(), rtol=1e-10, atol=1e-12)
