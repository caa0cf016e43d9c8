"""Learning a WordPiece vocabulary, as Hugging Face's `WordPieceTrainer` does.

Google never published BERT's WordPiece trainer (Schuster & Nakajima 2012 choose the merge
that most raises the likelihood of a language model). Hugging Face's trainer, which this
follows step for step (`tokenizers/src/models/wordpiece/trainer.rs` wraps the BPE trainer),
is BPE with a *continuing-subword prefix*:

1. the special tokens take the first ids ([PAD] [UNK] [CLS] [SEP] [MASK] by default);
2. the alphabet: every character of the words (the `limit_alphabet` most frequent ones
   when that is set), in code point order;
3. each word is spelled as its first character followed by the others with the prefix:
   "hello" -> h ##e ##l ##l ##o. So a piece that starts a word and one that continues it
   are different tokens, and decoding knows where words begin;
4. BPE merges: the adjacent pair of highest count (weighted by the word counts, overlaps
   counted) becomes one token, the right part losing its prefix ("##l" + "##o" ->
   "##lo", "h" + "##e" -> "he"); ties go to the pair of smallest (left id, right id). Stop
   at `vocab_size` tokens, or when the best pair occurs fewer than `min_frequency` times.

The merges themselves are then thrown away: WordPiece encodes by greedy longest match over
the vocabulary (`wordpiece.py`), not by replaying merges.

One difference from Hugging Face: it numbers the "##c" tokens in the order its hash map
happens to yield the words, which changes between runs; here words are taken in sorted
order, so training is deterministic (the vocabulary can differ from theirs in the order
of equal-count merges, never in the algorithm).

    >>> learn_wordpiece_vocab({"hug": 10, "pug": 5, "hugs": 5}, 12, special_tokens=["[UNK]"])
    ['[UNK]', 'g', 'h', 'p', 's', 'u', '##u', '##g', '##s', '##ug', 'hug', 'pug']
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Callable, Iterable, Mapping, Sequence

from .trainer import merge_pair

__all__ = ["learn_wordpiece_vocab", "count_words"]


def learn_wordpiece_vocab(word_counts: Mapping[str, int], vocab_size: int, *,
                          special_tokens: Sequence[str] = (), prefix: str = "##",
                          min_frequency: int = 0, limit_alphabet: int | None = None,
                          progress: Callable[[int, int], None] | None = None) -> list[str]:
    """The vocabulary (tokens in id order) learned from `word_counts` (word -> count, the
    words as the pre-tokenizer cuts them). `progress(done, total)` after each new token."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    vocab: list[str] = []
    index: dict[str, int] = {}

    def add(token: str) -> int:
        if token not in index:
            index[token] = len(vocab)
            vocab.append(token)
        return index[token]

    for s in special_tokens:
        add(s)
    alphabet: Counter = Counter()
    for word, count in word_counts.items():
        for c in word:
            alphabet[c] += count
    kept = list(alphabet)
    if limit_alphabet is not None and len(kept) > limit_alphabet:
        kept.sort(key=alphabet.__getitem__)           # drop the rarest
        kept = kept[len(kept) - limit_alphabet:]
    kept.sort()                                        # code point order
    for c in kept:
        add(c)
    allowed = set(kept)

    words: list[list[int]] = []
    freqs: list[int] = []
    for word in sorted(word_counts):                   # deterministic "##c" ids
        count = word_counts[word]
        # Characters outside the kept alphabet are left out of the word, as in HF.
        chars = [c for c in word if c in allowed]
        # (If the word's first character was dropped, every kept one continues it.)
        ids = [add(c) if i == 0 and word[0] == c else add(prefix + c)
               for i, c in enumerate(chars)]
        words.append(ids)
        freqs.append(count)

    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[wi]
            where[pair].add(wi)
    heap = [(-n, a, b) for (a, b), n in pair_counts.items() if n > 0]
    heapq.heapify(heap)
    total = max(vocab_size - len(vocab), 0)
    start = len(vocab)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        count = pair_counts.get((a, b), 0)
        if count != -neg:                              # stale entry: push the true count
            if count > 0:
                heapq.heappush(heap, (-count, a, b))
            continue
        if count < 1 or count < min_frequency:
            break
        right = vocab[b][len(prefix):] if vocab[b].startswith(prefix) else vocab[b]
        new = add(vocab[a] + right)
        grown = merge_pair(a, b, new, words, freqs, where, pair_counts)
        pair_counts.pop((a, b), None)
        for pair in grown:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair[0], pair[1]))
        if progress is not None:
            progress(len(vocab) - start, total)
    return vocab


def count_words(texts: Iterable[str], split: Callable[[str], list[str]]) -> Counter:
    """word -> count over `texts`, cut into words by `split` (normalize + pre-tokenize)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(split(text))
    return counts
