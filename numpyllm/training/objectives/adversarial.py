"""Adversarial training of a classifier in embedding space: PGD (Madry et al. 2018) and
FreeLB (Zhu et al. 2020).

Classification (`classify.py`) minimises ``L(θ; e, y)`` where ``e = E[ids]`` are the
vectors the model reads. Adversarial training minimises the loss at the worst nearby
input instead, a min-max problem:

    min_θ  E_(x, y) [ max_{‖δ‖ ≤ ε} L(θ; e + δ, y) ]

The inner max is approximated on every batch by K steps of projected gradient ascent
(`numpyllm.adversarial.embedding_attack.pgd`: the ball, the norms, the steps), then:

- ``method="pgd"``: the loss at the last iterate, ``L(θ; e + δ_K, y)`` (Madry et al.);
- ``method="freelb"``: the mean of the losses along the way,
  ``(1/K) Σ_{t=0}^{K-1} L(θ; e + δ_t, y)``: FreeLB accumulates the parameter gradients
  of the K ascent steps and averages them, which is this loss's gradient (the same
  numbers; FreeLB gets them from the ascent's own backward passes, here they come from
  one extra pass over the K iterates stacked along the batch, so that the Trainer's
  contract, a loss the caller differentiates, holds).

`weight` w mixes in the clean loss: ``(1 - w) L(θ; e, y) + w L_adv`` (w = 1: the
adversarial loss alone, as Madry et al.; 0.5: Goodfellow et al.'s even mix).

**What is differentiated.** Two separate things. (1) The ascent differentiates the loss
with respect to δ only, with the weights fixed; the parameters' ``.grad`` are not
touched (`numpyllm.adversarial.input_gradient`). (2) The weight update differentiates
the loss above with respect to θ with every δ_t held constant, as in both papers (Danskin's
theorem: at the inner maximum, the gradient of the max is the gradient at the maximiser;
no gradient flows through how δ was found). θ includes the token embedding table: ``e =
model.token_embeddings(ids)`` is a function of it, and ``e + δ`` passes its gradient on.
The gradient check (`numpyllm.checks.models`, "adversarial loss") checks exactly (2).

Randomness: a random start (``random_start=True``) draws a seed per row from the
Trainer's generator when the batch is sampled, so a resumed run draws the same starts;
dropout comes from the model's generators, which checkpoints keep. Without a random
start the batches are the clean objective's own.

**The checkpoint records the classifier as what it is**: ``{"name": "classify", ...}``
(`to_dict`), so ``numpyllm eval``, ``attack hotflip`` and ``Trainer.resume`` read it
as any classifier; `settings` holds the adversarial part, which ``numpyllm finetune
classify --adversarial`` keeps in its data record and passes again on ``--resume``
(``Trainer.resume(ckpt, data, objective=lambda m: AdversarialClassification(...))``).
Evaluation (`scores`: accuracy) is of the clean inputs; the loss is the training loss,
adversarial, on every split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...adversarial.embedding_attack import NORMS, pgd
from ...autograd import Tensor
from .classify import Classification

__all__ = ["AdversarialClassification", "METHODS"]

METHODS = ("pgd", "freelb")


@dataclass
class AdversarialClassification(Classification):
    """Classification trained on adversarial input embeddings (see the module doc).

    Settings: `method` ``"pgd"`` or ``"freelb"``; `epsilon` ε > 0 the radius; `norm`
    ``"l2"`` (per message) or ``"linf"``; `steps` K >= 1 ascent steps of size `alpha`
    (0: 2.5 ε / K); `random_start` (0 or 1); `weight` w in (0, 1] of the adversarial
    term.

    >>> obj = AdversarialClassification(2, epsilon=0.5, steps=2)
    >>> obj.alpha, obj.to_dict()["name"], obj.settings()["method"]
    (0.625, 'classify', 'pgd')
    """

    method: str = "pgd"
    epsilon: float = 1.0
    norm: str = "l2"
    steps: int = 3
    alpha: float = 0.0
    random_start: int = 0
    weight: float = 1.0

    name: ClassVar[str] = "adversarial"

    def __post_init__(self):
        super().__post_init__()
        owner = "AdversarialClassification"
        if self.method not in METHODS:
            raise ValueError(f"{owner}.method must be one of {METHODS}, got {self.method!r}")
        if self.norm not in NORMS:
            raise ValueError(f"{owner}.norm must be one of {NORMS}, got {self.norm!r}")
        if not self.epsilon > 0:
            raise ValueError(f"{owner}.epsilon must be > 0, got {self.epsilon}")
        if self.steps < 1:
            raise ValueError(f"{owner}.steps must be >= 1, got {self.steps}")
        if self.alpha < 0:
            raise ValueError(f"{owner}.alpha must be > 0 (or 0: 2.5 epsilon / steps), got "
                             f"{self.alpha}")
        if self.random_start not in (0, 1):
            raise ValueError(f"{owner}.random_start must be 0 or 1, got {self.random_start!r}")
        if not 0 < self.weight <= 1:
            raise ValueError(f"{owner}.weight must be in (0, 1], got {self.weight}")
        self.epsilon, self.weight = float(self.epsilon), float(self.weight)
        self.alpha = float(self.alpha) or 2.5 * self.epsilon / self.steps
        self.random_start = int(self.random_start)

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """The classifier's record: classification (see the module doc)."""
        return Classification(self.n_classes, pad_id=self.pad_id).to_dict()

    def settings(self) -> dict:
        """The adversarial settings, for a resumed run: ``AdversarialClassification(
        n_classes, pad_id=..., **settings)``."""
        return {"method": self.method, "epsilon": self.epsilon, "norm": self.norm,
                "steps": int(self.steps), "alpha": self.alpha,
                "random_start": self.random_start, "weight": self.weight}

    # ------------------------------------------------------------------ batches
    def sample(self, dataset, batch_size, rng):
        batch = super().sample(dataset, batch_size, rng)
        if self.random_start:               # one seed per row, from the Trainer's generator
            batch.arrays["seeds"] = rng.integers(0, 2 ** 63 - 1, size=len(batch))
        return batch

    def batches(self, dataset, batch_size, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng       # a fixed evaluation
        for batch in super().batches(dataset, batch_size, rng):
            if self.random_start:
                batch.arrays["seeds"] = rng.integers(0, 2 ** 63 - 1, size=len(batch))
            yield batch

    # ------------------------------------------------------------------ the loss
    def perturbations(self, model, batch) -> np.ndarray:
        """The constant perturbations the weight update uses, ``[S, B, T, C]``: S = 1
        (PGD: δ_K) or K (FreeLB: δ_0 .. δ_{K-1})."""
        path = pgd(model, batch["ids"], batch["labels"], lengths=batch["lengths"],
                   epsilon=self.epsilon, norm=self.norm,
                   steps=self.steps if self.method == "pgd" else self.steps - 1,
                   alpha=self.alpha, seeds=batch.arrays.get("seeds"))
        return np.stack(path[-1:] if self.method == "pgd" else path)

    def loss_at(self, model, batch, deltas: np.ndarray) -> Tensor:
        """``(1 - w) L(θ; e, y) + w mean_s L(θ; e + δ_s, y)`` with `deltas` ``[S, B, T, C]``
        constants: the S perturbed copies of the batch run as one batch of S·B rows,
        whose mean loss is the mean over s of each copy's."""
        ids, lengths, labels = batch["ids"], batch["lengths"], batch["labels"]
        S, B = deltas.shape[:2]
        e = model.token_embeddings(ids)                                  # [B, T, C]
        shifted = (e.unsqueeze(0) + Tensor(deltas.astype(e.dtype)))      # [S, B, T, C]
        shifted = shifted.reshape(S * B, *e.shape[1:])                   # [S·B, T, C]
        adv = model(inputs_embeds=shifted, lengths=np.tile(lengths, S),
                    labels=np.tile(labels, S))[1]
        if self.weight == 1.0:
            return adv
        clean = model(inputs_embeds=e, lengths=lengths, labels=labels)[1]
        return clean * (1.0 - self.weight) + adv * self.weight

    def loss(self, model, batch):
        return self.loss_at(model, batch, self.perturbations(model, batch))
