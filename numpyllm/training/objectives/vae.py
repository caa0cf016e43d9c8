"""The ELBO objective of a sentence VAE (`numpyllm.nn.SentenceVAE`), with the three cures
for posterior collapse as options.

Per sentence x (n tokens, then EOS), with z = mu + sigma ⊙ eps drawn once:

    loss(x) = -log p(x | z) + beta_t · KL(q(z | x) || N(0, I))

-log p(x | z) is the decoder's cross-entropy **summed over the sentence's tokens** (EOS
included), and the loss is **averaged over the sentences** of the batch (each row counts
one, `Batch.counts`): nats per sentence, as Bowman et al. report. With beta_t = 1 and no
free bits it is the negative ELBO.

The cures (Bowman et al. 2016; Kingma et al. 2016):

- **KL annealing** (`kl_anneal` N steps, `anneal` "linear" or "logistic"): beta_t grows
  from 0 to `beta` over the first N optimizer steps, so the encoder is first free to
  put information in z before the KL term asks it to pay for it.
  linear: beta · min(1, t / N);  logistic: beta · sigmoid(10 (t / N - 1/2)).
- **Free bits** (`free_bits` λ nats per dimension): Σ_j max(λ, mean_b KL_bj) in place
  of the KL (`numpyllm.functional.gaussian_kl`).
- **Word dropout** (`word_dropout` p): each of the decoder's input tokens (not BOS) is
  replaced by UNK with probability p, so the decoder cannot lean on the previous word
  alone and must read z. The targets are never touched.

All randomness (the batch, eps, the word-dropout mask) is drawn from the Trainer's
generator in `sample`, so a resumed run draws exactly what the uninterrupted one would.

**What the evaluations report**: in eval mode (the Trainer's `estimate_loss`) the loss
is the plain negative ELBO (beta 1, no free bits, no word dropout), so runs with and
without the cures are compared on one scale; ``val_recon`` and ``val_kl`` are its two
terms per sentence. The annealed weight needs the step: `VAETrainer` tells the objective
(`numpyllm.training.vae`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...autograd import no_grad
from ...functional import cross_entropy, gaussian_kl
from ...validation import check_fraction
from .base import Batch, ExampleObjective

__all__ = ["ELBO", "Sentences", "ANNEALING"]

ANNEALING = ("linear", "logistic")


class Sentences:
    """A data set of sentences: ``sequences[i]`` a 1-D id array of 1 to `max_len` ids."""

    def __init__(self, sequences, max_len: int):
        self.sequences = []
        for i, s in enumerate(sequences):
            a = np.asarray(s)
            if a.ndim != 1 or not 1 <= a.size <= max_len or not np.issubdtype(a.dtype,
                                                                               np.integer):
                raise ValueError(f"sentence {i} must be 1 to {max_len} integer token ids, got "
                                 f"{a.dtype} of shape {a.shape}")
            self.sequences.append(a.astype(np.int64))
        if not self.sequences:
            raise ValueError("a data set of sentences needs at least one sentence")

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass
class ELBO(ExampleObjective):
    """The negative ELBO per sentence (see the module doc). The ids and the latent size
    are the model's (`check_model` compares them): the objective draws eps ``[B, Z]``
    and puts UNK in the decoder's inputs without the model at hand."""

    latent: int
    max_len: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    beta: float = 1.0
    kl_anneal: int = 0
    anneal: str = "linear"
    free_bits: float = 0.0
    word_dropout: float = 0.0

    name: ClassVar[str] = "vae"
    models: ClassVar[tuple] = ("SentenceVAE",)
    perplexity: ClassVar[bool] = False
    eval_scores: ClassVar[tuple] = ("recon", "kl")

    def __post_init__(self):
        super().__post_init__()
        if self.anneal not in ANNEALING:
            raise ValueError(f"ELBO.anneal must be one of {ANNEALING}, got {self.anneal!r}")
        for name in ("latent", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"ELBO.{name} must be >= 1, got {getattr(self, name)}")
        if self.kl_anneal < 0:
            raise ValueError(f"ELBO.kl_anneal must be >= 0 steps, got {self.kl_anneal}")
        if self.beta < 0 or self.free_bits < 0:
            raise ValueError(f"ELBO: beta and free_bits must be >= 0, got {self.beta} and "
                             f"{self.free_bits}")
        check_fraction("ELBO", "word_dropout", self.word_dropout)
        self.step = 0            # optimizer steps taken: set by VAETrainer (not a setting)

    def check_model(self, model) -> None:
        super().check_model(model)
        cfg = model.config
        for name in ("latent", "max_len", "pad_id", "bos_id", "eos_id", "unk_id"):
            if getattr(cfg, name) != getattr(self, name):
                raise ValueError(f"ELBO: the model's {name} is {getattr(cfg, name)}, the "
                                 f"objective's {getattr(self, name)}")

    @classmethod
    def for_model(cls, model, **settings) -> "ELBO":
        """The objective with the model's ids and sizes, and the given `settings`."""
        c = model.config
        return cls(c.latent, c.max_len, c.pad_id, c.bos_id, c.eos_id, c.unk_id, **settings)

    # ------------------------------------------------------------------ schedule
    def kl_weight(self, step: int | None = None) -> float:
        """beta_t at optimizer step t (default: the current one), 0-based."""
        t = self.step if step is None else step
        N = self.kl_anneal
        if N == 0:
            return float(self.beta)
        if self.anneal == "linear":
            return float(self.beta * min(1.0, t / N))
        return float(self.beta / (1.0 + math.exp(-10.0 * (t / N - 0.5))))

    # ------------------------------------------------------------------ data
    def dataset(self, data) -> Sentences:
        return data if isinstance(data, Sentences) else Sentences(data, self.max_len)

    def make_batch(self, data: Sentences, rows: np.ndarray, rng=None) -> Batch:
        seqs = [data.sequences[i] for i in rows]
        B, T = len(seqs), max(len(s) for s in seqs)
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        ids = np.full((B, T), self.pad_id, dtype=np.int64)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = s
        real = np.arange(T)[None, :] < lengths[:, None]                         # [B, T]
        inputs = np.full((B, T + 1), self.pad_id, dtype=np.int64)               # [BOS, x]
        inputs[:, 0] = self.bos_id
        inputs[:, 1:] = ids
        targets = np.full((B, T + 1), -100, dtype=np.int64)                     # [x, EOS]
        targets[:, :T] = np.where(real, ids, -100)
        targets[np.arange(B), lengths] = self.eos_id
        if rng is None:                           # in order, nothing random: z = mu
            eps = np.zeros((B, self.latent))
            dropped = np.zeros((B, T + 1), dtype=bool)
        else:
            eps = rng.standard_normal((B, self.latent))
            dropped = np.zeros((B, T + 1), dtype=bool)
            if self.word_dropout > 0:             # the words only: never BOS, never padding
                dropped[:, 1:] = (rng.random((B, T)) < self.word_dropout) & real
        return Batch({"ids": ids, "lengths": lengths, "inputs": inputs, "targets": targets,
                      "eps": eps, "dropped": dropped}, np.ones(B, dtype=np.int64),
                     int(lengths.sum()))

    def sample(self, dataset, batch_size, rng) -> Batch:
        return self.make_batch(dataset, rng.integers(0, len(dataset), size=batch_size), rng)

    def batches(self, dataset, batch_size, rng=None):
        for start in range(0, len(dataset), batch_size):
            yield self.make_batch(dataset, np.arange(start, min(start + batch_size,
                                                                len(dataset))), rng)

    # ------------------------------------------------------------------ loss
    def terms(self, model, batch: Batch) -> tuple:
        """``(recon, mu, logvar)``: the reconstruction cross-entropy per sentence
        (summed over tokens, averaged over the batch) and q's parameters. Word dropout
        applies in training mode only."""
        inputs = batch["inputs"]
        if model.training and batch["dropped"].any():
            inputs = np.where(batch["dropped"], self.unk_id, inputs)
        eps = batch["eps"].astype(model.config.dtype)
        logits, mu, logvar = model(batch["ids"], batch["lengths"], eps=eps, inputs=inputs)
        recon = cross_entropy(logits, batch["targets"], reduction="sum") / len(batch)
        return recon, mu, logvar

    def loss(self, model, batch):
        recon, mu, logvar = self.terms(model, batch)
        if not model.training:                    # the true negative ELBO: one scale
            return recon + gaussian_kl(mu, logvar)
        beta = self.kl_weight()
        if beta == 0:
            return recon
        return recon + beta * gaussian_kl(mu, logvar, free_bits=self.free_bits)

    def scores(self, model, batch) -> dict:
        with no_grad():
            recon, mu, logvar = self.terms(model, batch)
            kl = gaussian_kl(mu, logvar)
        n = len(batch)
        return {"loss": (recon.item() + kl.item()) * n, "count": n,
                "recon": recon.item() * n, "kl": kl.item() * n}
