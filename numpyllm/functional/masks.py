"""Attention masks as boolean NumPy arrays: **True = may attend** (PyTorch's convention).

A mask entry ``mask[..., i, j]`` says whether query i may look at key j. Every mask here
broadcasts against the attention scores ``[B, nh, Tq, Tk]``, and `combine_masks` ands
them together, so a decoder with padding is ``combine_masks(causal_mask(T),
padding_mask(lengths, T))``.

Causal masks are aligned to the **bottom right**: when there are fewer queries than keys
(Tq < Tk, decoding with a KV cache: the keys are the cached past plus the new tokens),
query i sits at absolute position ``Tk - Tq + i`` and may see keys ``0 .. Tk - Tq + i``.
For Tq == Tk this is the usual lower triangle. (PyTorch's ``is_causal`` aligns to the
top left instead; the two agree only when Tq == Tk.)

>>> causal_mask(2, 4).astype(int)          # two new queries after two cached keys
array([[1, 1, 1, 0],
       [1, 1, 1, 1]])
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["causal_mask", "padding_mask", "prefix_lm_mask", "sliding_window_mask",
           "segment_mask", "segment_positions", "combine_masks"]


def _length(name: str, value, minimum: int = 0) -> int:
    """`value` as an int >= minimum, or a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _query_key_positions(Tq: int, Tk) -> tuple:
    """Absolute positions of queries [Tq, 1] and keys [1, Tk], bottom-right aligned."""
    Tq = _length("Tq", Tq)
    Tk = Tq if Tk is None else _length("Tk", Tk)
    q_pos = np.arange(Tk - Tq, Tk)[:, None]      # query i sits at Tk - Tq + i
    k_pos = np.arange(Tk)[None, :]
    return q_pos, k_pos


def causal_mask(Tq: int, Tk: int | None = None) -> np.ndarray:
    """``[Tq, Tk]`` bool: query i may attend key j iff ``j <= Tk - Tq + i``.

    Tk defaults to Tq (the lower triangle). If Tq > Tk, the first ``Tq - Tk`` rows
    allow nothing (the attention gives zeros there).

    >>> causal_mask(3).astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    q_pos, k_pos = _query_key_positions(Tq, Tk)
    return k_pos <= q_pos


def sliding_window_mask(Tq: int, window: int, Tk: int | None = None) -> np.ndarray:
    """``[Tq, Tk]`` bool: causal, and at most `window` keys per query, itself included
    (query at absolute position p sees keys ``p - window + 1 .. p``). Bottom-right
    aligned like `causal_mask`; ``window >= Tk`` gives the plain causal mask.

    >>> sliding_window_mask(4, 2).astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    window = _length("window", window, minimum=1)
    q_pos, k_pos = _query_key_positions(Tq, Tk)
    return (k_pos <= q_pos) & (k_pos > q_pos - window)


