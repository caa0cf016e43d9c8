"""The pre-tokenizers of a `tokenizer.json` (a piece of text to the words BPE merges within;
merges never cross words), as `tokenizers` 0.23 runs them.

ByteLevel (GPT-2: optional prefix space, GPT-2's split regex, then each UTF-8 byte written
as one printable character, `gpt2.byte_to_unicode`); Split (a regex or a string, behaviours
Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous, invert; Qwen2 and Llama 3
put their own regex here before a ByteLevel without one); Metaspace (spaces become "▁", one
"▁" prepended); Digits; Sequence; and BERT's BertPreTokenizer, Whitespace and
WhitespaceSplit. `pre_tokenizer_from_json` reads one strictly, as one flat chain of steps.
"""
from __future__ import annotations

from typing import Callable

import regex

from ._files import get_field
from .errors import VocabularyFileError
from .hf_steps import _char, _Pattern, _type_of, byte_level_encode
from .pretokenize import PreTokenizer as _RegexSplitter

__all__ = ["PreTokenizer", "pre_tokenizer_from_json"]

# A pre-tokenizer step maps (pieces, first_at_start) to the same: the pieces are non-empty
# strings, and `first_at_start` says whether the first piece begins at offset 0 of the
# original text (Metaspace's prepend_scheme "first" asks exactly that).
_Step = Callable[[list, bool], tuple]

# `tokenizers`' Split behaviours, applied to `_Pattern.matches` spans: which spans are kept
# (True: removed) and how matches join their neighbours.


def _apply_behavior(spans: list[tuple[int, int, bool]], behavior: str) -> list[tuple[int, int]]:
    out: list[list] = []          # [start, end, removed]
    if behavior in ("Isolated", "Removed"):
        out = [[s, e, behavior == "Removed" and m] for s, e, m in spans]
    elif behavior in ("Contiguous", "MergedWithPrevious"):
        previous = False
        for s, e, m in spans:
            joins = (m == previous) if behavior == "Contiguous" else (m and not previous)
            if joins and out:
                out[-1][1] = e
            else:
                out.append([s, e, False])
            previous = m
    else:                         # MergedWithNext: the same, from the right
        previous = False
        for s, e, m in reversed(spans):
            if m and not previous and out:
                out[-1][0] = s
            else:
                out.append([s, e, False])
            previous = m
        out.reverse()
    return [(s, e) for s, e, removed in out if not removed]


_BEHAVIORS = ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous")


def _split_pieces(pieces: list, at_start: bool, cut: Callable[[str], list]) -> tuple:
    """Cut each piece into spans with `cut(text) -> [(start, end)]`, dropping empty ones."""
    out = []
    for i, text in enumerate(pieces):
        spans = [(s, e) for s, e in cut(text) if e > s]
        if i == 0 and at_start and not (spans and spans[0][0] == 0):
            at_start = False
        out += [text[s:e] for s, e in spans]
    return out, at_start and bool(out)


class PreTokenizer:
    """A chain of pre-tokenizer steps; ``pre(text) -> words``.

    When the last step is ByteLevel, its character mapping is left to the caller
    (`maps_bytes` is True): the tokenizer then caches each word's ids under the raw word,
    and maps only the words it has not seen.
    """

    def __init__(self, obj: dict, steps: list, maps_bytes: bool):
        self._obj, self.steps, self.maps_bytes = obj, steps, maps_bytes

    def __call__(self, text: str, at_start: bool = True) -> list[str]:
        pieces = [text] if text else []
        for step in self.steps:
            pieces, at_start = step(pieces, at_start)
        return pieces

    def to_json(self) -> dict:
        return self._obj


def pre_tokenizer_from_json(obj, where: str) -> PreTokenizer:
    """A pre-tokenizer from its JSON object; `Sequence`s are flattened into one chain."""
    steps: list = []
    out = _pre_steps(obj, where, steps)
    maps_bytes = bool(steps) and getattr(steps[-1], "byte_level", False)
    if maps_bytes:
        steps[-1] = steps[-1].without_mapping
    return PreTokenizer(out, steps, maps_bytes)


def _pre_steps(obj, where: str, steps: list) -> dict:
    kind = _type_of(obj, where, {"ByteLevel", "Split", "Metaspace", "Digits", "Sequence",
                                 "BertPreTokenizer", "Whitespace", "WhitespaceSplit"})
    if kind == "Sequence":
        items = get_field(obj, "pretokenizers", "array", where)
        return {"type": "Sequence", "pretokenizers": [
            _pre_steps(o, f"{where}.pretokenizers[{i}]", steps) for i, o in enumerate(items)]}
    step, out = {"ByteLevel": _byte_level, "Split": _split, "Metaspace": _metaspace,
                 "Digits": _digits, "BertPreTokenizer": _bert_pre, "Whitespace": _whitespace,
                 "WhitespaceSplit": _whitespace_split}[kind](obj, where)
    steps.append(step)
    return out


