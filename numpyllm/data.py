"""From token ids to training batches: corpora on disk, windows, padding and masks.

NumPy arrays in, NumPy arrays out; the model wraps them into Tensors.

A corpus is a 1-D array of token ids in the smallest unsigned type the vocabulary fits
(uint16 for GPT-2's 50,257 tokens, half the bytes of int32). A corpus larger than memory
is encoded in blocks straight to an `.npy` file and opened memory-mapped, as nanoGPT
does with its `.bin` files (which `load_tokens` also reads):

    >>> import numpy as np
    >>> tokens = np.arange(10, dtype=np.uint16)
    >>> train, val = train_val_split(tokens, val_fraction=0.2)
    >>> windows = TokenWindows(train, context_length=3, stride=2)
    >>> len(windows)
    3
    >>> x, y = windows[1]
    >>> x, y
    (array([2, 3, 4]), array([3, 4, 5]))

Each window gives an input `x` and a target `y` shifted by one token (the model predicts
token t+1 from tokens 0..t). Batches come either in a fixed order (`iter_batches`, for
evaluation) or at random from an explicit `np.random.Generator` (`sample`, or
`iter_batches(shuffle=True, rng=...)`); nothing here touches global random state.

Documents of different lengths are batched by padding (`lm_batch`): a PAD id fills the
inputs, a boolean mask marks the real tokens, and the targets at padded positions are
`IGNORE_INDEX` (-100, as in PyTorch) so the loss skips them.
"""
from __future__ import annotations

import codecs
import os
import struct
from typing import Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np

__all__ = ["IGNORE_INDEX", "token_dtype", "to_token_array", "encode_text", "encode_file",
           "read_text_blocks", "save_tokens", "load_tokens", "train_val_split", "TokenWindows",
           "PaddedBatch", "pad_sequences", "lm_batch", "iter_lm_batches", "attention_mask"]

IGNORE_INDEX = -100
"""The target value the loss skips (PyTorch's default `ignore_index`)."""


class _Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str, **kwargs) -> list[int]: ...


