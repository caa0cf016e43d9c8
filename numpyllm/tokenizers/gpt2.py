"""GPT-2 and tiktoken vocabulary files, the split patterns, and well-known special tokens.

Byte-level BPE works on bytes, but GPT-2's published files (`encoder.json`, `vocab.bpe`)
are text. OpenAI's trick: map each of the 256 byte values to a printable Unicode
character (printable Latin-1 bytes map to themselves; the rest, such as the space, to
characters from U+0100 on, so a space is written `Ġ`). A token's bytes then print as a
string with no whitespace in it, and a merge is one line `left right`.

    >>> token_to_text(b" the")
    'Ġthe'
    >>> text_to_token("Ġthe")
    b' the'

tiktoken's `.tiktoken` rank files instead write `base64(token bytes) rank` per line.
Both readers here return *mergeable ranks*: a dict from a token's bytes to its rank,
which is also its id (lower rank = merged earlier). `BPETokenizer.from_gpt2` and
`BPETokenizer.from_tiktoken` build tokenizers from them.
"""
from __future__ import annotations

import base64
import binascii
import os
from typing import Mapping

from . import _files
from .errors import VocabularyFileError

__all__ = [
    "GPT2_PATTERN", "GPT2_ORIGINAL_PATTERN", "CL100K_PATTERN", "O200K_PATTERN", "PATTERNS",
    "QWEN2_PATTERN", "LLAMA3_PATTERN", "HF_PATTERNS",
    "ASCII_TWINS",
    "resolve_pattern", "pattern_name",
    "ENDOFTEXT", "BOS", "EOS", "PAD", "UNK", "SYSTEM", "USER", "ASSISTANT",
    "GPT2_SPECIAL_TOKENS", "CL100K_SPECIAL_TOKENS", "O200K_SPECIAL_TOKENS",
    "byte_to_unicode", "token_to_text", "text_to_token",
    "read_gpt2_vocab", "read_tiktoken_ranks", "write_tiktoken_ranks",
]

# --------------------------------------------------------------------------- patterns
# The pattern of GPT-2's original encoder.py. It splits text into chunks (words with their
# leading space, runs of digits, runs of punctuation, whitespace) and BPE never merges
# across chunks, so " dog" and " dog." share the token for " dog".
GPT2_ORIGINAL_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# tiktoken's rewrite of the same pattern: possessive quantifiers stop the regex engine from
# backtracking, and `\s++$|\s+(?!\S)|\s` splits whitespace exactly as `\s+(?!\S)|\s+` does
# (tests/test_tokenizer_gpt2.py checks the two agree). It runs faster, so it is the default.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""")
# GPT-4's (cl100k_base): case-insensitive contractions, digits in groups of at most three,
# newlines kept apart from other whitespace.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
# GPT-4o's (o200k_base): splits CamelCase words and keeps contractions on their word.
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])

