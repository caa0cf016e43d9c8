"""What a decoder (`GPT`, `Llama`) reads besides its weights, checked once: token ids, and
the attention rule that prefix lengths or packed segments ask for.

    ids [B, T] (or [T])                  -> int64 [B, T], every id in the vocabulary
    inputs_embeds [B, T, C] (or [T, C])  -> a float Tensor [B, T, C] of the model's width:
                                            vectors that stand where the token lookup's
                                            output stands (so gradients reach the input)
    prefix_lengths [B]                   -> mask [B, 1, T, T]: a prefix read both ways
    segment_ids [B, T] (runs of equal id)-> mask [B, 1, T, T]: each run attends only within
                                            itself; and the positions inside each run

Errors name the model (`owner`) and the argument, on one line.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor

__all__ = ["token_ids", "check_vocab", "attention_rule", "ids_or_embeds", "input_embeds"]


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


def ids_or_embeds(idx, inputs_embeds, owner: str) -> None:
    """Exactly one of token ids and input embeddings is given."""
    if (idx is None) == (inputs_embeds is None):
        raise ValueError(f"{owner}: give token ids or inputs_embeds, exactly one of them "
                         f"(got {'both' if idx is not None else 'neither'})")


def input_embeds(x, width: int, dtype, owner: str, max_len: int | None = None) -> Tensor:
    """`x` as a Tensor ``[B, T, width]`` of the model's float dtype (``[T, width]`` becomes
    one row), T at most `max_len` when given. A Tensor stays the same node, so a gradient
    flows back to it; an array becomes a constant. Anything else (ints, wrong width, too
    long, NaN) is a clear error."""
    t = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if not np.issubdtype(t.data.dtype, np.floating):
        raise TypeError(f"{owner}: inputs_embeds must be floats, got dtype {t.data.dtype}")
    if t.data.ndim == 2:
        t = t.reshape(1, *t.shape)
    if t.data.ndim != 3 or t.shape[1] == 0 or t.shape[2] != width:
        raise ValueError(f"{owner}: inputs_embeds must have shape [B, T, {width}] with "
                         f"T >= 1, got {tuple(t.shape)}")
    if t.data.dtype != np.dtype(dtype):
        raise TypeError(f"{owner}: inputs_embeds are {t.data.dtype}, the model computes in "
                        f"{np.dtype(dtype)}")
    if max_len is not None and t.shape[1] > max_len:
        raise ValueError(f"{owner}: inputs_embeds have length {t.shape[1]}, longer than "
                         f"max_len={max_len}")
    if not np.isfinite(t.data).all():
        raise ValueError(f"{owner}: inputs_embeds hold NaN or infinity")
    return t


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
