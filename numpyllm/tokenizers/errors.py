"""The exceptions the tokenizers raise at the user's boundary.

All of them are `ValueError`s, so code that already guards a tokenizer call with
`except ValueError` (and the command line, which reports ValueErrors in one line)
keeps working; catch the narrower class when you want to tell the cases apart.

    >>> from numpyllm.tokenizers import CharTokenizer, TokenizerError
    >>> tok = CharTokenizer.from_text("abc")
    >>> try:
    ...     tok.encode("abd")
    ... except TokenizerError as exc:
    ...     print(type(exc).__name__)
    UnknownCharacterError
"""
from __future__ import annotations

__all__ = ["TokenizerError", "VocabularyFileError", "UnsupportedTokenizerError",
           "UnknownTokenIdError", "UnknownCharacterError", "DisallowedSpecialTokenError"]


class TokenizerError(ValueError):
    """Base class of every error a tokenizer raises about its input."""


class VocabularyFileError(TokenizerError):
    """A vocabulary or tokenizer file is malformed, truncated or inconsistent."""


class UnknownTokenIdError(TokenizerError):
    """`decode` was given an id that names no token of this vocabulary."""


class UnknownCharacterError(TokenizerError):
    """A character tokenizer without an unknown token met a character it never saw."""


class DisallowedSpecialTokenError(TokenizerError):
    """The text contains a special token's string that the caller did not allow.

    Following tiktoken: a special token in user text is usually a prompt-injection
    accident, so it is an error unless the caller says either "encode it as the special
    token" (`allowed_special`) or "it is ordinary text" (`disallowed_special=()`).
    """


class UnsupportedTokenizerError(VocabularyFileError):
    """A well-formed tokenizer file asks for a component or an option numpyllm does not
    implement (a WordPiece model, a Lowercase normalizer ...). Refused, never ignored:
    ignoring it would give other ids than the library that wrote the file."""
