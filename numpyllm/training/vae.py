"""`VAETrainer`: the `Trainer` for a sentence VAE's ELBO objective, which tells the
objective the optimizer step before each one, for KL annealing (beta_t grows with t:
`numpyllm.training.objectives.ELBO.kl_weight`). Everything else (accumulation, clipping,
threads, evaluation, checkpoints, exact resume) is the Trainer's: the step is part of its
saved state, so a resumed run anneals from where it stopped."""
from __future__ import annotations

from .trainer import Trainer

__all__ = ["VAETrainer"]


class VAETrainer(Trainer):
    """A `Trainer` whose objective learns the step: ``objective.step = trainer.step``
    before each optimizer step (objectives without a schedule ignore it)."""

    def train_step(self) -> dict:
        self.objective.step = self.step
        info = super().train_step()
        info["kl_weight"] = self.objective.kl_weight(self.step - 1) \
            if hasattr(self.objective, "kl_weight") else None
        return info
