"""Learning BPE merges from a corpus, incrementally.

The textbook trainer recounts every adjacent pair of the whole corpus after each merge:
for a 1,024-token vocabulary on a 1 MB corpus that is minutes of Python. This one does
the same arithmetic but only where it changes:

1. the corpus is pre-tokenised once and each *distinct* chunk is kept with its count
   (Tiny Shakespeare: ~300,000 chunks, ~25,000 distinct);
2. pair counts are summed once, and an index maps each pair to the chunks it occurs in;
3. a merge rewrites only the chunks in that index entry, subtracting their old pairs and
   adding their new ones, so the counts stay exact;
4. a heap keyed by (-count, left id, right id) finds the next merge. Entries go stale
   when a count drops; a popped entry whose count no longer matches is pushed back with
   the true count, and a pair whose count grows is pushed anew, so the first entry that
   matches is the true maximum.

Counting rule: every adjacent position counts, overlaps included ("aaa" holds the pair
(a, a) twice), weighted by the chunk's frequency; a merge rewrites a chunk left to right
("aaa" becomes "aa a").

Tie-breaking rule: the pair with the highest count wins; among equal counts, the pair
whose (left id, right id) is smallest. Ids are byte values for the 256 base tokens and
increase with each new token, so the rule is deterministic and independent of dict or
corpus order.

Aliases: two different pairs can spell the same bytes ("a"+"bc" and "ab"+"c"). Token
ids must name distinct byte strings (the encoder looks merges up by bytes, as tiktoken
does), so when the best pair spells an existing token the chunks are rewritten to that
token and no new id is spent. Such a merge is still reported (its new id is old).
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Callable, Mapping, NamedTuple

__all__ = ["Merge", "learn_merges"]


class Merge(NamedTuple):
    """One learned merge: the pair `(left, right)` of token ids becomes token `new`."""
    left: int
    right: int
    new: int


def merge_pair(a: int, b: int, new: int, words: list, freqs: list, where: dict,
               pair_counts: dict) -> set:
    """Rewrite every word that holds the pair ``(a, b)`` with `new` in its place (left to
    right, no overlaps), keeping the pair counts (weighted by each word's frequency) and
    the pair -> words index up to date. Returns the pairs whose counts grew: only pairs
    holding the new token can have, and only they need pushing on the heap again. BPE's
    trainer and WordPiece's (which merges the same way) both call it."""
    grown: set[tuple[int, int]] = set()
    for wi in where.pop((a, b)):
        word = words[wi]
        n = len(word)
        out: list[int] = []
        i = 0
        while i < n:
            if word[i] == a and i + 1 < n and word[i + 1] == b:
                out.append(new)
                i += 2
            else:
                out.append(word[i])
                i += 1
        if len(out) == n:
            continue                 # an index entry left over from an earlier rewrite
        freq = freqs[wi]
        for pair in zip(word, word[1:]):
            pair_counts[pair] -= freq
        for pair in zip(out, out[1:]):
            pair_counts[pair] += freq
            # The other pairs are a subset of the word's old pairs, already indexed.
            if new in pair:
                where[pair].add(wi)
                grown.add(pair)
        words[wi] = out
    return grown


def learn_merges(chunk_counts: Mapping[bytes, int], num_tokens: int, *,
                 min_frequency: int = 1,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[list[Merge], list[bytes]]:
    """Learn merges until the vocabulary holds `num_tokens` tokens (256 bytes included).

    `chunk_counts` maps each distinct pre-tokenised chunk (as bytes) to how often it
    occurs. Training stops early when no pair occurs at least `min_frequency` times
    (a small corpus may not support the vocabulary asked for). `progress(done, total)`
    is called after each new token, counting from 0 to `num_tokens - 256`.

    Returns `(merges, vocab)`, where `vocab[i]` is the bytes of token `i`.

    >>> merges, vocab = learn_merges({b"abab": 3, b"ab": 1}, 258)
    >>> merges
    [Merge(left=97, right=98, new=256), Merge(left=256, right=256, new=257)]
    >>> vocab[257]
    b'abab'
    """
    if num_tokens < 256:
        raise ValueError(f"a byte-level vocabulary needs at least 256 tokens, got {num_tokens}")
    vocab = [bytes([i]) for i in range(256)]
    by_bytes = {tok: i for i, tok in enumerate(vocab)}
    total = num_tokens - 256

    words: list[list[int]] = []          # each distinct chunk as a list of token ids
    freqs: list[int] = []
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for chunk, freq in chunk_counts.items():
        if len(chunk) < 2 or freq <= 0:
            continue                     # nothing to merge inside it
        word = list(chunk)
        wi = len(words)
        words.append(word)
        freqs.append(freq)
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(wi)

    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Merge] = []
    while len(vocab) < num_tokens and heap:
        neg, a, b = heapq.heappop(heap)
        count = pair_counts.get((a, b), 0)
        if count != -neg:                # stale: the count dropped since this was pushed
            if count > 0:
                heapq.heappush(heap, (-count, a, b))
            continue
        if count < min_frequency:
            break
        merged = vocab[a] + vocab[b]
        new = by_bytes.get(merged)
        if new is None:
            new = len(vocab)
            vocab.append(merged)
            by_bytes[merged] = new
        merges.append(Merge(a, b, new))

        grown = merge_pair(a, b, new, words, freqs, where, pair_counts)
        del pair_counts[(a, b)]
        for pair in grown:
            heapq.heappush(heap, (-pair_counts[pair], pair[0], pair[1]))
        if progress is not None and vocab[-1] is merged:
            progress(len(vocab) - 256, total)
    return merges, vocab
