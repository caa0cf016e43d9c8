"""Near-duplicate removal in one streaming pass: MinHash each document, ask the LSH index
for earlier documents that share a band, and drop the document when one of them has an
estimated Jaccard similarity of at least the threshold (the first of a group is kept).

The index holds, per kept document, its signature (K uint32: 512 bytes at K = 128) and
b band entries: never its text. Verification against the stored signature removes most
of the LSH candidates below the threshold (the S-curve's left tail); `verify=False`
takes every candidate, as datasketch's MinHashLSH.query returns them.

>>> nd = NearDedup(threshold=0.5, num_perm=64, shingle_size=2)
>>> nd("the cat sat on the mat and looked at the dog", "a") is None
True
>>> nd("the cat sat on the mat and looked at the bird", "b")     # J = 8/10
'a'
"""
from __future__ import annotations

import numpy as np

from .lsh import LSHIndex
from .minhash import MinHasher, shingles

__all__ = ["NearDedup"]


class NearDedup:
    """Call it on each document in order with a key (where the document came from);
    it returns the key of the earlier document this one nearly duplicates, or None (and
    then remembers this one)."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, *, shingle_size: int = 5,
                 shingle_kind: str = "word", seed: int = 1, bands: int | None = None,
                 rows: int | None = None, verify: bool = True, scheme: str = "affine32"):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle_kind not in ("word", "char"):
            raise ValueError(f"shingle kind {shingle_kind!r}: expected 'word' or 'char'")
        if shingle_size < 1:
            raise ValueError(f"shingle size must be at least 1, got {shingle_size}")
        self.threshold, self.verify = threshold, verify
        self.shingle_size, self.shingle_kind = shingle_size, shingle_kind
        self.hasher = MinHasher(num_perm, seed, scheme)
        self.index = LSHIndex(threshold, num_perm, bands=bands, rows=rows)
        if self.index.bands * self.index.rows > num_perm:
            raise ValueError(f"{self.index.bands} bands x {self.index.rows} rows > "
                             f"num_perm {num_perm}")
        self._sigs = np.empty((1024, num_perm), dtype=np.uint32)       # [N, K], grows
        self._keys: list = []

    def signature(self, text: str) -> np.ndarray | None:
        items = shingles(text, self.shingle_size, self.shingle_kind)
        return self.hasher.signature(items) if items else None

    def __call__(self, text: str, key):
        sig = self.signature(text)
        if sig is None:                   # no words: nothing to compare (exact dedup's job)
            return None
        candidates = sorted(self.index.query(sig))
        if candidates:
            if not self.verify:
                return self._keys[candidates[0]]
            agree = (self._sigs[candidates] == sig).mean(axis=1)        # [C]
            best = int(np.argmax(agree))
            if agree[best] >= self.threshold:
                return self._keys[candidates[best]]
        n = len(self._keys)
        if n == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.empty_like(self._sigs)])
        self._sigs[n] = sig
        self._keys.append(key)
        self.index.insert(n, sig)
        return None

    def __len__(self) -> int:
        return len(self._keys)
