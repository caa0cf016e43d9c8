"""A corpus as an array: text to token ids, on disk and back, and the train/val split.

A corpus is a 1-D array of token ids in the smallest unsigned type the vocabulary fits
(uint16 for GPT-2's 50,257 tokens, half the bytes of int32). A corpus larger than memory
is encoded in blocks straight to an `.npy` file and opened memory-mapped, as nanoGPT
does with its `.bin` files (which `load_tokens` also reads).

    >>> import numpy as np
    >>> train, val = train_val_split(np.arange(10, dtype=np.uint16), val_fraction=0.2)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
"""
from __future__ import annotations

import codecs
import os
import struct
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

__all__ = ["token_dtype", "to_token_array", "encode_text", "encode_file", "read_text_blocks",
           "save_tokens", "load_tokens", "train_val_split"]


class _Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str, **kwargs) -> list[int]: ...


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
