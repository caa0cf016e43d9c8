"""The steps of a Hugging Face `tokenizer.json` around the BPE model, as `tokenizers` runs them.

A `tokenizer.json` describes encoding as a pipeline, and decoding as its inverse:

    text --normalizer--> text --pre_tokenizer--> words --model--> ids --post_processor--> ids
    ids --model's vocabulary--> token strings --decoder--> text

This module holds the steps numpyllm implements, each read from its JSON object
(`*_from_json`, strict: a missing or mistyped field is a `VocabularyFileError` naming the file
and the field, an unknown `type` an `UnsupportedTokenizerError`) and written back
(`to_json`), with exactly the behaviour of `tokenizers` 0.23:

normalizers (a str to a str)
    NFC, NFD, NFKC, NFKD; Prepend (Llama 2's "▁" before each piece of text); Replace (a
    string or a vetted regex); Sequence.
pre-tokenizers (a piece of text to the words BPE merges within; merges never cross words)
    ByteLevel (GPT-2: optional prefix space, GPT-2's split regex, then each UTF-8 byte
    written as one printable character, `gpt2.byte_to_unicode`); Split (a regex or a string,
    behaviours Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous, invert;
    Qwen2 and Llama 3 put their own regex here before a ByteLevel without one); Metaspace
    (spaces become "▁", one "▁" prepended); Digits; Sequence.
decoders (token strings to text)
    ByteLevel; Replace; ByteFallback (runs of `<0xNN>` tokens back to UTF-8 text); Fuse
    (join); Strip; Metaspace; Sequence.
post-processors (ids to ids, only when special tokens are asked for)
    TemplateProcessing (Llama's "<s> $A"), ByteLevel (which changes only offsets), Sequence,
    BertProcessing ("[CLS] $A [SEP]").
BERT's steps (issue 19): the BertNormalizer, Lowercase and StripAccents normalizers, the
BertPreTokenizer, Whitespace and WhitespaceSplit pre-tokenizers and the WordPiece decoder
(`bert_pretokenize.py`, `wordpiece.py`).

    >>> norm = normalizer_from_json({"type": "Sequence", "normalizers": [
    ...     {"type": "Prepend", "prepend": "▁"},
    ...     {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "tokenizer.json")
    >>> norm("Hello world")
    '▁Hello▁world'
    >>> dec = decoder_from_json({"type": "Sequence", "decoders": [
    ...     {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    ...     {"type": "ByteFallback"}, {"type": "Fuse"},
    ...     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}, "tokenizer.json")
    >>> dec(["▁Hello", "▁w", "<0xC3>", "<0xB6>", "rld"])
    'Hello wörld'

A regex in a file (Split, Replace) is a program for a backtracking engine: it must be a
known pattern or pass `pattern_safety.check_pattern`, as the split pattern of numpyllm's
own BPE files must.
"""
from __future__ import annotations

import unicodedata
from typing import Callable

import regex

from . import gpt2, pattern_safety
from ._files import expect, get_field
from .errors import UnsupportedTokenizerError, VocabularyFileError
from .pretokenize import PreTokenizer as _RegexSplitter

__all__ = ["Normalizer", "PreTokenizer", "Decoder", "PostProcessor", "normalizer_from_json",
           "pre_tokenizer_from_json", "decoder_from_json", "post_processor_from_json",
           "byte_level_encode", "byte_level_decode", "BYTE_LEVEL", "METASPACE"]

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


# =============================================================================== normalizers
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


# ============================================================================ pre-tokenizers
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


# ================================================================================== decoders
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


# =========================================================================== post-processors
class PostProcessor:
    """What encoding adds around a text's ids when special tokens are asked for:
    ``prefix + ids + suffix`` (Llama 2: prefix [1], the id of "<s>")."""

    def __init__(self, prefix: list[int], suffix: list[int], obj: dict | None = None):
        self.prefix, self.suffix, self._obj = list(prefix), list(suffix), obj

    def to_json(self, id_to_token: Callable[[int], str]) -> dict:
        """The JSON object (a TemplateProcessing, unless read from a file that said more)."""
        if self._obj is not None:
            return self._obj
        return template_json(self.prefix, self.suffix, id_to_token)


