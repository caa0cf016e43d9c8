"""Labelled texts for sequence classification: read them, balance the classes, split them.

    file --read_tsv / read_csv / read_jsonl--> LabelledTexts (texts, label ids, class names)
         --balance(seed)--> every class undersampled to the smallest one's count
         --stratified_split((0.7, 0.1, 0.2), seed)--> train, validation, test
         --encode(tokenizer)--> numpyllm.data.examples.Labelled (token ids, label ids)

**Readers are strict.** A line without a TAB, an empty text or label, a missing column, a
label outside the classes given, bytes that are not UTF-8: each is a ValueError of one line
that names the file, the line and the field (``spam.tsv:12: text is empty``). A data set
that reads is one the rest of the pipeline can trust. Entirely empty lines are skipped.

**Label ids** are stable: with ``classes=None`` the class names sorted (``ham`` = 0,
``spam`` = 1; integer labels of a JSONL file sort as numbers); with ``classes=[...]`` the
order given, and a label outside it is an error. The same file always maps to the same ids.

**Balancing** undersamples (the LLMs-from-scratch book's spam protocol: the 4,827 ham
messages down to the 747 spam, seed 123). **Stratified splitting** splits each class
separately, so each split holds each class in the proportion of the whole, to within one
example per class. Both take a seed and use their own ``np.random.default_rng(seed)``; the
same seed gives the same rows (not the book's exact rows: pandas draws with a different
generator).

>>> data = LabelledTexts(["hi", "win cash", "ok", "free prize", "see you"],
...                      ["ham", "spam", "ham", "spam", "ham"])
>>> data.classes, data.labels.tolist(), data.counts().tolist()
(('ham', 'spam'), [0, 1, 0, 1, 0], [3, 2])
>>> balance(data, seed=123).counts().tolist()          # ham undersampled to 2
[2, 2]
>>> [len(part) for part in stratified_split(data, (0.6, 0.4), seed=0)]
[3, 2]
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Sequence

import numpy as np

from .examples import Labelled

__all__ = ["LabelledTexts", "read_tsv", "read_csv", "read_jsonl", "balance",
           "split_indices", "stratified_split"]


class LabelledTexts:
    """Texts and their labels: ``texts[i]`` (a str), ``labels[i]`` (an int id into
    ``classes``, the class names in id order).

    Build it from texts and label *names* (`classes` None: the sorted distinct names; or
    the names in the order that fixes their ids), or read one from a file (`read_tsv`,
    `read_csv`, `read_jsonl`). Immutable by convention: `subset` returns a new one.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence, classes: Sequence | None = None,
                 *, source: str = "texts"):
        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"{source}: {len(texts)} texts but {len(labels)} labels")
        if not texts:
            raise ValueError(f"{source}: no examples")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{source}: example {i}: text is empty or not a string")
        self.classes = class_order(labels, classes, source)
        ids = {name: i for i, name in enumerate(self.classes)}
        for i, label in enumerate(labels):
            if label not in ids:
                raise ValueError(f"{source}: example {i}: label {label!r} is not one of "
                                 f"{list(self.classes)}")
        self.texts = texts
        self.labels = np.array([ids[label] for label in labels], dtype=np.int64)   # [N]
        self.source = source

    @classmethod
    def _from_ids(cls, texts: list, labels: np.ndarray, classes: tuple, source: str):
        out = cls.__new__(cls)
        out.texts, out.labels, out.classes, out.source = texts, labels, classes, source
        return out

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> np.ndarray:
        """Examples per class, ``[K]`` in id order."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def subset(self, rows) -> "LabelledTexts":
        """The examples at `rows` (an int array), in that order; the classes unchanged."""
        rows = np.asarray(rows, dtype=np.int64)
        return LabelledTexts._from_ids([self.texts[i] for i in rows], self.labels[rows],
                                       self.classes, self.source)

    def encode(self, tokenizer, *, max_length: int | None = None,
               truncate: str = "right") -> Labelled:
        """Token ids for a classifier: ``tokenizer.encode(text)`` for each text, cut to
        `max_length` tokens (``truncate="right"`` keeps the start, ``"left"`` the end), as
        a `Labelled` data set for `numpyllm.training.objectives.Classification`."""
        if truncate not in ("right", "left"):
            raise ValueError(f"LabelledTexts.encode: truncate must be 'right' or 'left', "
                             f"got {truncate!r}")
        sequences = []
        for i, text in enumerate(self.texts):
            ids = list(tokenizer.encode(text))
            if not ids:
                raise ValueError(f"{self.source}: example {i}: the tokenizer gives no token")
            if max_length is not None and len(ids) > max_length:
                ids = ids[:max_length] if truncate == "right" else ids[-max_length:]
            sequences.append(ids)
        return Labelled(sequences, self.labels, self.n_classes)

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}={n}" for c, n in zip(self.classes, self.counts()))
        return f"LabelledTexts({len(self)} examples from {self.source}: {counts})"


def class_order(labels: Sequence, classes: Sequence | None, source: str) -> tuple:
    """The class names in id order: `classes` as given (checked for duplicates), or the
    distinct `labels` sorted (numbers as numbers, strings as strings; never a mix)."""
    if classes is not None:
        classes = tuple(classes)
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"{source}: classes must be distinct and non-empty, got "
                             f"{list(classes)}")
        return classes
    kinds = {type(label) for label in labels}
    if len(kinds) > 1:
        raise ValueError(f"{source}: labels mix types {sorted(k.__name__ for k in kinds)}; "
                         "give classes=[...] to fix their order")
    return tuple(sorted(set(labels)))


# ---------------------------------------------------------------------------- readers
def _lines(path) -> list:
    """``(line number, text)`` of each non-empty line of a UTF-8 file, or a ValueError naming
    the first line that is not UTF-8. A byte-order mark at the start is dropped."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    out = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{number}: not UTF-8 ({e.reason} at byte {e.start} of "
                             "the line)") from None
        if text:
            out.append((number, text))
    return out


