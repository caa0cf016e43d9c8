"""The decoders of a `tokenizer.json` (token strings to text), as `tokenizers` 0.23 runs them.

ByteLevel; Replace (the normalizer's rule, `hf_normalizers.py`); ByteFallback (runs of
`<0xNN>` tokens back to UTF-8 text); Fuse (join); Strip; Metaspace (the inverse of the
pre-tokenizer's, `hf_pre_tokenizers.py`); WordPiece (`wordpiece.py`); Sequence.
`decoder_from_json` reads one strictly, as one flat chain of steps.
"""
from __future__ import annotations

import regex

from ._files import get_field
from .hf_normalizers import _replace
from .hf_pre_tokenizers import _metaspace
from .hf_steps import _char, _type_of, byte_level_decode

__all__ = ["Decoder", "decoder_from_json"]


class Decoder:
    """A chain of decoder steps, each list[str] -> list[str] as `tokenizers`' `decode_chain`;
    ``decoder(tokens) -> text`` joins the result."""

    def __init__(self, obj: dict, steps: list, kinds: list[str]):
        self._obj, self.steps, self.kinds = obj, steps, kinds     # kinds: the step types

    def __call__(self, tokens: list[str]) -> str:
        for step in self.steps:
            tokens = step(tokens)
        return "".join(tokens)

    def to_json(self) -> dict:
        return self._obj


def decoder_from_json(obj, where: str) -> Decoder:
    """A decoder from its JSON object; `Sequence`s are flattened into one chain."""
    steps: list = []
    out = _decoder_steps(obj, where, steps)
    return Decoder(out, steps, [s.__name__ for s in steps])


_BYTE_TOKEN = regex.compile(r"<0x(\+?[0-9A-Fa-f]{1,2})>")   # what Rust's from_str_radix takes


def _decoder_steps(obj, where: str, steps: list) -> dict:
    kind = _type_of(obj, where, {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip",
                                 "Metaspace", "Sequence", "WordPiece"})
    if kind == "Sequence":
        items = get_field(obj, "decoders", "array", where)
        return {"type": "Sequence", "decoders": [
            _decoder_steps(o, f"{where}.decoders[{i}]", steps) for i, o in enumerate(items)]}
    if kind == "ByteLevel":
        out = {k: get_field(obj, k, "boolean", where, True)
               for k in ("add_prefix_space", "trim_offsets", "use_regex")}
        def byte_level(tokens):
            return [b"".join(map(byte_level_decode, tokens)).decode("utf-8", "replace")]
        steps.append(byte_level)
        return {"type": "ByteLevel", **out}
    if kind == "Replace":
        norm = _replace(obj, where)        # the same object and rule as the normalizer
        def replace(tokens):
            return [norm(t) for t in tokens]
        steps.append(replace)
        return norm.to_json()
    if kind == "WordPiece":
        from .wordpiece import wordpiece_decode
        prefix = get_field(obj, "prefix", "string", where, "##")
        cleanup = get_field(obj, "cleanup", "boolean", where, True)

        def wordpiece(tokens):
            return wordpiece_decode(tokens, prefix, cleanup)
        steps.append(wordpiece)
        return {"type": "WordPiece", "prefix": prefix, "cleanup": cleanup}
    if kind == "ByteFallback":
        steps.append(_byte_fallback)
        return {"type": "ByteFallback"}
    if kind == "Fuse":
        def fuse(tokens):
            return ["".join(tokens)]
        steps.append(fuse)
        return {"type": "Fuse"}
    if kind == "Strip":
        content = _char(obj, "content", where)
        start = get_field(obj, "start", "integer", where)
        stop = get_field(obj, "stop", "integer", where)

        def strip(tokens):
            out = []
            for t in tokens:
                a = 0
                while a < min(start, len(t)) and t[a] == content:
                    a += 1
                b = 0
                while b < min(stop, len(t) - a) and t[len(t) - 1 - b] == content:
                    b += 1
                out.append(t[a:len(t) - b])
            return out
        steps.append(strip)
        return {"type": "Strip", "content": content, "start": start, "stop": stop}
    # Metaspace: "▁" is a space again, except in the first token, where the pre-tokenizer
    # put it (unless prepend_scheme is "never"): there every "▁" goes, as in `tokenizers`.
    _, out = _metaspace(obj, where)
    replacement, scheme = out["replacement"], out["prepend_scheme"]

    def metaspace(tokens):
        return [t.replace(replacement, "" if i == 0 and scheme != "never" else " ")
                for i, t in enumerate(tokens)]
    steps.append(metaspace)
    return out


def _byte_fallback(tokens: list[str]) -> list[str]:
    """Runs of `<0xNN>` tokens become the text of their bytes; a run that is not valid
    UTF-8 becomes one U+FFFD per byte token (`tokenizers`' rule, not Python's)."""
    out, run = [], bytearray()
    for t in tokens + [None]:
        m = _BYTE_TOKEN.fullmatch(t) if t is not None and len(t) == 6 else None
        if m:
            run.append(int(m.group(1), 16))
            continue
        if run:
            try:
                out.append(run.decode("utf-8"))
            except UnicodeDecodeError:
                out += ["\ufffd"] * len(run)
            run = bytearray()
        if t is not None:
            out.append(t)
    return out
