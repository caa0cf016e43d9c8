"""Masked language modelling (BERT; Devlin et al. 2019, §3.1) on the encoder-only model.

In each window of T tokens, every position is selected with probability `mask_prob`
(15%). Of the selected positions, 80% are replaced by the mask token, 10% by a random
token, and 10% are kept as they are; the model, reading the whole corrupted window both
ways, predicts the original token at every selected position, and only there:

    original:  the  cat  sat  on   the  mat
    selected:        x              x
    input:     the [MASK] sat  on   dog  mat      (80%: [MASK]; 10%: random; 10%: kept)
    targets:   --   cat  --   --   the  --

Why not always [MASK]: the token never appears at fine-tuning time, so the model must
also learn to represent real tokens at positions it may be asked about. The random
replacements come from the ordinary tokens (`vocab_size` minus `special_ids`), never
from special tokens. Its score besides the loss: the accuracy of the masked tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...autograd import no_grad
from ...functional import cross_entropy
from ...validation import check_fraction, positive_int
from .base import Batch, WindowObjective

__all__ = ["MaskedLM"]


@dataclass
class MaskedLM(WindowObjective):
    """BERT's masked LM. `mask_id`: the [MASK] token; `vocab_size`: the model's;
    `special_ids`: ids never drawn as random replacements (the mask, padding ...)."""

    mask_id: int
    vocab_size: int
    special_ids: tuple = field(default_factory=tuple)
    mask_prob: float = 0.15
    replace_prob: float = 0.8       # of the selected: the mask token
    random_prob: float = 0.1        # of the selected: a random ordinary token (rest: kept)

    name: ClassVar[str] = "mlm"
    models: ClassVar[tuple] = ("TransformerEncoderModel",)

    def __post_init__(self):
        super().__post_init__()
        self.vocab_size = positive_int("MaskedLM.vocab_size", self.vocab_size)
        self.special_ids = self.special_ids + (int(self.mask_id),)
        self.special_ids = tuple(sorted(set(self.special_ids)))
        for i in self.special_ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"MaskedLM: special id {i} is outside [0, {self.vocab_size})")
        self._ordinary = np.setdiff1d(np.arange(self.vocab_size), self.special_ids)
        if not self._ordinary.size:
            raise ValueError("MaskedLM: every id is special; nothing to draw replacements from")
        for name in ("mask_prob", "replace_prob", "random_prob"):
            check_fraction("MaskedLM", name, getattr(self, name), closed=True)
        if self.replace_prob + self.random_prob > 1:
            raise ValueError(f"MaskedLM: replace_prob + random_prob must be <= 1, got "
                             f"{self.replace_prob} + {self.random_prob}")

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["special_ids"] = [i for i in self.special_ids if i != self.mask_id]
        return out

    def check_model(self, model) -> None:
        super().check_model(model)
        if model.config.vocab_size != self.vocab_size:
            raise ValueError(f"MaskedLM: the model's vocab_size is {model.config.vocab_size}, "
                             f"the objective's {self.vocab_size}")

    def corrupt(self, tokens: np.ndarray, rng: np.random.Generator) -> tuple:
        """``(inputs, targets)`` for ids ``[B, T]``: the 80/10/10 corruption above;
        targets hold the original id at selected positions and -100 elsewhere."""
        u = rng.random(tokens.shape)                        # [B, T]: selected if < mask_prob
        selected = u < self.mask_prob
        how = rng.random(tokens.shape)                      # [B, T]: which of the three
        random_ids = self._ordinary[rng.integers(0, self._ordinary.size, size=tokens.shape)]
        inputs = tokens.copy()
        to_mask = selected & (how < self.replace_prob)
        to_random = selected & (how >= self.replace_prob) \
            & (how < self.replace_prob + self.random_prob)
        inputs[to_mask] = self.mask_id
        inputs[to_random] = random_ids[to_random]
        targets = np.where(selected, tokens, -100)
        return inputs, targets

    def make_batch(self, x, y, rng) -> Batch:
        inputs, targets = self.corrupt(x, rng)          # the window itself; y is not used
        return Batch({"x": inputs, "y": targets}, np.count_nonzero(targets != -100, axis=1),
                     inputs.size)

    def loss(self, model, batch):
        return model(batch["x"], targets=batch["y"])[1]

    def scores(self, model, batch) -> dict:
        """Summed loss over the masked positions, their count, and how many the model
        gets right (the masked-token accuracy is correct / count)."""
        with no_grad():
            logits, _ = model(batch["x"])
        y = batch["y"]
        counted = y != -100
        count = int(counted.sum())
        loss = float(cross_entropy(logits, y, reduction="sum").item())
        correct = int((logits.data.argmax(axis=-1) == y)[counted].sum())
        return {"loss": loss, "count": count, "correct": correct}
