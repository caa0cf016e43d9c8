"""BERT's basic tokenizer: the normalizer and pre-tokenizer that run before WordPiece.

BERT never sees raw text. Its "basic tokenizer" (Devlin et al. 2019, and Hugging Face's
`BertNormalizer` + `BertPreTokenizer`, which this module follows character for character)
first **normalizes** the text:

1. clean: drop NUL, U+FFFD and control characters (Unicode categories Cc, Cf, Co, Cs,
   except tab, newline and carriage return, so "\\x0c" and "\\x85" go), and turn every
   remaining whitespace character into a plain space;
2. CJK characters (the CJK Unified Ideograph blocks) get a space on each side, so each
   becomes a word of its own: Chinese has no spaces between words, and BERT's vocabulary
   holds single ideographs;
3. optionally strip accents: decompose (NFD) and drop the non-spacing marks (category
   Mn), so "café" becomes "cafe" (by default: when lowercasing);
4. optionally lowercase, one character at a time (so a final "Σ" is "σ", not "ς").

then **pre-tokenizes** it into words, which WordPiece never crosses: split at whitespace
(the spaces go), then cut every punctuation character out as a word of its own (ASCII
punctuation, which includes ``$ + < = > ^ ` |``, and the Unicode categories P*).

    >>> normalize_bert("Héllo, Wörld!\\x00 日本")
    'hello, world!  日  本 '
    >>> pre_tokenize_bert("hello, world!  日  本 ")
    ['hello', ',', 'world', '!', '日', '本']

"Whitespace" is Rust's `char::is_whitespace` (the Unicode White_Space property), which is
not Python's `str.isspace` (that also counts U+001C..U+001F): the ids must be Hugging
Face's, so the set is written out below.
"""
from __future__ import annotations

import unicodedata

import regex

__all__ = ["normalize_bert", "pre_tokenize_bert", "is_bert_whitespace", "is_bert_punctuation",
           "is_chinese_char", "WHITESPACE"]

# The Unicode White_Space property (Rust's char::is_whitespace).
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                       "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# CJK Unified Ideographs and their extensions, and the compatibility ideographs, the ranges
# of BERT's _is_chinese_char (Hangul and kana are not in them: they have spaces).
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_CJK_RE = regex.compile("([" + "".join(f"\\U{a:08X}-\\U{b:08X}" for a, b in _CJK) + "])")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# tokenizers' "other" categories; its tables mark no character Cn (unassigned), so
# unassigned characters are kept, as there.
_OTHER = frozenset(("Cc", "Cf", "Co", "Cs"))


def is_bert_whitespace(c: str) -> bool:
    return c in WHITESPACE


def is_chinese_char(c: str) -> bool:
    cp = ord(c)
    return any(a <= cp <= b for a, b in _CJK)


def is_bert_punctuation(c: str) -> bool:
    """ASCII punctuation (33-47, 58-64, 91-96, 123-126) or a Unicode P* character."""
    return c in _ASCII_PUNCT or unicodedata.category(c).startswith("P")


def _clean(text: str) -> str:
    out = []
    for c in text:
        if c in "\t\n\r":
            out.append(" ")
        elif c == "\ufffd" or unicodedata.category(c) in _OTHER:
            continue          # controls go before spaces are mapped: "\x0c", "\x85" go
        elif c in WHITESPACE:
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def normalize_bert(text: str, *, clean_text: bool = True, handle_chinese_chars: bool = True,
                   strip_accents: bool | None = None, lowercase: bool = True) -> str:
    """`text` as BERT's normalizer leaves it (steps 1-4 of the module docstring;
    `strip_accents=None` strips them exactly when lowercasing, as BERT does)."""
    if clean_text:
        text = _clean(text)
    if handle_chinese_chars:
        text = _CJK_RE.sub(r" \1 ", text)
    if strip_accents or (strip_accents is None and lowercase):
        text = _strip_accents(text)
    if lowercase:
        # Per character, as Rust's char::to_lowercase: no final-sigma rule.
        text = "".join([c.lower() for c in text]) if not text.isascii() else text.lower()
    return text


_WORDS = regex.compile("[^" + "".join(sorted(WHITESPACE)).replace("\\", "\\\\") + "]+")


def pre_tokenize_bert(text: str) -> list[str]:
    """The words of `text`: cut at whitespace (dropped) and around each punctuation
    character (kept, one word each)."""
    out = []
    for chunk in _WORDS.findall(text):
        if chunk.isalnum():                 # the common case: no punctuation inside
            out.append(chunk)
            continue
        start = 0
        for i, c in enumerate(chunk):
            if is_bert_punctuation(c):
                if i > start:
                    out.append(chunk[start:i])
                out.append(c)
                start = i + 1
        if start < len(chunk):
            out.append(chunk[start:])
    return out