def template_json(prefix: list[int], suffix: list[int], id_to_token) -> dict:
    """A TemplateProcessing that puts the tokens `prefix` before a text and `suffix` after
    it (for a pair: the same around each text, as transformers writes it)."""
    def special(i, type_id):
        return {"SpecialToken": {"id": id_to_token(i), "type_id": type_id}}

    def template(type_id, seq):
        return ([special(i, type_id) for i in prefix]
                + [{"Sequence": {"id": seq, "type_id": type_id}}]
                + [special(i, type_id) for i in suffix])
    return {"type": "TemplateProcessing", "single": template(0, "A"),
            "pair": template(0, "A") + template(1, "B"),
            "special_tokens": {id_to_token(i): {"id": id_to_token(i), "ids": [i],
                                                "tokens": [id_to_token(i)]}
                               for i in dict.fromkeys(prefix + suffix)}}


def post_processor_from_json(obj, where: str, known_id: Callable[[int], bool]) -> PostProcessor:
    """A post-processor from its JSON object; `known_id(i)` says whether an id is in the
    vocabulary (a template naming any other id is an error)."""
    kind = _type_of(obj, where, {"TemplateProcessing", "ByteLevel", "Sequence",
                                 "BertProcessing"})
    if kind == "ByteLevel":            # only moves offsets: no ids added
        return PostProcessor([], [], obj)
    if kind == "BertProcessing":       # [CLS] $A [SEP]: "cls" and "sep" are [token, id]
        ids = []
        for key in ("cls", "sep"):
            pair = get_field(obj, key, "array", where)
            at = f"{where}.{key}"
            if len(pair) != 2:
                raise VocabularyFileError(f"{at}: expected [token, id], got {len(pair)} items")
            expect(pair[0], "string", f"{at}[0]")
            if not (expect(pair[1], "integer", f"{at}[1]") >= 0 and known_id(pair[1])):
                raise VocabularyFileError(f"{at}[1]: id {pair[1]} is in neither the vocabulary "
                                          f"nor the added tokens")
            ids.append(pair[1])
        return PostProcessor(ids[:1], ids[1:], obj)
    if kind == "Sequence":
        prefix, suffix = [], []
        for i, o in enumerate(get_field(obj, "processors", "array", where)):
            inner = post_processor_from_json(o, f"{where}.processors[{i}]", known_id)
            prefix, suffix = inner.prefix + prefix, suffix + inner.suffix
        return PostProcessor(prefix, suffix, obj)
    specials = get_field(obj, "special_tokens", "object", where)
    single = get_field(obj, "single", "array", where)
    get_field(obj, "pair", "array", where)          # used only to encode pairs, never here
    prefix, suffix, seen = [], [], False
    for i, piece in enumerate(single):
        here = f"{where}.single[{i}]"
        expect(piece, "object", here)
        if len(piece) != 1 or not ({"SpecialToken", "Sequence"} & set(piece)):
            raise VocabularyFileError(f"{here}: expected {{\"SpecialToken\": ...}} or "
                                      f"{{\"Sequence\": ...}}")
        (what, body), = piece.items()
        name = get_field(expect(body, "object", f"{here}.{what}"), "id", "string",
                         f"{here}.{what}")
        if what == "Sequence":
            if seen or name != "A":
                raise VocabularyFileError(f"{here}.Sequence.id: expected the one sequence 'A' "
                                          f"of a single text, got {name!r:.40}")
            seen = True
            continue
        entry = get_field(specials, name, "object", f"{where}.special_tokens")
        ids = get_field(entry, "ids", "array", f"{where}.special_tokens.{name}")
        for j, idx in enumerate(ids):
            at = f"{where}.special_tokens.{name}.ids[{j}]"
            if not (expect(idx, "integer", at) >= 0 and known_id(idx)):
                raise VocabularyFileError(f"{at}: id {idx} is in neither the vocabulary nor "
                                          f"the added tokens")
        (suffix if seen else prefix).extend(ids)
    if not seen:
        raise VocabularyFileError(f"{where}.single: expected a {{\"Sequence\": {{\"id\": "
                                  f"\"A\"}}}} piece for the text")
    return PostProcessor(prefix, suffix, obj)