class _ByteLevelStep:
    """GPT-2's pre-tokenizer: an optional space before each piece, GPT-2's split regex,
    and the bytes of each word written in the printable alphabet."""
    byte_level = True

    def __init__(self, add_prefix_space: bool, use_regex: bool, map_bytes: bool = True):
        self.add_prefix_space, self.use_regex, self.map_bytes = (
            add_prefix_space, use_regex, map_bytes)
        # tiktoken's faster spelling of the same regex (tests/test_tokenizer_gpt2.py).
        self._splitter = _RegexSplitter("gpt2") if use_regex else None

    @property
    def without_mapping(self) -> "_ByteLevelStep":
        return _ByteLevelStep(self.add_prefix_space, self.use_regex, map_bytes=False)

    def __call__(self, pieces: list, at_start: bool) -> tuple:
        if self.add_prefix_space:
            pieces = [p if p.startswith(" ") else " " + p for p in pieces]
        if self._splitter is not None:
            split = self._splitter.split
            pieces = [w for p in pieces for w in split(p)]
        if self.map_bytes:
            pieces = [byte_level_encode(p) for p in pieces]
        return pieces, at_start


def _byte_level(obj, where):
    prefix = get_field(obj, "add_prefix_space", "boolean", where, True)
    trim = get_field(obj, "trim_offsets", "boolean", where, True)   # offsets only
    use_regex = get_field(obj, "use_regex", "boolean", where, True)
    return _ByteLevelStep(prefix, use_regex), {
        "type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": trim,
        "use_regex": use_regex}


def _split(obj, where):
    pattern = _Pattern(get_field(obj, "pattern", "object", where), f"{where}.pattern")
    behavior = get_field(obj, "behavior", "string", where)
    if behavior not in _BEHAVIORS:
        raise VocabularyFileError(f"{where}.behavior: expected one of {', '.join(_BEHAVIORS)}, "
                                  f"got {behavior!r:.60}")
    invert = get_field(obj, "invert", "boolean", where, False)
    findall = pattern.regex.findall

    def cut(text: str) -> list:
        if behavior == "Isolated" and not invert and pattern.regex.groups == 0:
            # The common case (Qwen2, Llama 3): a regex whose matches cover the text. One
            # C-level findall; when the matches add up to the whole text there is no gap.
            words = findall(text)
            if sum(map(len, words)) == len(text):
                spans, at = [], 0
                for w in words:
                    spans.append((at, at + len(w)))
                    at += len(w)
                return spans
        spans = pattern.matches(text)
        if invert:
            spans = [(s, e, not m) for s, e, m in spans]
        return _apply_behavior(spans, behavior)

    def step(pieces, at_start):
        return _split_pieces(pieces, at_start, cut)
    return step, {"type": "Split", "pattern": pattern.to_json(), "behavior": behavior,
                  "invert": invert}


def _metaspace(obj, where):
    replacement = _char(obj, "replacement", where)
    if "prepend_scheme" in obj:
        scheme = get_field(obj, "prepend_scheme", "string", where)
        if scheme not in ("always", "first", "never"):
            raise VocabularyFileError(f"{where}.prepend_scheme: expected 'always', 'first' or "
                                      f"'never', got {scheme!r:.60}")
    else:                      # files older than tokenizers 0.14
        scheme = "always" if get_field(obj, "add_prefix_space", "boolean", where, True) else "never"
    split = get_field(obj, "split", "boolean", where, True)
    marker = regex.compile(regex.escape(replacement))

    def step(pieces, at_start):
        out = []
        for i, text in enumerate(pieces):
            text = text.replace(" ", replacement)
            if not text.startswith(replacement) and (
                    scheme == "always" or (scheme == "first" and i == 0 and at_start)):
                text = replacement + text
            if split:                       # cut before each replacement character
                starts = [0] + [m.start() for m in marker.finditer(text) if m.start() > 0]
                out += [text[s:e] for s, e in zip(starts, starts[1:] + [len(text)])]
            else:
                out.append(text)
        return out, at_start and bool(out)
    return step, {"type": "Metaspace", "replacement": replacement, "prepend_scheme": scheme,
                  "split": split}


def _digits(obj, where):
    individual = get_field(obj, "individual_digits", "boolean", where, False)
    digits = regex.compile(r"\p{N}" if individual else r"\p{N}+")

    def cut(text):
        spans, prev = [], 0
        for m in digits.finditer(text):
            spans += [(prev, m.start()), m.span()]
            prev = m.end()
        return spans + [(prev, len(text))]

    def step(pieces, at_start):
        return _split_pieces(pieces, at_start, cut)
    return step, {"type": "Digits", "individual_digits": individual}


def _words_step(split: Callable[[str], list]):
    def step(pieces, at_start):
        out = [w for p in pieces for w in split(p)]
        return out, at_start and bool(out)     # (only Metaspace asks; it never follows)
    return step


def _bert_pre(obj, where):
    # BERT's: cut at whitespace (dropped), then around each punctuation character.
    from .bert_pretokenize import pre_tokenize_bert
    return _words_step(pre_tokenize_bert), {"type": "BertPreTokenizer"}


# Whitespace: `tokenizers`' regex \w+|[^\w\s]+ (Unicode classes); WhitespaceSplit: runs of
# non-whitespace (Rust's char::is_whitespace).
_WHITESPACE_WORDS = regex.compile(r"\w+|[^\w\s]+")


def _whitespace(obj, where):
    return _words_step(_WHITESPACE_WORDS.findall), {"type": "Whitespace"}


def _whitespace_split(obj, where):
    from .bert_pretokenize import WHITESPACE
    runs = regex.compile("[^" + "".join(sorted(WHITESPACE)) + "]+")
    return _words_step(runs.findall), {"type": "WhitespaceSplit"}
