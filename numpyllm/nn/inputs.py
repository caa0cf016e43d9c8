"""What a decoder (`GPT`, `Llama`) reads besides its weights, checked once: token ids, and
the attention rule that prefix lengths or packed segments ask for.

    ids [B, T] (or [T])                  -> int64 [B, T], every id in the vocabulary
    prefix_lengths [B]                   -> mask [B, 1, T, T]: a prefix read both ways
    segment_ids [B, T] (runs of equal id)-> mask [B, 1, T, T]: each run attends only within
                                            itself; and the positions inside each run

Errors name the model (`owner`) and the argument, on one line.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor

__all__ = ["token_ids", "check_vocab", "attention_rule"]


def token_ids(idx, owner: str, name: str = "idx") -> np.ndarray:
    """`idx` as an int64 array ``[B, T]`` (a 1-D sequence becomes one row)."""
    idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{owner}: {name} must hold integer token ids, got dtype {idx.dtype}")
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"{owner}: {name} must have shape [B, T] with T >= 1, got {idx.shape}")
    return idx.astype(np.int64, copy=False)


def check_vocab(idx: np.ndarray, vocab_size: int, owner: str) -> None:
    """Every id of `idx` lies in ``[0, vocab_size)``."""
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{owner}: token id {lo if lo < 0 else hi} is outside the "
                         f"vocabulary [0, {vocab_size})")


def attention_rule(owner: str, B: int, T: int, prefix_lengths=None, segment_ids=None,
                   window: int | None = None) -> tuple:
    """``(mask, positions)``: the attention mask the arguments ask for (None: the causal
    rule), and, for packed segments, each token's position in its segment ``[B, T]``
    (None otherwise: positions 0..T-1)."""
    if segment_ids is not None:
        if prefix_lengths is not None:
            raise ValueError(f"{owner}: prefix_lengths and segment_ids cannot be combined")
        seg = np.asarray(segment_ids)
        if seg.shape != (B, T):
            raise ValueError(f"{owner}: segment_ids must have shape {(B, T)}, got {seg.shape}")
        return F.segment_mask(seg, window), F.segment_positions(seg)
    if prefix_lengths is None:
        return None, None
    if window is not None:
        raise ValueError(f"{owner}: a prefix decoder with a sliding window is not supported")
    lengths = np.asarray(prefix_lengths)
    if lengths.shape != (B,):
        raise ValueError(f"{owner}: prefix_lengths must have shape [B] = ({B},), got "
                         f"{lengths.shape}")
    return F.prefix_lm_mask(T, lengths), None
