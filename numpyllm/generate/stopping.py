"""When a sequence is finished: an end token, a stop sequence, or the length limit.

Token level (`StopCriteria`): a row stops when the token just generated is one of the
end-of-sequence ids, or when the tokens it generated end with one of the stop
sequences (lists of token ids). Only generated tokens count: a prompt that already ends
with a stop sequence does not stop anything. The end token or stop sequence is part of
the output, as in Hugging Face's `generate`.

Text level (`StopStrings`): tokens and strings need not line up (a stop string can end
in the middle of a token, or span several), so the text helpers decode as they go and
search the text. Text that could be the beginning of a stop string is held back until it
is known not to be; the stop string itself is not returned (as the OpenAI API does).
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

__all__ = ["StopCriteria", "StopStrings", "check_eos", "check_stop_sequences"]


def _token_id(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 0:
        raise ValueError(f"{what} must be a non-negative integer token id, got {value!r}")
    return int(value)


def check_eos(eos_id) -> frozenset:
    """`eos_id` (None, an id, or a collection of ids) as a set of ids."""
    if eos_id is None:
        return frozenset()
    if isinstance(eos_id, Iterable) and not isinstance(eos_id, (str, bytes)):
        return frozenset(_token_id(i, "eos_id") for i in eos_id)
    return frozenset((_token_id(eos_id, "eos_id"),))


def check_stop_sequences(stop) -> tuple:
    """`stop` (None or a collection of token-id sequences) as a tuple of tuples."""
    if stop is None:
        return ()
    if isinstance(stop, (str, bytes)) or not isinstance(stop, Iterable):
        raise ValueError(f"stop must be a list of token-id sequences, e.g. [[13, 13]], got "
                         f"{stop!r} (stop strings need a tokenizer: see generate_text)")
    out = []
    for seq in stop:
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Iterable):
            raise ValueError(f"stop must be a list of token-id sequences, e.g. [[13, 13]]; "
                             f"got the item {seq!r} (a single token: [[id]] or eos_id)")
        items = seq.tolist() if isinstance(seq, np.ndarray) else seq
        seq = tuple(_token_id(i, "a stop sequence's token") for i in items)
        if not seq:
            raise ValueError("stop: a stop sequence must not be empty")
        out.append(seq)
    return tuple(out)


class StopCriteria:
    """Per-row end-of-sequence and stop-sequence checks over the generated tokens.

    >>> crit = StopCriteria(eos_id=0, stop=[[5, 6]])
    >>> [crit.update(np.array([t]), np.array([0])).tolist() for t in (5, 6)]   # row 0: 5, 6
    [[False], [True]]
    """

    def __init__(self, eos_id=None, stop=None):
        self.eos = check_eos(eos_id)
        self.sequences = check_stop_sequences(stop)
        self._by_last: dict[int, list] = {}
        for seq in self.sequences:
            self._by_last.setdefault(seq[-1], []).append(seq)
        self._longest = max((len(s) for s in self.sequences), default=0)
        self._recent: dict[int, list] = {}        # row -> its last generated tokens

    def update(self, tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Record one new token per row (`rows` are the rows' original indices); return
        bool ``[len(rows)]``: True where the row is now finished."""
        done = np.zeros(len(tokens), dtype=bool)
        if not self.eos and not self.sequences:
            return done
        for i, (tok, row) in enumerate(zip(tokens.tolist(), rows.tolist())):
            if tok in self.eos:
                done[i] = True
            if self._longest:
                recent = self._recent.setdefault(row, [])
                recent.append(tok)
                del recent[:-self._longest]
                for seq in self._by_last.get(tok, ()):
                    if len(recent) >= len(seq) and tuple(recent[-len(seq):]) == seq:
                        done[i] = True
                        break
        return done


class StopStrings:
    """Cut streamed text at the first of several stop strings.

    `feed(text)` returns ``(safe, stopped)``: `safe` is the text that can be shown now
    (never a possible beginning of a stop string), `stopped` whether a stop string was
    found (then `safe` ends right before it and the rest is discarded). `flush()` returns
    the text held back when the stream ends without a stop.

    >>> s = StopStrings(["\\n\\n"])
    >>> s.feed("Hello\\n"), s.feed("\\nWorld")
    (('Hello', False), ('', True))
    """

    def __init__(self, stops=None):
        if stops is None:
            stops = ()
        elif isinstance(stops, str):
            stops = (stops,)
        stops = tuple(stops)
        for s in stops:
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop strings must be non-empty strings, got {s!r}")
        self.stops = stops
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> tuple:
        if self.stopped:
            return "", True
        buf = self._pending + text
        if not self.stops:
            self._pending = ""
            return buf, False
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped, self._pending = True, ""
            return buf[:min(hits)], True
        hold = 0                                   # the longest suffix that may start a stop
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), hold, -1):
                if buf.endswith(s[:k]):
                    hold = k
                    break
        self._pending = buf[len(buf) - hold:]
        return buf[:len(buf) - hold], False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
