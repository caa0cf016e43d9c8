"""Key/value caches for decoding one token at a time.

A causal decoder's keys and values at positions 0..t never change once computed (no
later token can influence them), so generation computes them once and keeps them:

    prefill:  the prompt [B, T] in one pass, filling slots 0 .. T-1 of every layer
    decode:   one new token [B, 1] per step: its query attends the cached keys
              0 .. t, and its own key and value are written into slot t

Each step then costs O(t) attention and O(1) matmuls instead of a forward pass over
the whole sequence. The buffers are preallocated ``[B, nh, capacity, hs]`` and written
in place; a full buffer doubles (amortised O(1) per token: never a concatenate per
step, which would copy the whole past every step, O(T²) in all).

- `LayerKVCache`: one attention layer's keys and values (self- or cross-attention).
  `MultiHeadAttention.forward(..., cache=layer_cache)` reads and extends it.
- `KVCache`: a model's caches, one `LayerKVCache` per layer (and per cross-attention
  layer for an encoder-decoder), plus what is per-sequence rather than per-layer: which
  slots hold real tokens (a **key padding mask**, for left-padded batches of prompts of
  different lengths) and how many real tokens each row has seen, which is the
  **position** of its next token.

Positions with a cache: absolute schemes (learned, sinusoidal) embed token i of a row at
position "number of real tokens before it", so a left-padded row sees the positions it
would see alone. RoPE and ALiBi use the slot index: both depend only on the distance
between query and key, which padding does not change.

The cache is inference machinery: it holds arrays, not graph nodes, so no gradient
flows through cached keys and values.

>>> import numpy as np
>>> cache = KVCache(n_layer=2, capacity=8)
>>> k = v = np.zeros((1, 2, 3, 4), np.float32)       # [B, nh, T, hs]: a 3-token prefill
>>> for layer in cache.layers:
...     _ = layer.append(k, v)
>>> cache.length, cache.layers[0].k.shape
(3, (1, 2, 8, 4))
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["LayerKVCache", "KVCache"]


def _grown(buf: np.ndarray, needed: int, axis: int, fill=0) -> np.ndarray:
    """`buf` with room for at least `needed` entries along `axis`: itself, or a copy of
    twice the size (the new part filled with `fill`)."""
    size = buf.shape[axis]
    if needed <= size:
        return buf
    shape = list(buf.shape)
    shape[axis] = max(needed, 2 * size)
    out = np.full(shape, fill, dtype=buf.dtype)
    index = [slice(None)] * buf.ndim
    index[axis] = slice(0, size)
    out[tuple(index)] = buf
    return out


def _capacity(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"KVCache: capacity must be a positive integer, got {value!r}")
    return int(value)


class LayerKVCache:
    """The keys and values of one attention layer: ``k``, ``v`` ``[B, nh, capacity,
    hs]`` of which the first `length` slots are filled.

    The buffers are allocated on the first `append` (which fixes B, nh, hs and the
    dtype; after `reset` the next append may change them) with room for `capacity`
    slots, and doubled when full.
    """

    def __init__(self, capacity: int):
        self.capacity = _capacity(capacity)
        self.k = self.v = None
        self.length = 0

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple:
        """Write ``k``, ``v`` ``[B, nh, T, hs]`` into slots length .. length+T-1; return
        the views ``[B, nh, length+T, hs]`` of everything cached (no copy)."""
        B, nh, T, hs = k.shape
        fits = self.k is not None and self.k.shape[:2] == (B, nh) and self.k.shape[3] == hs \
            and self.k.dtype == k.dtype
        if not fits and self.length == 0:            # first use, or reused after reset
            shape = (B, nh, max(self.capacity, T), hs)
            self.k, self.v = np.empty(shape, k.dtype), np.empty(shape, v.dtype)
        elif not fits:
            raise ValueError(f"LayerKVCache: keys of shape {k.shape} do not fit a cache of "
                             f"[B, nh, *, hs] = {self.k.shape}")
        end = self.length + T
        self.k, self.v = _grown(self.k, end, 2), _grown(self.v, end, 2)
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.keys_values()

    def keys_values(self) -> tuple:
        """Views ``[B, nh, length, hs]`` of the cached keys and values."""
        if self.k is None:
            raise ValueError("LayerKVCache: the cache is empty")
        return self.k[:, :, :self.length], self.v[:, :, :self.length]

    def reorder(self, index: np.ndarray) -> None:
        """Keep rows `index` (a copy): beam search continues beam i from beam index[i]."""
        if self.k is not None:
            self.k, self.v = self.k[index], self.v[index]

    def reset(self) -> None:
        """Forget the cached keys and values (the buffers are kept for reuse)."""
        self.length = 0

    def __repr__(self) -> str:
        shape = None if self.k is None else self.k.shape
        return f"LayerKVCache(length={self.length}, buffer={shape})"


class KVCache:
    """A model's key/value caches: ``layers`` (self-attention, one per decoder layer)
    and ``cross`` (cross-attention over an encoder output, one per layer; empty for a
    decoder-only model), plus the per-row bookkeeping of positions and padding.

    A model's cached forward calls `step` once per forward pass, before its layers
    append their keys and values; `step` returns the positions of the new tokens and
    the key padding mask over every cached slot.
    """

    def __init__(self, n_layer: int, capacity: int, *, cross: bool = False):
        if isinstance(n_layer, bool) or not isinstance(n_layer, numbers.Integral) or n_layer < 1:
            raise ValueError(f"KVCache: n_layer must be a positive integer, got {n_layer!r}")
        self.capacity = _capacity(capacity)
        self.layers = [LayerKVCache(capacity) for _ in range(n_layer)]
        self.cross = [LayerKVCache(1) for _ in range(n_layer)] if cross else []
        self.seen = None       # [B] int64: real tokens so far per row (the next position)
        self.valid = None      # [B, capacity] bool, True at real tokens; None: no padding

    @property
    def length(self) -> int:
        """The number of filled slots (cached positions, padding included)."""
        return self.layers[0].length

    @property
    def batch_size(self) -> int | None:
        return None if self.seen is None else len(self.seen)

    def step(self, B: int, T: int, key_padding_mask=None) -> tuple:
        """Book `T` new tokens for each of `B` rows; returns ``(positions, valid)``:

        - positions ``[B, T]`` int64: the absolute position of each new token, the count
          of real tokens before it in its row (0 for a padding slot);
        - valid: bool ``[B, length + T]``, True at real tokens over every slot so far
          and the new ones, or None when no slot was ever padding.

        `key_padding_mask` (bool ``[B, T]``, True at real tokens) marks padding among the
        new tokens; None means all real.
        """
        L = self.length
        if self.seen is None:
            self.seen = np.zeros(B, dtype=np.int64)
        elif len(self.seen) != B:
            raise ValueError(f"KVCache: a batch of {B} rows, but the cache holds {len(self.seen)}")
        if any(layer.length != L for layer in self.layers):
            raise RuntimeError("KVCache: the layers hold different lengths (a forward pass "
                               "failed half-way?); reset the cache")
        if key_padding_mask is None:
            positions = self.seen[:, None] + np.arange(T)[None, :]
            new_valid = None
        else:
            new_valid = np.asarray(key_padding_mask)
            if new_valid.dtype != bool or new_valid.shape != (B, T):
                raise ValueError(f"KVCache: key_padding_mask must be bool [B, T] = {[B, T]} "
                                 f"(True at real tokens), got {new_valid.dtype} "
                                 f"{new_valid.shape}")
            before = np.cumsum(new_valid, axis=1) - new_valid       # real tokens before each
            positions = np.where(new_valid, self.seen[:, None] + before, 0)
        if new_valid is not None and self.valid is None and not new_valid.all():
            self.valid = np.ones((B, max(self.capacity, L + T)), dtype=bool)
        if self.valid is not None:
            self.valid = _grown(self.valid, L + T, 1, fill=True)
            self.valid[:, L:L + T] = True if new_valid is None else new_valid
            self.seen = self.seen + (T if new_valid is None else new_valid.sum(axis=1))
            return positions, self.valid[:, :L + T]
        self.seen = self.seen + T
        return positions, None

    def reorder(self, index, *, cross: bool = True) -> None:
        """Keep the rows `index` (in that order) of every cache and of the bookkeeping:
        drop finished rows, or continue beam i from beam index[i].

        ``cross=False`` leaves the cross-attention caches alone: beam search reorders
        beams within one source sentence, whose encoder keys and values are the same for
        all its beams, so copying them would change nothing."""
        index = np.asarray(index)
        for layer in self.layers + (self.cross if cross else []):
            layer.reorder(index)
        if self.seen is not None:
            self.seen = self.seen[index]
        if self.valid is not None:
            self.valid = self.valid[index]

    def reset(self) -> None:
        """Empty the self-attention caches (to prefill again); the cross-attention
        caches, which depend on the source only, are kept."""
        for layer in self.layers:
            layer.reset()
        self.seen = self.valid = None

    def __repr__(self) -> str:
        cross = f", cross={len(self.cross)}" if self.cross else ""
        return (f"KVCache(n_layer={len(self.layers)}, length={self.length}, "
                f"batch={self.batch_size}{cross})")
