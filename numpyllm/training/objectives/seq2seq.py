"""Sequence-to-sequence training on (source, target) pairs with the encoder-decoder.

Each pair is padded into a batch: the source with PAD on the right (the encoder masks
it), the decoder's input is BOS followed by the target, and its targets are the target
followed by EOS (teacher forcing: position t reads the true tokens before it):

    source:    5 6 7 PAD              decoder input:  BOS 7 6 5
                                      targets:        7   6 5 EOS

Padded target positions count for nothing. `label_smoothing` (the paper: 0.1) spreads
that much of each target's probability over the whole vocabulary. Scores: the loss, and
the share of target tokens predicted right by teacher forcing; exact-match accuracy of
free decoding is `numpyllm.training.evaluate.exact_match`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...autograd import no_grad
from ...data import pad_sequences
from ...data.examples import Pairs
from ...functional import cross_entropy
from ...validation import check_fraction
from .base import Batch, ExampleObjective

__all__ = ["Seq2Seq"]


@dataclass
class Seq2Seq(ExampleObjective):
    """Teacher-forced training of an encoder-decoder on `Pairs`."""

    pad_id: int
    bos_id: int
    eos_id: int
    label_smoothing: float = 0.0

    name: ClassVar[str] = "seq2seq"
    models: ClassVar[tuple] = ("Transformer",)

    def __post_init__(self):
        super().__post_init__()
        check_fraction("Seq2Seq", "label_smoothing", self.label_smoothing, closed=True)
        if self.bos_id == self.pad_id:
            raise ValueError(f"Seq2Seq: bos_id and pad_id must differ (the decoder masks "
                             f"padding as keys), both are {self.pad_id}")

    def check_model(self, model) -> None:
        super().check_model(model)
        cfg = model.config
        self.check_ids(min(cfg.src_vocab_size, cfg.tgt_vocab_size), pad_id=self.pad_id)
        self.check_ids(cfg.tgt_vocab_size, bos_id=self.bos_id, eos_id=self.eos_id)
        if model.config.pad_id != self.pad_id:
            raise ValueError(f"Seq2Seq: the model's pad_id is {model.config.pad_id}, the "
                             f"objective's {self.pad_id}; they must agree")

    def dataset(self, data) -> Pairs:
        if isinstance(data, Pairs):
            return data
        sources, targets = data
        return Pairs(sources, targets)

    def make_batch(self, pairs: Pairs, rows: np.ndarray) -> Batch:
        src = pad_sequences([pairs.sources[i] for i in rows], self.pad_id)[0]     # [B, S]
        tgt = [pairs.targets[i] for i in rows]
        tgt_in = pad_sequences([np.concatenate([[self.bos_id], t]) for t in tgt],
                               self.pad_id)[0]                                    # [B, T]
        y = pad_sequences([np.concatenate([t, [self.eos_id]]) for t in tgt], -100)[0]
        return Batch({"src": src, "tgt_in": tgt_in, "y": y},
                     np.count_nonzero(y != -100, axis=1), src.size + tgt_in.size)

    def loss(self, model, batch):
        return model(batch["src"], batch["tgt_in"], batch["y"],
                     label_smoothing=self.label_smoothing)[1]

    def scores(self, model, batch) -> dict:
        with no_grad():
            logits, _ = model(batch["src"], batch["tgt_in"])
        y = batch["y"]
        counted = y != -100
        return {"loss": float(cross_entropy(logits, y, reduction="sum").item()),
                "count": int(counted.sum()),
                "correct": int((logits.data.argmax(axis=-1) == y)[counted].sum())}
