"""Documents of different lengths in one batch: padding, masks and ignored targets.

A PAD id fills the inputs, a boolean mask marks the real tokens, and the targets at padded
positions are `IGNORE_INDEX` (-100, as in PyTorch) so the loss skips them.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .windows import _batch_indices

__all__ = ["IGNORE_INDEX", "PaddedBatch", "pad_sequences", "lm_batch", "iter_lm_batches",
           "attention_mask"]

IGNORE_INDEX = -100
"""The target value the loss skips (PyTorch's default `ignore_index`)."""


class PaddedBatch(NamedTuple):
    """A padded language-modelling batch; unpacks as `x, y, mask = batch`.

    inputs:  int64 [B, L], PAD id where padded
    targets: int64 [B, L], `ignore_index` where padded
    mask:    bool  [B, L], True at real tokens (the padding mask)
    """
    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def pad_sequences(sequences: Sequence[Sequence[int]], pad_value: int, *,
                  length: int | None = None, side: str = "right"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of different lengths into `(ids [B, L], mask [B, L])`.

    `L` is the longest length, or `length` (then no sequence may be longer). Padding
    goes on the `side` given: "right" for training, "left" for batched generation (the
    newest tokens line up at the end).

    >>> ids, mask = pad_sequences([[5, 6, 7], [8]], pad_value=0)
    >>> ids
    array([[5, 6, 7],
           [8, 0, 0]])
    >>> mask.astype(int)
    array([[1, 1, 1],
           [1, 0, 0]])
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    rows = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    if not rows:
        raise ValueError("cannot pad an empty list of sequences")
    longest = max(len(r) for r in rows)
    if length is None:
        length = longest
    elif longest > length:
        raise ValueError(f"a sequence of length {longest} does not fit in length {length}")
    ids = np.full((len(rows), length), pad_value, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(length - len(row), length)
        ids[i, span] = row
        mask[i, span] = True
    return ids, mask


def lm_batch(sequences: Sequence[Sequence[int]], pad_id: int, *,
             max_length: int | None = None, side: str = "right",
             ignore_index: int = IGNORE_INDEX) -> PaddedBatch:
    """A next-token batch from whole sequences (documents, dialogue turns, ...).

    Each sequence `s` gives input `s[:-1]` and target `s[1:]`; sequences longer than
    `max_length + 1` tokens are cut to their first `max_length + 1`. Inputs are padded
    with `pad_id`, targets with `ignore_index`, so the loss ignores padded positions
    however the model treats them.

    >>> x, y, mask = lm_batch([[1, 2, 3, 4], [5, 6]], pad_id=0)
    >>> x
    array([[1, 2, 3],
           [5, 0, 0]])
    >>> y
    array([[   2,    3,    4],
           [   6, -100, -100]])
    """
    rows = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        rows = [r[:max_length + 1] for r in rows]
    short = [i for i, r in enumerate(rows) if len(r) < 2]
    if short:
        raise ValueError(f"sequence {short[0]} has {len(rows[short[0]])} token(s); a "
                         f"next-token pair needs at least 2")
    x, mask = pad_sequences([r[:-1] for r in rows], pad_id, side=side)
    y, _ = pad_sequences([r[1:] for r in rows], ignore_index, side=side)
    return PaddedBatch(x, y, mask)


def iter_lm_batches(sequences: Sequence[Sequence[int]], batch_size: int, pad_id: int, *,
                    shuffle: bool = False, rng: np.random.Generator | None = None,
                    drop_last: bool = False, **lm_batch_kwargs) -> Iterator[PaddedBatch]:
    """`lm_batch` over consecutive groups of `batch_size` sequences, in order or (with
    `shuffle=True` and an explicit `rng`) in a random order."""
    for indices in _batch_indices(len(sequences), batch_size, shuffle, rng, drop_last):
        yield lm_batch([sequences[i] for i in indices], pad_id, **lm_batch_kwargs)


def attention_mask(mask: np.ndarray, *, causal: bool = True) -> np.ndarray:
    """Which key each query may attend to: bool `[B, 1, L, L]`, True = allowed.

    Combines the padding mask (`[B, L]`, True at real tokens) with the causal rule
    (query i sees keys j <= i). Broadcasts over heads. A padded query whose every key
    is masked (left padding) is allowed its own position, so a softmax over the row
    stays finite; its output is padding anyway, and its target is ignored.

    >>> attention_mask(np.array([[False, True, True]]))[0, 0].astype(int)
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 1]])
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [B, L], got shape {mask.shape}")
    length = mask.shape[1]
    allowed = np.broadcast_to(mask[:, None, None, :], (mask.shape[0], 1, length, length))
    if causal:
        allowed = allowed & np.tril(np.ones((length, length), dtype=bool))
    else:
        allowed = allowed.copy()
    empty = ~allowed.any(axis=-1)                   # [B, 1, L] rows with no key at all
    diag = np.arange(length)
    allowed[..., diag, diag] |= empty
    return allowed
