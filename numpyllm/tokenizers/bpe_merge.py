"""Encoding one chunk with byte-level BPE: apply the merges by rank, and cache the result.

Training (`trainer.py`) learns merges; this module applies them. The vocabulary is a table
of *mergeable ranks*, token bytes -> id, where a lower id means an earlier merge. A chunk
(one piece of pre-tokenised text, see `pretokenize.py`) is encoded exactly as tiktoken
does, so GPT-2's files give GPT-2's ids:

0. a chunk that is itself a token is that token (`ChunkCache` starts out holding them);
1. otherwise start from the chunk's single bytes;
2. among adjacent pairs whose concatenation is a token, merge the one of lowest rank (the
   leftmost one on a tie);
3. repeat until no adjacent pair is a token (`merge_chunk` does steps 1-3).

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"bc": 257, b"abc": 258}
    >>> merge_chunk(b"abcab", ranks)      # ab (256) before bc (257), then ab + c = abc
    [b'abc', b'ab']

Merging by rank, rather than replaying the learned merges in order, needs nothing but the
ranks table: that is why a tiktoken file (token, rank) describes a vocabulary completely.

Two implementations give the same parts: `merge_short`, quadratic but made of a few
C-level list calls per step, fastest for the short chunks of prose; and `merge_long`, a
heap and linked offsets in O(n log n), so a megabyte without spaces cannot take hours.

`ChunkCache` remembers the ids of each chunk it has encoded, so a text pays for BPE once
per *distinct* chunk (Tiny Shakespeare: ~300,000 chunks, ~25,000 distinct).
"""
from __future__ import annotations

import heapq
import sys
from typing import Mapping

__all__ = ["merge_chunk", "merge_short", "merge_long", "ChunkCache", "LONG_CHUNK"]

_NO_RANK = sys.maxsize
# Beyond this many bytes the quadratic merge loop gives way to the heap-based one; chunks
# this long are rare in prose (long digit runs, whitespace, or a word with no spaces).
LONG_CHUNK = 256

_SINGLE_BYTES = [bytes([b]) for b in range(256)]


def merge_short(piece: bytes, ranks: Mapping[bytes, int]) -> list[bytes]:
    """Merge a chunk's bytes by rank. O(n^2), but each step is a few C-level list calls."""
    get = ranks.get
    parts = list(map(_SINGLE_BYTES.__getitem__, piece))
    # pair_ranks[i]: rank of parts[i] + parts[i+1], _NO_RANK when that is no token
    pair_ranks = [get(a + b, _NO_RANK) for a, b in zip(parts, parts[1:])]
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_RANK:
            break
        i = pair_ranks.index(best)       # leftmost pair of lowest rank, as tiktoken
        parts[i] += parts.pop(i + 1)
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], _NO_RANK)
    return parts


def merge_long(piece: bytes, ranks: Mapping[bytes, int]) -> list[bytes]:
    """The same merges as `merge_short` in O(n log n), for long chunks.

    Parts are identified by their start offset and linked by `nxt`. A heap entry
    (rank, start, end) names a pair of adjacent parts spanning piece[start:end]; since the
    rank depends only on those bytes, the entry is still right whenever the part at
    `start` is alive and the part after it ends at `end`. Popping the smallest (rank,
    start) is the leftmost lowest-rank pair, as in the quadratic loop.
    """
    n = len(piece)
    get = ranks.get
    nxt = list(range(1, n + 1))          # nxt[s]: where the part starting at s ends
    prv = list(range(-1, n - 1))         # prv[s]: start of the part before s
    alive = [True] * n
    heap = []
    for s in range(n - 1):
        r = get(piece[s:s + 2])
        if r is not None:
            heap.append((r, s, s + 2))
    heapq.heapify(heap)
    while heap:
        _, s, end = heapq.heappop(heap)
        if not alive[s]:
            continue
        t = nxt[s]
        if t >= n or nxt[t] != end:
            continue
        alive[t] = False
        nxt[s] = end
        if end < n:
            prv[end] = s
        if s > 0:
            p = prv[s]
            r = get(piece[p:end])
            if r is not None:
                heapq.heappush(heap, (r, p, end))
        if end < n:
            r = get(piece[s:nxt[end]])
            if r is not None:
                heapq.heappush(heap, (r, s, nxt[end]))
    parts, s = [], 0
    while s < n:
        parts.append(piece[s:nxt[s]])
        s = nxt[s]
    return parts


def merge_chunk(piece: bytes, ranks: Mapping[bytes, int]) -> list[bytes]:
    """A chunk's bytes merged by rank (steps 1-3): `merge_short`, or `merge_long` when the
    chunk is long."""
    return (merge_short if len(piece) <= LONG_CHUNK else merge_long)(piece, ranks)


class ChunkCache(dict):
    """chunk text -> token ids. A dict whose misses run BPE, so the hot loop of `encode`
    is `map(cache.__getitem__, chunks)` and stays in C for every chunk seen before.

    It starts filled with every token whose bytes are valid UTF-8: that is step 0, a chunk
    that is itself a token is that token, whatever merging its bytes would give. Beyond
    those it stops growing after `limit` entries, so a huge corpus of unique chunks cannot
    eat the memory; results never depend on what else is cached.

    >>> cache = ChunkCache({bytes([b]): b for b in range(256)} | {b"hi": 256}, limit=10)
    >>> cache["hi"], cache["hip"]
    ([256], [256, 112])
    """

    def __init__(self, ranks: Mapping[bytes, int], limit: int):
        super().__init__()
        for token, rank in ranks.items():
            try:
                self[token.decode("utf-8")] = [rank]
            except UnicodeDecodeError:
                pass
        self._ranks = ranks
        self._limit = len(self) + limit

    def __missing__(self, chunk: str) -> list[int]:
        ranks = self._ranks
        ids = [ranks[p] for p in merge_chunk(chunk.encode("utf-8"), ranks)]
        if len(self) < self._limit:
            self[chunk] = ids
        return ids