# ------------------------------------------------------------------ corpus as an array
def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id below `vocab_size`.

    >>> token_dtype(50257), token_dtype(100277)
    (dtype('uint16'), dtype('uint32'))
    """
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise ValueError(f"vocab_size {vocab_size} does not fit in 32 bits")


def to_token_array(ids: Iterable[int] | np.ndarray, vocab_size: int) -> np.ndarray:
    """Token ids as a 1-D array of `token_dtype(vocab_size)`, checked to be in range."""
    arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(token_dtype(vocab_size))
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got values in [{lo}, {hi}]")
    return arr.astype(token_dtype(vocab_size), copy=False)


def encode_text(tokenizer: _Tokenizer, text: str, **encode_kwargs) -> np.ndarray:
    """`tokenizer.encode(text)` as a compact token array.

    >>> from numpyllm.tokenizers import CharTokenizer
    >>> encode_text(CharTokenizer.from_text("abc"), "cab")
    array([2, 0, 1], dtype=uint16)
    """
    return to_token_array(tokenizer.encode(text, **encode_kwargs), tokenizer.vocab_size)


def _safe_cut(buf: str) -> int:
    """Where a block of text may end without changing how it is tokenised, or 0.

    The cut goes after a newline that follows a non-space character and precedes a
    letter. The GPT-2, GPT-4 and GPT-4o split patterns all end a chunk there whether or
    not more text follows, so encoding block by block equals encoding the whole text.
    (A cut after a run of whitespace would not be safe: `\\s+(?!\\S)` splits a run
    differently at the end of a string; nor one before '/' for GPT-4o's pattern.)
    """
    i = len(buf) - 1
    while True:
        i = buf.rfind("\n", 0, i)
        if i <= 0:
            return 0
        if not buf[i - 1].isspace() and buf[i + 1].isalpha():
            return i + 1


def read_text_blocks(path: str | os.PathLike, block_bytes: int = 1 << 22,
                     progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """A UTF-8 text file as consecutive strings of about `block_bytes` bytes or more,
    each ending at a point where tokenisation may safely restart (see `_safe_cut`).
    `progress(bytes_read, total_bytes)` is called as the file is read."""
    path = os.fspath(path)
    total = os.path.getsize(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    buf = ""
    with open(path, "rb") as f:
        while True:
            raw = f.read(block_bytes)
            done += len(raw)
            buf += decoder.decode(raw, final=not raw)
            if not raw:
                break
            cut = _safe_cut(buf)
            if cut:
                yield buf[:cut]
                buf = buf[cut:]
            if progress is not None:
                progress(done, total)
    if buf:
        yield buf
    if progress is not None:
        progress(total, total)


def _npy_header(dtype: np.dtype, length: int) -> bytes:
    # NPY format 1.0, padded to a fixed 128 bytes so the real length can be written over a
    # placeholder once the stream ends (the format allows any padding that keeps the
    # header a multiple of 64 bytes).
    text = f"{{'descr': '{dtype.str}', 'fortran_order': False, 'shape': ({length},), }}"
    text = text.ljust(128 - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def encode_file(tokenizer: _Tokenizer, src: str | os.PathLike,
                dst: str | os.PathLike | None = None, *, block_bytes: int = 1 << 22,
                progress: Callable[[int, int], None] | None = None,
                **encode_kwargs) -> np.ndarray:
    """Encode a UTF-8 text file block by block, without holding all of it as a string.

    With `dst`, the ids stream into that `.npy` file and the result is it, opened
    memory-mapped (read-only); without, the result is an in-memory array. Blocks end
    only where the split pattern would end a chunk anyway (after a newline followed by a
    letter), so the ids equal `encode_text(tokenizer, whole_text)` (special tokens whose
    name contains a newline excepted). `progress(bytes_read, total_bytes)` reports
    progress; `encode_kwargs` go to `tokenizer.encode` (e.g. `allowed_special="all"`).
    """
    src = os.fspath(src)
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    dtype = token_dtype(tokenizer.vocab_size)
    blocks = (encode_text(tokenizer, text, **encode_kwargs)
              for text in read_text_blocks(src, block_bytes, progress))
    if dst is None:
        parts = list(blocks)
        return np.concatenate(parts) if parts else np.zeros(0, dtype)
    dst = os.fspath(dst)
    tmp = dst + ".tmp"
    n = 0
    with open(tmp, "wb") as f:
        f.write(_npy_header(dtype, 0))
        for ids in blocks:
            f.write(ids.tobytes())
            n += ids.size
        f.seek(0)
        f.write(_npy_header(dtype, n))
    os.replace(tmp, dst)
    return load_tokens(dst)


def save_tokens(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Save a token array as `.npy` (never pickled; readable by `np.load`)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"expected a 1-D integer array, got shape {tokens.shape} "
                         f"dtype {tokens.dtype}")
    with open(os.fspath(path), "wb") as f:
        np.save(f, tokens, allow_pickle=False)


def load_tokens(path: str | os.PathLike, *, dtype: np.dtype | str | None = None,
                mmap: bool = True) -> np.ndarray:
    """Open a token file: `.npy` (any integer dtype), or a headerless `.bin` of
    `dtype` ids (default uint16, nanoGPT's convention). Memory-mapped read-only unless
    `mmap=False`."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{path}: expected a 1-D integer array, got shape {arr.shape} "
                             f"dtype {arr.dtype}")
        return arr
    dt = np.dtype(dtype or np.uint16)
    if os.path.getsize(path) % dt.itemsize:
        raise ValueError(f"{path}: size {os.path.getsize(path)} bytes is not a whole "
                         f"number of {dt} ids; wrong dtype or truncated file?")
    if os.path.getsize(path) == 0:
        return np.zeros(0, dt)
    return np.memmap(path, dtype=dt, mode="r") if mmap else np.fromfile(path, dtype=dt)


def train_val_split(tokens: np.ndarray, val_fraction: float = 0.1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The first `1 - val_fraction` of the tokens for training, the rest for validation.

    A contiguous split, as nanoGPT's (a random one would leak text shared by adjacent
    windows into both sets). Both parts are views: no copy, and a memmap stays one.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    tokens = _as_1d(tokens, "tokens")
    # int((1 - f) * n), exactly nanoGPT's `n = int(0.9 * len(data))`, so the splits match
    n_train = int(len(tokens) * (1.0 - val_fraction))
    return tokens[:n_train], tokens[n_train:]


def _as_1d(tokens, what: str) -> np.ndarray:
    arr = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of token ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer token ids, got dtype {arr.dtype}")
    return arr


# ------------------------------------------------------------------------ windows
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


# ---------------------------------------------------------- variable-length batches
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