def _row(path, number: int, text: str, label: str, text_field: str = "text",
         label_field: str = "label") -> tuple:
    """``(line number, text, label)`` of a text format, or the error of an empty field."""
    if not label.strip():
        raise ValueError(f"{path}:{number}: {label_field} is empty")
    if not text.strip():
        raise ValueError(f"{path}:{number}: {text_field} is empty")
    return number, text, label


def _finish(path, rows: list, classes) -> LabelledTexts:
    """The ``(line number, text, label)`` rows read, with an unknown label reported at
    its line."""
    if not rows:
        raise ValueError(f"{path}: no examples")
    numbers, texts, labels = (list(col) for col in zip(*rows))
    order = class_order(labels, classes, str(path))
    known = set(order)
    for number, label in zip(numbers, labels):
        if label not in known:
            raise ValueError(f"{path}:{number}: label {label!r} is not one of {list(order)}")
    return LabelledTexts(texts, labels, order, source=str(path))


def read_tsv(path: str | os.PathLike, *, classes: Sequence[str] | None = None
             ) -> LabelledTexts:
    """``label<TAB>text`` lines (the SMS Spam Collection's format) as `LabelledTexts`.

    The label is everything before the first TAB, the text everything after it (a text
    may hold more TABs). Errors name the file and line: no TAB, an empty label or text, a
    label outside `classes`, bytes that are not UTF-8."""
    rows = []
    for number, line in _lines(path):
        label, tab, text = line.partition("\t")
        if not tab:
            raise ValueError(f"{path}:{number}: no TAB; expected 'label<TAB>text', got "
                             f"{line[:40]!r}")
        rows.append(_row(path, number, text, label))
    return _finish(path, rows, classes)


