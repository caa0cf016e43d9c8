"""Supervised fine-tuning on instructions (SFT): next-token prediction on prompt +
response, with the loss on the response only.

An example is a prompt p (the instruction rendered by `numpyllm.data.instruction`) and
its response r (ending with the end token). The model reads the whole row ``p + r`` and
each position predicts the next token, as in causal language modelling; what differs is
which predictions count. Predicting the prompt teaches the model to write instructions,
which is not the task, so by default those targets are ignored (-100), as are the
padding's:

    row:      p0  p1  p2  r0  r1  r2  <eos>  pad pad
    x:        p0  p1  p2  r0  r1  r2  <eos>  pad          (row[:-1])
    targets:  --  --  r0  r1  r2  <eos> --   --           (row[1:], prompt and pad: -100)

The last prompt token predicts the first response token: that prediction counts.
``train_on_prompt=1`` keeps the prompt's targets too (the book's chapter 7 does; masking
them is its suggested exercise, and the usual choice). Rows are padded on the right, so
padding comes after every real token and, attention being causal, no real position ever
sees it. With ``pack=1`` short examples share rows of ``max_length`` tokens instead of
each being padded to the longest: ``segments`` tells the model where each example
starts, so that none attends to another and absolute positions restart
(`numpyllm.functional.segment_mask`), and no target crosses from one to the next. Each row counts its unmasked targets; the loss is their mean over the batch
(`Batch.counts`), which is what data parallelism on threads weights by.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...data import pad_sequences
from ...data.instruction import Instructions
from .base import Batch, ExampleObjective

__all__ = ["InstructionTuning"]


@dataclass
class InstructionTuning(ExampleObjective):
    """Causal LM on (prompt, response) examples (`numpyllm.data.instruction.Instructions`),
    the loss on the response tokens (and, with ``train_on_prompt=1``, the prompt's)."""

    pad_id: int = 0
    train_on_prompt: int = 0          # 0 or 1 (an int: records are plain JSON)
    max_length: int = 0               # 0: no limit; else rows are cut to this many tokens
    pack: int = 0                     # 1: examples packed into rows of max_length tokens

    name: ClassVar[str] = "sft"
    models: ClassVar[tuple] = ("GPT", "Llama")

    def __post_init__(self):
        super().__post_init__()
        if self.train_on_prompt not in (0, 1):
            raise ValueError(f"InstructionTuning.train_on_prompt must be 0 or 1, got "
                             f"{self.train_on_prompt!r}")
        if self.max_length < 0 or self.pad_id < 0:
            raise ValueError("InstructionTuning: max_length and pad_id must be >= 0")
        if self.pack not in (0, 1) or (self.pack and not self.max_length):
            raise ValueError("InstructionTuning: pack must be 0 or 1, and packing needs "
                             f"max_length (the packed rows' length); got pack={self.pack!r}, "
                             f"max_length={self.max_length}")

    def check_model(self, model) -> None:
        super().check_model(model)
        self.check_ids(model.config.vocab_size, pad_id=self.pad_id)
        if self.max_length > model.config.block_size + 1:
            raise ValueError(f"InstructionTuning.max_length {self.max_length} is longer than "
                             f"the model's context + 1 ({model.config.block_size + 1})")

    def dataset(self, data) -> Instructions:
        if not isinstance(data, Instructions):
            raise TypeError("the sft objective trains on numpyllm.data.instruction."
                            f"Instructions (encode_instructions), got {type(data).__name__}")
        if self.max_length:        # every row must keep a response token to predict
            for i, prompt in enumerate(data.prompts):
                if len(prompt) >= self.max_length:
                    raise ValueError(f"example {i}: its prompt is {len(prompt)} tokens, not "
                                     f"shorter than max_length {self.max_length}")
        return data

    def make_batch(self, data: Instructions, rows: np.ndarray) -> Batch:
        if self.pack:
            return self._packed_batch(data, rows)
        full, starts = [], []
        for i in rows:
            row = np.concatenate([data.prompts[i], data.responses[i]])
            if self.max_length:
                row = row[:self.max_length]
            full.append(row)
            starts.append(len(data.prompts[i]))
        ids, mask = pad_sequences(full, self.pad_id)                  # [B, L]
        x, y = ids[:, :-1], ids[:, 1:].copy()                          # [B, L-1]
        real = mask[:, 1:]                                             # target is a real token
        if not self.train_on_prompt:
            # target t is token t+1; it belongs to the response when t+1 >= len(prompt)
            t = np.arange(y.shape[1])[None, :]
            real = real & (t + 1 >= np.asarray(starts)[:, None])
        y[~real] = -100
        return Batch({"x": x, "y": y}, real.sum(axis=1), int(mask.sum()))

    def _packed_batch(self, data: Instructions, rows: np.ndarray) -> Batch:
        """The examples at `rows`, in order, packed greedily into rows of at most
        max_length tokens; ``segments`` keeps them apart (the model's attention never
        crosses a boundary, its positions restart: `numpyllm.functional.segment_mask`)
        and no target crosses one either. Padding rows end: segment -1, targets -100."""
        packed, segs, keep = [[]], [[]], [[]]            # per packed row: ids, segment, counts
        for k, i in enumerate(rows):
            row = np.concatenate([data.prompts[i], data.responses[i]])[:self.max_length]
            if len(packed[-1]) + len(row) > self.max_length:
                packed.append([]), segs.append([]), keep.append([])
            n, p = len(row), len(data.prompts[i])
            first = 0 if self.train_on_prompt else p - 1       # first target that counts
            packed[-1].extend(row.tolist())
            segs[-1].extend([k] * n)
            # x position t of this example predicts its token t+1: counted for
            # first <= t < n-1; its last token would predict the next example's first
            keep[-1].extend([first <= t < n - 1 for t in range(n)])
        L = max(len(r) for r in packed)
        B = len(packed)
        ids = np.full((B, L), self.pad_id, dtype=np.int64)
        seg = np.full((B, L), -1, dtype=np.int64)
        counted = np.zeros((B, L), dtype=bool)
        for b in range(B):
            n = len(packed[b])
            ids[b, :n], seg[b, :n], counted[b, :n] = packed[b], segs[b], keep[b]
        x, y = ids[:, :-1], ids[:, 1:].copy()                  # [B, L-1]
        real = counted[:, :-1]
        y[~real] = -100
        return Batch({"x": x, "y": y, "segments": seg[:, :-1]}, real.sum(axis=1),
                     int((seg >= 0).sum()))

    def loss(self, model, batch):
        if "segments" in batch.arrays:
            return model(batch["x"], targets=batch["y"], segment_ids=batch["segments"])[1]
        return model(batch["x"], targets=batch["y"])[1]
