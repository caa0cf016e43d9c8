"""Strict JSON for the file loaders: the JSON our formats write, and nothing more.

Python's `json` module accepts more than a loader of untrusted files should:

- ``NaN``, ``Infinity`` and numbers too large for a float (``1e999`` becomes inf);
- integers of any length (past 4,300 digits it raises a bare ValueError, and parsing
  long ones takes quadratic time);
- duplicate keys, the last silently winning (so a reader and a checker can disagree on
  what the file says);
- nesting deep enough to exhaust the interpreter's stack (a RecursionError, not a
  ValueError), or merely deep enough to make later recursive code fail.

`loads` refuses each of these with a `JSONFormatError` (a ValueError) whose one-line
message says what is wrong; each loader catches it and raises its own error class,
naming the file.

    >>> loads('{"a": [1, 2.5, "x", null, true]}')
    {'a': [1, 2.5, 'x', None, True]}
    >>> try:
    ...     loads(b'{"a": 1, "a": 2}')
    ... except JSONFormatError as exc:
    ...     print(exc)
    key 'a' appears twice in one object
"""
from __future__ import annotations

import json
import math

__all__ = ["JSONFormatError", "loads", "MAX_DEPTH", "MAX_INT_DIGITS"]

MAX_DEPTH = 64          # objects/arrays inside each other; our formats use fewer than 8
MAX_INT_DIGITS = 100    # an RNG state's 128-bit integers have 39 digits


class JSONFormatError(ValueError):
    """Text that is not the strict JSON our file formats use."""


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _constant(name: str):
    raise JSONFormatError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONFormatError(f"number {_show(text)} does not fit a 64-bit float")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONFormatError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _object(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise JSONFormatError(f"key {_show(key)} appears twice in one object")
        out[key] = value
    return out


def _depth(value) -> int:
    """How deeply arrays and objects nest in `value` (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, (dict, list)))
    return deepest


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH):
    """Parse `text` (a str, or bytes that must be UTF-8) as strict JSON; see the module
    docstring for what is refused. Raises only `JSONFormatError`."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONFormatError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float,
                           parse_int=_int, object_pairs_hook=_object)
    except JSONFormatError:
        raise
    except RecursionError:
        raise JSONFormatError(f"arrays or objects nested more than {max_depth} deep") from None
    except ValueError as exc:          # JSONDecodeError, and int()'s own digit limit
        raise JSONFormatError(f"not valid JSON ({str(exc).splitlines()[0]})") from None
    if _depth(value) > max_depth:
        raise JSONFormatError(f"arrays or objects nested more than {max_depth} deep")
    return value
