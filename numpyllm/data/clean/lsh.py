"""Locality-sensitive hashing over MinHash signatures: find the documents whose Jaccard
similarity is probably above a threshold without comparing every pair.

**Bands and rows.** Cut each K-long signature into b bands of r rows (b * r <= K). Two
documents become candidates when they agree on all r rows of at least one band. With
Jaccard similarity s each row agrees with probability s, so

    P[candidate | s] = 1 - (1 - s^r)^b                                    (the S-curve)

which is near 0 for small s, near 1 for large s, and steepest around (1/b)^(1/r). The
choice of (b, r) sets where the step sits: more rows per band move it right (fewer false
positives), more bands move it left (fewer false negatives).

**Choosing b and r from a threshold t**, as datasketch's MinHashLSH does: over every
b >= 1, r >= 1 with b * r <= K, minimise

    w_fp * FP(b, r) + w_fn * FN(b, r),
    FP = integral_0^t P[candidate | s] ds,    FN = integral_t^1 (1 - P[candidate | s]) ds,

the area under the S-curve left of t (pairs below the threshold that become candidates)
and the area above it right of t (pairs above it that do not), weights (0.5, 0.5) by
default. The integrands are polynomials in s of degree b * r <= K, so Gauss-Legendre
quadrature with K/2 + 1 nodes integrates them exactly (datasketch uses scipy's adaptive
quadrature; the two agree to ~1e-12, and on the (b, r) chosen: tests/oracle/).
For t = 0.8 and K = 128 this gives b = 9, r = 13.

>>> optimal_params(0.8, 128)
(9, 13)
>>> idx = LSHIndex(bands=2, rows=2)
>>> import numpy as np
>>> idx.insert("a", np.array([1, 2, 3, 4], dtype=np.uint32))
>>> sorted(idx.query(np.array([9, 9, 3, 4], dtype=np.uint32)))     # band 2 agrees
['a']
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np

__all__ = ["s_curve", "optimal_params", "false_positive_area", "false_negative_area",
           "LSHIndex"]


def s_curve(s, bands: int, rows: int):
    """P[two signatures share a band | Jaccard s] = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def _nodes(num_perm: int):
    # exact for polynomials of degree <= 2n - 1; capped (then merely very accurate)
    x, w = np.polynomial.legendre.leggauss(min(num_perm // 2 + 1, 256))
    return x, w


def _integral(f, lo: float, hi: float, x, w) -> float:
    return float((hi - lo) / 2 * np.sum(w * f((hi - lo) / 2 * x + (hi + lo) / 2)))


def false_positive_area(threshold: float, bands: int, rows: int, num_perm: int = 256) -> float:
    """integral_0^t (1 - (1 - s^r)^b) ds."""
    x, w = _nodes(num_perm)
    return _integral(lambda s: s_curve(s, bands, rows), 0.0, threshold, x, w)


def false_negative_area(threshold: float, bands: int, rows: int, num_perm: int = 256) -> float:
    """integral_t^1 (1 - s^r)^b ds."""
    x, w = _nodes(num_perm)
    return _integral(lambda s: 1.0 - s_curve(s, bands, rows), threshold, 1.0, x, w)


@lru_cache(maxsize=64)
def optimal_params(threshold: float, num_perm: int,
                   weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """The (bands, rows) that minimise the weighted false-positive and false-negative
    areas at `threshold` (datasketch's `_optimal_param`; the first minimum in the same
    b-then-r order)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}")
    w_fp, w_fn = weights
    if w_fp < 0 or w_fn < 0 or abs(w_fp + w_fn - 1.0) > 1e-12:
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights}")
    x, w = _nodes(num_perm)
    lo_s = threshold / 2 * x + threshold / 2                  # nodes on [0, t]
    hi_s = (1 - threshold) / 2 * x + (1 + threshold) / 2      # nodes on [t, 1]
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1)[:, None]          # [R, 1]
        fp = threshold / 2 * np.sum(w * (1 - (1 - lo_s ** r) ** b), axis=1)          # [R]
        fn = (1 - threshold) / 2 * np.sum(w * (1 - hi_s ** r) ** b, axis=1)          # [R]
        err = fp * w_fp + fn * w_fn
        i = int(np.argmin(err))
        if err[i] < best:
            best, opt = float(err[i]), (b, i + 1)
    return opt


class LSHIndex:
    """b hash tables, one per band, from a band's r values to the keys inserted with it.

    `query(sig)` returns every key that shares at least one band with `sig`: candidates,
    to be verified (MinHash estimate or exact Jaccard) or taken as they are. Memory: b
    table entries per inserted signature (the band's r * 4 bytes and a key), never a text.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, *, bands: int | None = None,
                 rows: int | None = None, weights: tuple[float, float] = (0.5, 0.5)):
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither (then a threshold)")
        if bands is None:
            bands, rows = optimal_params(threshold, num_perm, tuple(weights))
        elif bands < 1 or rows < 1:
            raise ValueError(f"bands and rows must be positive, got {bands} and {rows}")
        self.bands, self.rows = int(bands), int(rows)
        self._tables = [defaultdict(list) for _ in range(self.bands)]

    def _keys(self, sig: np.ndarray):
        if sig.ndim != 1 or sig.shape[0] < self.bands * self.rows:
            raise ValueError(f"a signature of {sig.shape} is too short for {self.bands} "
                             f"bands of {self.rows} rows")
        sig = np.ascontiguousarray(sig, dtype=np.uint32)
        return [sig[i * self.rows:(i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def query(self, sig: np.ndarray) -> set:
        found = set()
        for table, key in zip(self._tables, self._keys(sig)):
            found.update(table.get(key, ()))
        return found

    def insert(self, key, sig: np.ndarray) -> None:
        for table, band in zip(self._tables, self._keys(sig)):
            table[band].append(key)
