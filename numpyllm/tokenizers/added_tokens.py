"""Added tokens: strings that become one id wherever the text spells them, before BPE runs.

A Hugging Face tokenizer keeps, beside its BPE vocabulary, a list of *added tokens*:
special ones (`<s>`, `<|im_start|>`, `<|endoftext|>`) and ordinary ones (a word someone
added to the vocabulary). Encoding first cuts the text around every added token it spells,
and only the pieces between them go through normalization, pre-tokenization and BPE. So
"a<|im_end|>b" is the pieces "a", `<|im_end|>`, "b", whatever BPE would have made of the
characters `<`, `|`, ... Four flags per token, with `tokenizers`' exact rules:

- ``normalized``: matched in the normalized text (after NFC, "▁" for spaces ...), not in
  the text as given; special tokens usually are not;
- ``single_word``: only where no word character (``\\w``) touches it on either side;
- ``lstrip`` / ``rstrip``: the whitespace on that side becomes part of the token (Llama's
  `<mask>`-style tokens).

Matching is leftmost-longest: at the first position where any token matches, the longest
one wins ("<|end|>x" over "<|end|>").

Special tokens also follow numpyllm's rule for text (`special_tokens.py`, tiktoken's):
a special token's name in the text raises unless the caller allows it, or says it is
ordinary text (then it is not cut out, as `tokenizers` does with `encode_special_tokens`).

    >>> added = AddedTokens([AddedToken("<s>", 1, special=True)])
    >>> added.find("a<s>b", added.raw, skip=())
    [(None, 0, 1), (AddedToken(content='<s>', id=1, special=True, lstrip=False, rstrip=False, single_word=False, normalized=False), 1, 4), (None, 4, 5)]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Collection, Iterable

import regex

from .special_tokens import SpecialTokens

__all__ = ["AddedToken", "AddedTokens"]

_WORD = regex.compile(r"\w")          # Unicode word characters, as Rust's regex-syntax
_SPACE = regex.compile(r"\s")         # Unicode White_Space, as Rust's char::is_whitespace


@dataclass(frozen=True)
class AddedToken:
    """One entry of `tokenizer.json`'s "added_tokens" (``normalized`` defaults to
    ``not special``, as in `tokenizers`)."""
    content: str
    id: int
    special: bool = False
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = field(default=None)      # type: ignore[assignment]

    def __post_init__(self):
        if self.normalized is None:
            object.__setattr__(self, "normalized", not self.special)

    def to_json(self) -> dict:
        """The JSON object, in `tokenizers`' key order."""
        d = asdict(self)
        return {k: d[k] for k in ("id", "content", "single_word", "lstrip", "rstrip",
                                  "normalized", "special")}


class _Matcher:
    """One leftmost-longest regex over a set of added tokens."""

    def __init__(self, tokens: Iterable[AddedToken]):
        self.by_content = {t.content: t for t in tokens}
        names = sorted(self.by_content, key=lambda s: (-len(s), s))
        self.regex = regex.compile("|".join(map(regex.escape, names))) if names else None


class AddedTokens:
    """The added tokens of a tokenizer, and the two matchers encoding uses: `raw` for the
    tokens matched in the text as given, `normalized` for those matched after
    normalization. `specials` is the name -> id table of the special ones."""

    def __init__(self, tokens: Iterable[AddedToken] = ()):
        self.tokens = list(tokens)
        self.by_id = {t.id: t for t in self.tokens}
        self.by_content = {t.content: t for t in self.tokens}
        self.raw = _Matcher(t for t in self.tokens if not t.normalized)
        self.normalized = _Matcher(t for t in self.tokens if t.normalized)
        self.specials = SpecialTokens({t.content: t.id for t in self.tokens if t.special})

    def __len__(self) -> int:
        return len(self.tokens)

    def find(self, text: str, matcher: _Matcher, skip: Collection[str]
             ) -> list[tuple[AddedToken | None, int, int]]:
        """`text` cut into spans ``(token, start, end)``, token None between added tokens:
        `tokenizers`' `AddedVocabulary::find_matches`, flag for flag. Tokens named in
        `skip` (special tokens the caller treats as text) are not cut out."""
        if not text or matcher.regex is None:
            return [(None, 0, len(text))]
        out: list = []
        offset = 0                   # where the text not yet emitted starts
        for m in matcher.regex.finditer(text):
            start, stop = m.span()
            token = matcher.by_content[m.group()]
            if token.content in skip:
                continue
            if token.single_word:
                alone_left = start == 0 or not _WORD.match(text[start - 1])
                alone_right = stop == len(text) or not _WORD.match(text[stop])
                if not (alone_left and alone_right):
                    continue
            if token.lstrip:         # the spaces before it, unless a token took them
                left = start
                while left > 0 and _SPACE.match(text[left - 1]):
                    left -= 1
                start = max(left, offset)
            if token.rstrip:
                while stop < len(text) and _SPACE.match(text[stop]):
                    stop += 1
            if offset < start:
                out.append((None, offset, start))
            out.append((token, start, stop))
            offset = stop
        if offset != len(text):
            out.append((None, offset, len(text)))
        return out
