"""Exact deduplication by normalised hashing: of whole documents, and of paragraphs (or
lines) repeated across documents.

**The normalisation** decides what "the same" means. `normalize(text)`:

  1. Unicode NFKC (a full-width "Ａ" and "A", a ligature "ﬁ" and "fi" become one),
  2. lower case (``str.casefold``),
  3. every run of whitespace (spaces, tabs, newlines) becomes one space, and the ends
     are stripped.

Punctuation and digits are kept: "version 2" and "version 3" differ. Two texts are
duplicates when their normalised forms have the same 128-bit BLAKE2b digest (a chance
collision among 10^12 documents has probability about 10^-15).

**Only digests are kept**, never texts: 16 bytes of digest per distinct document (about
100 bytes with the Python set around it), so the index of a corpus of N documents takes
about 100 N bytes whatever their length.

**First occurrence wins**: the stream is read in order and a document (paragraph) is
dropped when an equal one came before it, so deduplicating is idempotent and keeps the
order of what survives.

>>> d = ExactDedup()
>>> [d.seen_before(t) for t in ["Hello  world", "hello world\\n", "Hello, world"]]
[False, True, False]
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["normalize", "digest", "ExactDedup", "SpanDedup"]

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed to one space, ends stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def digest(text: str) -> bytes:
    """The 16-byte BLAKE2b digest of `text`'s normalised UTF-8 form."""
    # surrogatepass: a lone surrogate (possible in a str from JSON) still hashes
    return hashlib.blake2b(normalize(text).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


class ExactDedup:
    """Remembers the digests of the documents it has seen."""

    def __init__(self):
        self._seen: set[bytes] = set()

    def seen_before(self, text: str) -> bool:
        """Whether an equal (normalised) text was seen; remembers `text` either way."""
        key = digest(text)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def __len__(self) -> int:
        return len(self._seen)


class SpanDedup:
    """Drops the paragraphs (unit "paragraph": blocks separated by blank lines) or lines
    (unit "line") of a document that already appeared in an earlier document, when at
    least `min_chars` characters long after normalisation. Boilerplate (a licence header,
    a cookie notice, a navigation bar) is kept once, where it first appears.

    Short spans are never dropped: "}" or "Thank you." repeat across documents because
    language does, not because a page was copied. A span repeated inside one document is
    left alone here (that is what the Gopher repetition rules judge).

    >>> s = SpanDedup("paragraph", min_chars=10)
    >>> s("Copyright 2020 ACME.\\n\\nFirst story.")
    'Copyright 2020 ACME.\\n\\nFirst story.'
    >>> s("Second story.\\n\\nCopyright  2020 ACME.")
    'Second story.'
    """

    def __init__(self, unit: str = "paragraph", min_chars: int = 50):
        if unit not in ("paragraph", "line"):
            raise ValueError(f"unit {unit!r}: expected 'paragraph' or 'line'")
        if min_chars < 1:
            raise ValueError(f"min_chars must be at least 1, got {min_chars}")
        self.unit, self.min_chars = unit, min_chars
        self._split = re.compile(r"\n[ \t\r\f\v]*\n\s*" if unit == "paragraph" else r"\n")
        self._seen: set[bytes] = set()

    def __call__(self, text: str) -> str:
        """`text` without its spans seen in earlier documents ("" when none is left)."""
        spans = self._split.split(text)
        seps = self._split.findall(text)
        kept, new = [], set()
        for i, span in enumerate(spans):
            norm = normalize(span)
            if len(norm) >= self.min_chars:
                key = hashlib.blake2b(norm.encode("utf-8", "surrogatepass"),
                                      digest_size=16).digest()
                if key in self._seen:
                    continue
                new.add(key)
            kept.append((seps[i - 1] if i and kept else "", span))
        self._seen |= new            # repeats inside this document do not count
        return "".join(sep + span for sep, span in kept)

    def __len__(self) -> int:
        return len(self._seen)
