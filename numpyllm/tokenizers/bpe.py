"""Byte-level BPE, as in GPT-2 and tiktoken: `BPETokenizer`, the one class to use.

Text becomes UTF-8 bytes, so every string, in any script or with emoji, has an
encoding; no unknown token is needed. BPE merges bytes into tokens, but only inside the
chunks that a regular expression cuts the text into.

    >>> tok = BPETokenizer().train("the cat sat on the mat, the end", vocab_size=262)
    >>> ids = tok.encode("the cat")
    >>> tok.decode(ids)
    'the cat'
    >>> tok.vocab_size
    262

The vocabulary is a table of *mergeable ranks*, token bytes -> id, where a lower id means
an earlier merge; special tokens (`<|endoftext|>`, `[PAD]`, chat markers) live in a second
table and never come out of ordinary text unless the caller allows them. `BPETokenizer`
holds the two tables, checks them, and decodes; each other step is a module of its own:

    text --pretokenize.py--> chunks --bpe_merge.py--> ids     encode_ordinary
    special tokens spelled in the text: special_tokens.py      encode
    a corpus --trainer.py--> merges --> ranks                  train
    numpyllm's file format: bpe_file.py                        save, load
    GPT-2's and tiktoken's files, the split patterns: gpt2.py  from_gpt2, from_tiktoken
"""
from __future__ import annotations

import os
from collections import Counter
from itertools import chain
from typing import Callable, Iterable, Mapping, Sequence

from . import gpt2
from .bpe_file import FORMAT_NAME, FORMAT_VERSION, read_bpe_file, write_bpe_file
from .bpe_merge import ChunkCache
from .errors import TokenizerError, UnknownTokenIdError, VocabularyFileError
from .pretokenize import PreTokenizer
from .special_tokens import SpecialSpec, SpecialTokens
from .trainer import learn_merges

__all__ = ["BPETokenizer", "FORMAT_NAME", "FORMAT_VERSION"]