def prefix_lm_mask(T: int, prefix_len) -> np.ndarray:
    """Prefix-LM mask: bidirectional over the first `prefix_len` positions, causal after.

    Query i may attend key j iff ``j <= i`` or ``j < prefix_len``: the prefix sees all of
    itself, each later position sees the prefix and the positions before it. An int
    prefix_len gives ``[T, T]``; a per-sequence array of shape ``[B]`` gives
    ``[B, 1, T, T]`` (broadcasting over heads). ``prefix_len=0`` is the causal mask and
    ``prefix_len=T`` allows everything.

    >>> prefix_lm_mask(4, 2).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 1]])
    """
    T = _length("T", T)
    lengths = np.asarray(prefix_len)
    if lengths.dtype == bool or not np.issubdtype(lengths.dtype, np.integer) or lengths.ndim > 1:
        raise ValueError(f"prefix_len must be an int or a 1-D integer array [B], got {prefix_len!r}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"prefix_len must lie in [0, T={T}], got {lengths.tolist()}")
    pos = np.arange(T)
    if lengths.ndim == 0:
        return (pos[None, :] <= pos[:, None]) | (pos[None, :] < int(lengths))
    in_prefix = pos < lengths[:, None]                        # [B, T] over keys
    return causal_mask(T)[None, None] | in_prefix[:, None, None, :]   # [B, 1, T, T]


def segment_positions(segment_ids) -> np.ndarray:
    """The position of each token within its segment, ``[B, T]``: packed examples each
    start again at 0. A segment is a run of equal ids along a row.

    >>> segment_positions(np.array([[0, 0, 0, 1, 1, 2]])).tolist()
    [[0, 1, 2, 0, 1, 0]]
    """
    seg = _segments(segment_ids)
    B, T = seg.shape
    t = np.broadcast_to(np.arange(T), (B, T))
    starts = np.ones((B, T), dtype=bool)
    starts[:, 1:] = seg[:, 1:] != seg[:, :-1]                  # a new run begins here
    start_of = np.maximum.accumulate(np.where(starts, t, 0), axis=1)
    return t - start_of


def segment_mask(segment_ids, window: int | None = None) -> np.ndarray:
    """Attention for packed sequences, bool ``[B, 1, T, T]``: query i may attend key j iff
    ``j <= i`` and both lie in the same segment (a run of equal ids), and, with `window`,
    ``i - j < window``. So each packed example attends exactly as it would alone.

    >>> segment_mask(np.array([[0, 0, 1, 1]]))[0, 0].astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 1, 0],
           [0, 0, 1, 1]])
    """
    seg = _segments(segment_ids)
    B, T = seg.shape
    # run[b, t]: which run of equal ids token t belongs to (0, 1, 2 ... along the row)
    run = np.cumsum(np.concatenate([np.zeros((B, 1), dtype=np.int64),
                                    (seg[:, 1:] != seg[:, :-1]).astype(np.int64)], axis=1), 1)
    allowed = (run[:, :, None] == run[:, None, :]) & causal_mask(T)[None]   # [B, T, T]
    if window is not None:
        i = np.arange(T)
        allowed &= (i[:, None] - i[None, :]) < _length("window", window, minimum=1)
    return allowed[:, None]


def _segments(segment_ids) -> np.ndarray:
    seg = np.asarray(segment_ids)
    if seg.ndim != 2 or seg.shape[1] == 0 or not np.issubdtype(seg.dtype, np.integer) \
            or seg.dtype == bool:
        raise ValueError(f"segment_ids must be integers of shape [B, T], got {seg.dtype} of "
                         f"shape {seg.shape}")
    return seg


def padding_mask(lengths_or_valid, T: int | None = None) -> np.ndarray:
    """Key padding mask ``[B, 1, 1, T]``: True at real tokens, False at padding.

    `lengths_or_valid` is either the lengths ``[B]`` of right-padded sequences (then T,
    the padded length, is required) or a ``[B, T]`` bool array that is True at real
    tokens (T is then optional, and checked when given). The result broadcasts over
    heads and queries, so no query attends a padded key. (Padded *queries* still
    produce outputs; a loss should ignore them.)

    >>> padding_mask([1, 3], 3)[:, 0, 0].astype(int)
    array([[1, 0, 0],
           [1, 1, 1]])
    """
    arr = np.asarray(lengths_or_valid)
    if arr.dtype == bool:
        if arr.ndim != 2:
            raise ValueError(f"padding_mask: a bool mask of valid tokens must be [B, T], "
                             f"got shape {arr.shape}")
        if T is not None and arr.shape[1] != T:
            raise ValueError(f"padding_mask: the valid-token mask has shape {arr.shape}, "
                             f"but T={T}")
        return arr[:, None, None, :].copy()
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise ValueError("padding_mask takes lengths [B] (integers) or a [B, T] bool mask of "
                         f"valid tokens; got dtype {arr.dtype}, shape {arr.shape}")
    if T is None:
        raise ValueError("padding_mask: T (the padded length) is required with lengths")
    T = _length("T", T)
    if arr.size and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"padding_mask: lengths must lie in [0, T={T}], got {arr.tolist()}")
    return (np.arange(T)[None, :] < arr[:, None])[:, None, None, :]


def combine_masks(*masks) -> np.ndarray | None:
    """The logical and of boolean masks (broadcast together); None entries are ignored,
    and None is returned when every entry is None.

    >>> combine_masks(causal_mask(3), None, padding_mask([2], 3))[0, 0].astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 0]])
    """
    out = None
    for i, m in enumerate(masks):
        if m is None:
            continue
        m = np.asarray(m)
        if m.dtype != bool:
            raise TypeError(f"combine_masks: mask {i} has dtype {m.dtype}; masks are boolean "
                            "(True = may attend)")
        if out is None:
            out = m
            continue
        try:
            out = out & m
        except ValueError:
            raise ValueError(f"combine_masks: mask {i} of shape {m.shape} does not broadcast "
                             f"with shape {out.shape}") from None
    return out
