"""Data sets of examples rather than a stream of tokens: (source, target) pairs for a
sequence-to-sequence model, (sequence, label) pairs for a classifier.

Each is a list of token-id arrays (of any lengths) and their partners, checked once when
built: integer ids, non-empty sequences, labels in range. Batches pad them
(`numpyllm.training.objectives`); nothing here is random.

>>> pairs = Pairs([[5, 6, 7], [8]], [[7, 6, 5], [8]])
>>> len(pairs), pairs.sources[1].tolist()
(2, [8])
>>> Labelled([[1, 2], [3]], [0, 1], n_classes=2).labels.tolist()
[0, 1]
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["Pairs", "Labelled", "read_tsv_pairs"]


def _sequences(seqs, what: str) -> list[np.ndarray]:
    out = []
    for i, s in enumerate(seqs):
        a = np.asarray(s)
        if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{what} {i} must be a non-empty 1-D sequence of integer token "
                             f"ids, got {a.dtype} of shape {a.shape}")
        if a.min() < 0:
            raise ValueError(f"{what} {i} holds a negative token id {int(a.min())}")
        out.append(a.astype(np.int64))
    return out


class Pairs:
    """(source, target) examples: ``sources[i]`` and ``targets[i]`` are 1-D id arrays."""

    def __init__(self, sources: Sequence, targets: Sequence):
        self.sources = _sequences(sources, "source")
        self.targets = _sequences(targets, "target")
        if len(self.sources) != len(self.targets):
            raise ValueError(f"{len(self.sources)} sources but {len(self.targets)} targets")
        if not self.sources:
            raise ValueError("a data set of pairs needs at least one pair")

    def __len__(self) -> int:
        return len(self.sources)


class Labelled:
    """(sequence, label) examples: ``sequences[i]`` a 1-D id array, ``labels[i]`` an
    int in [0, n_classes)."""

    def __init__(self, sequences: Sequence, labels: Sequence, n_classes: int):
        self.sequences = _sequences(sequences, "sequence")
        self.labels = np.asarray(labels)
        if self.labels.shape != (len(self.sequences),) or not np.issubdtype(
                self.labels.dtype, np.integer):
            raise ValueError(f"labels must be {len(self.sequences)} integers, got "
                             f"{self.labels.dtype} of shape {self.labels.shape}")
        if not self.sequences:
            raise ValueError("a labelled data set needs at least one example")
        if self.labels.min() < 0 or self.labels.max() >= n_classes:
            raise ValueError(f"labels must lie in [0, {n_classes}), got "
                             f"[{self.labels.min()}, {self.labels.max()}]")
        self.n_classes = int(n_classes)

    def __len__(self) -> int:
        return len(self.sequences)


def read_tsv_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(sources, targets) from a UTF-8 file of ``source<TAB>target`` lines (blank lines
    skipped). A line without exactly one TAB is an error naming the file and line."""
    sources, targets = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got "
                                 f"{line[:60]!r}")
            sources.append(parts[0])
            targets.append(parts[1])
    if not sources:
        raise ValueError(f"{path}: no 'source<TAB>target' lines")
    return sources, targets