# The third-party `regex` engine is needed for \p{L} and \p{N}, but on ASCII text those
# classes are just [A-Za-z] and [0-9], and the standard library's `re` runs such a pattern
# over twice as fast. So each known pattern has an ASCII twin, used when `str.isascii()`
# (an O(1) check in CPython); tests/test_tokenizer_gpt2.py checks the twins split ASCII
# text exactly as the originals do.
_WS = r"\t\n\x0b\x0c\r "
ASCII_TWINS: Mapping[str, str] = {
    GPT2_PATTERN: (rf"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^{_WS}A-Za-z0-9]+"""
                   rf"""|[{_WS}]+(?![^{_WS}])|[{_WS}]+"""),
    CL100K_PATTERN: (rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{{1,3}}"""
                     rf"""| ?[^{_WS}A-Za-z0-9]+[\r\n]*|[{_WS}]+\Z|[{_WS}]*[\r\n]|[{_WS}]+(?![^{_WS}])"""
                     rf"""|[{_WS}]+"""),
}

# The split regexes of Hugging Face byte-level tokenizers that write their own (a Split
# pre-tokenizer before a ByteLevel one without a regex), exactly as their tokenizer.json
# spells them: Qwen2 and Qwen2.5 (digits one by one), Llama 3 (digits in threes). Read
# from a file, they are trusted as the patterns above are (`pattern_safety.KNOWN_PATTERNS`).
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                 r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
                  r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
HF_PATTERNS: Mapping[str, str] = {"qwen2": QWEN2_PATTERN, "llama3": LLAMA3_PATTERN}

PATTERNS: Mapping[str, str] = {
    "gpt2": GPT2_PATTERN,
    "cl100k": CL100K_PATTERN,
    "gpt4": CL100K_PATTERN,
    "o200k": O200K_PATTERN,
    "gpt4o": O200K_PATTERN,
}


def resolve_pattern(pattern: str) -> str:
    """The regular expression for a pattern name ("gpt2", "gpt4"/"cl100k",
    "gpt4o"/"o200k"), or `pattern` itself when it is not one of those names.

    >>> resolve_pattern("gpt4") == CL100K_PATTERN
    True
    """
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a pattern name {sorted(PATTERNS)} or a non-empty "
                         f"regular expression, got {pattern!r}")
    return PATTERNS.get(pattern, pattern)


def pattern_name(regex: str) -> str | None:
    """The canonical name of a known pattern (the inverse of `resolve_pattern`), or None."""
    for name in ("gpt2", "cl100k", "o200k"):
        if PATTERNS[name] == regex:
            return name
    return None


# ----------------------------------------------------------------------- special tokens
ENDOFTEXT = "<|endoftext|>"
BOS, EOS, PAD, UNK = "[BOS]", "[EOS]", "[PAD]", "[UNK]"
SYSTEM, USER, ASSISTANT = "<SYSTEM>", "<USER>", "<ASSISTANT>"

GPT2_SPECIAL_TOKENS: Mapping[str, int] = {ENDOFTEXT: 50256}
CL100K_SPECIAL_TOKENS: Mapping[str, int] = {
    ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
O200K_SPECIAL_TOKENS: Mapping[str, int] = {ENDOFTEXT: 199999, "<|endofprompt|>": 200018}


# ------------------------------------------------------------ GPT-2's byte <-> unicode map
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte value to a printable, non-space character.

    >>> byte_to_unicode()[ord(" ")], byte_to_unicode()[ord("a")]
    ('Ġ', 'a')
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_CHAR = byte_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
# Indexing a tuple by byte value is the fastest way to render a bytes object.
_BYTE_TO_CHAR_TUPLE = tuple(_BYTE_TO_CHAR[b] for b in range(256))


def token_to_text(token: bytes) -> str:
    """A token's bytes written in GPT-2's printable alphabet (no whitespace inside)."""
    return "".join([_BYTE_TO_CHAR_TUPLE[b] for b in token])


def text_to_token(text: str) -> bytes:
    """The inverse of `token_to_text`; a character outside the alphabet is an error."""
    try:
        return bytes([_CHAR_TO_BYTE[c] for c in text])
    except KeyError as exc:
        raise VocabularyFileError(
            f"{text!r} is not written in GPT-2's byte alphabet (character "
            f"{exc.args[0]!r} stands for no byte)") from None


# ------------------------------------------------------------------------- file readers
def read_gpt2_vocab(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike
                    ) -> tuple[dict[bytes, int], list[tuple[bytes, bytes]], dict[str, int]]:
    """Read GPT-2's `encoder.json` and `vocab.bpe`.

    Returns `(ranks, merges, special_tokens)`: ranks maps each ordinary token's bytes to
    its id, merges lists the `(left, right)` byte pairs in merge order, and the special
    tokens (`<|endoftext|>` -> 50256) are the entries of encoder.json that are not
    byte-level tokens. The two files are checked against each other as tiktoken does: the
    256 single bytes and then the merges, in order, must give exactly encoder.json's ids;
    special tokens take ids after them, leaving at most 1,024 ids unused. A malformed
    file raises `VocabularyFileError` (a ValueError) naming the file, the line and what
    was expected.
    """
    encoder_json, vocab_bpe = os.fspath(encoder_json), os.fspath(vocab_bpe)
    encoder = _files.parse_json(_files.read_text(encoder_json), encoder_json, "a JSON object")
    if not isinstance(encoder, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in encoder.items()):
        raise VocabularyFileError(
            f"{encoder_json}: expected a JSON object mapping token strings to integer ids")

    merges: list[tuple[bytes, bytes]] = []
    lines = _files.read_text(vocab_bpe).split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise VocabularyFileError(
                f"{vocab_bpe}:{lineno}: expected a merge 'left right', got {line!r}")
        try:
            merges.append((text_to_token(parts[0]), text_to_token(parts[1])))
        except VocabularyFileError as exc:
            raise VocabularyFileError(f"{vocab_bpe}:{lineno}: {exc}") from None

    ranks: dict[bytes, int] = {}
    special: dict[str, int] = {}
    for text, idx in encoder.items():
        if text.startswith("<|") and text.endswith("|>") and len(text) > 4:
            special[text] = idx
            continue
        try:
            ranks[text_to_token(text)] = idx
        except VocabularyFileError as exc:
            raise VocabularyFileError(f"{encoder_json}: {exc}") from None

    # GPT-2's single-byte tokens come first, in the order of the printable alphabet.
    expected = {bytes([b]): i for i, b in enumerate(sorted(_BYTE_TO_CHAR, key=lambda b: (
        _BYTE_TO_CHAR[b] != chr(b), ord(_BYTE_TO_CHAR[b]))))}
    for i, (left, right) in enumerate(merges):
        expected[left + right] = 256 + i
    if expected != ranks:
        missing = sorted(set(expected) - set(ranks), key=expected.get)[:3]
        extra = sorted(set(ranks) - set(expected), key=ranks.get)[:3]
        wrong = sorted((t for t in set(ranks) & set(expected) if ranks[t] != expected[t]),
                       key=expected.get)[:3]
        raise VocabularyFileError(
            f"{encoder_json} and {vocab_bpe} do not describe the same vocabulary: "
            f"{len(ranks)} tokens in encoder.json, 256 bytes + {len(merges)} merges in "
            f"vocab.bpe; tokens made by merges but absent from encoder.json: "
            f"{[token_to_text(t) for t in missing]}; tokens in encoder.json that no merge "
            f"makes: {[token_to_text(t) for t in extra]}; tokens with another id: "
            f"{[(token_to_text(t), ranks[t], expected[t]) for t in wrong]}")
    # The ordinary ids are now 0..len(ranks)-1 (or fewer, if merges repeat a token);
    # the special ones must follow them closely.
    _files.check_special_ids(special, 256 + len(merges), lambda name: encoder_json)
    return ranks, merges, special


def read_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Read a tiktoken `.tiktoken` file: one `base64(token) rank` pair per line.

    The ranks must be 0..N-1 for the N tokens, each once (as in tiktoken's own files), and
    the 256 single bytes must be among the tokens. A malformed file raises
    `VocabularyFileError` naming the file, the line and what was expected.
    """
    path = os.fspath(path)
    ranks: dict[bytes, int] = {}
    rank_lines: dict[int, int] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise VocabularyFileError(
                    f"{path}:{lineno}: expected 'base64-token rank', got {line[:60]!r}")
            try:
                token = base64.b64decode(parts[0], validate=True)
            except (binascii.Error, ValueError):
                raise VocabularyFileError(
                    f"{path}:{lineno}: expected 'base64-token rank', got {line[:60]!r}"
                ) from None
            rank = _files.parse_id(parts[1].decode("latin-1"), f"{path}:{lineno}",
                                   "'base64-token rank' with a decimal rank")
            if token in ranks or rank in rank_lines or not token:
                raise VocabularyFileError(
                    f"{path}:{lineno}: empty token, or a token or rank that appeared before "
                    f"({line[:60]!r})")
            ranks[token] = rank
            rank_lines[rank] = lineno
    if not ranks:
        raise VocabularyFileError(f"{path}: no tokens in the file")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise VocabularyFileError(
            f"{path}: a byte-level vocabulary needs all 256 single bytes; "
            f"{len(missing)} are missing (first: {missing[0]})")
    top = max(rank_lines)
    if top >= len(ranks):
        raise VocabularyFileError(
            f"{path}:{rank_lines[top]}: rank: expected each of 0..{len(ranks) - 1} once (the "
            f"file lists {len(ranks)} tokens), got {top}")
    return ranks


def write_tiktoken_ranks(path: str | os.PathLike, ranks: Mapping[bytes, int]) -> None:
    """Write mergeable ranks in tiktoken's `.tiktoken` format, sorted by rank."""
    with open(os.fspath(path), "wb") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
