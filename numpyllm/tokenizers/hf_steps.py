"""What every step of a `tokenizer.json` pipeline shares (`hf_pipeline.py` names the steps).

GPT-2's byte-level alphabet (`byte_level_encode`, `byte_level_decode`) and SentencePiece's
visible space (`METASPACE`); reading a step's `type` (`_type_of`, an unknown one an
`UnsupportedTokenizerError`) and a one-character field (`_char`); and the patterns of Split
and Replace (`_Pattern`), whose regexes must pass `pattern_safety.check_pattern` (`_compile`).
"""
from __future__ import annotations

import regex

from . import gpt2, pattern_safety
from ._files import expect, get_field
from .errors import UnsupportedTokenizerError, VocabularyFileError

__all__ = ["byte_level_encode", "byte_level_decode", "METASPACE"]

METASPACE = "\u2581"     # "▁", SentencePiece's visible space
_BYTE_TO_CHAR = gpt2.byte_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
_BYTE_CHARS = tuple(_BYTE_TO_CHAR[b] for b in range(256))


def byte_level_encode(text: str) -> str:
    """The text's UTF-8 bytes, each written as its printable character (GPT-2's alphabet):
    ``byte_level_encode(" é") == 'ĠÃ©'``."""
    return "".join([_BYTE_CHARS[b] for b in text.encode("utf-8")])


def byte_level_decode(token: str) -> bytes:
    """The bytes a byte-level token stands for. As `tokenizers` does, a token with a
    character outside the alphabet (an added token such as "<|im_start|>\\n") stands for its
    own UTF-8 bytes."""
    try:
        return bytes([_CHAR_TO_BYTE[c] for c in token])
    except KeyError:
        return token.encode("utf-8")


def _type_of(obj, where: str, kinds: dict) -> str:
    expect(obj, "object", where)
    kind = get_field(obj, "type", "string", where)
    if kind not in kinds:
        raise UnsupportedTokenizerError(
            f"{where}.type: {kind!r:.60} is not supported (numpyllm implements "
            f"{', '.join(sorted(kinds))})")
    return kind


def _char(obj: dict, key: str, where: str) -> str:
    value = get_field(obj, key, "string", where)
    if len(value) != 1:
        raise VocabularyFileError(f"{where}.{key}: expected one character, got {value!r:.60}")
    return value


def _compile(pattern: str, where: str) -> regex.Pattern:
    """A regex from a file: a known pattern, or one `pattern_safety` can prove harmless."""
    try:
        pattern_safety.check_pattern(pattern)
    except pattern_safety.UnsafePatternError as exc:
        raise UnsupportedTokenizerError(f"{where}: regex refused: {exc}") from None
    except ValueError as exc:
        raise VocabularyFileError(f"{where}: expected a regular expression, but {exc}") from None
    return regex.compile(pattern)


class _Pattern:
    """A Split or Replace pattern: {"String": s} (literal) or {"Regex": r} (vetted)."""

    def __init__(self, obj, where: str):
        expect(obj, "object", where)
        if len(obj) != 1 or not ({"String", "Regex"} & set(obj)):
            raise VocabularyFileError(f"{where}: expected {{\"String\": ...}} or "
                                      f"{{\"Regex\": ...}}, got keys {sorted(obj)[:4]}")
        (self.kind, self.source), = obj.items()
        expect(self.source, "string", f"{where}.{self.kind}")
        if self.kind == "String":
            self.regex = regex.compile(regex.escape(self.source))
        else:
            self.regex = _compile(self.source, f"{where}.Regex")

    def to_json(self) -> dict:
        return {self.kind: self.source}

    def matches(self, text: str) -> list[tuple[int, int, bool]]:
        """`tokenizers`' `Pattern::find_matches`: the text cut into spans, each marked
        whether it is a match. An empty text is one empty non-match."""
        if not text:
            return [(0, 0, False)]
        out, prev = [], 0
        for m in self.regex.finditer(text):
            start, end = m.span()
            if prev != start:
                out.append((prev, start, False))
            out.append((start, end, True))
            prev = end
        if prev != len(text):
            out.append((prev, len(text), False))
        return out
