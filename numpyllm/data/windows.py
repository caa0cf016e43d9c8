"""Fixed-length (input, target) windows over a token array, and batches of them.

Each window gives an input `x` and a target `y` shifted by one token (the model predicts
token t+1 from tokens 0..t). Batches come either in a fixed order (`iter_batches`, for
evaluation) or at random from an explicit `np.random.Generator` (`sample`, or
`iter_batches(shuffle=True, rng=...)`); nothing here touches global random state.

    >>> import numpy as np
    >>> windows = TokenWindows(np.arange(8, dtype=np.uint16), context_length=3, stride=2)
    >>> len(windows)
    3
    >>> x, y = windows[1]
    >>> x, y
    (array([2, 3, 4]), array([3, 4, 5]))
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .tokens import _as_1d

__all__ = ["TokenWindows"]


class TokenWindows:
    """Fixed-length (input, target) windows over a token array.

    Window `i` starts at token `i * stride`: its input is `tokens[s : s+T]` and its target
    `tokens[s+1 : s+T+1]`, with `T = context_length`. `stride = T` (the default) gives
    non-overlapping windows; a smaller stride overlaps them, `stride = 1` gives every
    window (nanoGPT samples from those). Windows are cut out on demand, so a memmapped
    corpus is read only where a batch needs it. Batches are int64 arrays `[B, T]`.

    >>> import numpy as np
    >>> w = TokenWindows(np.arange(8), context_length=4, stride=1)
    >>> x, y = w.sample(2, np.random.default_rng(0))
    >>> x.shape, bool((y[:, :-1] == x[:, 1:]).all())
    ((2, 4), True)
    """

    def __init__(self, tokens: np.ndarray, context_length: int, stride: int | None = None):
        self.tokens = _as_1d(tokens, "tokens")
        if not isinstance(context_length, (int, np.integer)) or context_length < 1:
            raise ValueError(f"context_length must be a positive integer, got {context_length!r}")
        stride = context_length if stride is None else stride
        if not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if len(self.tokens) < context_length + 1:
            raise ValueError(f"{len(self.tokens)} tokens are too few for one window of "
                             f"context_length {context_length} (needs {context_length + 1}: "
                             f"the target is shifted by one)")
        self.context_length = int(context_length)
        self.stride = int(stride)
        self._offsets = np.arange(self.context_length + 1)

    def __len__(self) -> int:
        return (len(self.tokens) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise IndexError(f"window index {index!r} out of range for {n} windows")
        x, y = self.batch([index % n])
        return x[0], y[0]

    def batch(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows at `indices` stacked: `(x, y)`, each int64 `[len(indices), T]`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"window indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
        # [B, 1] + [T+1] -> [B, T+1] positions; fancy indexing reads just those tokens.
        block = np.asarray(self.tokens[idx[:, None] * self.stride + self._offsets],
                           dtype=np.int64)
        return block[:, :-1].copy(), block[:, 1:].copy()

    def iter_batches(self, batch_size: int, *, shuffle: bool = False,
                     rng: np.random.Generator | None = None, drop_last: bool = False
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One pass over every window in batches of `batch_size`.

        In order by default (deterministic: use it for evaluation); with `shuffle=True`,
        in an order drawn from `rng` (required then: there is no hidden random state).
        The last batch may be smaller unless `drop_last`.
        """
        for indices in _batch_indices(len(self), batch_size, shuffle, rng, drop_last):
            yield self.batch(indices)

    def sample(self, batch_size: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """`batch_size` windows drawn uniformly at random (with replacement) from `rng`."""
        _check_batch_size(batch_size)
        if not isinstance(rng, np.random.Generator):
            raise ValueError("sample needs rng=np.random.Generator (e.g. np.random.default_rng(0))")
        return self.batch(rng.integers(0, len(self), size=batch_size))

    def __repr__(self) -> str:
        return (f"TokenWindows({len(self.tokens)} tokens, context_length={self.context_length}, "
                f"stride={self.stride}, {len(self)} windows)")


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _batch_indices(n: int, batch_size: int, shuffle: bool, rng, drop_last: bool
                   ) -> Iterator[np.ndarray]:
    """Indices 0..n-1 in groups of `batch_size`, in order or permuted by `rng`."""
    _check_batch_size(batch_size)
    if shuffle:
        if not isinstance(rng, np.random.Generator):
            raise ValueError("shuffle=True needs rng=np.random.Generator (e.g. "
                             "np.random.default_rng(seed)); there is no hidden random state")
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
