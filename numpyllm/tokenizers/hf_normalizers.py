"""The normalizers of a `tokenizer.json` (a str to a str), as `tokenizers` 0.23 runs them.

NFC, NFD, NFKC, NFKD; Prepend (Llama 2's "▁" before each piece of text); Replace (a string
or a vetted regex); Sequence; and BERT's BertNormalizer, Lowercase and StripAccents
(`bert_pretokenize.py`). `normalizer_from_json` reads one strictly; `to_json` writes it back.
"""
from __future__ import annotations

import unicodedata
from typing import Callable

from ._files import get_field
from .hf_steps import _Pattern, _type_of

__all__ = ["Normalizer", "normalizer_from_json"]


class Normalizer:
    """A str -> str step; `to_json()` gives its `tokenizer.json` object back."""

    def __init__(self, obj: dict, fn: Callable[[str], str]):
        self._obj, self._fn = obj, fn

    def __call__(self, text: str) -> str:
        return self._fn(text)

    def to_json(self) -> dict:
        return self._obj


def normalizer_from_json(obj, where: str) -> Normalizer:
    """A normalizer from its JSON object (`where` names the file and field)."""
    kind = _type_of(obj, where, _NORMALIZERS)
    return _NORMALIZERS[kind](obj, where)


def _unicode_form(obj, where):
    form = obj["type"]
    return Normalizer({"type": form}, lambda text: unicodedata.normalize(form, text))


def _prepend(obj, where):
    prefix = get_field(obj, "prepend", "string", where)
    return Normalizer({"type": "Prepend", "prepend": prefix},
                      lambda text: prefix + text if text else text)


def _replace(obj, where):
    pattern = _Pattern(get_field(obj, "pattern", "object", where), f"{where}.pattern")
    content = get_field(obj, "content", "string", where)
    out = {"type": "Replace", "pattern": pattern.to_json(), "content": content}
    if pattern.kind == "String":
        return Normalizer(out, lambda text: text.replace(pattern.source, content))
    return Normalizer(out, lambda text: pattern.regex.sub(lambda m: content, text))


def _normalizer_sequence(obj, where):
    steps = [normalizer_from_json(o, f"{where}.normalizers[{i}]")
             for i, o in enumerate(get_field(obj, "normalizers", "array", where))]

    def run(text: str) -> str:
        for step in steps:
            text = step(text)
        return text
    return Normalizer({"type": "Sequence", "normalizers": [s.to_json() for s in steps]}, run)


def _bert_normalizer(obj, where):
    from .bert_pretokenize import normalize_bert
    options = {k: get_field(obj, k, "boolean", where, True)
               for k in ("clean_text", "handle_chinese_chars", "lowercase")}
    options["strip_accents"] = get_field(obj, "strip_accents", "boolean|null", where, None)
    return Normalizer({"type": "BertNormalizer", **options},
                      lambda text: normalize_bert(text, **options))


def _lowercase(obj, where):
    # Per character, as Rust's char::to_lowercase (no final-sigma rule).
    return Normalizer({"type": "Lowercase"}, lambda text: "".join([c.lower() for c in text]))


def _strip_accents_normalizer(obj, where):
    # Drops every combining mark (Mn, Mc, Me: `tokenizers`' is_combining_mark), where
    # BertNormalizer drops Mn only; the decomposition is a separate NFD step.
    return Normalizer({"type": "StripAccents"}, lambda text: "".join(
        [c for c in text if not unicodedata.category(c).startswith("M")]))


_NORMALIZERS = {"NFC": _unicode_form, "NFD": _unicode_form, "NFKC": _unicode_form,
                "NFKD": _unicode_form, "Prepend": _prepend, "Replace": _replace,
                "Sequence": _normalizer_sequence, "BertNormalizer": _bert_normalizer,
                "Lowercase": _lowercase, "StripAccents": _strip_accents_normalizer}
