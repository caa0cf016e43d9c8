"""A character-level tokenizer: one id per distinct character of a corpus.

The vocabulary of nanoGPT's character-level Tiny Shakespeare (65 characters): tiny, so
a small model learns it fast, at the price of long sequences.

    >>> tok = CharTokenizer.from_text("hello world")
    >>> tok.chars
    (' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w')
    >>> tok.encode("hello")
    [3, 2, 4, 4, 5]
    >>> tok.decode([7, 5, 6, 4, 1])
    'world'

A character the vocabulary never saw raises `UnknownCharacterError`, unless an unknown
token is configured (`unk_token="[UNK]"`), which then stands in for it. Special tokens
(`special_tokens=["[PAD]", "[EOS]"]`) get ids after the characters; they are reached by
id (`token_id("[PAD]")`), never by spelling their name in the text.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import numpy as np

from . import _files
from .errors import TokenizerError, UnknownCharacterError, UnknownTokenIdError, VocabularyFileError

__all__ = ["CharTokenizer"]

_FORMAT = "numpyllm-char"
_VERSION = 1


def _codepoints(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate is still one character of a Python str.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer:
    """Characters in a fixed order -> ids 0..len(chars)-1, then the special tokens.

    Args:
        chars: the vocabulary's characters, in id order, each once.
        unk_token: what an unseen character becomes: one of `chars`, or a name added as
            a special token. None (default): unseen characters are an error.
        special_tokens: names given the ids after the characters, in order.
    """

    def __init__(self, chars: Iterable[str], *, unk_token: str | None = None,
                 special_tokens: Sequence[str] = ()):
        chars = tuple(chars)
        if not chars:
            raise TokenizerError("a character vocabulary needs at least one character")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise TokenizerError(f"vocabulary entries must be single characters, got {bad[:3]!r}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise TokenizerError(f"character {dup!r} appears twice in the vocabulary")
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a sequence of names, not one string")
        specials = list(special_tokens)
        if unk_token is not None and unk_token not in chars and unk_token not in specials:
            specials.append(unk_token)
        if len(set(specials)) != len(specials) or any(
                not isinstance(s, str) or not s for s in specials):
            raise TokenizerError(f"special tokens must be distinct non-empty strings, got {specials!r}")
        self._chars = chars
        self._specials = tuple(specials)
        self._stoi = {c: i for i, c in enumerate(chars)}
        self._itos = list(chars) + list(specials)
        self.unk_token = unk_token
        self._unk_id = None if unk_token is None else self.token_id(unk_token)
        # Sorted code points and their ids, for a vectorised encode.
        cps = _codepoints("".join(chars))
        order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[order]
        self._sorted_ids = order.astype(np.int64)

    @classmethod
    def from_text(cls, text: str, **kwargs) -> "CharTokenizer":
        """The vocabulary of `text`: its distinct characters, sorted by code point."""
        if not text:
            raise TokenizerError("cannot build a character vocabulary from an empty corpus")
        return cls(sorted(set(text)), **kwargs)

    @property
    def vocab_size(self) -> int:
        """Characters plus special tokens."""
        return len(self._itos)

    n_vocab = vocab_size

    @property
    def chars(self) -> tuple[str, ...]:
        return self._chars

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token name -> id (a copy)."""
        return {s: len(self._chars) + i for i, s in enumerate(self._specials)}

    def token_id(self, token: str) -> int:
        """The id of a character or of a special token's name."""
        if token in self._stoi:
            return self._stoi[token]
        if token in self._specials:
            return len(self._chars) + self._specials.index(token)
        raise TokenizerError(f"{token!r} is not a token of this vocabulary")

    def encode(self, text: str) -> list[int]:
        """The id of each character of `text`."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        cps = _codepoints(text)
        pos = np.searchsorted(self._sorted_cps, cps)
        pos_clipped = np.minimum(pos, len(self._sorted_cps) - 1)
        known = self._sorted_cps[pos_clipped] == cps
        ids = self._sorted_ids[pos_clipped]
        if not known.all():
            if self._unk_id is None:
                at = int(np.argmin(known))
                ch = text[at]
                raise UnknownCharacterError(
                    f"character {ch!r} (U+{ord(ch):04X}) at index {at} is not in the "
                    f"vocabulary of {len(self._chars)} characters; build the vocabulary "
                    f"from text that contains it, or configure unk_token")
            ids = np.where(known, ids, self._unk_id)
        return ids.tolist()

    def decode(self, ids: Iterable[int]) -> str:
        """The text of the ids; a special token is written as its name."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        itos = self._itos
        try:
            if not ids or min(ids) >= 0:
                return "".join([itos[i] for i in ids])
        except (IndexError, TypeError):
            pass
        for pos, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i < len(itos):
                raise UnknownTokenIdError(
                    f"token id {i!r} at position {pos} is not in the vocabulary "
                    f"(ids 0..{len(itos) - 1})")
        raise AssertionError("unreachable: every id was valid")  # pragma: no cover

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (readable: the characters are listed in order)."""
        doc = {"format": _FORMAT, "version": _VERSION, "chars": list(self._chars),
               "special_tokens": list(self._specials), "unk_token": self.unk_token}
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CharTokenizer":
        """Read a file written by `save`: a UTF-8 JSON object ``{"format": "numpyllm-char",
        "version": 1, "chars": [one-character strings, in id order], "special_tokens":
        [names], "unk_token": a name or null}``. Any malformed or inconsistent file raises
        `VocabularyFileError` (a ValueError) naming the file, the field and what was
        expected."""
        path = os.fspath(path)
        doc = _files.parse_json(_files.read_text(path), path, "a JSON object")
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise VocabularyFileError(f"{path}: format: not a {_FORMAT} file (expected a JSON "
                                      f"object with \"format\": \"{_FORMAT}\")")
        if doc.get("version") != _VERSION:
            raise VocabularyFileError(f"{path}: format version {doc.get('version')!r:.20} is "
                                      f"not supported (this numpyllm reads version {_VERSION})")
        chars, specials = doc.get("chars"), doc.get("special_tokens", [])
        if not isinstance(chars, list) or not isinstance(specials, list):
            raise VocabularyFileError(f"{path}: 'chars' and 'special_tokens' must be lists")
        unk = doc.get("unk_token")
        if unk is not None and not isinstance(unk, str):
            raise VocabularyFileError(f"{path}: unk_token: expected a string or null, got "
                                      f"{type(unk).__name__}")
        try:
            return cls(chars, unk_token=unk, special_tokens=specials)
        except (TokenizerError, TypeError) as exc:
            raise VocabularyFileError(f"{path}: {exc}") from None

    def __repr__(self) -> str:
        return (f"CharTokenizer(vocab_size={self.vocab_size}, "
                f"special_tokens={list(self._specials)}, unk_token={self.unk_token!r})")
