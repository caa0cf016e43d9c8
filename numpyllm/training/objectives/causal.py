"""Language modelling with a decoder: causal (every token predicts the next) and prefix
(a prefix read both ways, the rest predicted causally).

**Causal LM** ("full language modelling"): a window of T+1 tokens gives the input
``x = w[:T]`` and the targets ``y = w[1:]``; position t sees tokens 0..t and predicts
token t+1. Every target counts.

**Prefix LM** (the study notes: "a prefix is chosen randomly and the remaining targets are
used to calculate the loss"; Raffel et al. 2020, §3.2): each row draws a prefix length P
in [1, T-1]. Positions 0..P-1 attend to each other both ways, later positions causally
(`numpyllm.functional.prefix_lm_mask`). The loss counts only predictions of tokens after
the prefix: position t predicts x[t+1], which for t < P-1 lies inside the prefix and is
visible to t through the bidirectional attention, so those targets are ignored (-100).

    x:        t0  t1  t2 | t3  t4  t5         P = 3: t0..t2 see each other
    targets:  --  --  t3 | t4  t5  t6         t2 predicts t3, the first token after it
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Batch, WindowObjective

__all__ = ["CausalLM", "PrefixLM"]


@dataclass
class CausalLM(WindowObjective):
    """Next-token prediction on a token stream, in windows of `context_length` tokens.
    Data: a 1-D array of token ids."""

    name: ClassVar[str] = "clm"
    models: ClassVar[tuple] = ("GPT", "Llama")

    def make_batch(self, x, y, rng=None) -> Batch:
        return Batch({"x": x, "y": y}, np.count_nonzero(y != -100, axis=1), x.size)

    def loss(self, model, batch):
        return model(batch["x"], targets=batch["y"])[1]


@dataclass
class PrefixLM(CausalLM):
    """Prefix language modelling on a decoder: per row a prefix of P tokens (P uniform in
    [1, context_length - 1]) read bidirectionally, loss on the tokens after it."""

    name: ClassVar[str] = "prefix_lm"

    def __post_init__(self):
        super().__post_init__()
        if self.context_length < 2:
            raise ValueError("PrefixLM.context_length must be at least 2 (a prefix and a "
                             f"target), got {self.context_length}")

    def make_batch(self, x, y, rng) -> Batch:
        B, T = x.shape
        prefix = rng.integers(1, T, size=B)                  # [B], each in [1, T-1]
        y = np.where(np.arange(T)[None, :] < prefix[:, None] - 1, -100, y)   # [B, T]
        return Batch({"x": x, "y": y, "prefix": prefix},
                     np.count_nonzero(y != -100, axis=1), x.size)

    def loss(self, model, batch):
        return model(batch["x"], targets=batch["y"], prefix_lengths=batch["prefix"])[1]
