"""Span corruption (T5; Raffel et al. 2020, §3.1.4) on the encoder-decoder.

In a window of T tokens, about `noise_density` (15%) of them, in contiguous spans of mean
length `mean_span_length` (3), are dropped from the encoder's input; each span is replaced
by one sentinel token. The decoder writes the dropped spans out, each after its sentinel:

    original:        Thank you for inviting me to your party last week .
    encoder input:   Thank you <X> me to your party <Y> week . </s>
    decoder target:  <X> for inviting <Y> last </s>

The spans follow T5's `random_spans_noise_mask`: round(T·density) noise tokens in
round(noise / mean length) spans; the noise tokens and the others are each cut into that
many non-empty runs at random, and the runs alternate, other tokens first. Every window
has the same number of noise tokens and spans, so every row has the same input and target
length: no padding. Putting the target's spans back at their sentinels restores the
window exactly (`restore`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...validation import check_fraction, check_positive_number
from .base import Batch, WindowObjective

__all__ = ["SpanCorruption", "span_lengths"]


def span_lengths(T: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, spans) in a window of T tokens, as T5 computes them: at least one
    noise token and one other, and at least one span."""
    n_noise = min(max(int(round(T * noise_density)), 1), T - 1)
    # each span holds a noise token at least, and each run between spans another token
    n_spans = min(max(int(round(n_noise / mean_span_length)), 1), n_noise, T - n_noise)
    return n_noise, n_spans


def _segments(n_items: int, n_segments: int, rng) -> np.ndarray:
    """`n_items` cut into `n_segments` non-empty runs at random: their lengths [n_segments]."""
    cuts = np.sort(rng.choice(n_items - 1, size=n_segments - 1, replace=False)) + 1
    return np.diff(np.concatenate([[0], cuts, [n_items]]))


@dataclass
class SpanCorruption(WindowObjective):
    """T5's span corruption. `sentinel_ids`: the sentinel tokens, in order (at least as
    many as the spans of a window); `eos_id` ends the encoder input and the target;
    `bos_id` starts the decoder's input."""

    sentinel_ids: tuple = field(default_factory=tuple)
    eos_id: int = 0
    bos_id: int = 0
    noise_density: float = 0.15
    mean_span_length: float = 3.0

    name: ClassVar[str] = "span"
    models: ClassVar[tuple] = ("Transformer",)

    def __post_init__(self):
        super().__post_init__()
        if self.context_length < 2:
            raise ValueError("SpanCorruption.context_length must be at least 2")
        check_fraction("SpanCorruption", "noise_density", self.noise_density)
        if not check_positive_number("SpanCorruption", "mean_span_length",
                                     self.mean_span_length) >= 1:
            raise ValueError(f"SpanCorruption.mean_span_length must be at least 1, got "
                             f"{self.mean_span_length}")
        self.n_noise, self.n_spans = span_lengths(self.context_length, self.noise_density,
                                                  self.mean_span_length)
        if len(self.sentinel_ids) < self.n_spans:
            raise ValueError(f"SpanCorruption: a window of {self.context_length} tokens has "
                             f"{self.n_spans} spans, but {len(self.sentinel_ids)} sentinel "
                             "ids were given")

    def check_model(self, model) -> None:
        super().check_model(model)
        cfg = model.config
        need = max(self.context_length - self.n_noise + self.n_spans,
                   self.n_noise + self.n_spans) + 1
        if cfg.max_len < need:
            raise ValueError(f"SpanCorruption: inputs and targets of {need} tokens need a "
                             f"model with max_len >= {need}, got {cfg.max_len}")
        self.check_ids(min(cfg.src_vocab_size, cfg.tgt_vocab_size),
                       sentinel_ids=self.sentinel_ids, eos_id=self.eos_id, bos_id=self.bos_id)

    def noise_mask(self, rng) -> np.ndarray:
        """bool [T]: which tokens of one window are dropped (T5's random spans)."""
        T = self.context_length
        noise = _segments(self.n_noise, self.n_spans, rng)            # [spans]
        other = _segments(T - self.n_noise, self.n_spans, rng)        # [spans]
        runs = np.stack([other, noise], axis=1).reshape(-1)           # other, noise, ...
        return np.repeat(np.arange(runs.size) % 2 == 1, runs)          # [T]

    def corrupt(self, tokens: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """``(encoder input [B, S], decoder target [B, L])`` for windows ``[B, T]``."""
        sentinels = np.asarray(self.sentinel_ids[:self.n_spans], dtype=np.int64)
        inputs, targets = [], []
        for row in tokens:
            noise = self.noise_mask(rng)                              # [T]
            starts = noise & ~np.concatenate([[False], noise[:-1]])   # first token of a span
            span = np.cumsum(starts) - 1                              # span index per token
            keep_in = ~noise | starts                                 # a span's first slot
            src = np.where(starts, sentinels[span], row)[keep_in]    # ... becomes its sentinel
            tgt = np.concatenate([[sentinels[k]] + row[noise & (span == k)].tolist()
                                  for k in range(self.n_spans)])
            inputs.append(np.append(src, self.eos_id))
            targets.append(np.append(tgt, self.eos_id))
        return np.array(inputs, dtype=np.int64), np.array(targets, dtype=np.int64)

    def restore(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The windows back from one row's encoder input and decoder target: each sentinel
        in the input replaced by what follows it in the target (the round trip)."""
        sentinels = list(self.sentinel_ids[:self.n_spans])
        spans, current = {}, None
        for t in targets[:-1]:                                        # the last is EOS
            if int(t) in sentinels:
                current = int(t)
                spans[current] = []
            else:
                spans[current].append(int(t))
        out = []
        for t in inputs[:-1]:
            out.extend(spans[int(t)] if int(t) in spans else [int(t)])
        return np.array(out, dtype=np.int64)

    def make_batch(self, x, y, rng) -> Batch:
        src, tgt = self.corrupt(x, rng)                 # the window itself; y is not used
        tgt_in = np.concatenate([np.full((len(tgt), 1), self.bos_id), tgt[:, :-1]], axis=1)
        return Batch({"src": src, "tgt_in": tgt_in, "y": tgt},
                     np.full(len(tgt), tgt.shape[1]), src.size + tgt_in.size)

    def loss(self, model, batch):
        return model(batch["src"], batch["tgt_in"], batch["y"])[1]
