"""Using a trained sentence VAE (`numpyllm.nn.vae.SentenceVAE`): decode a latent into a
sentence, and what that gives — reconstruction from the posterior mean, samples from the
prior, interpolation between two sentences, denoising — and the figures that say whether
the latent is used (KL per dimension, active units).

    sentence --encode--> mu, logvar --z = mu (or a prior sample, or a mix of two)-->
        greedy_decode: BOS, then the argmax token until EOS or max_len (no KV cache:
        the sentences are short, and the latent enters every position's input)
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..nn.vae import ACTIVE_UNIT_THRESHOLD, SentenceVAE, batch_ids
from ..validation import as_generator, check_fraction

__all__ = ["greedy_decode", "posterior_means", "reconstruct", "sample_prior", "interpolate",
           "corrupt", "denoise", "token_accuracy", "posterior_stats"]


def _eval(model: SentenceVAE):
    """The model in eval mode (no dropout), and whether it was training."""
    was = model.training
    model.eval()
    return was


def greedy_decode(model: SentenceVAE, z, max_len: int | None = None, *,
                  temperature: float = 0.0, rng=None) -> list[list[int]]:
    """Sentences from latent vectors ``z [B, Z]``: the decoder run from BOS, the most
    likely token each step (or, at `temperature` > 0, a sample from `rng`), until EOS or
    `max_len` tokens (default the model's). Returns the ids, without BOS and EOS."""
    cfg = model.config
    max_len = cfg.max_len if max_len is None else min(int(max_len), cfg.max_len)
    z = np.asarray(z.data if isinstance(z, Tensor) else z, dtype=cfg.dtype)
    if z.ndim != 2 or z.shape[1] != cfg.latent:
        raise ValueError(f"greedy_decode: z must be [B, Z={cfg.latent}], got {z.shape}")
    if temperature < 0 or (temperature > 0 and rng is None):
        raise ValueError("greedy_decode: temperature must be >= 0, and > 0 needs an rng")
    B = z.shape[0]
    inputs = np.full((B, 1), cfg.bos_id, dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    out = [[] for _ in range(B)]
    was = _eval(model)
    try:
        with no_grad():
            # the whole prefix again each step: z enters through inputs_embeds, which the
            # KV cache's path does not take; sentences are short
            for _ in range(max_len + 1):
                logits = model.decode(z, inputs).data[:, -1]                  # [B, V]
                if temperature > 0:
                    p = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
                    p /= p.sum(axis=1, keepdims=True)
                    nxt = np.array([rng.choice(len(row), p=row) for row in p])
                else:
                    nxt = logits.argmax(axis=1)
                for b in np.flatnonzero(~done):
                    if nxt[b] == cfg.eos_id or len(out[b]) == max_len:
                        done[b] = True
                    else:
                        out[b].append(int(nxt[b]))
                if done.all():
                    break
                inputs = np.concatenate([inputs, nxt[:, None]], axis=1)
    finally:
        model.train(was)
    return out


def posterior_means(model: SentenceVAE, sequences, batch_size: int = 64) -> tuple:
    """``(mu, logvar)`` arrays ``[N, Z]`` of q(z | x) for each sentence."""
    mus, logvars = [], []
    was = _eval(model)
    try:
        with no_grad():
            for i in range(0, len(sequences), batch_size):
                ids, lengths = batch_ids(sequences[i:i + batch_size], model.config.pad_id)
                mu, logvar = model.encode(ids, lengths)
                mus.append(mu.data)
                logvars.append(logvar.data)
    finally:
        model.train(was)
    return np.concatenate(mus), np.concatenate(logvars)


def reconstruct(model: SentenceVAE, sequences) -> list[list[int]]:
    """Each sentence encoded (the posterior mean) and decoded greedily."""
    mu, _ = posterior_means(model, sequences)
    return greedy_decode(model, mu)


def sample_prior(model: SentenceVAE, n: int, rng, *, temperature: float = 0.0) -> list:
    """`n` sentences decoded from z ~ N(0, I) (greedily, or at `temperature`)."""
    rng = as_generator(rng)
    z = rng.standard_normal((n, model.config.latent))
    return greedy_decode(model, z, temperature=temperature, rng=rng)


def interpolate(model: SentenceVAE, a, b, steps: int = 5) -> list[list[int]]:
    """Sentences along the line from sentence `a`'s posterior mean to `b`'s:
    ``z_t = (1 - t) mu_a + t mu_b`` at `steps` evenly spaced t in [0, 1]."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"interpolate: steps must be an integer >= 2, got {steps!r}")
    mu, _ = posterior_means(model, [a, b])
    t = np.linspace(0.0, 1.0, steps)[:, None]                                 # [S, 1]
    return greedy_decode(model, (1 - t) * mu[0] + t * mu[1])


def corrupt(sequence, rng, *, drop: float = 0.0, swap: float = 0.0, mask: float = 0.0,
            mask_id: int | None = None) -> list[int]:
    """A noisy copy of one sentence: each token dropped with probability `drop`, each
    adjacent pair swapped with probability `swap`, each remaining token replaced by
    `mask_id` with probability `mask` (at least one token is kept)."""
    for name, p in (("drop", drop), ("swap", swap), ("mask", mask)):
        check_fraction("corrupt", name, p)
    if mask and mask_id is None:
        raise ValueError("corrupt: mask > 0 needs a mask_id")
    rng = as_generator(rng)
    seq = [int(t) for t in sequence]
    kept = [t for t in seq if rng.random() >= drop] or seq[:1]
    i = 0
    while i < len(kept) - 1:
        if rng.random() < swap:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
            i += 2
        else:
            i += 1
    return [mask_id if mask and rng.random() < mask else t for t in kept]


def denoise(model: SentenceVAE, noisy) -> list[list[int]]:
    """The corrupted sentences `noisy` encoded and decoded: the model's guess at the clean
    ones (a VAE trained with word dropout has learned to fill in unknown tokens)."""
    return reconstruct(model, noisy)


def token_accuracy(predicted, reference) -> float:
    """The share of reference tokens matched at their position, over all sentences:
    ``Σ_i #{t < len(ref_i): pred_i[t] = ref_i[t]} / Σ_i len(ref_i)``."""
    hits = total = 0
    for p, r in zip(predicted, reference):
        hits += sum(1 for a, b in zip(p, r) if a == b)
        total += len(r)
    return hits / max(total, 1)


def posterior_stats(model: SentenceVAE, sequences, batch_size: int = 64) -> dict:
    """Posterior collapse measured over `sequences`:

    - ``kl_per_dim`` ``[Z]``: E_x KL(q(z_j | x) || N(0, 1)), nats per dimension;
    - ``kl``: their sum, the mean KL per sentence;
    - ``activity`` ``[Z]``: Cov_x(E_q[z_j]) = Var_x(mu_j) (Burda et al. 2016, §5.2);
    - ``active_units``: how many dimensions have an activity above 0.01.

    A collapsed posterior (q(z | x) = p(z) for every x) has KL 0 and no active unit: the
    decoder ignores z.
    """
    if len(sequences) < 2:
        raise ValueError("posterior_stats: needs at least 2 sentences (a variance over x)")
    mu, logvar = posterior_means(model, sequences, batch_size)
    kl = F.kl_per_dimension(mu, logvar).mean(axis=0)                          # [Z]
    activity = mu.var(axis=0)                                                 # [Z]
    return {"kl_per_dim": kl, "kl": float(kl.sum()), "activity": activity,
            "active_units": int((activity > ACTIVE_UNIT_THRESHOLD).sum())}
