"""numpyllm's BPE tokenizer file: a versioned text format, written atomically, read strictly.

A saved tokenizer is UTF-8 text that a person can read and diff. Version 1:

    numpyllm-bpe 1
    # comment lines start with '#'
    pattern gpt2                    (or: pattern-regex "<JSON string>")
    tokens N                        then N lines: <id> <token> [<left> <right>]
    specials M                      then M lines: <id> "<JSON string>"

for example (a space is written Ġ, see below)

    tokens 258
    0 Ā
    ...
    256 Ġt Ġ t
    257 Ġth Ġt h
    specials 1
    258 "<|endoftext|>"

Tokens are written in GPT-2's printable byte alphabet (`gpt2.token_to_text`), so a token
never holds whitespace and a line splits on spaces. `<id> <token> <left> <right>` records
that the token was made by merging <left> and <right> (optional: only the ranks matter for
encoding, see `bpe_merge.py`; the merges make the file easier to read). Ids and counts are
ASCII decimal integers. The N ordinary tokens have the ids 0..N-1, each once; special
tokens have distinct ids from N on, leaving at most 1,024 ids unused (see
`_files.MAX_UNUSED_IDS`), so a file cannot ask for a vocabulary larger than it describes.
A merge names two tokens listed before it.

A tokenizer file is data from anywhere, so the reader trusts none of it: any malformed,
truncated or inconsistent file raises `VocabularyFileError` (a ValueError) naming the
file, the line, the field and what was expected. A ``pattern-regex`` that is not a known
pattern is a program for a backtracking regex engine: it must pass
`pattern_safety.check_pattern` unless the caller passes ``trust_pattern=True``.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, NamedTuple

from . import _files, gpt2, pattern_safety
from .errors import VocabularyFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "BPEFile", "write_bpe_file", "read_bpe_file"]

FORMAT_NAME = "numpyllm-bpe"
FORMAT_VERSION = 1


class BPEFile(NamedTuple):
    """What a numpyllm-bpe file holds, in the form `BPETokenizer(...)` takes it."""
    pattern: str                             # a name of gpt2.PATTERNS, or a regex
    ranks: dict[bytes, int]                  # ordinary token bytes -> id
    merges: list[tuple[bytes, bytes]]        # (left, right), in the file's order
    special_tokens: dict[str, int]           # name -> id


def write_bpe_file(path: str | os.PathLike, pattern: str, ranks: Mapping[bytes, int],
                   merges: Mapping[bytes, tuple[bytes, bytes]],
                   special_tokens: Mapping[str, int]) -> None:
    """Write a tokenizer as a numpyllm-bpe file, through a temporary file and a rename, so
    a crash never leaves half a file under `path`.

    `pattern` is the split regex (written by name when it is a known one); `merges` maps
    a token's bytes to the (left, right) pair merged to make it, for the tokens whose
    merge is known.
    """
    name = gpt2.pattern_name(pattern)
    lines = [f"{FORMAT_NAME} {FORMAT_VERSION}",
             "# numpyllm byte-level BPE tokenizer. Tokens are written in GPT-2's printable",
             "# byte alphabet (a space is Ġ, a newline Ċ); '<id> <token> <left> <right>'",
             "# means the token was made by merging <left> and <right>.",
             f"pattern {name}" if name else f"pattern-regex {json.dumps(pattern)}",
             f"tokens {len(ranks)}"]
    to_text = gpt2.token_to_text
    for token, idx in sorted(ranks.items(), key=lambda kv: kv[1]):
        merge = merges.get(token)
        if merge:
            lines.append(f"{idx} {to_text(token)} {to_text(merge[0])} {to_text(merge[1])}")
        else:
            lines.append(f"{idx} {to_text(token)}")
    lines.append(f"specials {len(special_tokens)}")
    for sname, idx in sorted(special_tokens.items(), key=lambda kv: kv[1]):
        lines.append(f"{idx} {json.dumps(sname, ensure_ascii=False)}")
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def read_bpe_file(path: str | os.PathLike, *, trust_pattern: bool = False) -> BPEFile:
    """Read and check a numpyllm-bpe file (the format: this module's docstring).

    Checks everything the format promises; the vocabulary rules themselves (all 256
    single bytes present, ...) are checked when `BPETokenizer` is built from the result.
    With ``trust_pattern=True`` a custom ``pattern-regex`` skips
    `pattern_safety.check_pattern` (it need only compile): for files you made yourself.
    """
    path = os.fspath(path)
    raw = _files.read_text(path).split("\n")
    lines = [(n, line) for n, line in enumerate(raw, start=1)
             if line.strip() and not line.startswith("#")]
    pos = 0

    def fail(lineno: int, msg: str) -> VocabularyFileError:
        return VocabularyFileError(f"{path}:{lineno}: {msg}")

    def next_line(what: str) -> tuple[int, str]:
        nonlocal pos
        if pos >= len(lines):
            raise VocabularyFileError(f"{path}: file ends early, expected {what}")
        pos += 1
        return lines[pos - 1]

    def header(key: str) -> tuple[int, str]:
        lineno, line = next_line(f"'{key} ...'")
        word, _, value = line.partition(" ")
        if word != key:
            raise fail(lineno, f"expected '{key} ...', got {line[:60]!r}")
        return lineno, value

    lineno, line = next_line("a header")
    magic, _, version = line.partition(" ")
    if magic != FORMAT_NAME:
        raise fail(lineno, f"not a {FORMAT_NAME} file (starts with {line[:40]!r})")
    if version != str(FORMAT_VERSION):
        raise fail(lineno, f"format version {version[:20]!r} is not supported (this "
                           f"numpyllm reads version {FORMAT_VERSION})")
    lineno, line = next_line("'pattern ...'")
    word, _, value = line.partition(" ")
    if word == "pattern":
        if value not in gpt2.PATTERNS:
            raise fail(lineno, f"unknown pattern name {value[:40]!r}; known: "
                               f"{sorted(gpt2.PATTERNS)}")
        pattern = value
    elif word == "pattern-regex":
        pattern = _files.parse_json(value, f"{path}:{lineno}", "pattern-regex followed "
                                    "by a JSON string")
        if not isinstance(pattern, str) or not pattern:
            raise fail(lineno, "pattern-regex must be followed by a JSON string")
        if not trust_pattern:
            try:
                pattern_safety.check_pattern(pattern)
            except pattern_safety.UnsafePatternError as exc:
                raise fail(lineno, f"pattern-regex: refused: {exc}; load with "
                                   "trust_pattern=True if you trust this file") from None
            except ValueError as exc:
                raise fail(lineno, f"pattern-regex: expected a regular expression, but "
                                   f"{exc}") from None
    else:
        raise fail(lineno, f"expected 'pattern ...', got {line[:60]!r}")

    def count(key: str) -> int:
        lineno, value = header(key)
        return _files.parse_id(value, f"{path}:{lineno}", f"'{key}' to be followed by a count")

    ranks: dict[bytes, int] = {}
    merges: list[tuple[bytes, bytes]] = []
    n_tokens = count("tokens")
    seen_ids: set[int] = set()
    for _ in range(n_tokens):
        lineno, line = next_line("a token line")
        fields = line.split(" ")
        if len(fields) not in (2, 4):
            raise fail(lineno, f"expected '<id> <token> [<left> <right>]', got {line[:60]!r}")
        idx = _files.parse_id(fields[0], f"{path}:{lineno}", "a token id")
        if idx in seen_ids:
            raise fail(lineno, f"token id {idx} is given to two tokens: expected each of "
                               f"0..{n_tokens - 1} once")
        if idx >= n_tokens:
            raise fail(lineno, f"token id: expected each of 0..{n_tokens - 1} once (the "
                               f"file lists {n_tokens} tokens), got {idx}")
        seen_ids.add(idx)
        try:
            parts = [gpt2.text_to_token(t) for t in fields[1:]]
        except VocabularyFileError as exc:
            raise fail(lineno, str(exc)) from None
        if parts[0] in ranks:
            raise fail(lineno, f"token {fields[1][:40]} appears twice")
        if len(parts) == 3:
            if parts[1] + parts[2] != parts[0] or parts[1] not in ranks or parts[2] not in ranks:
                raise fail(lineno, f"merge {fields[2][:40]} + {fields[3][:40]} does not "
                                   f"make {fields[1][:40]} from earlier tokens")
            merges.append((parts[1], parts[2]))
        ranks[parts[0]] = idx
    specials: dict[str, int] = {}
    special_lines: dict[str, int] = {}
    for _ in range(count("specials")):
        lineno, line = next_line("a special token line")
        idx_text, _, name = line.partition(" ")
        idx = _files.parse_id(idx_text, f"{path}:{lineno}", "a special token id")
        name = _files.parse_json(name, f"{path}:{lineno}", "'<id> \"<name>\"'")
        if not isinstance(name, str) or not name:
            raise fail(lineno, f"expected '<id> \"<name>\"', got {line[:60]!r}")
        if name in specials:
            raise fail(lineno, f"special token {name[:40]!r} appears twice")
        specials[name], special_lines[name] = idx, lineno
    _files.check_special_ids(specials, n_tokens, lambda name: f"{path}:{special_lines[name]}")
    if pos != len(lines):
        lineno, line = lines[pos]
        raise fail(lineno, f"unexpected content after the special tokens: {line[:60]!r}")
    return BPEFile(pattern, ranks, merges, specials)
