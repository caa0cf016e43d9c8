"""Pre-tokenisation: cutting text into the chunks that BPE merges within.

BPE never merges across a chunk boundary. A regular expression first cuts the text into
chunks (a word with its leading space, a run of digits, a run of punctuation,
whitespace), so `" dog"` and `" dog."` share the token for `" dog"`, and no merge is spent
on a pair like `"g."` that straddles a word and its punctuation. The chunks, joined, give
the text back.

    >>> PreTokenizer("gpt2").split("Hello world, it's 2024!")
    ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']

The patterns (GPT-2's, GPT-4's cl100k, GPT-4o's o200k) are published with their
vocabularies and live in `gpt2.py`, by name; a pattern read from a file is vetted by
`pattern_safety.py`. This module compiles one and applies it.
"""
from __future__ import annotations

import re

import regex

from . import gpt2
from .errors import TokenizerError

__all__ = ["PreTokenizer"]


class PreTokenizer:
    """A compiled split pattern: `split(text)` returns the chunks of `text`.

    Args:
        pattern: a regex, or a name of `gpt2.PATTERNS` ("gpt2", "gpt4"/"cl100k",
            "gpt4o"/"o200k"). `self.pattern` is the regex itself.

    A pattern that does not compile raises `TokenizerError`.
    """

    def __init__(self, pattern: str):
        self.pattern = gpt2.resolve_pattern(pattern)
        try:
            self._regex = regex.compile(self.pattern)
        except (regex.error, RecursionError, OverflowError) as exc:
            raise TokenizerError(f"invalid pre-tokenisation pattern {pattern!r:.80}: "
                                 f"{str(exc).splitlines()[0]}") from None
        # The third-party `regex` engine is needed for \p{L} and \p{N}, but a known
        # pattern has an ASCII twin for the standard library's faster `re`, which gives
        # the same chunks on ASCII text (see gpt2.ASCII_TWINS).
        twin = gpt2.ASCII_TWINS.get(self.pattern)
        self._ascii_regex = re.compile(twin) if twin else None

    def split(self, text: str) -> list[str]:
        """The chunks of `text`, in order."""
        if self._ascii_regex is not None and text.isascii():
            return self._ascii_regex.findall(text)     # same chunks, faster engine
        return self._regex.findall(text)


CACHE_WORDS = 1 << 18           # words a tokenizer's cache keeps (then it stops growing)


def cached_ids(words, cache: dict, tokenize) -> list[int]:
    """The ids of each word in turn, each word's ids computed once (`tokenize(word)`) and
    kept in `cache` (up to `CACHE_WORDS` words): WordPiece's and Unigram's encoders, whose
    corpora repeat most words."""
    ids: list[int] = []
    for w in words:
        hit = cache.get(w)
        if hit is None:
            hit = tokenize(w)
            if len(cache) < CACHE_WORDS:
                cache[w] = hit
        ids += hit
    return ids