def read_csv(path: str | os.PathLike, *, text_column: str = "text",
             label_column: str = "label", classes: Sequence[str] | None = None,
             delimiter: str = ",") -> LabelledTexts:
    """A CSV file with a header row; the text and the label are the columns named
    `text_column` and `label_column` (others are ignored). Quoted fields may span lines;
    an error names the line where the record ends."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        number = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{number}: not UTF-8 ({e.reason})") from None
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{path}:1: no header row") from None
    columns = {}
    for name in (text_column, label_column):
        if name not in header:
            raise ValueError(f"{path}:1: no column {name!r} in the header {header}")
        columns[name] = header.index(name)
    rows = []
    try:
        for row in reader:
            number = reader.line_num
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{number}: {len(row)} fields, the header has "
                                 f"{len(header)}")
            rows.append(_row(path, number, row[columns[text_column]],
                             row[columns[label_column]], text_column, label_column))
    except csv.Error as e:
        raise ValueError(f"{path}:{reader.line_num}: bad CSV ({e})") from None
    return _finish(path, rows, classes)


def read_jsonl(path: str | os.PathLike, *, text_column: str = "text",
               label_column: str = "label", classes: Sequence | None = None
               ) -> LabelledTexts:
    """One JSON object per line; the text is the string under `text_column`, the label
    the string or integer under `label_column` (integer labels sort as numbers)."""
    rows = []
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:             # "[[[[..." nested past Python's stack
            raise ValueError(f"{path}:{number}: not a JSON object (nested too deeply)") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got "
                             f"{type(record).__name__}")
        for name in (text_column, label_column):
            if name not in record:
                raise ValueError(f"{path}:{number}: no field {name!r} (fields: "
                                 f"{sorted(record)})")
        text, label = record[text_column], record[label_column]
        if isinstance(label, bool) or not isinstance(label, (str, int)) or \
                (isinstance(label, str) and not label.strip()):
            raise ValueError(f"{path}:{number}: {label_column} must be a non-empty string "
                             f"or an integer, got {label!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{number}: {text_column} is empty or not a string")
        rows.append((number, text, label))
    return _finish(path, rows, classes)


# ---------------------------------------------------------------------------- balance, split
def balance(data: LabelledTexts, *, seed: int) -> LabelledTexts:
    """Every class undersampled, without replacement, to the count of the smallest class
    present; the rows kept stay in file order. (Classes with no example are ignored.)"""
    rng = np.random.default_rng(seed)
    counts = data.counts()
    smallest = counts[counts > 0].min()
    keep = []
    for k in range(data.n_classes):
        rows = np.flatnonzero(data.labels == k)
        if len(rows):
            keep.append(rng.choice(rows, size=smallest, replace=False))
    return data.subset(np.sort(np.concatenate(keep)))


def split_indices(labels, fractions: Sequence[float], *, seed: int) -> list[np.ndarray]:
    """Row indices of a stratified split: one sorted int array per fraction; together they
    partition ``range(len(labels))``.

    Each class c (n_c rows, shuffled by ``np.random.default_rng(seed)``) gives split s
    either ``floor(f_s n_c)`` or ``ceil(f_s n_c)`` rows: the floors first, then one more
    to the splits with the largest remainders (ties to the earlier split) until all n_c
    are placed. So every class's share of every split is its share of the whole to within
    one example. `fractions` are >= 0 and sum to 1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"split_indices: labels must be a 1-D integer array, got "
                         f"{labels.dtype} of shape {labels.shape}")
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or (f < 0).any() or not math.isclose(f.sum(), 1.0,
                                                                         abs_tol=1e-9):
        raise ValueError(f"split_indices: fractions must be >= 0 and sum to 1, got "
                         f"{list(fractions)}")
    rng = np.random.default_rng(seed)
    parts = [[] for _ in f]
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        exact = f * len(rows)                                   # [S]
        sizes = np.floor(exact).astype(np.int64)
        extra = len(rows) - sizes.sum()                         # 0 <= extra < S
        sizes[np.argsort(-(exact - sizes), kind="stable")[:extra]] += 1
        for s, chunk in enumerate(np.split(rows, np.cumsum(sizes)[:-1])):
            parts[s].append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def stratified_split(data: LabelledTexts, fractions: Sequence[float] = (0.7, 0.1, 0.2), *,
                     seed: int) -> list[LabelledTexts]:
    """`data` split by `split_indices`: e.g. train, validation and test sets holding 70%,
    10% and 20% of each class."""
    return [data.subset(rows) for rows in split_indices(data.labels, fractions, seed=seed)]
