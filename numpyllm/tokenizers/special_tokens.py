"""Special tokens in text: tiktoken's rule for when a special token's name becomes its id.

Special tokens (`<|endoftext|>`, `[PAD]`, chat markers) are ids that mean something other
than text. They get ids of their own, after the ordinary tokens, and BPE never makes
them: merging bytes only ever gives ordinary tokens. The question is what to do when the
*text* spells a special token's name. Following tiktoken, the caller says, per name:

- `allowed_special`: the name becomes the special token's id ("all": every registered
  name); the text is cut around it and each piece is encoded as ordinary text;
- `disallowed_special`: the name raises `DisallowedSpecialTokenError` ("all", the
  default: every registered name that is not allowed), since a special token in user
  text is usually an accident or a prompt injection;
- in neither set, the name is ordinary text, encoded character by character like any
  other (`disallowed_special=()` asks for that).

    >>> specials = SpecialTokens({"<|endoftext|>": 256})
    >>> chars = lambda text: [ord(c) for c in text]       # stands in for BPE here
    >>> specials.encode("a<|endoftext|>b", chars, allowed_special="all")
    [97, 256, 98]
    >>> len(specials.encode("a<|endoftext|>b", chars, disallowed_special=()))
    15

Names are found with one regex per set of names, longest name first, so that of two
names where one contains the other (`<|end|>` and `<|end|>x`) the longer one wins.
"""
from __future__ import annotations

from typing import Callable, Collection, Literal, Union

import regex

from .errors import DisallowedSpecialTokenError, TokenizerError

__all__ = ["SpecialSpec", "SpecialTokens"]

SpecialSpec = Union[Literal["all"], Collection[str]]   # typing.Union: Python 3.10 too


class SpecialTokens(dict):
    """Special token name -> id: a dict that also finds its names in text.

    The tokenizer registers names in it (and decides their ids); `encode` applies the
    allowed/disallowed rule of the module docstring.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One compiled regex per set of names. Keyed by the names themselves, so
        # registering another token never makes an entry wrong.
        self._regexes: dict[frozenset[str], regex.Pattern] = {}

    def names(self, spec: SpecialSpec, what: str) -> set[str]:
        """The registered names `spec` stands for: "all", or a collection of names, each of
        which must be registered (`what` names the argument, for the message)."""
        if spec == "all":
            return set(self)
        if isinstance(spec, str):
            raise TypeError(f"{what} must be 'all' or a collection of special token "
                            f"names, not the string {spec!r}")
        names = set(spec)
        unknown = names - set(self)
        if unknown:
            raise TokenizerError(f"{what} names unregistered special tokens "
                                 f"{sorted(unknown)}; registered: {sorted(self)}")
        return names

    def finder(self, names: Collection[str]) -> regex.Pattern:
        """A compiled regex matching any of `names`, the longest first."""
        key = frozenset(names)
        pat = self._regexes.get(key)
        if pat is None:
            # Longest first, so a name that contains another is matched whole.
            alternatives = sorted(names, key=lambda s: (-len(s), s))
            pat = regex.compile("|".join(regex.escape(s) for s in alternatives))
            self._regexes[key] = pat
        return pat

    def allowed(self, text: str, allowed_special: SpecialSpec = (),
                disallowed_special: SpecialSpec = "all"):
        """The names `allowed_special` allows (a collection), after checking that `text`
        spells none of the disallowed ones: `DisallowedSpecialTokenError` if it does."""
        if disallowed_special == "all" and (allowed_special == () or allowed_special == "all"):
            # The two usual calls, made once per line or document of a corpus: nothing
            # allowed and every name refused, or every name allowed. Resolving the sets
            # below gives exactly this, at a cost that shows on short texts.
            allowed, disallowed = (self, ()) if allowed_special == "all" else ((), self)
        else:
            allowed = self.names(allowed_special, "allowed_special")
            if disallowed_special == "all":
                disallowed = set(self) - allowed
            else:
                disallowed = self.names(disallowed_special, "disallowed_special")
        if disallowed:
            match = self.finder(disallowed).search(text)
            if match:
                raise DisallowedSpecialTokenError(
                    f"the text contains the special token {match.group()!r} at index "
                    f"{match.start()}; pass allowed_special={{{match.group()!r}}} (or "
                    f"'all') to encode it as a special token, or disallowed_special=() to "
                    f"encode it as ordinary text")
        return allowed

    def encode(self, text: str, encode_ordinary: Callable[[str], list[int]],
               allowed_special: SpecialSpec = (),
               disallowed_special: SpecialSpec = "all") -> list[int]:
        """The ids of `text`: each allowed name becomes its id, every piece between them
        goes through `encode_ordinary`; a disallowed name anywhere raises
        `DisallowedSpecialTokenError` before anything is encoded."""
        allowed = self.allowed(text, allowed_special, disallowed_special)
        if not allowed:
            return encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for match in self.finder(allowed).finditer(text):
            ids += encode_ordinary(text[start:match.start()])
            ids.append(self[match.group()])
            start = match.end()
        ids += encode_ordinary(text[start:])
        return ids
