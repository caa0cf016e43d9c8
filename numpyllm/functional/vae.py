"""The two pieces of a variational autoencoder that are math rather than layers: the KL
divergence of a diagonal Gaussian posterior from the standard normal prior, in closed
form, and the reparameterised sample. Each is one node with its backward beside it.

**The KL in closed form.** For q = N(mu, diag(sigma²)) with logvar = log sigma², and the
prior p = N(0, I), per example b and latent dimension j:

    KL_bj = ½ (mu_bj² + exp(logvar_bj) - 1 - logvar_bj)           >= 0, = 0 iff q = p

    d KL_bj / d mu_bj     = mu_bj
    d KL_bj / d logvar_bj = ½ (exp(logvar_bj) - 1)

(Kingma and Welling 2014, appendix B.) The loss is the sum over the Z dimensions, averaged
over the batch: ``KL = (1/B) Σ_b Σ_j KL_bj`` (``reduction="mean"``), or per example
``[B]`` (``"none"``).

**Free bits** (Kingma et al. 2016, "Improved variational inference with inverse
autoregressive flow", eq. 15): each dimension's KL, averaged over the batch, is
counted as at least λ:

    KL_free = Σ_j max(λ, (1/B) Σ_b KL_bj)

A dimension whose mean KL is below λ adds the constant λ and gets no gradient, so the
optimiser has no reason to push it to zero: the encoder may use λ nats of each dimension
for free. Above λ the gradient is the plain KL's. (At exactly λ we take the gradient of
the constant, 0.) The clamp is on the batch mean, so under data parallelism it is on each
thread's slice of the batch.

**The reparameterisation trick** (Kingma and Welling 2014, §2.4): a sample of q written
as a deterministic function of (mu, logvar) and noise eps ~ N(0, I) drawn beforehand,

    z = mu + exp(logvar / 2) ⊙ eps
    d z / d mu = 1        d z / d logvar = ½ exp(logvar / 2) ⊙ eps = ½ (z - mu)

so the gradient of E_q[f(z)] is E_eps[∂f/∂z ∂z/∂(mu, logvar)], estimated by the sample.
`eps` is an argument, not drawn here: the caller's generator draws it (and a gradient
check holds it fixed).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["gaussian_kl", "reparameterize", "kl_per_dimension"]

_REDUCTIONS = ("mean", "none")


def kl_per_dimension(mu, logvar) -> np.ndarray:
    """``KL_bj = ½ (mu² + exp(logvar) - 1 - logvar)``, an array ``[B, Z]`` (no graph):
    what posterior-collapse diagnostics read."""
    mu = np.asarray(mu.data if isinstance(mu, Tensor) else mu)
    logvar = np.asarray(logvar.data if isinstance(logvar, Tensor) else logvar)
    return 0.5 * (mu * mu + np.exp(logvar) - 1.0 - logvar)


class GaussianKL(Function):
    # KL_bj = ½ (mu² + e^logvar - 1 - logvar);   mean:  Σ_j max(λ, (1/B) Σ_b KL_bj)
    # d/d mu_bj     = [j counts] mu_bj / B              (none: g_b mu_bj)
    # d/d logvar_bj = [j counts] ½ (e^logvar_bj - 1) / B
    # where "j counts" is mean_b KL_bj > λ (always true at λ = 0 unless KL_j = 0 exactly,
    # where the gradient mu = 0, e^0 - 1 = 0 is zero anyway).
    @staticmethod
    def forward(ctx, mu, logvar, free_bits, reduction):
        var = np.exp(logvar)                                 # [B, Z]
        kl = 0.5 * (mu * mu + var - 1.0 - logvar)            # [B, Z]
        ctx.save_for_backward(mu, var)
        ctx.reduction = reduction
        if reduction == "none":
            return kl.sum(axis=1)                            # [B]
        per_dim = kl.mean(axis=0)                            # [Z]
        ctx.counts = per_dim > free_bits if free_bits > 0 else np.ones_like(per_dim, bool)
        return np.asarray(np.maximum(per_dim, free_bits).sum(), dtype=mu.dtype)

    @staticmethod
    def backward(ctx, g):
        mu, var = ctx.saved
        if ctx.reduction == "none":
            w = np.asarray(g)[:, None]                       # [B, 1]
        else:
            w = (g / mu.shape[0]) * ctx.counts[None, :]      # [1, Z]
        return w * mu, w * 0.5 * (var - 1.0), None, None


def gaussian_kl(mu, logvar, *, free_bits: float = 0.0, reduction: str = "mean") -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form (see the module doc).

    - `mu`, `logvar` ``[B, Z]`` Tensors (or arrays);
    - ``reduction="mean"``: ``Σ_j max(free_bits, mean_b KL_bj)``, a scalar (with
      ``free_bits=0``: the per-example KL, summed over Z, averaged over the batch);
    - ``reduction="none"``: the per-example KL ``[B]`` (summed over Z; no free bits).

    >>> mu = Tensor([[0.0, 1.0]], requires_grad=True)
    >>> kl = gaussian_kl(mu, Tensor([[0.0, 0.0]]))
    >>> kl.item()                    # ½ (0 + 1 - 1 - 0) + ½ (1 + 1 - 1 - 0)
    0.5
    >>> kl.backward(); mu.grad.tolist()
    [[0.0, 1.0]]
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"gaussian_kl: reduction must be one of {_REDUCTIONS}, got "
                         f"{reduction!r}")
    if isinstance(free_bits, bool) or not isinstance(free_bits, (int, float)) \
            or not np.isfinite(free_bits) or free_bits < 0:
        raise ValueError(f"gaussian_kl: free_bits must be a finite number >= 0 (nats per "
                         f"dimension), got {free_bits!r}")
    if free_bits and reduction == "none":
        raise ValueError("gaussian_kl: free bits clamp the batch mean of each dimension; "
                         "they need reduction='mean'")
    mu = mu if isinstance(mu, Tensor) else Tensor(mu)
    logvar = logvar if isinstance(logvar, Tensor) else Tensor(logvar)
    if mu.ndim != 2 or logvar.shape != mu.shape or mu.shape[0] == 0:
        raise ValueError(f"gaussian_kl: mu and logvar must share one shape [B, Z] with B >= 1, "
                         f"got {mu.shape} and {logvar.shape}")
    return GaussianKL.apply(mu, logvar, float(free_bits), reduction)


class Reparameterize(Function):
    # z = mu + exp(logvar/2) eps;  dz/dmu = 1;  dz/dlogvar = ½ exp(logvar/2) eps = ½ (z - mu)
    @staticmethod
    def forward(ctx, mu, logvar, eps):
        noise = np.exp(0.5 * logvar) * eps                   # [B, Z]: sigma ⊙ eps
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(noise)
        return mu + noise

    @staticmethod
    def backward(ctx, g):
        gl = None
        if ctx.needs_input_grad[1]:
            noise, = ctx.saved
            gl = 0.5 * g * noise
        return g, gl, None


def reparameterize(mu, logvar, eps) -> Tensor:
    """``z = mu + exp(logvar / 2) * eps``: a sample of N(mu, diag(exp(logvar))) that is
    differentiable in mu and logvar. `eps` ``[B, Z]`` is the standard-normal noise, an
    array drawn by the caller (``rng.standard_normal(mu.shape)``); zeros give the mean.

    >>> z = reparameterize(Tensor([[1.0]]), Tensor([[np.log(4.0)]]), np.array([[0.5]]))
    >>> z.item()                      # 1 + 2 · 0.5
    2.0
    """
    mu = mu if isinstance(mu, Tensor) else Tensor(mu)
    logvar = logvar if isinstance(logvar, Tensor) else Tensor(logvar)
    eps = np.asarray(eps.data if isinstance(eps, Tensor) else eps)
    if logvar.shape != mu.shape or eps.shape != mu.shape:
        raise ValueError(f"reparameterize: mu {mu.shape}, logvar {logvar.shape} and eps "
                         f"{eps.shape} must have one shape")
    if not np.issubdtype(eps.dtype, np.floating):
        raise TypeError(f"reparameterize: eps must be floats, got {eps.dtype}")
    return Reparameterize.apply(mu, logvar, eps.astype(mu.dtype, copy=False))
