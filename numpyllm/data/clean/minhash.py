"""MinHash signatures: a short fixed-size sketch of a set whose agreement estimates the
Jaccard similarity of two sets.

**Shingles.** A document becomes a set: its word n-grams (`shingles(text, n, "word")`,
words = runs of letters and digits, lower-cased, so punctuation and spacing do not
matter) or its character n-grams ("char", on the normalised text). A text with fewer
than n words (characters) is one shingle, itself.

**The estimate.** For a random permutation pi of the universe, the smallest pi-value of
a set A is equally likely to be any of A's elements, so

    P[ min pi(A) == min pi(B) ] = |A & B| / |A | B| = J(A, B).

With K independent permutations the fraction of agreeing minima is an unbiased estimate
of J with standard deviation sqrt(J (1 - J) / K) <= 1 / (2 sqrt K): 0.044 at K = 128.

**The permutations are datasketch's** (its 2.0.0 default scheme "affine32"), so that a
signature here equals `datasketch.MinHash(num_perm, seed)` fed the same shingles:

    h    = first 4 bytes of SHA-1(shingle as UTF-8), little-endian      (sha1_hash32)
    h    = fmix32(h)      MurmurHash3's finaliser, a bijection that spreads structured h
    pi_k = a_k * h + b_k  mod 2^32   with a_k odd (a bijection of [0, 2^32)),

a_k, b_k drawn from ``np.random.RandomState(seed)`` exactly as datasketch draws them. Its
older scheme "legacy" (``(a*h + b) mod (2^61 - 1)``, then the low 32 bits, a and b below
2^61; the product wraps at 2^64 as numpy's uint64 does) is here too, for signatures made
by datasketch before 2.0.0. RandomState rather than a Generator only because matching
datasketch needs its stream; the seed is explicit either way.

>>> mh = MinHasher(num_perm=128, seed=1)
>>> a = mh.signature(shingles("the cat sat on the mat today", 2))
>>> b = mh.signature(shingles("the cat sat on the mat yesterday", 2))
>>> a.shape, a.dtype, round(float(estimate_jaccard(a, b)), 2)   # exact J = 5/7 = 0.71
((128,), dtype('uint32'), 0.65)
"""
from __future__ import annotations

import hashlib

import numpy as np
import regex

from .exact import normalize

__all__ = ["shingles", "sha1_hash32", "MinHasher", "estimate_jaccard", "jaccard"]

_WORD = regex.compile(r"[\p{L}\p{N}]+")
_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64((1 << 32) - 1)


def shingles(text: str, n: int = 5, kind: str = "word") -> set[str]:
    """The set of word (or character) n-grams of `text`; word n-grams are joined by one
    space."""
    if n < 1:
        raise ValueError(f"shingle size must be at least 1, got {n}")
    if kind == "word":
        words = _WORD.findall(text.casefold())
        if len(words) <= n:
            return {" ".join(words)} if words else set()
        return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
    if kind == "char":
        t = normalize(text)
        if len(t) <= n:
            return {t} if t else set()
        return {t[i:i + n] for i in range(len(t) - n + 1)}
    raise ValueError(f"shingle kind {kind!r}: expected 'word' or 'char'")


def sha1_hash32(shingle: str) -> int:
    """datasketch's default hash: SHA-1's first 4 bytes, little-endian."""
    return int.from_bytes(hashlib.sha1(shingle.encode("utf-8", "surrogatepass")).digest()[:4],
                          "little")


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 32-bit finaliser; uint32 products wrap mod 2^32, as intended
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """K seeded permutations; `signature(set of str)` -> uint32 array [K].

    `scheme` "affine32" (datasketch >= 2.0 default) or "legacy" (datasketch < 2.0).
    The signature of the empty set is all 2^32 - 1 (datasketch's empty value).
    """

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32",
                 chunk: int = 4096):
        if not 1 <= num_perm <= 65536:
            raise ValueError(f"num_perm must be in [1, 65536], got {num_perm}")
        if scheme not in ("affine32", "legacy"):
            raise ValueError(f"scheme {scheme!r}: expected 'affine32' or 'legacy'")
        self.num_perm, self.seed, self.scheme, self.chunk = num_perm, seed, scheme, chunk
        gen = np.random.RandomState(seed)
        if scheme == "legacy":       # datasketch draws (a, b) pairs, one permutation at a time
            ab = np.array([(gen.randint(1, _MERSENNE, dtype=np.uint64),
                            gen.randint(0, _MERSENNE, dtype=np.uint64))
                           for _ in range(num_perm)], dtype=np.uint64)
            self.a, self.b = ab[:, 0], ab[:, 1]                 # [K], [K]
        else:                        # all a, then all b; a odd
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) \
                + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)

    def hashes(self, items) -> np.ndarray:
        """The permutation inputs h of `items` (strings), uint32 [n]."""
        h = np.fromiter((sha1_hash32(s) for s in items), dtype=np.uint32)
        return _fmix32(h) if self.scheme == "affine32" else h

    def signature(self, items) -> np.ndarray:
        """min over items of pi_k(h(item)), for each k: uint32 [K]."""
        h = self.hashes(items)
        sig = np.full(self.num_perm, np.uint32(0xFFFFFFFF), dtype=np.uint32)
        # in chunks of shingles, so a huge document needs [chunk, K] memory, not [n, K]
        for i in range(0, len(h), self.chunk):
            part = h[i:i + self.chunk, None]                      # [c, 1]
            if self.scheme == "affine32":
                phv = self.a * part + self.b                      # [c, K], wraps mod 2^32
            else:
                phv = ((self.a * part.astype(np.uint64) + self.b) % _MERSENNE) & _MASK32
            np.minimum(sig, phv.min(axis=0).astype(np.uint32), out=sig)
        return sig


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The fraction of the K positions where two signatures agree."""
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures of different lengths: {sig_a.shape} vs {sig_b.shape}")
    return float(np.mean(sig_a == sig_b))


def jaccard(a: set, b: set) -> float:
    """The exact Jaccard similarity |A & B| / |A | B| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
