"""Reading tokenizer files strictly: the helpers every file reader here shares.

Each turns a malformed file into a `VocabularyFileError` whose one-line message names the
file (and line), the field and what was expected, so no reader lets a bare
UnicodeDecodeError, json error or int() error escape.
"""
from __future__ import annotations

import os
from typing import Callable

from .. import _json
from .errors import VocabularyFileError

__all__ = ["read_text", "parse_json", "parse_id", "check_special_ids", "MAX_UNUSED_IDS",
           "expect", "get_field", "REQUIRED"]

# Special tokens may sit above the ordinary ones with unused ids between (tiktoken's
# cl100k leaves 16, o200k 19), but a file must not name id 99999999999 and so ask for
# an embedding of 10**11 rows: at most this many ids may go unused.
MAX_UNUSED_IDS = 1024
_MAX_ID_DIGITS = 18         # below 2**63


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_text(path: str | os.PathLike, max_bytes: int | None = None) -> str:
    """The file's text, which must be UTF-8 (and at most `max_bytes` long, if given)."""
    with open(path, "rb") as f:
        raw = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(raw) > max_bytes:
        raise VocabularyFileError(f"{os.fspath(path)}: larger than {max_bytes:,} bytes, the "
                                  f"most a tokenizer file may be")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise VocabularyFileError(f"{os.fspath(path)}:{line}: expected UTF-8 text, got byte "
                                  f"{raw[exc.start]:#04x} ({exc.reason})") from None


def parse_json(text: str, where: str, what: str = "JSON"):
    """`text` parsed as strict JSON (see `numpyllm._json`)."""
    try:
        return _json.loads(text)
    except _json.JSONFormatError as exc:
        raise VocabularyFileError(f"{where}: expected {what}, got text that is {exc}") from None


def parse_id(text: str, where: str, what: str) -> int:
    """A non-negative decimal integer written in ASCII digits, below 10**18. (`str.isdigit`
    accepts '²' and '٣', which `int` then refuses or reads as another number.)"""
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS):
        raise VocabularyFileError(f"{where}: expected {what}, got {_show(text)} (ids and counts "
                                  f"are non-negative integers in ASCII digits)")
    return int(text)


def check_special_ids(specials: dict, n_ordinary: int, where: Callable[[str], str]) -> None:
    """Special token ids are distinct, above the ordinary ids 0..n_ordinary-1, and leave at
    most `MAX_UNUSED_IDS` ids unused below the largest. `where(name)` says where the file
    gives that token (file and line), for the message."""
    limit = n_ordinary + len(specials) + MAX_UNUSED_IDS
    seen: dict[int, str] = {}
    for name, idx in specials.items():
        if not (isinstance(idx, int) and not isinstance(idx, bool) and n_ordinary <= idx < limit):
            taken = (", already taken by an ordinary token" if isinstance(idx, int)
                     and 0 <= idx < n_ordinary else "")
            raise VocabularyFileError(
                f"{where(name)}: special token {_show(name)}: expected an id from {n_ordinary} "
                f"(after the {n_ordinary} ordinary tokens) below {limit} (at most "
                f"{MAX_UNUSED_IDS} unused ids), got {_show(idx)}{taken}")
        if idx in seen:
            raise VocabularyFileError(f"{where(name)}: special token {_show(name)}: expected an "
                                      f"id of its own, got {idx}, already taken by "
                                      f"{_show(seen[idx])}")
        seen[idx] = name


# ------------------------------------------------------- fields of a parsed JSON document
# JSON kinds by name, as a message says them; bool is not an integer here.
_KINDS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
REQUIRED = object()


def expect(value, kinds: str, where: str):
    """`value` if it is one of `kinds` ("string", "integer|null", ...), else a
    `VocabularyFileError` naming `where` (file and field) and what was expected."""
    names = kinds.split("|")
    if not any(_KINDS[k](value) for k in names):
        raise VocabularyFileError(f"{where}: expected {' or '.join(names)}, got {_show(value)}")
    return value


def get_field(obj: dict, key: str, kinds: str, where: str, default=REQUIRED):
    """``obj[key]`` checked by `expect`; a missing key is `default`, or an error naming
    ``where.key`` when the field is required."""
    if key not in obj:
        if default is REQUIRED:
            raise VocabularyFileError(
                f"{where}.{key}: missing (expected {' or '.join(kinds.split('|'))})")
        return default
    return expect(obj[key], kinds, f"{where}.{key}")