class BPETokenizer:
    """A byte-level BPE tokenizer (GPT-2 / tiktoken semantics).

    Build one by training (`BPETokenizer(pattern=...).train(text, vocab_size)`), from
    GPT-2's files (`BPETokenizer.from_gpt2(encoder_json, vocab_bpe)`), from a tiktoken
    rank file (`BPETokenizer.from_tiktoken(path, pattern=...)`), or from a file written
    by `save` (`BPETokenizer.load(path)`).

    Args:
        ranks: token bytes -> id for the ordinary (mergeable) tokens; all 256 single
            bytes must be present. Default: just the 256 bytes, id = byte value.
        pattern: the pre-tokenisation regex, or a name: "gpt2" (default), "gpt4" (alias
            "cl100k"), "gpt4o" (alias "o200k").
        special_tokens: names to register after the ordinary tokens, or a mapping
            name -> id to place them explicitly (GPT-2: {"<|endoftext|>": 50256}).
        merges: optionally, for each token made by a merge, its (left, right) byte
            pair; only used to make saved files easier to read.
        cache_size: how many chunks beyond the vocabulary itself the encode cache keeps.

    >>> tok = BPETokenizer(special_tokens=["[PAD]"])
    >>> tok.vocab_size, tok.special_tokens
    (257, {'[PAD]': 256})
    >>> tok.encode("hé")
    [104, 195, 169]
    """

    def __init__(self, ranks: Mapping[bytes, int] | None = None, *, pattern: str = "gpt2",
                 special_tokens: Iterable[str] | Mapping[str, int] | None = None,
                 merges: Sequence[tuple[bytes, bytes]] | None = None,
                 cache_size: int = 1 << 18):
        if ranks is None:
            ranks = {bytes([b]): b for b in range(256)}
        self._set_ranks(dict(ranks), merges)
        self._pretokenizer = PreTokenizer(pattern)
        self.pattern = self._pretokenizer.pattern          # the regex itself
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._cache_size = cache_size
        self._cache = ChunkCache(self._ranks, cache_size)
        self._special = SpecialTokens()
        if special_tokens is not None:
            self.add_special_tokens(special_tokens)

    def _set_ranks(self, ranks: dict[bytes, int],
                   merges: Sequence[tuple[bytes, bytes]] | None) -> None:
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise VocabularyFileError(
                f"a byte-level vocabulary needs all 256 single bytes as tokens; "
                f"{len(missing)} are missing (first: byte {missing[0]})")
        decoder: dict[int, bytes] = {}
        for token, idx in ranks.items():
            if not isinstance(token, bytes) or not token:
                raise VocabularyFileError(f"token {token!r} is not a non-empty bytes object")
            if not isinstance(idx, int) or idx < 0:
                raise VocabularyFileError(f"token {token!r} has invalid id {idx!r}")
            if idx in decoder:
                raise VocabularyFileError(
                    f"id {idx} is given to two tokens, {decoder[idx]!r} and {token!r}")
            decoder[idx] = token
        self._merges: dict[bytes, tuple[bytes, bytes]] = {}
        for left, right in merges or ():
            if left + right not in ranks:
                raise VocabularyFileError(
                    f"merge {left!r} + {right!r} makes no token of the vocabulary")
            self._merges[left + right] = (left, right)
        self._ranks = ranks
        self._decoder = decoder
        self._id_to_bytes = dict(decoder)       # ordinary and special, for decode
        self._top_ordinary_id = max(decoder)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """One more than the largest id, special tokens included (the embedding size)."""
        top = self._top_ordinary_id
        if self._special:
            top = max(top, max(self._special.values()))
        return top + 1

    n_vocab = vocab_size

    @property
    def special_tokens(self) -> dict[str, int]:
        """A copy of the special tokens, name -> id."""
        return dict(self._special)

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        """A copy of the ordinary vocabulary, token bytes -> id (tiktoken's name)."""
        return dict(self._ranks)

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The known merges as (left, right) byte pairs, in rank order (may be empty for
        a vocabulary read from a tiktoken file, which records only the results)."""
        return [self._merges[t] for t in sorted(self._merges, key=self._ranks.__getitem__)]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a single id decodes to (a special token's name, in UTF-8)."""
        return self.decode_bytes([token_id])

    def token_id(self, token: str | bytes) -> int:
        """The id of a special token's name, or of an ordinary token's bytes or text."""
        if isinstance(token, str) and token in self._special:
            return self._special[token]
        key = token.encode("utf-8") if isinstance(token, str) else token
        if key not in self._ranks:
            raise TokenizerError(f"{token!r} is not a token of this vocabulary")
        return self._ranks[key]

    def add_special_tokens(self, tokens: Iterable[str] | Mapping[str, int]) -> dict[str, int]:
        """Register special tokens; returns the ids of the ones given.

        Names in a sequence get the next free ids, after every ordinary token and every
        special token so far; a mapping places them at explicit ids, which must be free.
        Registering a name again with the same id is allowed (and does nothing).

        >>> tok = BPETokenizer()
        >>> tok.add_special_tokens(["[BOS]", "[EOS]"])
        {'[BOS]': 256, '[EOS]': 257}
        """
        if isinstance(tokens, str):
            raise TypeError("special_tokens must be a collection of names, not one string")
        items = (list(tokens.items()) if isinstance(tokens, Mapping)
                 else [(name, None) for name in tokens])
        added: dict[str, int] = {}
        for name, idx in items:
            if not isinstance(name, str) or not name:
                raise TokenizerError(f"a special token must be a non-empty string, got {name!r}")
            if name in self._special:
                if idx is not None and idx != self._special[name]:
                    raise TokenizerError(f"special token {name!r} already has id "
                                         f"{self._special[name]}, not {idx}")
                added[name] = self._special[name]
                continue
            if idx is None:
                idx = self.vocab_size
            elif not isinstance(idx, int) or idx < 0:
                raise TokenizerError(f"special token {name!r}: invalid id {idx!r}")
            elif idx in self._decoder or idx in self._special.values():
                raise TokenizerError(f"special token {name!r}: id {idx} is already taken")
            self._special[name] = idx
            self._id_to_bytes[idx] = name.encode("utf-8")
            added[name] = idx
        return added

    # -------------------------------------------------------------------- training
    def train(self, text: str | Iterable[str], vocab_size: int, *, min_frequency: int = 1,
              progress: Callable[[int, int], None] | None = None) -> "BPETokenizer":
        """Learn a vocabulary of `vocab_size` tokens from `text`; returns `self`.

        `vocab_size` counts everything: the 256 byte tokens, the merges, and the special
        tokens already registered (which move to the ids after the merges, in their
        order). `text` may be one string or an iterable of strings (lines, documents,
        blocks of a large file); each string is pre-tokenised on its own. Training
        replaces any ordinary vocabulary this tokenizer had. When the corpus runs out of
        pairs that occur `min_frequency` times, training stops with a smaller
        vocabulary. Tie-breaking and the algorithm: see `numpyllm.tokenizers.trainer`.
        `progress(done, total)` is called after each new token.

        >>> tok = BPETokenizer(special_tokens=["<|endoftext|>"])
        >>> _ = tok.train("low lower lowest " * 10, vocab_size=260)
        >>> tok.special_tokens, tok.vocab_size
        ({'<|endoftext|>': 259}, 260)
        """
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(self._special):
            raise TokenizerError(
                f"vocab_size must be at least 256 (one token per byte) plus the "
                f"{len(self._special)} special tokens, got {vocab_size!r}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        counts = Counter()
        for piece in ([text] if isinstance(text, str) else text):
            counts.update(self.split(piece))
        if not counts:
            raise TokenizerError("cannot train on an empty corpus")
        chunk_counts = {chunk.encode("utf-8"): n for chunk, n in counts.items()}
        merges, vocab = learn_merges(chunk_counts, vocab_size - len(self._special),
                                     min_frequency=min_frequency, progress=progress)
        ranks = {tok: i for i, tok in enumerate(vocab)}
        # The first merge to spell a token made it; a later alias merge names no new token.
        made: dict[bytes, tuple[bytes, bytes]] = {}
        for m in merges:
            made.setdefault(vocab[m.new], (vocab[m.left], vocab[m.right]))
        specials = sorted(self._special, key=self._special.__getitem__)
        self._set_ranks(ranks, list(made.values()))
        self._cache = ChunkCache(self._ranks, self._cache_size)
        self._special = SpecialTokens()
        self.add_special_tokens(specials)
        return self

    # -------------------------------------------------------------------- encoding
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with no special-token handling at all: `<|endoftext|>` in the
        text is just the characters `<`, `|`, ... (the fastest path)."""
        # One C-level pass: split, look each chunk up (misses run BPE), concatenate.
        return list(chain.from_iterable(map(self._cache.__getitem__,
                                            self._pretokenizer.split(text))))

    def encode(self, text: str, *, allowed_special: SpecialSpec = (),
               disallowed_special: SpecialSpec = "all") -> list[int]:
        """Encode text to token ids, following tiktoken's rule for special tokens (see
        `numpyllm.tokenizers.special_tokens`):

        - `allowed_special`: special tokens whose text becomes the special token's id
          ("all" for every registered one);
        - `disallowed_special`: special tokens whose text raises
          `DisallowedSpecialTokenError`; "all" (the default) means every registered one
          that is not allowed. Pass `()` to encode such text as ordinary characters.

        >>> tok = BPETokenizer(special_tokens=["<|endoftext|>"])
        >>> tok.encode("a<|endoftext|>", allowed_special="all")
        [97, 256]
        >>> len(tok.encode("a<|endoftext|>", disallowed_special=()))
        14
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return self._special.encode(text, self.encode_ordinary, allowed_special,
                                    disallowed_special)

    def split(self, text: str) -> list[str]:
        """The pre-tokenised chunks of `text`, what BPE merges within (see
        `numpyllm.tokenizers.pretokenize`).

        >>> BPETokenizer().split("Hello world, it's 2024!")
        ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']
        """
        return self._pretokenizer.split(text)

    # -------------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of the ids: exact even when they cut a UTF-8 character in two.

        >>> tok = BPETokenizer()
        >>> tok.decode_bytes(tok.encode("é")[:1])
        b'\\xc3'
        """
        # A list first: numpy ints hash slower than ints, and an iterator can't be re-read.
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        table = self._id_to_bytes
        try:
            return b"".join([table[i] for i in ids])
        except (KeyError, TypeError):
            pass
        for pos, i in enumerate(ids):       # report the first bad id precisely
            try:
                table[i]
            except (KeyError, TypeError):
                raise UnknownTokenIdError(
                    f"token id {i!r} at position {pos} is not in the vocabulary "
                    f"(ids 0..{self.vocab_size - 1}: {len(self._decoder)} ordinary and "
                    f"{len(self._special)} special tokens)") from None
        raise AssertionError("unreachable: every id was valid")  # pragma: no cover

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of the ids. Bytes that are not valid UTF-8 (a sequence cut inside a
        character) become U+FFFD with the default `errors="replace"`; use "strict" to
        raise instead, or `decode_bytes` to get them exactly."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer in numpyllm's versioned text format (`bpe_file.py`)."""
        write_bpe_file(path, self.pattern, self._ranks, self._merges, self._special)

    @classmethod
    def load(cls, path: str | os.PathLike, *, trust_pattern: bool = False,
             **kwargs) -> "BPETokenizer":
        """Read a file written by `save` (the format: `numpyllm.tokenizers.bpe_file`).

        A ``pattern-regex`` that is not one of the known patterns must pass
        `pattern_safety.check_pattern` (a regex from a file could otherwise take
        exponential time to split a text); with ``trust_pattern=True`` it need only
        compile: use that for files you made yourself.

        Any malformed, truncated or inconsistent file raises `VocabularyFileError` (a
        ValueError) naming the file, the line, the field and what was expected.
        """
        file = read_bpe_file(path, trust_pattern=trust_pattern)
        try:
            return cls(file.ranks, pattern=file.pattern, special_tokens=file.special_tokens,
                       merges=file.merges, **kwargs)
        except TokenizerError as exc:
            raise VocabularyFileError(f"{os.fspath(path)}: {exc}") from None

    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike,
                  **kwargs) -> "BPETokenizer":
        """GPT-2's tokenizer from its published `encoder.json` and `vocab.bpe`.

        The ids are GPT-2's: "Hello world" -> [15496, 995], and `<|endoftext|>` -> 50256
        when allowed (`encode(text, allowed_special={"<|endoftext|>"})`). Malformed or
        inconsistent files raise `VocabularyFileError` (see `gpt2.read_gpt2_vocab`).
        """
        ranks, merges, special = gpt2.read_gpt2_vocab(encoder_json, vocab_bpe)
        try:
            return cls(ranks, pattern="gpt2", special_tokens=special, merges=merges, **kwargs)
        except TokenizerError as exc:
            raise VocabularyFileError(f"{os.fspath(encoder_json)}: {exc}") from None

    @classmethod
    def from_tiktoken(cls, path: str | os.PathLike, *, pattern: str = "gpt2",
                      special_tokens: Mapping[str, int] | None = None,
                      **kwargs) -> "BPETokenizer":
        """A tokenizer from a tiktoken `.tiktoken` rank file (base64 token, rank per
        line). The file holds neither the split pattern nor the special tokens, so give
        them: e.g. `pattern="gpt4", special_tokens=gpt2.CL100K_SPECIAL_TOKENS` for
        cl100k_base. A malformed file raises `VocabularyFileError` (see
        `gpt2.read_tiktoken_ranks`)."""
        return cls(gpt2.read_tiktoken_ranks(path), pattern=pattern,
                   special_tokens=special_tokens, **kwargs)

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Write the ordinary vocabulary as a tiktoken rank file (tiktoken can load it)."""
        gpt2.write_tiktoken_ranks(path, self._ranks)

    def __repr__(self) -> str:
        name = gpt2.pattern_name(self.pattern) or "custom"
        return (f"BPETokenizer(vocab_size={self.vocab_size}, pattern={name!r}, "
                f"special_tokens={len(self._special)})")

