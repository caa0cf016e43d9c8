"""config.json, read strictly: each field an architecture uses, checked for type and range.

A Hugging Face ``config.json`` is a flat JSON object written by ``transformers``: the
model's sizes (``n_embd``, ``n_layer`` ...), its choices (``activation_function``,
``tie_word_embeddings`` ...), and many keys that do not concern the weights
(``transformers_version``, ``task_specific_params`` ...), which are left alone.

The file is untrusted input, read with the rules of every numpyllm loader: a size limit,
strict JSON (`numpyllm._json`: no NaN, no duplicate keys, no 5,000-digit integers), and a
field of the wrong type is an error naming the file and the field, never a silent default
(``"n_layer": true`` is not 1, ``"n_embd": 768.0`` is not an integer). A field that is
absent takes ``transformers``' default for that architecture, as ``transformers`` does.

    >>> cfg = HFConfig({"n_embd": 768, "tie_word_embeddings": True}, "config.json")
    >>> cfg.int("n_embd"), cfg.int("n_layer", 12), cfg.bool("tie_word_embeddings", True)
    (768, 12, True)
    >>> try:
    ...     HFConfig({"n_embd": True}, "config.json").int("n_embd")
    ... except PretrainedError as exc:
    ...     print(exc)
    config.json: n_embd: expected a positive integer, got True
"""
from __future__ import annotations

import math
import os
import stat

from .. import _json
from .errors import NotExpressible, PretrainedError

__all__ = ["HFConfig", "read_json_file", "MAX_JSON_BYTES", "MISSING"]

MAX_JSON_BYTES = 16 * 2 ** 20    # config.json is a few KB; an index a few hundred KB
MAX_SIZE = 2 ** 40               # no size in a config is larger (checked before any use)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()             # "no default": the field is required


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_json_file(path, what: str, limit: int = MAX_JSON_BYTES):
    """The strict JSON in `path`, a regular file (or a link to one: the Hugging Face
    cache is made of links) of at most `limit` bytes. Errors are `PretrainedError`s
    naming the file; `what` says what the file is for ("the model's config")."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise PretrainedError(f"{path}: missing: {what} must be there") from None
    if not stat.S_ISREG(mode):
        raise PretrainedError(f"{path}: expected a regular file ({what}), got a directory or "
                              "a special file")
    with open(path, "rb") as f:
        # read(n) allocates n bytes first: ask for what the file holds, not the limit
        raw = f.read(min(os.fstat(f.fileno()).st_size, limit) + 1)
    if len(raw) > limit:
        raise PretrainedError(f"{path}: more than {limit} bytes: too large for {what}")
    try:
        return _json.loads(raw)
    except _json.JSONFormatError as exc:
        raise PretrainedError(f"{path}: expected strict JSON ({what}), got text that is "
                              f"{exc}") from None


class HFConfig:
    """The fields of a config.json, each read with its type checked. `where` names the
    file in error messages. Reading a field records it (`used`)."""

    def __init__(self, data, where):
        if not isinstance(data, dict):
            raise PretrainedError(f"{where}: expected a JSON object, got "
                                  f"{type(data).__name__}")
        self.data, self.where = data, where
        self.used: set = set()

    def _bad(self, key: str, expected: str, value) -> PretrainedError:
        return PretrainedError(f"{self.where}: {key}: expected {expected}, got {_show(value)}")

    def get(self, key: str, default=MISSING):
        """The raw value of `key` (`default` when absent; absent without a default is an
        error)."""
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            raise PretrainedError(f"{self.where}: {key}: expected a value, the field is "
                                  "missing")
        return default

    def int(self, key: str, default=MISSING, *, minimum: int = 1) -> int:
        """An integer >= `minimum` (and at most 2**40: a size, never a huge one)."""
        return self._int(key, self.get(key, default), minimum)

    def _int(self, key: str, value, minimum: int) -> int:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._bad(key, what, value)
        if value > MAX_SIZE:
            raise self._bad(key, f"{what} of at most 2**40", value)
        return value

    def optional_int(self, key: str, default=None, *, minimum: int = 1):
        """`int`, or None when the value is null or absent."""
        value = self.get(key, default)
        return None if value is None else self._int(key, value, minimum)

    def number(self, key: str, default=MISSING, *, minimum: float = 0.0,
               below: float | None = None, positive: bool = False) -> float:
        """A finite number in [minimum, below) (> 0 with `positive`); an integer is a
        number, a bool is not."""
        value = self.get(key, default)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value >= minimum
              and (below is None or value < below) and (not positive or value > 0))
        if not ok:
            limits = "> 0" if positive else f">= {minimum:g}"
            if below is not None:
                limits += f" and < {below:g}"
            raise self._bad(key, f"a number {limits}", value)
        return float(value)

    def bool(self, key: str, default=MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def str(self, key: str, default=MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def choice(self, key: str, allowed: dict, default=MISSING, *, why: str = ""):
        """`allowed[value]`, where the value must be one of `allowed`'s keys (strings,
        numbers or booleans, compared with their types: true is not 1). A value of the
        right type that numpyllm cannot express is a `NotExpressible` saying `why`."""
        value = self.get(key, default)
        for option, result in allowed.items():
            if type(value) is type(option) and value == option:
                return result
        options = ", ".join(_show(o) for o in allowed)
        kinds = {type(o) for o in allowed}
        if type(value) in kinds or (float in kinds and type(value) is int):
            raise NotExpressible(f"{self.where}: {key}: numpyllm can express only {options}, "
                                 f"got {_show(value)}" + (f" ({why})" if why else ""))
        raise self._bad(key, f"one of {options}", value)

    def refuse(self, key: str, why: str, value=MISSING) -> NotExpressible:
        """The error for a value of `key` that numpyllm cannot express."""
        value = self.data.get(key) if value is MISSING else value
        return NotExpressible(f"{self.where}: {key}: {_show(value)} cannot be expressed by "
                              f"numpyllm's model: {why}")
